//! What a service knows about the session it serves.

use std::path::Path;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::chat::hub::ChatHub;
use super::files::held_budget::HeldBudget;
use super::files::resume_budget::ResumeBudget;
use super::files::sandbox::Sandbox;
use super::request_error::CloseReason;
use crate::audit::{Actor, AuditLog};
use crate::auth::{Authenticator, Rights, SessionIdentity};
use crate::config::ExecConfig;
use crate::metrics::Metrics;
use crate::per_address::PerAddress;
use crate::protocol::{ErrorCode, Permission, Refusal};
use crate::transfer::hash_cache::HashCache;

/// What a service needs to know about the session it serves.
#[derive(Debug, Clone)]
pub struct SessionContext {
    /// Who the session is and what it may do now.
    pub identity: SessionIdentity,
    /// All of chat.
    pub chat: Arc<ChatHub>,
    /// Remote execution settings.
    pub exec: Arc<ExecConfig>,
    /// Where forwarded streams may go, and the streams each user holds.
    pub forward: Arc<super::forward::Forwarding>,
    /// The directory served: files live under it, commands run in it.
    pub root: Arc<Path>,
    /// The root held open: every file request resolves beneath it.
    pub sandbox: Sandbox,
    /// Hashes of files sent before, shared by the whole server.
    pub hashes: Arc<HashCache>,
    /// The client's address.
    pub peer: std::net::IpAddr,
    /// File requests in progress per address, shared by the whole server.
    pub file_requests: Arc<PerAddress>,
    /// File requests in progress on the whole server.
    pub file_requests_total: Arc<Semaphore>,
    /// What the sessions' held uploads may take, all together.
    pub held_budget: HeldBudget,
    /// Cancelled when the server begins to shut down.
    pub shutdown: CancellationToken,
    /// Users and rights, which a reload may change while the session runs.
    pub auth: Arc<Authenticator>,
    /// Where the services record who changed what.
    pub audit: AuditLog,
    /// The server's figures.
    pub metrics: Arc<Metrics>,
    /// What resuming gets may make the server hash, per address and in all.
    pub resume_budget: Arc<ResumeBudget>,
}

impl SessionContext {
    /// Who this session is, as the audit log names it.
    pub fn actor(&self) -> Actor {
        Actor {
            user: self.identity.user.clone(),
            address: self.peer,
        }
    }
}

impl SessionContext {
    /// Looks the session's rights up again (a reload may have changed them). `false` when the
    /// session's user was removed or its token rotated: the session must end.
    pub fn refresh_rights(&mut self) -> bool {
        match self.auth.rights_of(&self.identity) {
            Rights::Granted(permissions) => {
                self.identity.permissions = permissions;
                true
            }
            Rights::Revoked => false,
        }
    }

    /// Resolves, with the reason to give, once a reload revokes the session's user or takes
    /// `permission` away; for exchanges that outlast a request (chat).
    pub async fn lost(&self, permission: Permission) -> CloseReason {
        let mut reloads = self.auth.watch_reloads();
        loop {
            match self.auth.rights_of(&self.identity) {
                Rights::Revoked => return CloseReason::Revoked,
                Rights::Granted(p) if !p.contains(permission) => {
                    return CloseReason::Withdrawn(permission);
                }
                Rights::Granted(_) => {}
            }
            if reloads.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// Resolves once a reload removes the session's user or rotates its token: every request
    /// in progress (a streaming get, a running command, a shell) is ended with the session.
    pub async fn revoked(&self) {
        let mut reloads = self.auth.watch_reloads();
        loop {
            if matches!(self.auth.rights_of(&self.identity), Rights::Revoked) {
                return;
            }
            if reloads.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// `Ok` when the session holds `permission`; else the refusal, naming `what` needed it.
    ///
    /// # Errors
    /// `permission_denied`.
    pub fn need(&self, permission: Permission, what: &str) -> Result<(), Refusal> {
        if self.identity.permissions.contains(permission) {
            Ok(())
        } else {
            Err(Refusal::new(
                ErrorCode::PermissionDenied,
                format!(
                    "{what} needs the '{permission}' permission; connect with a token that has it"
                ),
            ))
        }
    }
}
