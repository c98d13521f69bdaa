//! One client connection on the server, from accept to close: transport, handshake, then a loop
//! of requests, under the handshake and idle timeouts and the shutdown signals.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;
use tracing::{debug, info};

use super::ServerState;
use super::accept::accept_transport;
use super::handshake::{HandshakeContext, server_handshake};
use crate::connection::{BoxedStream, Connection, ConnectionError};
use crate::protocol::{ErrorCode, Message};
use crate::services::{self, SessionContext};
use crate::shutdown::Shutdown;

/// Serves one accepted connection until it ends; never panics on anything the peer sends.
pub async fn serve_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    state: Arc<ServerState>,
    shutdown: Shutdown,
) {
    let _open = state.stats.connection_opened();
    tokio::select! {
        _ = shutdown.force.cancelled() => debug!(%peer, "connection dropped at the end of the shutdown grace period"),
        result = session(tcp, peer, &state, &shutdown) => match result {
            Ok(()) => debug!(%peer, "connection closed"),
            Err(reason) => debug!(%peer, %reason, "connection ended"),
        },
    }
}

async fn session(
    tcp: TcpStream,
    peer: SocketAddr,
    state: &ServerState,
    shutdown: &Shutdown,
) -> Result<(), String> {
    let limits = &state.limits;
    let handshake = async {
        let stream = accept_transport(tcp, state.tls.as_ref())
            .await
            .map_err(|e| e.to_string())?;
        let mut conn = Connection::new(stream);
        conn.set_max_frame(limits.max_frame_bytes);
        let ctx = HandshakeContext {
            auth: &state.auth,
            peer: peer.ip(),
            binding: &state.binding,
            max_frame: limits.max_frame_bytes,
        };
        let identity = server_handshake(&mut conn, &ctx)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((conn, identity))
    };
    let (mut conn, identity) = tokio::select! {
        _ = shutdown.begin.cancelled() => return Err("shutdown during handshake".into()),
        result = tokio::time::timeout(limits.handshake_timeout(), handshake) => match result {
            Err(_) => return Err("handshake timed out".into()),
            Ok(result) => result?,
        },
    };
    info!(%peer, user = identity.user.as_deref().unwrap_or("anonymous"), permissions = %identity.permissions, "session open");
    let ctx = SessionContext { identity };
    request_loop(&mut conn, &ctx, state, shutdown).await
}

async fn request_loop(
    conn: &mut Connection<BoxedStream>,
    ctx: &SessionContext,
    state: &ServerState,
    shutdown: &Shutdown,
) -> Result<(), String> {
    loop {
        let next = tokio::select! {
            _ = shutdown.begin.cancelled() => {
                goodbye(conn, "server shutting down").await;
                return Ok(());
            }
            next = tokio::time::timeout(state.limits.idle_timeout(), conn.read_message()) => next,
        };
        let request = match next {
            Err(_) => {
                goodbye(conn, "idle timeout").await;
                return Err("idle timeout".into());
            }
            Ok(Ok(request)) => request,
            Ok(Err(ConnectionError::Closed)) => return Ok(()),
            Ok(Err(e)) if e.is_recoverable() => {
                send_error(conn, e.code(), &e).await?;
                continue;
            }
            Ok(Err(e @ ConnectionError::Frame(_))) => {
                // Best effort: the framing is out of step, so this is the last word.
                let _ = send_error(conn, e.code(), &e).await;
                let _ = conn.shutdown().await;
                return Err(e.to_string());
            }
            Ok(Err(e)) => return Err(e.to_string()),
        };
        services::dispatch(conn, request, ctx)
            .await
            .map_err(|e| e.to_string())?;
    }
}

async fn send_error(
    conn: &mut Connection<BoxedStream>,
    code: ErrorCode,
    error: &ConnectionError,
) -> Result<(), String> {
    conn.write_message(&Message::error(code, error.to_string()))
        .await
        .map_err(|e| e.to_string())
}

async fn goodbye(conn: &mut Connection<BoxedStream>, reason: &str) {
    let _ = conn
        .write_message(&Message::Goodbye {
            reason: reason.to_string(),
        })
        .await;
    let _ = conn.shutdown().await;
}
