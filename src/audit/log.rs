//! The handle every part of the server records through. Recording never blocks: the entry
//! goes into a bounded queue that the writer thread (`writer`) empties; when the queue is
//! full the entry is dropped, counted, and the server's log says so once per streak.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tracing::warn;

use super::event::AuditEvent;
use super::limiter::Limiter;
use super::writer::{Command, Drops, Settings, Writer};
use crate::config::AuditConfig;

/// Where the server's audit entries go; cheap to clone. [`AuditLog::disabled`] records nothing.
#[derive(Debug, Clone, Default)]
pub struct AuditLog {
    inner: Option<Arc<Inner>>,
}

#[derive(Debug)]
struct Inner {
    queue: SyncSender<Command>,
    drops: Arc<Drops>,
    capacity: usize,
    /// Each actor's share of the log (see `limiter`).
    limiter: Arc<Mutex<Limiter>>,
}

impl AuditLog {
    /// A log that records nothing (`[audit] enabled = false`).
    pub fn disabled() -> Self {
        AuditLog { inner: None }
    }

    /// Opens the log at `config`'s path (default `STATE/audit.log`) and starts its writer.
    ///
    /// # Errors
    /// The file cannot be opened or the thread cannot start.
    pub fn start(config: &AuditConfig, state_dir: &std::path::Path) -> std::io::Result<AuditLog> {
        if !config.enabled {
            return Ok(AuditLog::disabled());
        }
        let drops = Arc::new(Drops::default());
        let path = config.path_in(state_dir);
        let settings = Settings {
            path: path.clone(),
            fsync_interval: config.fsync_interval(),
            rotate_bytes: config.rotate_bytes,
            keep: config.keep,
            keep_min_age: config.keep_min_age(),
        };
        let limiter = Arc::new(Mutex::new(Limiter::default()));
        let writer = Writer::open(settings, Arc::clone(&drops), Arc::clone(&limiter))
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        let (queue, entries) = sync_channel(config.queue);
        std::thread::Builder::new()
            .name("ferry-audit".into())
            .spawn(move || writer.run(entries))?;
        Ok(AuditLog {
            inner: Some(Arc::new(Inner {
                queue,
                drops,
                capacity: config.queue,
                limiter,
            })),
        })
    }

    /// Records `event` now, without ever waiting: a full queue drops it and counts it.
    pub fn record(&self, event: AuditEvent) {
        let Some(inner) = &self.inner else {
            return;
        };
        let at = SystemTime::now();
        let admitted = inner
            .limiter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .admit(&event, at, std::time::Instant::now());
        if !admitted {
            return; // counted: one `repeated` entry says how many
        }
        match inner.queue.try_send(Command::Record(at, event)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                inner.drops.total.fetch_add(1, Ordering::Relaxed);
                if inner.drops.unreported.fetch_add(1, Ordering::Relaxed) == 0 {
                    warn!(
                        queued = inner.capacity,
                        "the audit log is behind ({} entries wait to be written): new entries are dropped and counted until it catches up",
                        inner.capacity
                    );
                }
            }
        }
    }

    /// Entries lost since the server started (queue full, or the disk refused them).
    pub fn dropped(&self) -> u64 {
        self.inner
            .as_ref()
            .map_or(0, |inner| inner.drops.total.load(Ordering::Relaxed))
    }

    /// Rotated files kept now beyond `[audit] keep` because they are younger than `keep_days`.
    pub fn kept_over_budget(&self) -> u64 {
        self.inner
            .as_ref()
            .map_or(0, |inner| inner.drops.over_budget.load(Ordering::Relaxed))
    }

    /// Whether entries are recorded at all.
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Waits (up to `within`) until everything recorded so far is written and synced; at
    /// shutdown, so the last entries are not lost with the process. `false` if it took longer.
    pub async fn flush(&self, within: Duration) -> bool {
        let Some(inner) = self.inner.clone() else {
            return true;
        };
        tokio::task::spawn_blocking(move || {
            let (answer, done) = sync_channel(1);
            // Waits for room in the queue: only at shutdown, never on a session's path.
            if inner.queue.send(Command::Flush(answer)).is_err() {
                return false;
            }
            done.recv_timeout(within).is_ok()
        })
        .await
        .unwrap_or(false)
    }
}
