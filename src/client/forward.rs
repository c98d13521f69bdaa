//! The client's side of port forwarding (`ferry forward -L/-R/-D`): local listeners whose
//! connections become streams to the server (`-L` to a fixed destination, `-D` to where a
//! SOCKS5 client asks), and listeners on the server whose connections come back as streams
//! to a local destination (`-R`). One session carries them all (`forward::mux`).
//!
//! The local listeners are bound once, by the caller, and outlive a session: when the server
//! goes away and a new session begins, they are served again (connections made meanwhile wait
//! in the listen backlog).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::{Client, ClientError};
use crate::forward::mux::{Dial, Mux, MuxConfig, MuxHandle, Side};
use crate::forward::socks::{self, Reply};
use crate::protocol::{
    ErrorCode, Forward, ForwardListen, ListenReady, ListenRefused, Message, Refusal, StreamOpen,
};

/// What a local listener does with its connections.
#[allow(missing_docs)] // The variants' fields are named for what they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalKind {
    /// `-L`: to this destination, as the server resolves it.
    To { host: String, port: u16 },
    /// `-D`: where the SOCKS5 client asks.
    Socks,
}

/// A local listener, bound by the caller.
pub struct LocalForward {
    /// The listener.
    pub listener: Arc<TcpListener>,
    /// What its connections go to.
    pub kind: LocalKind,
}

/// A `-R` forward: the server listens on `bind:port`, its connections go to `host:hostport`
/// from this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteForward {
    /// Where the server listens (`127.0.0.1` by default).
    pub bind: String,
    /// Its port (0: any).
    pub port: u16,
    /// Where connections go, from here.
    pub host: String,
    /// That port.
    pub host_port: u16,
}

/// What happens in a forwarding session, for the user.
#[allow(missing_docs)] // The variants' fields are named for what they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardNews {
    /// The server listens for a `-R` forward (on the port it got).
    Listening { forward: RemoteForward, port: u16 },
    /// A `-R` forward was refused.
    ListenRefused {
        forward: RemoteForward,
        refusal: Refusal,
    },
    /// A stream could not open.
    StreamRefused { target: String, refusal: Refusal },
}

/// Runs one forwarding session over `client` until the server goes away (or refuses to
/// forward). News goes to `news`.
///
/// # Errors
/// The server's refusal of `forward` (permission, nothing allowed), or how the session ended.
pub async fn run_session(
    client: Client,
    locals: &[LocalForward],
    remotes: &[RemoteForward],
    news: mpsc::UnboundedSender<ForwardNews>,
) -> Result<(), ClientError> {
    let mut conn = client.into_connection();
    conn.write_message(&Message::Forward(Forward {})).await?;
    let ready = match conn.read_message().await? {
        Message::ForwardReady(ready) => ready,
        Message::Error(refusal) => return Err(ClientError::Server(refusal)),
        other => return Err(super::error::unexpected(other)),
    };
    let (mux, handle) = Mux::new(MuxConfig {
        client: true,
        max_streams: ready.max_streams,
        window: crate::forward::window_from_peer(ready.window),
    });
    let listeners: HashMap<u32, RemoteForward> = remotes
        .iter()
        .enumerate()
        .map(|(i, r)| (i as u32 + 1, r.clone()))
        .collect();
    for (id, forward) in &listeners {
        handle.send(Message::ForwardListen(ForwardListen {
            id: *id,
            bind: forward.bind.clone(),
            port: forward.port,
        }));
    }
    let side = ClientSide {
        listeners,
        news: news.clone(),
    };
    // Connections beyond the session's streams wait for one to end, as ssh's channels
    // would all be carried: none is refused for the limit.
    let slots = Arc::new(tokio::sync::Semaphore::new(ready.max_streams as usize));
    let mut accepting = tokio::task::JoinSet::new();
    for local in locals {
        accepting.spawn(accept(
            Arc::clone(&local.listener),
            local.kind.clone(),
            handle.clone(),
            Arc::clone(&slots),
            news.clone(),
        ));
    }
    let (reader, writer) = conn.split();
    let ended = mux.run_owned(reader, writer, side).await;
    accepting.abort_all();
    match ended {
        Ok(()) => Ok(()),
        Err(crate::forward::mux::MuxError::Connection(e)) => Err(e.into()),
        Err(crate::forward::mux::MuxError::Protocol(refusal)) => Err(ClientError::Server(refusal)),
        Err(crate::forward::mux::MuxError::Goodbye(reason)) => Err(ClientError::Protocol(format!(
            "the server said goodbye: {reason}"
        ))),
    }
}

struct ClientSide {
    listeners: HashMap<u32, RemoteForward>,
    news: mpsc::UnboundedSender<ForwardNews>,
}

impl Side for ClientSide {
    fn dial(&mut self, open: &StreamOpen) -> Dial {
        let target = open
            .listener
            .and_then(|id| self.listeners.get(&id))
            .cloned();
        Box::pin(async move {
            let Some(target) = target else {
                return Err(Refusal::new(
                    ErrorCode::NotFound,
                    "a stream for a listener this client did not ask for",
                ));
            };
            TcpStream::connect((target.host.as_str(), target.host_port))
                .await
                .map_err(|e| {
                    Refusal::new(
                        ErrorCode::Io,
                        format!(
                            "cannot connect to {}:{}: {e}",
                            target.host, target.host_port
                        ),
                    )
                })
        })
    }

    fn message(&mut self, message: Message, _handle: &MuxHandle) -> Result<(), Refusal> {
        match message {
            Message::ListenReady(ListenReady { id, port }) => {
                if let Some(forward) = self.listeners.get(&id) {
                    let _ = self.news.send(ForwardNews::Listening {
                        forward: forward.clone(),
                        port,
                    });
                }
                Ok(())
            }
            Message::ListenRefused(ListenRefused { id, code, message }) => {
                if let Some(forward) = self.listeners.get(&id) {
                    let _ = self.news.send(ForwardNews::ListenRefused {
                        forward: forward.clone(),
                        refusal: Refusal::new(code, message),
                    });
                }
                Ok(())
            }
            other => Err(Refusal::new(
                ErrorCode::UnexpectedMessage,
                format!("'{}' in a forwarding session", other.kind()),
            )),
        }
    }
}

/// Serves one local listener for the session: each connection is opened as a stream.
async fn accept(
    listener: Arc<TcpListener>,
    kind: LocalKind,
    handle: MuxHandle,
    slots: Arc<tokio::sync::Semaphore>,
    news: mpsc::UnboundedSender<ForwardNews>,
) {
    loop {
        let Ok((socket, from)) = listener.accept().await else {
            // Out of descriptors, say: back off a little rather than spin on the error.
            tokio::time::sleep(crate::forward::ACCEPT_BACKOFF).await;
            continue;
        };
        let (kind, handle, news) = (kind.clone(), handle.clone(), news.clone());
        let slots = Arc::clone(&slots);
        tokio::spawn(async move {
            let Ok(slot) = slots.acquire_owned().await else {
                return;
            };
            let _ = connect_one(socket, from, kind, &handle, slot, &news).await;
        });
    }
}

async fn connect_one(
    mut socket: TcpStream,
    from: SocketAddr,
    kind: LocalKind,
    handle: &MuxHandle,
    slot: tokio::sync::OwnedSemaphorePermit,
    news: &mpsc::UnboundedSender<ForwardNews>,
) -> std::io::Result<()> {
    let (host, port, greeting) = match kind {
        LocalKind::To { host, port } => (host, port, None),
        LocalKind::Socks => {
            let (host, port) = socks::accept(&mut socket).await?;
            (
                host,
                port,
                Some(socks::reply_bytes(Reply::Succeeded).to_vec()),
            )
        }
    };
    let socks = greeting.is_some();
    let open = StreamOpen {
        id: 0,
        host: Some(host.clone()),
        port: Some(port),
        listener: None,
        from: Some(from.to_string()),
    };
    if let Err(failed) = handle
        .open_holding(open, socket, greeting, Some(slot))
        .await
    {
        let _ = news.send(ForwardNews::StreamRefused {
            target: format!("{host}:{port}"),
            refusal: failed.refusal.clone(),
        });
        if socks && let Some(mut socket) = failed.socket {
            socks::reply(&mut socket, Reply::for_refusal(failed.refusal.code)).await?;
        }
    }
    Ok(())
}
