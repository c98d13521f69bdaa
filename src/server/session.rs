//! One client connection on the server, from accept to close: transport, handshake, then a loop
//! of requests, under the handshake and idle timeouts and the shutdown signals.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};
use tracing::{debug, info};

use super::ServerState;
use super::accept::accept_transport;
use super::handshake::{HandshakeContext, HandshakeError, server_handshake};
use crate::connection::{BoxedStream, Connection, ConnectionError};
use crate::protocol::{ErrorCode, Message};
use crate::services::{self, SessionContext};
use crate::shutdown::Shutdown;
use crate::stall::StallGuard;

/// The largest frame accepted before `welcome`: `hello` and `proof` are a few hundred bytes.
pub const HANDSHAKE_MAX_FRAME: usize = 16 * 1024;

/// How long a closing message may take to write before the connection is dropped anyway.
const LAST_WORD_TIMEOUT: Duration = Duration::from_secs(1);

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
    let deadline = Instant::now() + limits.handshake_timeout();
    let stream = tokio::select! {
        _ = shutdown.begin.cancelled() => return Err("shutdown during handshake".into()),
        stream = accept_transport(tcp, state.tls.as_ref(), deadline) => stream.map_err(|e| e.to_string())?,
    };
    let stream: BoxedStream = Box::new(StallGuard::new(
        stream,
        limits.write_stall_timeout(),
        limits.write_stall_min_bytes,
    ));
    let mut conn = Connection::new(stream);
    // Until `welcome`, frames are small: an anonymous peer cannot make the server hold a
    // large buffer before it has even said who it is.
    conn.set_max_frame(HANDSHAKE_MAX_FRAME);
    let ctx = HandshakeContext {
        auth: &state.auth,
        peer: peer.ip(),
        binding: &state.binding,
        max_frame: limits.max_frame_bytes,
        handshakes: &state.handshakes_per_address,
        anonymous_slots: &state.anonymous_slots,
    };
    let outcome = tokio::select! {
        _ = shutdown.begin.cancelled() => Err((ErrorCode::ShuttingDown, "server shutting down".to_string())),
        result = timeout_at(deadline, server_handshake(&mut conn, &ctx)) => match result {
            Err(_) => Err((ErrorCode::Timeout, "handshake not completed within the handshake timeout".to_string())),
            Ok(Ok(opened)) => Ok(opened),
            // Frames out of step (too large before `welcome`, say): told, then closed.
            Ok(Err(HandshakeError::Connection(e @ ConnectionError::Frame(_)))) => Err((e.code(), e.to_string())),
            Ok(Err(e)) => return Err(e.to_string()),
        },
    };
    let (identity, _anonymous_slot) = match outcome {
        Ok(opened) => (opened.identity, opened.anonymous_slot),
        Err((code, message)) => {
            last_word(&mut conn, &Message::error(code, message.clone())).await;
            return Err(message);
        }
    };
    conn.set_max_frame(limits.max_frame_bytes);
    info!(%peer, user = identity.user.as_deref().unwrap_or("anonymous"), permissions = %identity.permissions, "session open");
    // Clients accept frames up to the limit the server announced in `welcome`.
    conn.set_peer_max_frame(limits.max_frame_bytes);
    let mut ctx = SessionContext {
        identity,
        chat: Arc::clone(&state.chat),
        exec: Arc::clone(&state.exec),
        root: Arc::clone(&state.root),
        sandbox: state.sandbox.clone(),
        peer: peer.ip(),
        file_requests: Arc::clone(&state.file_requests_per_address),
        file_requests_total: Arc::clone(&state.file_requests),
        auth: Arc::clone(&state.auth),
        shutdown: shutdown.begin.clone(),
    };
    request_loop(&mut conn, &mut ctx, state, shutdown).await
}

async fn request_loop(
    conn: &mut Connection<BoxedStream>,
    ctx: &mut SessionContext,
    state: &ServerState,
    shutdown: &Shutdown,
) -> Result<(), String> {
    // Whether the last request was an exec that has ended (its input may still be in flight).
    let mut after_exec = false;
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
            // Exec input the client sent before it saw `exec_exit` (keystrokes, a resize, its
            // end of input) may still arrive after the command ended: until the next request it
            // is dropped quietly, so it never shows up as an error in front of that request's
            // answer. Anywhere else it is an error as before.
            Ok(Ok(Message::ExecEof | Message::ExecResize { .. } | Message::ExecSignal { .. }))
            | Ok(Err(ConnectionError::UnexpectedData(0)))
                if after_exec =>
            {
                continue;
            }
            Ok(Ok(request)) => request,
            Ok(Err(ConnectionError::Closed)) => return Ok(()),
            Ok(Err(e)) if e.is_recoverable() => {
                send_error(conn, e.code(), &e).await?;
                continue;
            }
            Ok(Err(e @ ConnectionError::Frame(_))) => {
                // The framing is out of step, so this is the last word.
                last_word(conn, &Message::error(e.code(), e.to_string())).await;
                return Err(e.to_string());
            }
            Ok(Err(e)) => return Err(e.to_string()),
        };
        // Rights as of now: a reload since the last request applies to this one.
        if !ctx.refresh_rights() {
            goodbye(conn, services::REVOKED).await;
            return Err(services::REVOKED.into());
        }
        after_exec = matches!(request, Message::Exec { .. });
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
    let goodbye = Message::Goodbye {
        reason: reason.to_string(),
    };
    last_word(conn, &goodbye).await;
}

/// Sends a final message and closes, giving up after [`LAST_WORD_TIMEOUT`]: a peer that does
/// not read must not hold the session open. After the half-close, what the peer still sends is
/// read and dropped until it closes too (within the same bound): closing with unread bytes
/// would reset the connection and destroy the message before the peer reads it.
async fn last_word(conn: &mut Connection<BoxedStream>, message: &Message) {
    let _ = tokio::time::timeout(LAST_WORD_TIMEOUT, async {
        let _ = conn.write_message(message).await;
        let _ = conn.shutdown().await;
        let mut sink = [0u8; 4096];
        while matches!(conn.get_mut().read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}
