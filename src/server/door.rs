//! A listener for a door beside the main port (the web page, IRC): bound with the rule that a
//! door without TLS opens only on loopback, and accepting within the same limits as the main
//! port (connections in all and per address, shared by every door), until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OwnedSemaphorePermit;
use tracing::debug;

use super::ServerState;
use crate::per_address::AddressSlot;
use crate::shutdown::{Shutdown, next_connection};

/// A door's listener, bound.
pub(crate) struct DoorListener {
    listener: TcpListener,
    /// The door's name, for logs: `web`, `irc`.
    name: &'static str,
}

/// A connection's place within the server's limits, given back when dropped.
pub(crate) struct Held {
    _slot: AddressSlot,
    _permit: OwnedSemaphorePermit,
}

/// One accepted connection and what serving it needs.
pub(crate) struct Accepted {
    pub(crate) tcp: TcpStream,
    pub(crate) peer: SocketAddr,
    /// Its place within the limits: keep it as long as the connection lives.
    pub(crate) held: Held,
    pub(crate) state: Arc<ServerState>,
    pub(crate) shutdown: Shutdown,
}

impl DoorListener {
    /// Binds `addr` for door `name`; without TLS (`plaintext`) only on loopback, and the
    /// refusal says `why` a door in the clear must stay there.
    ///
    /// # Errors
    /// The address cannot be bound, or a plaintext door was asked for beyond loopback.
    pub(crate) async fn bind(
        addr: SocketAddr,
        plaintext: bool,
        name: &'static str,
        why: &str,
    ) -> std::io::Result<DoorListener> {
        if plaintext && !addr.ip().is_loopback() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "the {name} door without TLS (--plaintext) may only listen on loopback (127.0.0.1 or ::1), not {addr}{why}"
                ),
            ));
        }
        Ok(DoorListener {
            listener: TcpListener::bind(addr).await?,
            name,
        })
    }

    pub(crate) fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts until shutdown; each connection within the limits is served by `serve` on a
    /// task the shutdown waits for. One over a limit is closed at once.
    pub(crate) async fn run<F, Fut>(self, state: Arc<ServerState>, shutdown: Shutdown, serve: F)
    where
        F: Fn(Accepted) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        loop {
            let Some((tcp, peer)) =
                next_connection(&self.listener, &shutdown.begin, self.name).await
            else {
                return;
            };
            let _ = tcp.set_nodelay(true);
            let slot = state.connections_per_address.try_take(peer.ip());
            let permit = Arc::clone(&state.connection_permits).try_acquire_owned();
            let (Some(slot), Ok(permit)) = (slot, permit) else {
                debug!(%peer, door = self.name, "connection refused: at the connection limit");
                continue;
            };
            shutdown.tracker.spawn(serve(Accepted {
                tcp,
                peer,
                held: Held {
                    _slot: slot,
                    _permit: permit,
                },
                state: Arc::clone(&state),
                shutdown: shutdown.clone(),
            }));
        }
    }
}
