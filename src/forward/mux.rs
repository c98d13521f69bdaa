//! Many TCP streams over one connection, the same at both ends.
//!
//! One loop owns the streams' state and never waits on a socket: the connection is read by
//! its own task and written by another, and each stream has a task that reads its socket and
//! one that writes it. Every stream has its own window: a side sends at most what the other
//! granted (`stream_credit` comes back as bytes are written to the far socket), so a stream
//! whose far end never reads stops only itself; what the loop queues for a socket is bounded
//! by the window it granted, and a peer that sends past it has the stream closed.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::link::{read_frames, write_frames, write_one_to, write_queued};
use super::streams::State;
use crate::connection::{Connection, ConnectionError, FrameReader, FrameWriter};
use crate::protocol::{ErrorCode, Message, Refusal, StreamOpen};

/// A dial in progress, answered with the connected socket or why not.
pub type Dial = Pin<Box<dyn Future<Output = Result<TcpStream, Refusal>> + Send>>;

/// What one end of a mux does with what the peer asks.
pub trait Side: Send + 'static {
    /// Connects for the peer's `stream_open` (run in its own task, so a slow connect holds
    /// up nothing else).
    fn dial(&mut self, open: &StreamOpen) -> Dial;

    /// A message that is not about a stream (the server: `forward_listen`). The default
    /// refuses it.
    ///
    /// # Errors
    /// The refusal to send; the mux then ends.
    fn message(&mut self, message: Message, handle: &MuxHandle) -> Result<(), Refusal> {
        let _ = handle;
        Err(Refusal::new(
            ErrorCode::UnexpectedMessage,
            format!("'{}' in a forwarding session", message.kind()),
        ))
    }

    /// This end opens stream `id` (for a local connection); a refusal stops it (a limit).
    ///
    /// # Errors
    /// Why the stream may not open.
    fn opening(&mut self, id: u32) -> Result<(), Refusal> {
        let _ = id;
        Ok(())
    }

    /// A stream ended (for the audit log): where it went, bytes each way, how long.
    fn ended(&mut self, summary: StreamSummary) {
        let _ = summary;
    }
}

/// One finished stream.
#[derive(Debug, Clone)]
pub struct StreamSummary {
    /// The stream's id.
    pub id: u32,
    /// Where it went, as opened.
    pub target: String,
    /// Bytes from the peer (written to the local socket).
    pub received: u64,
    /// Bytes to the peer (read from the local socket).
    pub sent: u64,
    /// How long it was open.
    pub duration: Duration,
    /// Whether it ended cleanly (both ends closed) rather than by a reset or an error.
    pub clean: bool,
}

/// What goes to the connection's writer.
pub(super) enum Outgoing {
    /// A control message.
    Message(Message),
    /// A data frame's payload: the stream id (4 bytes) and the bytes.
    Data(Vec<u8>),
}

/// What stream tasks tell the loop.
#[allow(missing_docs)] // Each variant says what its fields are.
pub(super) enum Event {
    /// Bytes were written to the stream's socket: grant as many again (`queued`: by the
    /// writing task, from its queue).
    Wrote { id: u32, bytes: u32, queued: bool },
    /// The greeting was written (the loop may write directly now).
    Greeted { id: u32, bytes: u32 },
    /// The socket's reading ended (`ok`: at its end, `stream_eof` sent).
    ReadEnd { id: u32, sent: u64, ok: bool },
    /// The socket's writing ended (`ok`: shut after the peer's end).
    WriteEnd { id: u32, ok: bool },
    /// A dial for the peer finished.
    Dialed {
        id: u32,
        result: Result<TcpStream, Refusal>,
    },
}

/// Why an open from this end failed, with the socket back when the mux still had it (so a
/// SOCKS client can be told).
#[derive(Debug)]
pub struct OpenFailed {
    /// The peer's refusal, or why the mux could not ask.
    pub refusal: Refusal,
    /// The local socket, when it was not dropped.
    pub socket: Option<TcpStream>,
}

pub(super) type OpenReply = oneshot::Sender<Result<(), OpenFailed>>;

/// An open of ours waiting for the peer's answer.
pub(super) struct Pending {
    pub(super) socket: TcpStream,
    pub(super) greeting: Option<Vec<u8>>,
    /// Held by the stream while it lives (the opener's own count of open streams).
    pub(super) slot: Option<OwnedSemaphorePermit>,
    pub(super) reply: OpenReply,
}

pub(super) enum Command {
    Open {
        open: StreamOpen,
        socket: TcpStream,
        greeting: Option<Vec<u8>>,
        slot: Option<OwnedSemaphorePermit>,
        reply: OpenReply,
    },
    Finish(Option<Message>),
}

/// A handle on a running mux, for opening streams and sending messages from outside it.
#[derive(Clone)]
pub struct MuxHandle {
    commands: mpsc::UnboundedSender<Command>,
    pub(super) out: mpsc::UnboundedSender<Outgoing>,
    ended: CancellationToken,
}

impl MuxHandle {
    /// Opens a stream to the peer for `socket` (`open.id` is chosen here) and waits for the
    /// peer's answer; once opened, `greeting` (a SOCKS reply) is written to the socket before
    /// anything from the peer, and the stream runs in the mux.
    ///
    /// # Errors
    /// The peer's refusal, or the mux ended; with the socket when it is still there.
    pub async fn open(
        &self,
        open: StreamOpen,
        socket: TcpStream,
        greeting: Option<Vec<u8>>,
    ) -> Result<(), OpenFailed> {
        self.open_holding(open, socket, greeting, None).await
    }

    /// [`MuxHandle::open`], the stream holding `slot` until it ends (so an opener can wait
    /// for a free one rather than be refused past the limit).
    ///
    /// # Errors
    /// As [`MuxHandle::open`].
    pub async fn open_holding(
        &self,
        open: StreamOpen,
        socket: TcpStream,
        greeting: Option<Vec<u8>>,
        slot: Option<OwnedSemaphorePermit>,
    ) -> Result<(), OpenFailed> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Open {
                open,
                socket,
                greeting,
                slot,
                reply,
            })
            .map_err(|e| {
                let socket = match e.0 {
                    Command::Open { socket, .. } => Some(socket),
                    Command::Finish(_) => None,
                };
                OpenFailed {
                    refusal: ended(),
                    socket,
                }
            })?;
        answer.await.unwrap_or_else(|_| {
            Err(OpenFailed {
                refusal: ended(),
                socket: None,
            })
        })
    }

    /// Sends a control message to the peer.
    pub fn send(&self, message: Message) {
        let _ = self.out.send(Outgoing::Message(message));
    }

    /// Ends the mux, after sending `last` (a `goodbye`) when given.
    pub fn finish(&self, last: Option<Message>) {
        let _ = self.commands.send(Command::Finish(last));
    }

    /// Resolves once the mux has ended (listeners stop then).
    pub async fn ended(&self) {
        self.ended.cancelled().await;
    }

    /// Whether the mux has ended.
    pub fn is_ended(&self) -> bool {
        self.ended.is_cancelled()
    }
}

fn ended() -> Refusal {
    Refusal::new(ErrorCode::Unavailable, "the forwarding session ended")
}

/// How a mux is set up at one end.
#[derive(Debug, Clone, Copy)]
pub struct MuxConfig {
    /// The client's streams have odd ids, the server's even ones.
    pub client: bool,
    /// Streams open at once, at most (the peer's beyond are refused).
    pub max_streams: u32,
    /// Each stream's window, both ways: the server's [`super::WINDOW`], which the client
    /// learns from `forward_ready` (see [`super::window_from_peer`]).
    pub window: u32,
}

/// Why a mux ended.
#[derive(Debug, thiserror::Error)]
pub enum MuxError {
    /// The connection failed or closed.
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    /// The peer broke the protocol (sent to it before the end).
    #[error("{0}")]
    Protocol(Refusal),
    /// The peer said goodbye.
    #[error("{0}")]
    Goodbye(String),
}

/// A mux about to run.
pub struct Mux {
    config: MuxConfig,
    commands: mpsc::UnboundedReceiver<Command>,
    out_rx: mpsc::UnboundedReceiver<Outgoing>,
    handle: MuxHandle,
}

impl Mux {
    /// A mux and the handle to it.
    pub fn new(config: MuxConfig) -> (Mux, MuxHandle) {
        let (commands_tx, commands) = mpsc::unbounded_channel();
        let (out, out_rx) = mpsc::unbounded_channel();
        let handle = MuxHandle {
            commands: commands_tx,
            out,
            ended: CancellationToken::new(),
        };
        (
            Mux {
                config,
                commands,
                out_rx,
                handle: handle.clone(),
            },
            handle,
        )
    }

    /// Runs on a borrowed connection until it ends, the peer says goodbye, or
    /// [`MuxHandle::finish`]; every stream is dropped then (its sockets closed), and the
    /// handle's `ended` resolves. The loop reads the connection and writes what is queued in
    /// turn: a write waits only for the peer to read, which a ferry peer always does (its
    /// reading never waits on its writing, see [`Mux::run_owned`]); a peer that stops reading
    /// is cut off by the session's stall guard.
    ///
    /// # Errors
    /// Why it ended, when not by `finish`.
    pub async fn run<C, S>(self, conn: &mut Connection<C>, side: S) -> Result<(), MuxError>
    where
        C: AsyncRead + AsyncWrite + Unpin,
        S: Side,
    {
        let Mux {
            config,
            mut commands,
            mut out_rx,
            handle,
        } = self;
        let (events_tx, mut events) = mpsc::unbounded_channel();
        let mut state = State::new(
            config,
            side,
            handle.clone(),
            events_tx,
            conn.max_data_payload(),
        );
        let ended = loop {
            let step = tokio::select! {
                frame = conn.read_frame() => state.on_read(frame),
                Some(command) = commands.recv() => state.on_command(command),
                Some(event) = events.recv() => {
                    state.event(event);
                    None
                }
                Some(item) = out_rx.recv() => write_queued(conn, item, &mut out_rx)
                    .await
                    .err()
                    .map(|e| Err(ConnectionError::Io(e).into())),
            };
            if let Some(ended) = step {
                break ended;
            }
        };
        state.tasks.abort_all();
        handle.ended.cancel();
        // What is still queued (a last goodbye, a refusal) goes out, within a bound.
        let drain = async {
            while let Ok(item) = out_rx.try_recv() {
                write_one_to(conn, item).await?;
            }
            conn.flush().await
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
        ended
    }

    /// [`Mux::run`] for a connection it may own: reading and writing run as tasks of their
    /// own, beside the loop's.
    ///
    /// # Errors
    /// As [`Mux::run`].
    pub async fn run_owned<R, W, S>(
        self,
        reader: FrameReader<R>,
        writer: FrameWriter<W>,
        side: S,
    ) -> Result<(), MuxError>
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
        S: Side,
    {
        let Mux {
            config,
            mut commands,
            out_rx,
            handle,
        } = self;
        let (frames_tx, mut frames) = mpsc::channel(64);
        let (events_tx, mut events) = mpsc::unbounded_channel();
        let mut state = State::new(
            config,
            side,
            handle.clone(),
            events_tx,
            writer.max_data_payload(),
        );
        let done = CancellationToken::new();
        let reading = tokio::spawn(read_frames(reader, frames_tx));
        let writing = {
            let done = done.clone();
            tokio::spawn(async move { write_frames(writer, out_rx, &done).await })
        };
        let ended = loop {
            let step = tokio::select! {
                frame = frames.recv() => {
                    state.on_read(frame.unwrap_or(Err(ConnectionError::Closed)))
                }
                Some(command) = commands.recv() => state.on_command(command),
                Some(event) = events.recv() => {
                    state.event(event);
                    None
                }
            };
            if let Some(ended) = step {
                break ended;
            }
        };
        state.tasks.abort_all();
        handle.ended.cancel();
        done.cancel();
        reading.abort();
        let _ = writing.await;
        ended
    }
}
