//! Graceful shutdown: one token says "stop", a tracker knows who is still running.
//!
//! Order: the accept loop stops accepting; every session, at its next await point between
//! requests, sends `goodbye` and closes; the server waits up to the grace period for them; then a
//! second token forces the stragglers closed.

use std::time::Duration;

use tokio::signal::unix::{Signal, SignalKind, signal};
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

/// The next connection on `listener`, or `None` once `stop` is cancelled. An accept error
/// (usually EMFILE/ENFILE) is logged, naming `door`, and followed by a short pause instead of a
/// spin on the error.
pub async fn next_connection(
    listener: &tokio::net::TcpListener,
    stop: &CancellationToken,
    door: &str,
) -> Option<(tokio::net::TcpStream, std::net::SocketAddr)> {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return None,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok(pair) => return Some(pair),
            Err(e) => {
                tracing::warn!(error = %e, door, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Ctrl-C and SIGTERM, for the binary's `serve` (ferry is Unix-only: it depends on nix).
///
/// Installed before the server binds: once the listening socket exists the kernel completes
/// handshakes on its own, so a SIGTERM that arrived before the handlers were in place would kill
/// the process by the default action, and its clients would see a bare close instead of
/// `goodbye`. (`tokio::signal::ctrl_c()` registers only when first polled, so it is not used.)
pub struct StopSignals {
    interrupt: Signal,
    terminate: Signal,
}

impl StopSignals {
    /// Registers the handlers now. Needs a running Tokio runtime.
    pub fn install() -> std::io::Result<Self> {
        Ok(StopSignals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// Resolves on the first Ctrl-C or SIGTERM since [`StopSignals::install`].
    pub async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}
