//! Reading the audit log back, for `ferry audit`: its files oldest first (rotated ones, then
//! the current one), and which entries a filter keeps.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::writer::numbered;

/// The log's files that exist, oldest first: `PATH.N` … `PATH.1`, then `PATH`.
pub fn log_files(path: &Path) -> Vec<PathBuf> {
    let mut rotated: Vec<PathBuf> = (1..)
        .map(|n| numbered(path, n))
        .take_while(|p| p.exists())
        .collect();
    rotated.reverse();
    if path.exists() {
        rotated.push(path.to_path_buf());
    }
    rotated
}

/// Which entries to show.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this user's entries (the actor, or the subject of a user change).
    pub user: Option<String>,
    /// Only entries at or after this time.
    pub since: Option<SystemTime>,
}

impl AuditFilter {
    /// Whether `entry` (one parsed line) is shown. Lines of kinds this version does not know
    /// are judged by the same fields.
    pub fn keeps(&self, entry: &serde_json::Value) -> bool {
        if let Some(user) = &self.user
            && entry.get("user").and_then(serde_json::Value::as_str) != Some(user.as_str())
        {
            return false;
        }
        if let Some(since) = self.since {
            let at = entry
                .get("time")
                .and_then(serde_json::Value::as_str)
                .and_then(|t| humantime::parse_rfc3339(t).ok());
            if at.is_none_or(|at| at < since) {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_keeps_a_user_s_entries_since_a_time() {
        let entry = serde_json::json!({"time": "2026-11-26T10:00:00.000Z", "kind": "mkdir", "user": "alice"});
        let at = |t: &str| humantime::parse_rfc3339(t).unwrap();
        let filter = |user: Option<&str>, since: Option<&str>| AuditFilter {
            user: user.map(str::to_string),
            since: since.map(at),
        };
        assert!(filter(None, None).keeps(&entry));
        assert!(filter(Some("alice"), Some("2026-11-26T09:00:00Z")).keeps(&entry));
        assert!(!filter(Some("bob"), None).keeps(&entry));
        assert!(!filter(None, Some("2026-11-26T11:00:00Z")).keeps(&entry));
    }

    #[test]
    fn files_are_listed_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        for p in [numbered(&path, 2), numbered(&path, 1), path.clone()] {
            std::fs::write(p, "").unwrap();
        }
        assert_eq!(
            log_files(&path),
            vec![numbered(&path, 2), numbered(&path, 1), path.clone()]
        );
    }
}
