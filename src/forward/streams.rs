//! The mux loop's state: what it knows of each stream (its windows, its tasks, how far each
//! direction got) and how it answers the peer's messages, its own opens and its streams'
//! events. Nothing here waits: every method returns at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;

use super::PIECE;
use super::mux::{
    Command, Event, MuxConfig, MuxError, MuxHandle, OpenFailed, Pending, Side, StreamSummary,
};
use super::pump::{ToSocket, read_socket, write_socket};
use crate::connection::ConnectionError;
use crate::protocol::{
    ErrorCode, FORWARD_CHANNEL, Frame, Message, Refusal, StreamClose, StreamCredit, StreamOpen,
    StreamOpened, StreamRefused,
};

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
    /// The peer sent `stream_eof`: with `read_done`, nothing more crosses either way, and the
    /// stream no longer counts against the limit (the peer may already have let it go).
    peer_eof: bool,
    write_done: bool,
    clean: bool,
    tasks: Vec<tokio::task::AbortHandle>,
}

impl Stream {
    fn new(target: String, window: u32) -> Stream {
        Stream {
            target,
            opened_at: Instant::now(),
            pending: None,
            slot: None,
            to_socket: None,
            writer: None,
            queued: 0,
            credit: Arc::new(Semaphore::new(window as usize)),
            may_receive: u64::from(window),
            unacked: 0,
            received: 0,
            sent: 0,
            read_done: false,
            peer_eof: false,
            write_done: false,
            clean: true,
            tasks: Vec::new(),
        }
    }
}

/// What the loop knows: every stream, and the end it serves.
pub(super) struct State<S> {
    config: MuxConfig,
    /// Bytes a stream reads at a time: [`PIECE`], or less when the peer's frames are smaller.
    piece: usize,
    side: S,
    handle: MuxHandle,
    streams: HashMap<u32, Stream>,
    next_id: u32,
    events: mpsc::UnboundedSender<Event>,
    pub(super) tasks: JoinSet<()>,
}

impl<S: Side> State<S> {
    pub(super) fn new(
        config: MuxConfig,
        side: S,
        handle: MuxHandle,
        events: mpsc::UnboundedSender<Event>,
        max_payload: usize,
    ) -> State<S> {
        State {
            config,
            // Half a window at most, so a piece always fits the credit a peer can hold.
            piece: PIECE
                .min(max_payload.saturating_sub(4))
                .min(config.window as usize / 2)
                .max(1),
            side,
            handle,
            streams: HashMap::new(),
            next_id: if config.client { 1 } else { 2 },
            events,
            tasks: JoinSet::new(),
        }
    }

    /// A frame read (or how reading ended); `Some` when the mux ends with it.
    pub(super) fn on_read(
        &mut self,
        frame: Result<Option<Frame>, ConnectionError>,
    ) -> Option<Result<(), MuxError>> {
        match frame {
            Ok(Some(frame)) => self.frame(frame).err().map(|refusal| {
                self.send(Message::Error(refusal.clone()));
                Err(MuxError::Protocol(refusal))
            }),
            Ok(None) => Some(Err(ConnectionError::Closed.into())),
            Err(e) => Some(Err(e.into())),
        }
    }

    /// A command from a handle; `Some` when the mux ends with it.
    pub(super) fn on_command(&mut self, command: Command) -> Option<Result<(), MuxError>> {
        match command {
            Command::Open {
                open,
                socket,
                greeting,
                slot,
                reply,
            } => {
                self.open(
                    open,
                    Pending {
                        socket,
                        greeting,
                        slot,
                        reply,
                    },
                );
                None
            }
            Command::Finish(last) => {
                if let Some(last) = last {
                    self.send(last);
                }
                Some(Ok(()))
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
                    if held + bytes as usize > 2 * self.config.window as usize {
                        self.close(id, false);
                        self.send(Message::StreamClose(StreamClose { id }));
                    } else {
                        stream.credit.add_permits(bytes as usize);
                    }
                }
            }
            Message::StreamEof(crate::protocol::StreamEof { id }) => {
                if let Some(stream) = self.streams.get_mut(&id) {
                    stream.peer_eof = true;
                    if let Some(to_socket) = &stream.to_socket {
                        let _ = to_socket.send(ToSocket::Eof);
                    }
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
        if stream.unacked >= self.config.window / 4 {
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
        if self.open_streams() >= self.config.max_streams as usize {
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
        self.streams
            .insert(id, Stream::new(target, self.config.window));
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
        if self.open_streams() >= self.config.max_streams as usize {
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
        let mut stream = Stream::new(target, self.config.window);
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

    pub(super) fn event(&mut self, event: Event) {
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
                    // Sent from here, after every data frame the reading task queued, and
                    // once this end no longer counts the stream as sending.
                    self.send(Message::StreamEof(crate::protocol::StreamEof { id }));
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

    /// Streams that count against the limit: all but those done sending both ways (which
    /// only wait to shut their socket).
    fn open_streams(&self) -> usize {
        self.streams
            .values()
            .filter(|s| !(s.read_done && s.peer_eof))
            .count()
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
