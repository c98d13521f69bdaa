//! Graceful shutdown: one token says "stop", a tracker knows who is still running.
//!
//! Order: the accept loop stops accepting; every session, at its next await point between
//! requests, sends `goodbye` and closes; the server waits up to the grace period for them; then a
//! second token forces the stragglers closed.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The signals a server and its sessions share.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    /// Cancelled when shutdown begins: finish politely.
    pub begin: CancellationToken,
    /// Cancelled when the grace period is over: drop everything.
    pub force: CancellationToken,
    /// Every session task, so shutdown can wait for them.
    pub tracker: TaskTracker,
}

impl Shutdown {
    /// A shutdown that begins when `begin` is cancelled.
    pub fn new(begin: CancellationToken) -> Self {
        Shutdown {
            begin,
            force: CancellationToken::new(),
            tracker: TaskTracker::new(),
        }
    }

    /// Waits for every tracked task, forcing them after `grace`. Returns whether all finished
    /// within the grace period.
    pub async fn drain(&self, grace: Duration) -> bool {
        self.tracker.close();
        let polite = tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_ok();
        if !polite {
            self.force.cancel();
            self.tracker.wait().await;
        }
        polite
    }
}

/// Resolves on Ctrl-C or SIGTERM, for the binary's `serve`.
pub async fn signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
