//! Many TCP streams over one connection, the same at both ends.
//!
//! One loop owns the streams' state and never waits on a socket: the connection is read by
//! its own task and written by another, and each stream has a task that reads its socket and
//! one that writes it. Every stream has its own window: a side sends at most what the other
//! granted (`stream_credit` comes back as bytes are written to the far socket), so a stream
//! whose far end never reads stops only itself; what the loop queues for a socket is bounded
//! by the window it granted, and a peer that sends past it has the stream closed.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::pump::{ToSocket, read_socket, write_socket};
use super::{PIECE, WINDOW};
use crate::connection::{Connection, ConnectionError, FrameReader, FrameWriter};
use crate::protocol::{
    ErrorCode, FORWARD_CHANNEL, Frame, Message, Refusal, StreamClose, StreamCredit, StreamOpen,
    StreamOpened, StreamRefused,
};

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

type OpenReply = oneshot::Sender<Result<(), OpenFailed>>;

/// An open of ours waiting for the peer's answer.
struct Pending {
    socket: TcpStream,
    greeting: Option<Vec<u8>>,
    /// Held by the stream while it lives (the opener's own count of open streams).
    slot: Option<OwnedSemaphorePermit>,
    reply: OpenReply,
}

enum Command {
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
    out: mpsc::UnboundedSender<Outgoing>,
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
}

struct Stream {
    target: String,
    opened_at: Instant,
    /// Our open, waiting for the peer's answer.
    pending: Option<Pending>,
    /// The opener's slot, released when the stream goes.
    slot: Option<OwnedSemaphorePermit>,
    /// To the writing task, once connected.
    to_socket: Option<mpsc::UnboundedSender<ToSocket>>,
    /// The socket's writing half, which the loop writes to directly while nothing is queued.
    writer: Option<Arc<tokio::net::tcp::OwnedWriteHalf>>,
    /// Bytes handed to the writing task and not yet written.
    queued: u64,
    /// What we may still send (the reading task takes from it).
    credit: Arc<Semaphore>,
    /// What the peer may still send us.
    may_receive: u64,
    /// Written since the last grant.
    unacked: u32,
    received: u64,
    sent: u64,
    read_done: bool,
    write_done: bool,
    clean: bool,
    tasks: Vec<tokio::task::AbortHandle>,
}

impl Stream {
    fn new(target: String) -> Stream {
        Stream {
            target,
            opened_at: Instant::now(),
            pending: None,
            slot: None,
            to_socket: None,
            writer: None,
            queued: 0,
            credit: Arc::new(Semaphore::new(WINDOW as usize)),
            may_receive: u64::from(WINDOW),
            unacked: 0,
            received: 0,
            sent: 0,
            read_done: false,
            write_done: false,
            clean: true,
            tasks: Vec::new(),
        }
    }
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
        let max_payload = conn.max_data_payload();
        let mut state = State {
            config,
            piece: PIECE.min(max_payload.saturating_sub(4)).max(1),
            side,
            handle: handle.clone(),
            streams: HashMap::new(),
            next_id: if config.client { 1 } else { 2 },
            events: events_tx,
            tasks: JoinSet::new(),
        };
        let ended = loop {
            tokio::select! {
                frame = conn.read_frame() => match frame {
                    Ok(Some(frame)) => {
                        if let Err(refusal) = state.frame(frame) {
                            state.send(Message::Error(refusal.clone()));
                            break Err(MuxError::Protocol(refusal));
                        }
                    }
                    Ok(None) => break Err(ConnectionError::Closed.into()),
                    Err(e) => break Err(e.into()),
                },
                Some(command) = commands.recv() => match command {
                    Command::Open { open, socket, greeting, slot, reply } => {
                        state.open(open, Pending { socket, greeting, slot, reply });
                    }
                    Command::Finish(last) => {
                        if let Some(last) = last {
                            state.send(last);
                        }
                        break Ok(());
                    }
                },
                Some(event) = events.recv() => state.event(event),
                Some(item) = out_rx.recv() => {
                    if let Err(e) = write_queued(conn, item, &mut out_rx).await {
                        break Err(ConnectionError::Io(e).into());
                    }
                }
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
            commands,
            out_rx,
            handle,
        } = self;
        let (frames_tx, frames) = mpsc::channel(64);
        let (events_tx, events) = mpsc::unbounded_channel();
        let max_payload = writer.max_data_payload();
        let mut state = State {
            config,
            piece: PIECE.min(max_payload.saturating_sub(4)).max(1),
            side,
            handle: handle.clone(),
            streams: HashMap::new(),
            next_id: if config.client { 1 } else { 2 },
            events: events_tx,
            tasks: JoinSet::new(),
        };
        let done = CancellationToken::new();
        let reading = tokio::spawn(read_frames(reader, frames_tx));
        let writing = {
            let done = done.clone();
            tokio::spawn(async move { write_frames(writer, out_rx, &done).await })
        };
        let ended = state.serve(frames, commands, events).await;
        state.tasks.abort_all();
        handle.ended.cancel();
        done.cancel();
        reading.abort();
        let _ = writing.await;
        ended
    }
}

async fn read_frames<R: AsyncRead + Unpin>(
    mut reader: FrameReader<R>,
    frames: mpsc::Sender<Result<Option<Frame>, ConnectionError>>,
) {
    loop {
        let frame = reader.read_frame().await;
        let last = !matches!(frame, Ok(Some(_)));
        if frames.send(frame).await.is_err() || last {
            // Nothing more to read: wait for the loop to end the mux.
            return std::future::pending().await;
        }
    }
}

/// Writes what the loop and the streams queue, flushing when the queue is empty; once the
/// mux is done, what is still queued (a last goodbye) is written, within a bound.
async fn write_frames<W: AsyncWrite + Unpin>(
    mut writer: FrameWriter<W>,
    mut out: mpsc::UnboundedReceiver<Outgoing>,
    done: &CancellationToken,
) {
    loop {
        let first = tokio::select! {
            item = out.recv() => item,
            () = done.cancelled() => {
                let drain = async {
                    while let Ok(item) = out.try_recv() {
                        if write_one(&mut writer, item).await.is_err() {
                            return;
                        }
                    }
                    let _ = writer.flush().await;
                };
                let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
                return;
            }
        };
        let Some(first) = first else {
            return;
        };
        // A peer that stops reading holds this write; once the mux is done it gets a little
        // longer, then the connection is dropped as it is.
        let late = async {
            done.cancelled().await;
            tokio::time::sleep(Duration::from_secs(2)).await;
        };
        let batch = async {
            let mut next = Some(first);
            while let Some(item) = next {
                write_one(&mut writer, item).await?;
                next = out.try_recv().ok();
            }
            writer.flush().await
        };
        let written = tokio::select! {
            written = batch => written.is_ok(),
            () = late => false,
        };
        if !written {
            // The connection is gone (the reader sees it too, and the loop ends), or the mux
            // ended while a peer would not read.
            return done.cancelled().await;
        }
    }
}

/// `first` and whatever else is queued now, then a flush.
async fn write_queued<C: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Connection<C>,
    first: Outgoing,
    out: &mut mpsc::UnboundedReceiver<Outgoing>,
) -> std::io::Result<()> {
    let mut next = Some(first);
    while let Some(item) = next {
        write_one_to(conn, item).await?;
        next = out.try_recv().ok();
    }
    conn.flush().await
}

async fn write_one_to<C: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Connection<C>,
    item: Outgoing,
) -> std::io::Result<()> {
    match item {
        Outgoing::Message(message) => conn.write_message(&message).await,
        Outgoing::Data(payload) => conn.write_data(FORWARD_CHANNEL, &payload).await,
    }
}

async fn write_one<W: AsyncWrite + Unpin>(
    writer: &mut FrameWriter<W>,
    item: Outgoing,
) -> std::io::Result<()> {
    match item {
        Outgoing::Message(message) => writer.write_message(&message).await,
        Outgoing::Data(payload) => writer.write_data(FORWARD_CHANNEL, &payload).await,
    }
}

struct State<S> {
    config: MuxConfig,
    /// Bytes a stream reads at a time: [`PIECE`], or less when the peer's frames are smaller.
    piece: usize,
    side: S,
    handle: MuxHandle,
    streams: HashMap<u32, Stream>,
    next_id: u32,
    events: mpsc::UnboundedSender<Event>,
    tasks: JoinSet<()>,
}

impl<S: Side> State<S> {
    async fn serve(
        &mut self,
        mut frames: mpsc::Receiver<Result<Option<Frame>, ConnectionError>>,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut events: mpsc::UnboundedReceiver<Event>,
    ) -> Result<(), MuxError> {
        loop {
            tokio::select! {
                frame = frames.recv() => match frame {
                    Some(Ok(Some(frame))) => {
                        if let Err(refusal) = self.frame(frame) {
                            self.handle.send(Message::Error(refusal.clone()));
                            return Err(MuxError::Protocol(refusal));
                        }
                    }
                    Some(Ok(None)) | None => return Err(ConnectionError::Closed.into()),
                    Some(Err(e)) => return Err(e.into()),
                },
                Some(command) = commands.recv() => match command {
                    Command::Open { open, socket, greeting, slot, reply } => {
                        self.open(open, Pending { socket, greeting, slot, reply });
                    }
                    Command::Finish(last) => {
                        if let Some(last) = last {
                            self.handle.send(last);
                        }
                        return Ok(());
                    }
                },
                Some(event) = events.recv() => self.event(event),
            }
        }
    }

    fn send(&self, message: Message) {
        self.handle.send(message);
    }

    /// One frame from the peer.
    fn frame(&mut self, frame: Frame) -> Result<(), Refusal> {
        let body = match frame {
            Frame::Data {
                channel: FORWARD_CHANNEL,
                payload,
            } => return self.data(payload),
            Frame::Data { channel, .. } => {
                return Err(Refusal::new(
                    ErrorCode::BadMessage,
                    format!("data on channel {channel} in a forwarding session"),
                ));
            }
            Frame::Message(body) => body,
        };
        let message = Message::parse(&body)
            .map_err(|e| Refusal::new(ErrorCode::BadMessage, e.to_string()))?;
        match message {
            Message::StreamOpen(open) => self.peer_open(open)?,
            Message::StreamOpened(StreamOpened { id }) => {
                let Some(stream) = self.streams.get_mut(&id) else {
                    return Ok(()); // closed meanwhile
                };
                if let Some(pending) = stream.pending.take() {
                    stream.slot = pending.slot;
                    let _ = pending.reply.send(Ok(()));
                    self.start(id, pending.socket, pending.greeting);
                }
            }
            Message::StreamRefused(StreamRefused { id, code, message }) => {
                if let Some(mut stream) = self.streams.remove(&id)
                    && let Some(pending) = stream.pending.take()
                {
                    let _ = pending.reply.send(Err(OpenFailed {
                        refusal: Refusal::new(code, message),
                        socket: Some(pending.socket),
                    }));
                }
            }
            Message::StreamCredit(StreamCredit { id, bytes }) => {
                if let Some(stream) = self.streams.get(&id) {
                    let held = stream.credit.available_permits();
                    if held + bytes as usize > (2 * WINDOW) as usize {
                        self.close(id, false);
                        self.send(Message::StreamClose(StreamClose { id }));
                    } else {
                        stream.credit.add_permits(bytes as usize);
                    }
                }
            }
            Message::StreamEof(crate::protocol::StreamEof { id }) => {
                if let Some(to_socket) = self.streams.get(&id).and_then(|s| s.to_socket.as_ref()) {
                    let _ = to_socket.send(ToSocket::Eof);
                }
            }
            Message::StreamClose(StreamClose { id }) => self.close(id, false),
            Message::Goodbye(goodbye) => {
                return Err(Refusal::new(ErrorCode::ShuttingDown, goodbye.reason));
            }
            Message::Error(refusal) => return Err(refusal),
            other => {
                let handle = self.handle.clone();
                self.side.message(other, &handle)?;
            }
        }
        Ok(())
    }

    /// A data frame: its stream's bytes, within what was granted.
    fn data(&mut self, payload: Bytes) -> Result<(), Refusal> {
        let Some(head) = payload.first_chunk::<4>() else {
            return Err(Refusal::new(
                ErrorCode::BadMessage,
                "a data frame without a stream id",
            ));
        };
        let id = u32::from_be_bytes(*head);
        let bytes = payload.slice(4..);
        let Some(stream) = self.streams.get_mut(&id) else {
            return Ok(()); // a stream closed while its bytes were under way
        };
        let over = bytes.len() as u64 > stream.may_receive;
        let Some(to_socket) = stream.to_socket.as_ref().filter(|_| !over) else {
            // Bytes before the stream opened, or past the window: the peer broke the rules
            // for this stream, which is closed (the others go on).
            self.close(id, false);
            self.send(Message::StreamClose(StreamClose { id }));
            return Ok(());
        };
        stream.may_receive -= bytes.len() as u64;
        stream.received += bytes.len() as u64;
        // Straight into the socket when nothing waits before these bytes and it has room; the
        // rest goes to the writing task, which waits for room.
        let mut written = 0;
        if stream.queued == 0
            && let Some(writer) = &stream.writer
        {
            let socket: &TcpStream = writer.as_ref().as_ref();
            match socket.try_write(&bytes) {
                Ok(n) => written = n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => {
                    self.close(id, false);
                    self.send(Message::StreamClose(StreamClose { id }));
                    return Ok(());
                }
            }
        }
        if written < bytes.len() {
            stream.queued += (bytes.len() - written) as u64;
            let _ = to_socket.send(ToSocket::Data(bytes.slice(written..)));
        }
        if written > 0 {
            self.wrote(id, written as u32, false);
        }
        Ok(())
    }

    /// `bytes` of stream `id` reached its socket: the peer may send as many again.
    fn wrote(&mut self, id: u32, bytes: u32, queued: bool) {
        let Some(stream) = self.streams.get_mut(&id) else {
            return;
        };
        if queued {
            stream.queued = stream.queued.saturating_sub(u64::from(bytes));
        }
        stream.may_receive += u64::from(bytes);
        stream.unacked += bytes;
        if stream.unacked >= WINDOW / 4 {
            let bytes = std::mem::take(&mut stream.unacked);
            self.send(Message::StreamCredit(StreamCredit { id, bytes }));
        }
    }

    /// The peer opens a stream: dial in a task, answer when it is done.
    fn peer_open(&mut self, open: StreamOpen) -> Result<(), Refusal> {
        let id = open.id;
        // The client's ids are odd, the server's even.
        let theirs = id.is_multiple_of(2) == self.config.client;
        if !theirs || id == 0 || self.streams.contains_key(&id) {
            return Err(Refusal::new(
                ErrorCode::BadMessage,
                format!("stream id {id} is not a new one of the peer's"),
            ));
        }
        if self.streams.len() >= self.config.max_streams as usize {
            self.send(Message::StreamRefused(StreamRefused {
                id,
                code: ErrorCode::ServerBusy,
                message: format!(
                    "this session has {} streams open, its most",
                    self.config.max_streams
                ),
            }));
            return Ok(());
        }
        let target = match (&open.host, open.port, open.listener) {
            (Some(host), Some(port), _) => format!("{host}:{port}"),
            (_, _, Some(listener)) => format!("listener {listener}"),
            _ => "?".into(),
        };
        self.streams.insert(id, Stream::new(target));
        let dial = self.side.dial(&open);
        let events = self.events.clone();
        let task = self.tasks.spawn(async move {
            let result = dial.await;
            let _ = events.send(Event::Dialed { id, result });
        });
        if let Some(stream) = self.streams.get_mut(&id) {
            stream.tasks.push(task);
        }
        Ok(())
    }

    /// We open a stream for a local socket.
    fn open(&mut self, mut open: StreamOpen, pending: Pending) {
        let refused = |pending: Pending, refusal| {
            let _ = pending.reply.send(Err(OpenFailed {
                refusal,
                socket: Some(pending.socket),
            }));
        };
        if self.streams.len() >= self.config.max_streams as usize {
            let most = self.config.max_streams;
            let refusal = Refusal::new(
                ErrorCode::ServerBusy,
                format!("{most} streams are open, the most"),
            );
            return refused(pending, refusal);
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(2).max(1);
        if let Err(refusal) = self.side.opening(id) {
            return refused(pending, refusal);
        }
        open.id = id;
        let target = match (&open.host, open.port) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            _ => open.from.clone().unwrap_or_default(),
        };
        let mut stream = Stream::new(target);
        stream.pending = Some(pending);
        self.streams.insert(id, stream);
        self.send(Message::StreamOpen(open));
    }

    /// A connected stream's two tasks.
    fn start(&mut self, id: u32, socket: TcpStream, greeting: Option<Vec<u8>>) {
        let Some(stream) = self.streams.get_mut(&id) else {
            return;
        };
        let _ = socket.set_nodelay(true);
        let (read, write) = socket.into_split();
        let write = Arc::new(write);
        let (to_socket, from_peer) = mpsc::unbounded_channel();
        stream.to_socket = Some(to_socket);
        // A greeting (a SOCKS reply) goes first, through the task: nothing is written here
        // before it is.
        stream.writer = Some(Arc::clone(&write));
        if let Some(greeting) = &greeting {
            stream.queued += greeting.len() as u64;
        }
        let reading = self.tasks.spawn(read_socket(
            id,
            self.piece,
            read,
            Arc::clone(&stream.credit),
            self.handle.out.clone(),
            self.events.clone(),
        ));
        let writing = self.tasks.spawn(write_socket(
            id,
            write,
            greeting,
            from_peer,
            self.events.clone(),
        ));
        stream.tasks.extend([reading, writing]);
    }

    fn event(&mut self, event: Event) {
        match event {
            Event::Dialed { id, result } => match result {
                Ok(socket) if self.streams.contains_key(&id) => {
                    self.send(Message::StreamOpened(StreamOpened { id }));
                    self.start(id, socket, None);
                }
                Ok(_) => {}
                Err(refusal) => {
                    if let Some(mut stream) = self.streams.remove(&id) {
                        stream.clean = false;
                        self.side.ended(summary(id, &stream));
                    }
                    self.send(Message::StreamRefused(StreamRefused {
                        id,
                        code: refusal.code,
                        message: refusal.message,
                    }));
                }
            },
            Event::Wrote { id, bytes, queued } => self.wrote(id, bytes, queued),
            Event::Greeted { id, bytes } => {
                if let Some(stream) = self.streams.get_mut(&id) {
                    stream.queued = stream.queued.saturating_sub(u64::from(bytes));
                }
            }
            Event::ReadEnd { id, sent, ok } => {
                let Some(stream) = self.streams.get_mut(&id) else {
                    return;
                };
                stream.sent = sent;
                stream.read_done = true;
                if !ok {
                    self.close(id, false);
                    self.send(Message::StreamClose(StreamClose { id }));
                } else {
                    self.end_if_done(id);
                }
            }
            Event::WriteEnd { id, ok } => {
                let Some(stream) = self.streams.get_mut(&id) else {
                    return;
                };
                stream.write_done = true;
                if !ok {
                    self.close(id, false);
                    self.send(Message::StreamClose(StreamClose { id }));
                } else {
                    self.end_if_done(id);
                }
            }
        }
    }

    /// A stream whose both directions ended is gone (each side knows from the other's eof).
    fn end_if_done(&mut self, id: u32) {
        if self
            .streams
            .get(&id)
            .is_some_and(|s| s.read_done && s.write_done)
        {
            self.close(id, true);
        }
    }

    fn close(&mut self, id: u32, clean: bool) {
        if let Some(mut stream) = self.streams.remove(&id) {
            stream.clean = clean;
            stream.credit.close();
            for task in &stream.tasks {
                task.abort();
            }
            if let Some(pending) = stream.pending.take() {
                let _ = pending.reply.send(Err(OpenFailed {
                    refusal: Refusal::new(ErrorCode::Io, "the stream was closed"),
                    socket: Some(pending.socket),
                }));
            }
            self.side.ended(summary(id, &stream));
        }
    }
}

fn summary(id: u32, stream: &Stream) -> StreamSummary {
    StreamSummary {
        id,
        target: stream.target.clone(),
        received: stream.received,
        sent: stream.sent,
        duration: stream.opened_at.elapsed(),
        clean: stream.clean,
    }
}
