//! The audit log, under `[audit]`: one JSON object per line for every sign-in, command, file
//! change, user change, config reload and legacy use, so an operator can answer "who did what,
//! from where". On by default, in the state folder.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Settings of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// Keep an audit log at all. Default true.
    pub enabled: bool,
    /// The log file. Default `STATE/audit.log`.
    pub path: Option<PathBuf>,
    /// How often what was written is made durable (`fsync`), in ms. Default 1,000; 0 syncs
    /// after every batch of entries.
    pub fsync_interval_ms: u64,
    /// The file is rotated (to `PATH.1`, `PATH.2`, …) once it reaches this size. Default 64 MiB.
    pub rotate_bytes: u64,
    /// Rotated files kept beside the current one; older ones are removed. Default 4.
    pub keep: usize,
    /// No rotated file holding entries younger than this many days is removed, whatever
    /// `keep` says (the log then grows past `keep` files, and the server says so): a client
    /// that writes entries fast cannot push the record of what it did out. Default 7; 0 lets
    /// `keep` alone decide.
    pub keep_days: u64,
    /// Entries waiting to be written at most. When the disk falls this far behind, new entries
    /// are dropped and counted (the server never waits on its audit log). Default 4,096.
    pub queue: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            enabled: true,
            path: None,
            fsync_interval_ms: 1_000,
            rotate_bytes: 64 * 1024 * 1024,
            keep: 4,
            keep_days: 7,
            queue: 4_096,
        }
    }
}

impl AuditConfig {
    /// Checks the ranges.
    ///
    /// # Errors
    /// The first problem, as one sentence.
    pub fn validate(&self) -> Result<(), String> {
        if self.queue == 0 || self.queue > 1_000_000 {
            return Err("[audit] queue must be between 1 and 1,000,000 entries".into());
        }
        if self.rotate_bytes < 4096 {
            return Err("[audit] rotate_bytes must be at least 4096".into());
        }
        if self.keep > 1000 {
            return Err("[audit] keep must be at most 1000 files".into());
        }
        if self.keep_days > 36_500 {
            return Err("[audit] keep_days must be at most 36,500 (a hundred years)".into());
        }
        if self.fsync_interval_ms > 3_600_000 {
            return Err("[audit] fsync_interval_ms must be at most an hour".into());
        }
        Ok(())
    }

    /// The log's path, given the server's state folder.
    pub fn path_in(&self, state_dir: &std::path::Path) -> PathBuf {
        self.path
            .clone()
            .unwrap_or_else(|| state_dir.join("audit.log"))
    }

    /// `keep_days` as a duration.
    pub fn keep_min_age(&self) -> Duration {
        Duration::from_secs(self.keep_days * 24 * 3600)
    }

    /// How often to `fsync`.
    pub fn fsync_interval(&self) -> Duration {
        Duration::from_millis(self.fsync_interval_ms)
    }
}
