//! Re-reading the config while the server runs, so that `ferry user add|remove|rotate` and a
//! changed permission take effect without a restart: on SIGHUP, and whenever the file changes.
//!
//! The file is looked at once a second (its mtime, size and inode): a poll rather than an
//! inotify watch because `ferry user` replaces the file by rename, the file may not exist yet
//! when the server starts, and a one-second poll of one `stat` costs nothing. Only users and
//! anonymous rights are applied; every other setting needs a restart (the log says so).

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::ServerState;
use crate::audit::AuditEvent;
use crate::auth::Accounts;
use crate::config::ServerConfig;
use crate::protocol::Permissions;

/// What a reload changes in who may sign in and what they may do, as audit entries: users
/// added, removed, given a new credential, or given other permissions, and anonymous rights.
/// Credentials themselves never appear, only that one changed.
pub fn account_changes(old: &Accounts, new: &Accounts) -> Vec<AuditEvent> {
    let names = |p: Permissions| {
        p.to_vec()
            .into_iter()
            .map(|p| p.name().to_string())
            .collect()
    };
    let mut changes = Vec::new();
    let mut users: Vec<&String> = old.users.keys().chain(new.users.keys()).collect();
    users.sort();
    users.dedup();
    for user in users {
        let change = match (old.users.get(user), new.users.get(user)) {
            (None, Some(added)) => AuditEvent::UserAdded {
                user: user.clone(),
                permissions: names(added.permissions),
            },
            (Some(_), None) => AuditEvent::UserRemoved { user: user.clone() },
            (Some(before), Some(after)) => {
                if before.credential.stored_key != after.credential.stored_key {
                    changes.push(AuditEvent::UserRotated { user: user.clone() });
                }
                if before.permissions == after.permissions {
                    continue;
                }
                AuditEvent::PermissionsChanged {
                    user: user.clone(),
                    permissions: names(after.permissions),
                }
            }
            (None, None) => continue,
        };
        changes.push(change);
    }
    if old.anonymous != new.anonymous {
        changes.push(AuditEvent::AnonymousChanged {
            permissions: names(new.anonymous),
        });
    }
    changes
}

/// How often the config file is looked at.
const POLL: Duration = Duration::from_secs(1);

/// Registers the SIGHUP handler now, before the server listens (by default SIGHUP would kill
/// the server, as it did before reloads existed).
///
/// # Errors
/// The handler cannot be installed.
pub fn install_hangup() -> std::io::Result<Signal> {
    signal(SignalKind::hangup())
}

/// The config file's stamp now.
pub fn stamp(path: &PathBuf) -> Stamp {
    let meta = std::fs::metadata(path).ok();
    Stamp(meta.map(|meta| (meta.mtime(), meta.mtime_nsec(), meta.len(), meta.ino())))
}

/// What the config file looked like at one moment (its mtime, size and inode; none when it did
/// not exist).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp(Option<(i64, i64, u64, u64)>);

/// Reloads users and rights from `path` on SIGHUP and whenever it changes from `loaded` — its
/// stamp taken before the running config was read, so that a change made between that read and
/// this watch starting is not missed — until `stop`.
pub async fn watch_config(
    path: PathBuf,
    loaded: Stamp,
    state: Arc<ServerState>,
    mut hangup: Signal,
    stop: CancellationToken,
) {
    let mut seen = loaded;
    let mut poll = tokio::time::interval(POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let why = tokio::select! {
            _ = stop.cancelled() => return,
            _ = hangup.recv() => "SIGHUP",
            _ = poll.tick() => {
                let now = stamp(&path);
                if now == seen {
                    continue;
                }
                seen = now;
                "the file changed"
            }
        };
        let reloaded = ServerConfig::load(&path, false)
            .map_err(|e| e.to_string())
            .and_then(|config| {
                state
                    .reload(&config)
                    .map(|()| config)
                    .map_err(|e| e.to_string())
            });
        state.audit.record(AuditEvent::ConfigReload {
            path: path.display().to_string(),
            why: why.to_string(),
            ok: reloaded.is_ok(),
            error: reloaded.as_ref().err().cloned(),
        });
        match reloaded {
            Ok(config) => info!(
                config = %path.display(),
                users = config.users.len(),
                anonymous = %config.anonymous_permissions(),
                "reloaded users and permissions ({why}); other settings apply at restart"
            ),
            Err(e) => {
                warn!(config = %path.display(), error = %e, "config not reloaded ({why}); the running users stay")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::UserRecord;
    use crate::auth::scram::Credential;
    use crate::protocol::Permission;

    fn record(permissions: &[Permission], secret: &str) -> UserRecord {
        UserRecord {
            permissions: permissions.iter().copied().collect(),
            credential: Credential::derive(secret, b"salt"),
            keys: Vec::new(),
        }
    }

    #[test]
    fn a_reload_is_audited_as_the_changes_it_makes() {
        let old = Accounts {
            users: [
                ("ann".to_string(), record(&[Permission::Chat], "a")),
                ("bob".to_string(), record(&[Permission::Chat], "b")),
                ("cy".to_string(), record(&[Permission::Read], "c")),
            ]
            .into(),
            anonymous: [Permission::Chat].into_iter().collect(),
        };
        let new = Accounts {
            users: [
                ("ann".to_string(), record(&[Permission::Chat], "a2")),
                (
                    "cy".to_string(),
                    record(&[Permission::Read, Permission::Admin], "c"),
                ),
                ("dee".to_string(), record(&[Permission::Exec], "d")),
            ]
            .into(),
            anonymous: Permissions::NONE,
        };
        assert_eq!(
            account_changes(&old, &new),
            vec![
                AuditEvent::UserRotated { user: "ann".into() },
                AuditEvent::UserRemoved { user: "bob".into() },
                AuditEvent::PermissionsChanged {
                    user: "cy".into(),
                    permissions: vec!["read".into(), "admin".into()]
                },
                AuditEvent::UserAdded {
                    user: "dee".into(),
                    permissions: vec!["exec".into()]
                },
                AuditEvent::AnonymousChanged {
                    permissions: vec![]
                },
            ]
        );
        assert!(account_changes(&new, &new).is_empty());
    }
}
