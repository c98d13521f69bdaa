//! The seed's byte protocols, each on its own listener beside ferry's (`serve --legacy
//! NAME=ADDR`), so the seed's own Python clients work unchanged but for host and port.
//!
//! They keep the seed's wire formats exactly — no frames, no TLS, no auth — and fix only what
//! the seed got wrong as a server: many callers at once, callers that vanish, bad input, and
//! commands that would hang. They are kept apart from the rest of ferry: nothing here is used by
//! the framed protocol.

pub mod chatbot;
pub mod ftp;
pub mod shell;
pub mod upper;

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::{debug, warn};

use crate::auth::Authenticator;
use crate::config::{BotConfig, ExecConfig};
use crate::services::files::sandbox::Sandbox;
use crate::shutdown::Shutdown;

/// Which seed program a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegacyKind {
    Chatbot,
    Upper,
    Shell,
    Ftp,
}

impl LegacyKind {
    fn name(self) -> &'static str {
        match self {
            LegacyKind::Chatbot => "chatbot",
            LegacyKind::Upper => "upper",
            LegacyKind::Shell => "shell",
            LegacyKind::Ftp => "ftp",
        }
    }
}

/// One `--legacy NAME=ADDR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegacySpec {
    pub kind: LegacyKind,
    pub addr: SocketAddr,
}

impl fmt::Display for LegacySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.kind.name(), self.addr)
    }
}

impl FromStr for LegacySpec {
    type Err = String;

    /// Parses `NAME=ADDR`; `shell` only on a loopback address, since it runs commands for
    /// anyone who connects.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, addr) = s
            .split_once('=')
            .ok_or_else(|| format!("'{s}': expected NAME=ADDR, e.g. chatbot=127.0.0.1:9001"))?;
        let kind = match name {
            "chatbot" => LegacyKind::Chatbot,
            "upper" => LegacyKind::Upper,
            "shell" => LegacyKind::Shell,
            "ftp" => LegacyKind::Ftp,
            other => {
                return Err(format!(
                    "unknown legacy listener '{other}': use chatbot, upper, shell or ftp"
                ));
            }
        };
        let addr: SocketAddr = addr
            .parse()
            .map_err(|_| format!("'{addr}' is not an IP:PORT address"))?;
        if kind == LegacyKind::Shell && !addr.ip().is_loopback() {
            return Err(format!(
                "the legacy shell listener runs commands without authentication, so it may only listen on loopback (127.0.0.1 or ::1), not {addr}"
            ));
        }
        Ok(LegacySpec { kind, addr })
    }
}

/// What the legacy listeners share with the server they run beside.
#[derive(Clone)]
pub struct LegacyContext {
    pub bot: Arc<BotConfig>,
    /// The directory served: commands run in it, files are got from it.
    pub root: Arc<Path>,
    pub sandbox: Sandbox,
    /// For the environment commands get (the same minimal one as `exec`).
    pub exec: Arc<ExecConfig>,
    /// For what anonymous callers may do (ftp needs `read`).
    pub auth: Arc<Authenticator>,
    /// A caller that sends nothing for this long is disconnected.
    pub idle: Duration,
    pub max_connections: usize,
}

/// Reads the next chunk a caller sent (the seed's `recv(1024)`): `Ok(0)` when it left, and a
/// `TimedOut` error when it sent nothing for `idle`.
///
/// # Errors
/// Socket errors and the idle timeout.
pub async fn read_chunk(
    tcp: &mut TcpStream,
    buf: &mut [u8],
    idle: Duration,
) -> std::io::Result<usize> {
    match tokio::time::timeout(idle, tcp.read(buf)).await {
        Ok(read) => read,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the caller sent nothing within the idle timeout",
        )),
    }
}

/// A bound legacy listener.
pub struct LegacyListener {
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
    pub async fn run(self, ctx: LegacyContext, shutdown: Shutdown) {
        let permits = Arc::new(Semaphore::new(ctx.max_connections));
        loop {
            let (tcp, peer) = tokio::select! {
                _ = shutdown.begin.cancelled() => return,
                accepted = self.listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        warn!(error = %e, "legacy accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                continue; // at the limit: the caller is dropped, the seed protocols have no error
            };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs_and_keeps_shell_on_loopback() {
        let spec: LegacySpec = "upper=127.0.0.1:6969".parse().unwrap();
        assert_eq!(spec.kind, LegacyKind::Upper);
        assert!("shell=[::1]:9000".parse::<LegacySpec>().is_ok());
        let err = "shell=0.0.0.0:9000".parse::<LegacySpec>().unwrap_err();
        assert!(err.contains("only listen on loopback"), "{err}");
        assert!("ftp=0.0.0.0:9000".parse::<LegacySpec>().is_ok());
        assert!("telnet=127.0.0.1:1".parse::<LegacySpec>().is_err());
        assert!("chatbot".parse::<LegacySpec>().is_err());
    }
}
