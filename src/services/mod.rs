//! Services: what a session can ask for once the handshake is done. Each service is one module
//! holding its server side and its client peer; [`dispatch`] routes one request to its service.

pub mod chat;
pub mod echo;
pub mod exec;
pub mod files;

use std::path::Path;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

use crate::auth::SessionIdentity;
use crate::config::ExecConfig;
use crate::connection::Connection;
use crate::protocol::{ErrorCode, Message};
use chat::hub::ChatHub;

/// What a service needs to know about the session it serves.
#[derive(Debug, Clone)]
pub struct SessionContext {
    pub identity: SessionIdentity,
    pub chat: Arc<ChatHub>,
    pub exec: Arc<ExecConfig>,
    /// The directory served: files live under it, commands run in it.
    pub root: Arc<Path>,
    /// The root held open: every file request resolves beneath it.
    pub sandbox: files::sandbox::Sandbox,
    /// The client's address.
    pub peer: std::net::IpAddr,
    /// File requests in progress per address, shared by the whole server.
    pub file_requests: Arc<crate::server::per_address::PerAddress>,
    /// File requests in progress on the whole server.
    pub file_requests_total: Arc<tokio::sync::Semaphore>,
    /// Cancelled when the server begins to shut down.
    pub shutdown: CancellationToken,
    /// Users and rights, which a reload may change while the session runs.
    pub auth: Arc<crate::auth::Authenticator>,
}

impl SessionContext {
    /// Looks the session's rights up again (a reload may have changed them). `false` when the
    /// session's user was removed or its token rotated: the session must end.
    pub fn refresh_rights(&mut self) -> bool {
        match self.auth.rights_of(&self.identity) {
            crate::auth::Rights::Granted(permissions) => {
                self.identity.permissions = permissions;
                true
            }
            crate::auth::Rights::Revoked => false,
        }
    }

    /// Resolves, with the reason to give, once a reload revokes the session's user or takes
    /// `permission` away; for exchanges that outlast a request (chat).
    pub async fn lost(&self, permission: crate::protocol::Permission) -> String {
        let mut reloads = self.auth.watch_reloads();
        loop {
            match self.auth.rights_of(&self.identity) {
                crate::auth::Rights::Revoked => return REVOKED.to_string(),
                crate::auth::Rights::Granted(p) if !p.contains(permission) => {
                    return format!("the '{permission}' permission was withdrawn");
                }
                crate::auth::Rights::Granted(_) => {}
            }
            if reloads.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }
}

/// Why a session ends when its user was removed or its token replaced.
pub const REVOKED: &str = "access revoked: the user was removed or its token rotated";

/// Serves one request. Messages that are valid but not requests (a second `hello`, a `pong`)
/// get an `unexpected_message` error and the session goes on.
///
/// # Errors
/// The connection failed; the session ends.
pub async fn dispatch<S>(
    conn: &mut Connection<S>,
    request: Message,
    ctx: &SessionContext,
) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let _file_slot = match &request {
        Message::List { .. }
        | Message::Get { .. }
        | Message::Put { .. }
        | Message::Mkdir { .. }
        | Message::Remove { .. } => {
            let Some(slot) = ctx.file_requests.try_take(ctx.peer) else {
                let message = format!(
                    "this address already has {} file requests in progress, the most one address may have; try again when one ends",
                    ctx.file_requests.limit()
                );
                return conn
                    .write_message(&Message::error(ErrorCode::ServerBusy, message))
                    .await;
            };
            let Ok(total) = Arc::clone(&ctx.file_requests_total).try_acquire_owned() else {
                let message = "the server has as many file requests in progress as it serves at once; try again shortly";
                return conn
                    .write_message(&Message::error(ErrorCode::ServerBusy, message))
                    .await;
            };
            Some((slot, total))
        }
        _ => None,
    };
    match request {
        Message::Ping { seq } => echo::serve_ping(conn, seq).await,
        Message::ChatJoin {
            room,
            with,
            nick,
            history,
        } => chat::serve_chat(conn, room, with, nick, history, ctx).await,
        Message::Exec {
            argv,
            shell,
            tty,
            timeout_ms,
        } => {
            let request = exec::ExecRequest {
                argv,
                shell,
                tty,
                timeout_ms,
            };
            exec::serve_exec(conn, request, ctx).await
        }
        Message::List {
            path,
            recursive,
            itself,
        } => files::server::serve_list(conn, path, recursive, itself, ctx).await,
        Message::Get {
            path,
            hash,
            offset,
            prefix_hash,
        } => files::server::serve_get(conn, path, hash, offset, prefix_hash, ctx).await,
        Message::Put {
            path,
            size,
            mode,
            mtime_ns,
            hash,
        } => {
            let put = files::server::PutRequest {
                path,
                size,
                mode,
                mtime_ns,
                algorithm: hash,
            };
            files::server::serve_put(conn, put, ctx).await
        }
        Message::Mkdir {
            path,
            mode,
            mtime_ns,
        } => files::server::serve_mkdir(conn, path, mode, mtime_ns, ctx).await,
        Message::Remove { path } => files::server::serve_remove(conn, path, ctx).await,
        other => {
            let message = format!("'{}' is not a request", other.kind());
            conn.write_message(&Message::error(ErrorCode::UnexpectedMessage, message))
                .await
        }
    }
}
