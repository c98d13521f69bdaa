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
use crate::config::ServerConfig;

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

/// What identifies one version of the file: mtime, size, inode (`None`: no file).
fn stamp(path: &PathBuf) -> Option<(i64, i64, u64, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.mtime(), meta.mtime_nsec(), meta.len(), meta.ino()))
}

/// Reloads users and rights from `path` on SIGHUP and whenever it changes, until `stop`.
pub async fn watch_config(
    path: PathBuf,
    state: Arc<ServerState>,
    mut hangup: Signal,
    stop: CancellationToken,
) {
    let mut seen = stamp(&path);
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
        match ServerConfig::load(&path, false) {
            Ok(config) => match state.reload(&config) {
                Ok(()) => info!(
                    config = %path.display(),
                    users = config.users.len(),
                    anonymous = %config.anonymous_permissions(),
                    "reloaded users and permissions ({why}); other settings apply at restart"
                ),
                Err(e) => {
                    warn!(config = %path.display(), error = %e, "config not reloaded ({why}); the running users stay")
                }
            },
            Err(e) => {
                warn!(config = %path.display(), error = %e, "config not reloaded ({why}); the running users stay")
            }
        }
    }
}
