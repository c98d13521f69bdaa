//! The server's relay between a running command and its client: output streams out as it is
//! produced (stdout on channel 0, stderr on channel 1), stdin, signals and resizes flow in, and
//! the command's whole process group is ended when it exits, times out, the client goes, or the
//! server stops.
//!
//! Memory stays bounded: output is read only as fast as the client takes it (so a command that
//! writes faster than the client reads blocks on its full pipe), and stdin is handed to a
//! writer task through a small queue that stops reading from the client when full. That task
//! exists so a command that neither reads stdin nor stops writing can never deadlock the relay.

use crate::protocol::{ExecExit, ExecResize, ExecSignal, Ping, Pong};
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::Duration;

use bytes::Bytes;
use rustix::process::{Pid, Signal};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::spawn::{Input, Process};
use super::terminate::{self, GroupGuard};
use crate::connection::{Connection, ConnectionError};
use crate::protocol::{ErrorCode, Frame, Message};

/// Bytes read from the command per data frame.
const CHUNK: usize = 64 * 1024;
/// Stdin chunks queued for the writer task before the relay stops reading from the client.
const INPUT_QUEUE: usize = 16;
/// The EOF character of a terminal (Ctrl-D), written when stdin ends on a pty.
const TERMINAL_EOF: u8 = 0x04;

/// How a command's exchange ended, and how the command did (`None` when it was still running
/// as the client went, and was ended).
pub struct Relayed {
    /// Whether the client was told.
    pub end: RelayEnd,
    /// How the command ended, when it did.
    pub status: Option<ExitStatus>,
}

/// Whether the client saw the end.
pub enum RelayEnd {
    /// The command finished and the client was told.
    Finished,
    /// The client went away; the command was ended.
    ClientGone,
}

/// Limits for one command.
pub struct RelayLimits<'a> {
    /// How long a group asked to end may take before SIGKILL.
    pub grace: Duration,
    /// The command's own time limit, if it asked for one.
    pub timeout: Option<Duration>,
    /// Cancelled when the server begins to shut down.
    pub shutdown: &'a CancellationToken,
}

enum InputCommand {
    Data(Bytes),
    Resize(u16, u16),
    End,
}

/// Ends the group politely once, then forcefully after the grace period.
struct Stopper {
    pgid: Pid,
    grace: Duration,
    kill_at: Option<Instant>,
    started: bool,
}

impl Stopper {
    fn begin(&mut self) {
        if !self.started {
            self.started = true;
            terminate::hang_up(self.pgid);
            self.kill_at = Some(Instant::now() + self.grace);
        }
    }
}

/// Runs the exchange for `process` until it is over.
///
/// # Errors
/// Only failures to wait for the child; client I/O errors end the command instead.
pub async fn relay<S>(
    conn: &mut Connection<S>,
    process: Process,
    limits: RelayLimits<'_>,
) -> io::Result<Relayed>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Process {
        mut child,
        pgid,
        mut stdout,
        mut stderr,
        stdin,
    } = process;
    let mut guard = GroupGuard::new(pgid);
    let (input_tx, input_rx) = mpsc::channel(INPUT_QUEUE);
    let feeder = tokio::spawn(feed_input(stdin, input_rx));
    let mut relay = Relay {
        conn,
        pgid,
        client_here: true,
        stdout_open: true,
        stderr_open: stderr.is_some(),
        status: None,
        stop: Stopper {
            pgid,
            grace: limits.grace,
            kill_at: None,
            started: false,
        },
        timeout_at: limits.timeout.map(|t| Instant::now() + t),
        timed_out: false,
        input: Some(input_tx),
        pending: None,
    };
    let mut out_buf = vec![0u8; CHUNK];
    let mut err_buf = vec![0u8; CHUNK];
    while !relay.is_over() {
        let (stop_started, kill_at) = (relay.stop.started, relay.stop.kill_at);
        let timeout_at = relay.timeout_at.filter(|_| !stop_started);
        let event = tokio::select! {
            read = stdout.read(&mut out_buf), if relay.stdout_open => Event::Output(0, read),
            read = read_optional(&mut stderr, &mut err_buf), if relay.stderr_open => Event::Output(1, read),
            exited = child.wait(), if relay.status.is_none() => Event::Exited(exited?),
            () = sleep_until_some(kill_at) => Event::KillDue,
            () = sleep_until_some(timeout_at) => Event::TimeUp,
            () = limits.shutdown.cancelled(), if !stop_started => Event::ShuttingDown,
            permit = reserve(relay.input.clone()), if relay.pending.is_some() => Event::QueueRoom(permit),
            frame = relay.conn.read_frame(), if relay.client_here && relay.pending.is_none() => Event::FromClient(frame),
        };
        match event {
            Event::Output(0, Ok(n)) if n > 0 => relay.forward(0, &out_buf[..n]).await,
            Event::Output(1, Ok(n)) if n > 0 => relay.forward(1, &err_buf[..n]).await,
            Event::Output(0, _) => relay.stdout_open = false,
            Event::Output(_, _) => relay.stderr_open = false,
            Event::Exited(status) => relay.exited(status),
            Event::KillDue => relay.kill_due(),
            Event::TimeUp => relay.time_is_up(),
            Event::ShuttingDown => relay.stop.begin(),
            Event::QueueRoom(permit) => relay.hand_on(permit),
            Event::FromClient(frame) => relay.on_client_frame(frame).await,
        }
    }
    feeder.abort();
    let Relay {
        conn,
        client_here,
        status,
        mut stop,
        timed_out,
        ..
    } = relay;
    let ended = status;
    let status = status.unwrap_or_else(|| ExitStatus::from_raw(0));
    if let Some(kill_at) = stop.kill_at.take() {
        // Group members may outlive the command for the rest of their grace period.
        if terminate::group_alive(pgid) {
            tokio::spawn(async move {
                tokio::time::sleep_until(kill_at).await;
                terminate::signal_group(pgid, Signal::KILL);
            });
        }
    }
    guard.disarm();
    let gone = Relayed {
        end: RelayEnd::ClientGone,
        status: ended,
    };
    if !client_here {
        return Ok(gone);
    }
    let exit = Message::ExecExit(ExecExit {
        code: status.code(),
        signal: status.signal(),
        timed_out,
    });
    if conn.write_message(&exit).await.is_err() {
        return Ok(gone);
    }
    Ok(Relayed {
        end: RelayEnd::Finished,
        status: ended,
    })
}

/// What woke the relay.
enum Event {
    /// A read from the command's stdout (0) or stderr (1).
    Output(u8, io::Result<usize>),
    /// The command exited.
    Exited(ExitStatus),
    /// The grace period after asking the group to end is over.
    KillDue,
    /// The command's own time limit ran out.
    TimeUp,
    /// The server began to shut down.
    ShuttingDown,
    /// The stdin writer's queue has room for the pending input (`None`: the writer is gone).
    QueueRoom(Option<mpsc::OwnedPermit<InputCommand>>),
    /// A frame from the client, or its end.
    FromClient(Result<Option<Frame>, ConnectionError>),
}

/// One command's exchange in progress: what is still open, and how far its ending has got.
/// Each event of the relay's loop is one method.
struct Relay<'c, S> {
    conn: &'c mut Connection<S>,
    pgid: Pid,
    /// The client is still connected (output is sent; its input is read).
    client_here: bool,
    stdout_open: bool,
    stderr_open: bool,
    /// How the command ended, once it has.
    status: Option<ExitStatus>,
    stop: Stopper,
    /// When the command's own time limit runs out.
    timeout_at: Option<Instant>,
    /// That limit ended it.
    timed_out: bool,
    /// To the stdin writer task; `None` once it finished (stdin ended).
    input: Option<mpsc::Sender<InputCommand>>,
    /// Read from the client, waiting for room in the writer's queue (nothing more is read
    /// from the client meanwhile).
    pending: Option<InputCommand>,
}

impl<S> Relay<'_, S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    /// The command has exited and its output has been drained (or abandoned).
    fn is_over(&self) -> bool {
        self.status.is_some() && !self.stdout_open && !self.stderr_open
    }

    fn exited(&mut self, status: ExitStatus) {
        self.status = Some(status);
        // What it left running in its group ends with it.
        self.stop.begin();
    }

    /// The grace period is over: whatever is left of the group is killed.
    fn kill_due(&mut self) {
        terminate::signal_group(self.pgid, Signal::KILL);
        self.stop.kill_at = None;
        if self.status.is_some() {
            // Whatever still holds the pipes escaped the group; stop waiting for it.
            self.stdout_open = false;
            self.stderr_open = false;
        }
    }

    fn time_is_up(&mut self) {
        self.timed_out = true;
        self.stop.begin();
    }

    /// Hands the pending input to the writer task, once its queue has room.
    fn hand_on(&mut self, permit: Option<mpsc::OwnedPermit<InputCommand>>) {
        match (permit, self.pending.take()) {
            (Some(permit), Some(command)) => {
                permit.send(command);
            }
            // The writer finished (stdin ended): later input has nowhere to go.
            _ => self.input = None,
        }
    }

    /// Acts on one frame from the client: input, a resize, a signal, a ping, or a mistake.
    async fn on_client_frame(&mut self, frame: Result<Option<Frame>, ConnectionError>) {
        match frame {
            Ok(Some(Frame::Data {
                channel: 0,
                payload,
            })) => self.pending = Some(InputCommand::Data(payload)),
            Ok(Some(Frame::Data { channel, .. })) => {
                let message = format!("stdin is data channel 0, not {channel}");
                self.reply(Message::error(ErrorCode::UnexpectedMessage, message))
                    .await;
            }
            Ok(Some(Frame::Message(body))) => match Message::parse(&body) {
                Ok(Message::ExecEof) => self.pending = Some(InputCommand::End),
                Ok(Message::ExecResize(ExecResize { rows, cols })) => {
                    self.pending = Some(InputCommand::Resize(rows, cols));
                }
                Ok(Message::ExecSignal(ExecSignal { signal })) => {
                    match terminate::parse_signal(&signal) {
                        Some(signal) => terminate::signal_group(self.pgid, signal),
                        None => {
                            let shown: String = signal.chars().take(16).collect();
                            let message = format!("unknown signal '{shown}'");
                            self.reply(Message::error(ErrorCode::BadMessage, message))
                                .await;
                        }
                    }
                }
                Ok(Message::Ping(Ping { seq })) => self.reply(Message::Pong(Pong { seq })).await,
                Ok(other) => {
                    let message = format!("'{}' is not valid while a command runs", other.kind());
                    self.reply(Message::error(ErrorCode::UnexpectedMessage, message))
                        .await;
                }
                Err(e) => self.reply(Message::error(e.code(), e.to_string())).await,
            },
            // The client closed or broke the connection: end the command.
            Ok(None) | Err(_) => self.client_left(),
        }
    }

    fn client_left(&mut self) {
        self.client_here = false;
        self.stop.begin();
    }

    /// Sends a chunk of output; a client that cannot take it is gone.
    async fn forward(&mut self, channel: u8, bytes: &[u8]) {
        if !self.client_here {
            return; // discarded: the command is being ended anyway
        }
        let sent = async {
            self.conn.write_data(channel, bytes).await?;
            self.conn.flush().await
        };
        if sent.await.is_err() {
            self.client_left();
        }
    }

    async fn reply(&mut self, message: Message) {
        if self.client_here && self.conn.write_message(&message).await.is_err() {
            self.client_left();
        }
    }
}

/// Sleeps until `at`; never wakes when there is no `at`.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn read_optional(
    reader: &mut Option<Box<dyn AsyncRead + Unpin + Send>>,
    buf: &mut [u8],
) -> io::Result<usize> {
    match reader {
        Some(reader) => reader.read(buf).await,
        None => Ok(0),
    }
}

async fn reserve(
    tx: Option<mpsc::Sender<InputCommand>>,
) -> Option<mpsc::OwnedPermit<InputCommand>> {
    match tx {
        Some(tx) => tx.reserve_owned().await.ok(),
        None => None,
    }
}

/// Writes stdin to the command. A command that closed its stdin gets no more (the rest is
/// discarded, as a pipe to a finished reader would).
async fn feed_input(mut input: Input, mut commands: mpsc::Receiver<InputCommand>) {
    let mut broken = false;
    while let Some(command) = commands.recv().await {
        match command {
            InputCommand::Data(bytes) if !broken => {
                let writer = input.writer();
                broken = writer.write_all(&bytes).await.is_err() || writer.flush().await.is_err();
            }
            InputCommand::Data(_) => {}
            InputCommand::Resize(rows, cols) => {
                if let Input::Pty(pty) = &input {
                    let _ = pty.resize(pty_process::Size::new(rows, cols));
                }
            }
            InputCommand::End => match &mut input {
                // Dropping the pipe is the command's end of input.
                Input::Pipe(_) => return,
                // A terminal has no half-close: it sends its EOF character.
                Input::Pty(pty) => {
                    let _ = pty.write_all(&[TERMINAL_EOF]).await;
                }
            },
        }
    }
}
