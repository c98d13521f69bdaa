//! What every session of one server shares, and the live counters tests and the benchmark
//! read.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

use super::reload;
use crate::audit::AuditLog;
use crate::auth::{Authenticator, SessionIdentity};
use crate::config::{ExecConfig, Limits, ServerConfig};
use crate::metrics::Metrics;
use crate::per_address::{PerAddress, PerAddressQueue};
use crate::services::SessionContext;
use crate::services::chat::hub::ChatHub;
use crate::services::files::held_budget::HeldBudget;
use crate::services::files::sandbox::Sandbox;
use crate::shutdown::Shutdown;
use crate::transfer::hash_cache::HashCache;

/// Live counters, shared with tests and the benchmark.
#[derive(Debug)]
pub struct ServerStats {
    active: watch::Sender<usize>,
}

impl ServerStats {
    pub(super) fn new() -> Self {
        ServerStats {
            active: watch::Sender::new(0),
        }
    }

    /// Connections currently open (including those still in their handshake).
    pub fn active_connections(&self) -> usize {
        *self.active.borrow()
    }

    /// A receiver that sees every change of [`ServerStats::active_connections`].
    pub fn watch_active(&self) -> watch::Receiver<usize> {
        self.active.subscribe()
    }

    pub(super) fn connection_opened(&self) -> OpenConnection<'_> {
        self.active.send_modify(|n| *n += 1);
        OpenConnection(self)
    }
}

/// Counts a connection as open until dropped, on every exit path.
pub(super) struct OpenConnection<'a>(&'a ServerStats);

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.0.active.send_modify(|n| *n -= 1);
    }
}

/// What every session of one server shares. Read-only after start but for the failure limiter
/// and the stats, so sessions never contend on a lock in the common case.
pub struct ServerState {
    /// The limits in force.
    pub limits: Limits,
    /// Users and rights (a reload replaces them).
    pub auth: Arc<Authenticator>,
    /// `None` in plaintext mode.
    pub tls: Option<TlsAcceptor>,
    /// The TLS fingerprint, or `plaintext`: bound into every authentication.
    pub binding: String,
    /// The directory served (canonical).
    pub root: Arc<Path>,
    /// The root held open, for every file request.
    pub sandbox: Sandbox,
    /// Hashes of files sent before (`STATE/hash-cache`), so an unchanged file is not re-hashed.
    pub hashes: Arc<HashCache>,
    /// Open-connection counters.
    pub stats: ServerStats,
    /// All of chat.
    pub chat: Arc<ChatHub>,
    /// Remote execution settings.
    pub exec: Arc<ExecConfig>,
    /// Port forwarding's rules and per-user counts.
    pub forward: Arc<crate::services::forward::Forwarding>,
    /// Connections held per client address.
    pub connections_per_address: Arc<PerAddress>,
    /// Authentications in progress per client address.
    pub handshakes_per_address: Arc<PerAddressQueue>,
    /// File requests in progress per client address.
    pub file_requests_per_address: Arc<PerAddress>,
    /// File requests in progress on the whole server.
    pub file_requests: Arc<Semaphore>,
    /// What the sessions' held uploads may take, all together.
    pub held_budget: HeldBudget,
    /// Slots anonymous sessions may hold (the rest are kept for signed-in users).
    pub anonymous_slots: Arc<Semaphore>,
    /// Connections open at once, through every door (`limits.max_connections`).
    pub connection_permits: Arc<Semaphore>,
    /// Who did what, from where (`[audit]`).
    pub audit: AuditLog,
    /// The figures `/metrics` serves.
    pub metrics: Arc<Metrics>,
    /// What resuming gets may make the server hash.
    pub resume_budget: Arc<crate::services::files::resume_budget::ResumeBudget>,
}

impl ServerState {
    /// What the services know of a session of `identity` from `peer`, whatever its door.
    pub fn session_context(
        &self,
        identity: SessionIdentity,
        peer: SocketAddr,
        shutdown: &Shutdown,
    ) -> SessionContext {
        SessionContext {
            identity,
            chat: Arc::clone(&self.chat),
            exec: Arc::clone(&self.exec),
            forward: Arc::clone(&self.forward),
            root: Arc::clone(&self.root),
            sandbox: self.sandbox.clone(),
            hashes: Arc::clone(&self.hashes),
            peer: peer.ip(),
            file_requests: Arc::clone(&self.file_requests_per_address),
            file_requests_total: Arc::clone(&self.file_requests),
            held_budget: self.held_budget.clone(),
            auth: Arc::clone(&self.auth),
            shutdown: shutdown.begin.clone(),
            audit: self.audit.clone(),
            metrics: Arc::clone(&self.metrics),
            resume_budget: Arc::clone(&self.resume_budget),
        }
    }

    /// The text `/metrics` serves: the counters, and the state figures as of now.
    pub fn metrics_text(&self) -> String {
        crate::services::stats::figures(
            &self.metrics,
            &self.chat,
            &self.audit,
            self.resume_budget.hashed(),
        )
    }

    /// Applies a re-read config's users and anonymous rights (see [`reload`]).
    ///
    /// # Errors
    /// A credential that does not parse; nothing changes then.
    pub fn reload(&self, config: &ServerConfig) -> Result<(), crate::auth::scram::BadCredential> {
        let accounts = config.accounts()?;
        for change in reload::account_changes(&self.auth.accounts(), &accounts) {
            self.audit.record(change);
        }
        self.auth.reload(accounts);
        self.chat
            .reserve_user_names(config.users.keys().map(String::as_str));
        Ok(())
    }
}
