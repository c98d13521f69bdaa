//! One client connection on the server, from accept to close: transport, handshake, then a loop
//! of requests, under the handshake and idle timeouts and the shutdown signals.

use crate::protocol::Goodbye;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};
use tracing::{debug, info};

use super::ServerState;
use super::accept::{AcceptError, accept_transport};
use super::handshake::{HandshakeContext, HandshakeError, server_handshake};
use crate::connection::{BoxedStream, Connection, ConnectionError};
use crate::metrics::{MeteredStream, Service, ServiceCell};
use crate::protocol::{ErrorCode, Message, Refusal};
use crate::services::files::held_puts::HeldPuts;
use crate::services::{self, CloseReason, RequestError, SessionContext};
use crate::shutdown::Shutdown;
use crate::stall::StallGuard;
use crate::transport::Transport;

/// The largest frame accepted before `welcome`: `hello` and `proof` are a few hundred bytes.
pub(crate) const HANDSHAKE_MAX_FRAME: usize = 16 * 1024;

/// How long a closing message may take to write before the connection is dropped anyway.
const LAST_WORD_TIMEOUT: Duration = Duration::from_secs(1);

/// Why a session ended, for the log line: typed until it is printed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SessionEnd {
    /// The client closed the connection between requests.
    #[error("closed by the client")]
    Closed,
    /// Graceful shutdown (the client was told).
    #[error("server shutting down")]
    Shutdown,
    /// The session idled past its limit (the client was told).
    #[error("idle timeout")]
    IdleTimeout,
    /// A reload removed the session's user or rotated its token (the client was told).
    #[error("{}", CloseReason::Revoked)]
    Revoked,
    /// The transport was not established (preamble, TLS).
    #[error(transparent)]
    Transport(#[from] AcceptError),
    /// The handshake was refused (the client was told) or broke off.
    #[error(transparent)]
    Handshake(HandshakeError),
    /// The framing went out of step (the client was told).
    #[error("{0}")]
    OutOfStep(ConnectionError),
    /// The connection failed.
    #[error(transparent)]
    Connection(ConnectionError),
    /// A request ended the session.
    #[error(transparent)]
    Request(#[from] RequestError),
}

/// Serves one accepted connection until it ends; never panics on anything the peer sends.
pub(crate) async fn serve_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    state: Arc<ServerState>,
    shutdown: Shutdown,
) {
    let _open = state.stats.connection_opened();
    tokio::select! {
        _ = shutdown.force.cancelled() => debug!(%peer, "connection dropped at the end of the shutdown grace period"),
        end = session(tcp, peer, &state, &shutdown) => match end {
            SessionEnd::Closed => debug!(%peer, "connection closed"),
            reason => debug!(%peer, %reason, "connection ended"),
        },
    }
}

async fn session(
    tcp: TcpStream,
    peer: SocketAddr,
    state: &ServerState,
    shutdown: &Shutdown,
) -> SessionEnd {
    let limits = &state.limits;
    let deadline = Instant::now() + limits.handshake_timeout();
    let stream = tokio::select! {
        _ = shutdown.begin.cancelled() => return SessionEnd::Shutdown,
        stream = accept_transport(tcp, state.tls.as_ref(), deadline) => match stream {
            Ok(stream) => stream,
            Err(e) => return e.into(),
        },
    };
    serve_stream(
        Box::new(stream),
        Transport::Tcp,
        peer,
        state,
        shutdown,
        deadline,
    )
    .await
}

/// Serves one session on an established transport — TCP with or without TLS today, any other
/// stream tomorrow (a WebSocket): the handshake (finished by `deadline`), then requests until
/// the session ends.
pub(crate) async fn serve_stream(
    stream: BoxedStream,
    transport: Transport,
    peer: SocketAddr,
    state: &ServerState,
    shutdown: &Shutdown,
    deadline: Instant,
) -> SessionEnd {
    let limits = &state.limits;
    let _open = state.metrics.session_opened(transport);
    let service = ServiceCell::new(&state.metrics);
    let stream: BoxedStream = Box::new(MeteredStream::new(
        StallGuard::new(
            stream,
            limits.write_stall_timeout(),
            limits.write_stall_min_bytes,
        ),
        service.clone(),
    ));
    let mut conn = Connection::new(stream);
    // Until `welcome`, frames are small: an anonymous peer cannot make the server hold a
    // large buffer before it has even said who it is.
    conn.set_max_frame(HANDSHAKE_MAX_FRAME);
    let node = state.chat.server_name();
    let ctx = HandshakeContext {
        auth: &state.auth,
        peer: peer.ip(),
        binding: &state.binding,
        max_frame: limits.max_frame_bytes,
        node: node.as_deref(),
        handshakes: &state.handshakes_per_address,
        anonymous_slots: &state.anonymous_slots,
        transport,
        audit: &state.audit,
        metrics: &state.metrics,
    };
    let outcome = tokio::select! {
        _ = shutdown.begin.cancelled() => Err(HandshakeError::Refused(Refusal::new(ErrorCode::ShuttingDown, "server shutting down"))),
        result = timeout_at(deadline, server_handshake(&mut conn, &ctx)) => match result {
            Err(_) => Err(HandshakeError::Refused(Refusal::new(ErrorCode::Timeout, "handshake not completed within the handshake timeout"))),
            Ok(outcome) => outcome,
        },
    };
    let (identity, _anonymous_slot) = match outcome {
        Ok(opened) => (opened.identity, opened.anonymous_slot),
        Err(HandshakeError::Refused(refusal)) => {
            last_word(&mut conn, &Message::Error(refusal.clone())).await;
            return SessionEnd::Handshake(HandshakeError::Refused(refusal));
        }
        // Frames out of step (too large before `welcome`, say): told, then closed.
        Err(HandshakeError::Connection(e @ ConnectionError::Frame(_))) => {
            last_word(&mut conn, &Message::error(e.code(), e.to_string())).await;
            return SessionEnd::OutOfStep(e);
        }
        Err(e) => return SessionEnd::Handshake(e),
    };
    conn.set_max_frame(limits.max_frame_bytes);
    service.settle();
    info!(%peer, user = identity.user.as_deref().unwrap_or("anonymous"), permissions = %identity.permissions, "session open");
    // Clients accept frames up to the limit the server announced in `welcome`.
    conn.set_peer_max_frame(limits.max_frame_bytes);
    let mut ctx = state.session_context(identity, peer, shutdown);
    request_loop(&mut conn, &mut ctx, state, shutdown, &service).await
}

/// Pipelined gets served as one run, at most.
const GETS_AT_ONCE: usize = 64;

async fn request_loop(
    conn: &mut Connection<BoxedStream>,
    ctx: &mut SessionContext,
    state: &ServerState,
    shutdown: &Shutdown,
    service: &ServiceCell,
) -> SessionEnd {
    // Whether the last request was an exec that has ended (its input may still be in flight).
    let mut after_exec = false;
    // Verified pipelined puts waiting for one commit (`HeldPuts`): committed as soon as the
    // client stops sending, so no answer waits on a client that waits for it.
    let mut held = HeldPuts::default();
    // A request read ahead while gathering a run of gets, to be served next.
    let mut ahead: Option<Result<Message, ConnectionError>> = None;
    loop {
        let waiting = if let Some(next) = ahead.take() {
            Some(next)
        } else if held.is_empty() {
            None
        } else {
            // One poll: a request already here keeps the batch growing.
            match tokio::time::timeout(Duration::ZERO, conn.read_message()).await {
                Ok(next) => Some(next),
                Err(_) => {
                    if let Err(e) = held.commit(conn, ctx).await {
                        return e.into();
                    }
                    None
                }
            }
        };
        let whole_put = matches!(&waiting, Some(Ok(Message::Put(put))) if put.whole);
        // Anything but another whole put is answered only after every held one (a full batch
        // is committed by the put itself, in the background).
        if !held.is_empty()
            && !whole_put
            && let Err(e) = held.commit(conn, ctx).await
        {
            return e.into();
        }
        let next = match waiting {
            Some(next) => Ok(next),
            None => tokio::select! {
                _ = shutdown.begin.cancelled() => {
                    goodbye(conn, "server shutting down").await;
                    return SessionEnd::Shutdown;
                }
                next = tokio::time::timeout(state.limits.idle_timeout(), conn.read_message()) => next,
            },
        };
        let request = match next {
            Err(_) => {
                goodbye(conn, "idle timeout").await;
                return SessionEnd::IdleTimeout;
            }
            // Exec input the client sent before it saw `exec_exit` (keystrokes, a resize, its
            // end of input) may still arrive after the command ended: until the next request it
            // is dropped quietly, so it never shows up as an error in front of that request's
            // answer. Anywhere else it is an error as before.
            Ok(Ok(Message::ExecEof | Message::ExecResize(_) | Message::ExecSignal(_)))
            | Ok(Err(ConnectionError::UnexpectedData(0)))
                if after_exec =>
            {
                continue;
            }
            Ok(Ok(request)) => request,
            Ok(Err(ConnectionError::Closed)) => return SessionEnd::Closed,
            Ok(Err(e)) if e.is_recoverable() => {
                let refusal = Message::error(e.code(), e.to_string());
                if let Err(e) = conn.write_message(&refusal).await {
                    return SessionEnd::Connection(e.into());
                }
                continue;
            }
            Ok(Err(e @ ConnectionError::Frame(_))) => {
                // The framing is out of step, so this is the last word.
                last_word(conn, &Message::error(e.code(), e.to_string())).await;
                return SessionEnd::OutOfStep(e);
            }
            Ok(Err(e)) => return SessionEnd::Connection(e),
        };
        // Rights as of now: a reload since the last request applies to this one.
        if !ctx.refresh_rights() {
            return revoked(conn).await;
        }
        after_exec = matches!(request, Message::Exec(_));
        service.set(services::service_of(&request));
        if let Message::Get(first) = &request
            && !first.asks_delta()
        {
            let Message::Get(first) = request else {
                unreachable!("matched just above")
            };
            // Gets the client pipelined and that are already here are served as one run.
            let mut gets = vec![first];
            while gets.len() < GETS_AT_ONCE {
                match tokio::time::timeout(Duration::ZERO, conn.read_message()).await {
                    // A delta get's signature follows it: it is served on its own.
                    Ok(Ok(Message::Get(get))) if !get.asks_delta() => gets.push(get),
                    Ok(other) => {
                        ahead = Some(other);
                        break;
                    }
                    Err(_) => break,
                }
            }
            let served = tokio::select! {
                served = services::dispatch_gets(conn, gets, ctx) => served,
                () = ctx.revoked() => return revoked(conn).await,
            };
            if let Err(e) = served {
                return e.into();
            }
            service.set(Service::Session);
            continue;
        }
        // A request in progress ends with the session when the user is removed or its token
        // rotated: dropping it ends what it does (a command's whole cgroup, a transfer; a
        // partial stays a partial).
        let served = tokio::select! {
            served = services::dispatch(conn, request, ctx, &mut held) => served,
            () = ctx.revoked() => return revoked(conn).await,
        };
        if let Err(e) = served {
            return e.into();
        }
        service.set(Service::Session);
    }
}

/// The session's user was removed or its token rotated: told, then closed. A request ended
/// in the middle of a frame leaves no room for a word: then only closed.
async fn revoked(conn: &mut Connection<BoxedStream>) -> SessionEnd {
    if conn.at_frame_boundary() {
        goodbye(conn, &CloseReason::Revoked.to_string()).await;
    } else {
        let _ = tokio::time::timeout(LAST_WORD_TIMEOUT, conn.shutdown()).await;
    }
    SessionEnd::Revoked
}

async fn goodbye(conn: &mut Connection<BoxedStream>, reason: &str) {
    let goodbye = Message::Goodbye(Goodbye {
        reason: reason.to_string(),
    });
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

#[cfg(test)]
mod tests;
