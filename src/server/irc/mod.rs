//! The IRC door: `serve --irc ADDR` (`[irc] listen`) lets any IRC client (irssi, WeeChat,
//! HexChat, an IRC library) join ferry's rooms beside CLI, Python and web members. It is a
//! gateway, not a second chat: `#room` is ferry's room `room`, and every command becomes what
//! the chat hub does for a native member, with ferry's users, permissions and limits.
//!
//! IRC over TLS with the server's own identity (the certificate ferry clients pin); with
//! `--plaintext`, plain IRC and only on loopback. Sign-in is SASL PLAIN or `PASS NAME:SECRET`
//! (the secret crosses the wire, inside TLS: IRC clients cannot answer ferry's challenge);
//! without either the client is anonymous. Decisions where IRC and ferry differ:
//!
//! - A ferry line longer than an IRC line (4 KiB against 512 bytes), or holding newlines, is
//!   sent as several PRIVMSGs; an IRC line over 512 bytes (plus tags) is refused with 417.
//! - Lines that are not UTF-8 (or hold NUL) are refused (`FAIL … INVALID_UTF8`; `UTF8ONLY`
//!   is advertised), never replaced: what one member sends is what the others read.
//! - A client that stops reading is dropped after the chat send timeout, as a native member is,
//!   and its rooms see it PART "dropped: not reading".

mod caps;
mod chathistory;
mod client;
mod commands;
mod events;
pub(super) mod fuzz;
mod line;
mod lookups;
mod message;
mod numeric;
mod reader;
mod registration;
mod sign_in;
mod wire;

use crate::metrics::{MeteredStream, Service, ServiceCell};
use crate::transport::Transport;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tracing::debug;

use super::ServerState;
use super::door::DoorListener;
use crate::protocol::Permission;
use crate::services::CloseReason;
use crate::shutdown::Shutdown;
use client::{Client, End};
use registration::{Abort, register};
use wire::Wire;

/// Binds the IRC door; plaintext only on loopback.
///
/// # Errors
/// The address cannot be bound, or a plaintext door was asked for beyond loopback.
pub(crate) async fn bind(addr: SocketAddr, plaintext: bool) -> std::io::Result<DoorListener> {
    DoorListener::bind(
        addr,
        plaintext,
        "IRC",
        ": IRC sign-in sends the token's secret",
    )
    .await
}

/// Serves IRC clients until shutdown, within the server's connection limits.
pub(crate) async fn run(listener: DoorListener, state: Arc<ServerState>, shutdown: Shutdown) {
    listener
        .run(state, shutdown, |accepted| async move {
            serve(
                accepted.tcp,
                accepted.peer,
                &accepted.state,
                &accepted.shutdown,
            )
            .await;
            drop(accepted.held);
        })
        .await;
}

/// One connection: TLS if the server has an identity, then the client.
async fn serve(tcp: TcpStream, peer: SocketAddr, state: &Arc<ServerState>, shutdown: &Shutdown) {
    match state.tls.clone() {
        Some(acceptor) => {
            match timeout(state.limits.handshake_timeout(), acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => serve_client(tls, peer, state, shutdown).await,
                _ => debug!(%peer, "IRC TLS handshake failed or timed out"),
            }
        }
        None => serve_client(tcp, peer, state, shutdown).await,
    }
}

async fn serve_client<S>(stream: S, peer: SocketAddr, state: &Arc<ServerState>, shutdown: &Shutdown)
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let _open = state.metrics.session_opened(Transport::Irc);
    let service = ServiceCell::new(&state.metrics);
    service.set(Service::Chat);
    let stream = MeteredStream::new(stream, service);
    let mut wire = Wire::new(stream, state.chat.config.send_timeout());
    let registered = match register(&mut wire, state, peer, shutdown).await {
        Ok(registered) => registered,
        Err(Abort::Close(reason)) => return wire.close(&reason).await,
        Err(Abort::Gone) => return,
    };
    let user = registered.identity.user.clone();
    if user.is_none() {
        registration::record_sign_in(state, peer, None, None);
    }
    debug!(%peer, nick = %registered.nick, user = user.as_deref().unwrap_or("anonymous"), "IRC client registered");
    let ctx = state.session_context(registered.identity.clone(), peer, shutdown);
    // The client's time ends when the server stops, or when a reload takes chat (or its
    // user) away, as a native member's does.
    let closing = async {
        tokio::select! {
            _ = shutdown.begin.cancelled() => CloseReason::ShuttingDown,
            reason = ctx.lost(Permission::Chat) => reason,
        }
    };
    let closing = std::pin::pin!(closing);
    match Client::new(state, registered).run(&mut wire, closing).await {
        End::Quit => wire.close("quit").await,
        End::Close(reason) => wire.close(&reason).await,
        End::NotReading => debug!(%peer, "IRC client dropped: not reading"),
        End::Gone => {}
    }
}
