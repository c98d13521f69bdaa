//! The legacy listeners: bound together, run beside the server until it stops.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::spec::{LegacyKind, LegacySpec};
use super::{LegacyContext, chatbot, ftp, shell, upper};
use crate::shutdown::{Shutdown, next_connection};

/// Every `--legacy` listener of one server, bound.
pub struct LegacyListeners(Vec<LegacyListener>);

impl LegacyListeners {
    /// Binds each spec.
    ///
    /// # Errors
    /// The first address that cannot be bound, naming its spec.
    pub async fn bind(specs: &[LegacySpec]) -> std::io::Result<LegacyListeners> {
        let mut bound = Vec::with_capacity(specs.len());
        for spec in specs {
            let listener = LegacyListener::bind(*spec).await.map_err(|e| {
                std::io::Error::new(e.kind(), format!("cannot listen on {spec}: {e}"))
            })?;
            bound.push(listener);
        }
        Ok(LegacyListeners(bound))
    }

    /// The listeners' kinds and bound addresses, in the order asked for.
    ///
    /// # Errors
    /// A socket's address cannot be read.
    pub fn addrs(&self) -> std::io::Result<Vec<(LegacySpec, SocketAddr)>> {
        self.0
            .iter()
            .map(|l| Ok((l.spec, l.local_addr()?)))
            .collect()
    }

    /// Serves callers until `stop` is cancelled, then ends every caller's exchange (the seed's
    /// protocols have no goodbye) and waits for them, at most `grace`.
    pub async fn run(self, ctx: LegacyContext, stop: CancellationToken, grace: Duration) {
        let shutdown = Shutdown::new(stop);
        for listener in self.0 {
            shutdown
                .tracker
                .spawn(listener.run(ctx.clone(), shutdown.clone()));
        }
        shutdown.begin.cancelled().await;
        shutdown.drain(grace).await;
    }
}

/// A bound legacy listener.
pub struct LegacyListener {
    /// What it speaks and where it was asked to listen.
    pub spec: LegacySpec,
    listener: TcpListener,
}

impl LegacyListener {
    /// Binds `spec`.
    ///
    /// # Errors
    /// The address cannot be bound.
    pub async fn bind(spec: LegacySpec) -> std::io::Result<LegacyListener> {
        let listener = TcpListener::bind(spec.addr).await?;
        if spec.kind == LegacyKind::Shell {
            warn!(addr = %listener.local_addr()?, "legacy shell listener: runs commands WITHOUT authentication, for anyone who can connect (loopback only)");
        }
        if spec.kind == LegacyKind::Ftp && !spec.addr.ip().is_loopback() {
            warn!(addr = %listener.local_addr()?, "legacy ftp listener on a non-loopback address: anyone who can reach it gets files under the root, without TLS or a token, whenever anonymous sessions may read");
        }
        Ok(LegacyListener { spec, listener })
    }

    /// The address actually bound.
    ///
    /// # Errors
    /// The socket's address cannot be read.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts callers until shutdown, each in its own task, at most `max_connections` at once.
    async fn run(self, ctx: LegacyContext, shutdown: Shutdown) {
        let permits = Arc::new(Semaphore::new(ctx.max_connections));
        loop {
            let Some((tcp, peer)) =
                next_connection(&self.listener, &shutdown.begin, "legacy").await
            else {
                return;
            };
            let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                continue; // at the limit: the caller is dropped, the seed protocols have no error
            };
            ctx.audit(peer.ip(), self.spec.kind.name(), "connect", None);
            let (kind, ctx, stop) = (self.spec.kind, ctx.clone(), shutdown.clone());
            shutdown.tracker.spawn(async move {
                let served = async {
                    match kind {
                        LegacyKind::Chatbot => chatbot::serve(tcp, &ctx.bot, ctx.idle).await,
                        LegacyKind::Upper => upper::serve(tcp, ctx.idle).await,
                        LegacyKind::Shell => shell::serve(tcp, &ctx).await,
                        LegacyKind::Ftp => ftp::serve(tcp, &ctx).await,
                    }
                };
                tokio::select! {
                    _ = stop.begin.cancelled() => {}
                    result = served => if let Err(e) = result {
                        debug!(%peer, error = %e, "legacy caller left");
                    },
                }
                drop(permit);
            });
        }
    }
}
