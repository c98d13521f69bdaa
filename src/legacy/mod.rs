//! The seed's byte protocols, each on its own listener beside ferry's (`serve --legacy
//! NAME=ADDR`), so the seed's own Python clients work unchanged but for host and port.
//!
//! They keep the seed's wire formats exactly — no frames, no TLS, no auth — and fix only what
//! the seed got wrong as a server: many callers at once, callers that vanish, bad input, and
//! commands that would hang. They are kept apart from the rest of ferry: nothing here is used by
//! the framed protocol.

pub mod chatbot;
pub mod ftp;
mod listeners;
pub mod shell;
mod spec;
pub mod upper;

use crate::audit::{AuditEvent, AuditLog};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::auth::Authenticator;
use crate::config::{BotConfig, ExecConfig};
use crate::server::ServerState;
use crate::services::files::sandbox::Sandbox;
pub use listeners::{LegacyListener, LegacyListeners};
pub use spec::{LegacyKind, LegacySpec};

/// What the legacy listeners share with the server they run beside.
#[derive(Clone)]
pub struct LegacyContext {
    /// The bot's greeting and rules (the chatbot listener is the bot).
    pub bot: Arc<BotConfig>,
    /// The directory served: commands run in it, files are got from it.
    pub root: Arc<Path>,
    /// The root held open: ftp gets files only beneath it.
    pub sandbox: Sandbox,
    /// For the environment commands get (the same minimal one as `exec`).
    pub exec: Arc<ExecConfig>,
    /// For what anonymous callers may do (ftp needs `read`).
    pub auth: Arc<Authenticator>,
    /// A caller that sends nothing for this long is disconnected.
    pub idle: Duration,
    /// Callers served at once, per listener.
    pub max_connections: usize,
    /// Every use is recorded: these listeners have no auth.
    pub audit: AuditLog,
}

impl LegacyContext {
    /// Records a caller's use of `listener`.
    pub fn audit(
        &self,
        peer: std::net::IpAddr,
        listener: &str,
        action: &str,
        detail: Option<String>,
    ) {
        self.audit.record(AuditEvent::Legacy {
            address: peer,
            listener: listener.to_string(),
            action: action.to_string(),
            detail,
        });
    }
}

impl LegacyContext {
    /// What listeners beside `server` share with it: its root, its bot, its exec settings,
    /// its anonymous rights (which a reload may change) and its limits.
    pub fn beside(server: &ServerState) -> LegacyContext {
        LegacyContext {
            bot: Arc::new(server.chat.config.bot.clone()),
            root: Arc::clone(&server.root),
            sandbox: server.sandbox.clone(),
            exec: Arc::clone(&server.exec),
            auth: Arc::clone(&server.auth),
            idle: server.limits.idle_timeout(),
            max_connections: server.limits.max_connections,
            audit: server.audit.clone(),
        }
    }
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
