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
use crate::connection::Connection;
use crate::protocol::{ErrorCode, Frame, Message};

/// Bytes read from the command per data frame.
const CHUNK: usize = 64 * 1024;
/// Stdin chunks queued for the writer task before the relay stops reading from the client.
const INPUT_QUEUE: usize = 16;
/// The EOF character of a terminal (Ctrl-D), written when stdin ends on a pty.
const TERMINAL_EOF: u8 = 0x04;

/// How a command's exchange ended.
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
) -> io::Result<RelayEnd>
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
    let mut input_tx = Some(input_tx);
    let mut pending: Option<InputCommand> = None;

    let mut stop = Stopper {
        pgid,
        grace: limits.grace,
        kill_at: None,
        started: false,
    };
    let timeout_at = limits.timeout.map(|t| Instant::now() + t);
    let mut timed_out = false;
    let mut status: Option<ExitStatus> = None;
    let mut client = true;
    let (mut out_open, mut err_open) = (true, stderr.is_some());
    let mut out_buf = vec![0u8; CHUNK];
    let mut err_buf = vec![0u8; CHUNK];
    let far = Instant::now() + Duration::from_secs(86_400 * 365);

    let mut input_closed = false;
    while status.is_none() || out_open || err_open {
        if input_closed {
            input_tx = None;
        }
        tokio::select! {
            read = stdout.read(&mut out_buf), if out_open => match read {
                Ok(n) if n > 0 => forward(conn, &mut client, &mut stop, 0, &out_buf[..n]).await,
                _ => out_open = false,
            },
            read = read_optional(&mut stderr, &mut err_buf), if err_open => match read {
                Ok(n) if n > 0 => forward(conn, &mut client, &mut stop, 1, &err_buf[..n]).await,
                _ => err_open = false,
            },
            exited = child.wait(), if status.is_none() => {
                status = Some(exited?);
                // What it left running in its group ends with it.
                stop.begin();
            }
            _ = tokio::time::sleep_until(stop.kill_at.unwrap_or(far)), if stop.kill_at.is_some() => {
                terminate::signal_group(pgid, Signal::KILL);
                stop.kill_at = None;
                if status.is_some() {
                    // Whatever still holds the pipes escaped the group; stop waiting for it.
                    out_open = false;
                    err_open = false;
                }
            }
            _ = tokio::time::sleep_until(timeout_at.unwrap_or(far)), if timeout_at.is_some() && !stop.started => {
                timed_out = true;
                stop.begin();
            }
            _ = limits.shutdown.cancelled(), if !stop.started => stop.begin(),
            permit = reserve(input_tx.as_ref()), if pending.is_some() => match (permit, pending.take()) {
                (Some(permit), Some(command)) => permit.send(command),
                // The writer finished (stdin ended): later input has nowhere to go.
                _ => input_closed = true,
            },
            frame = conn.read_frame(), if client && pending.is_none() => match frame {
                Ok(Some(Frame::Data { channel: 0, payload })) => {
                    pending = Some(InputCommand::Data(payload));
                }
                Ok(Some(Frame::Data { channel, .. })) => {
                    let message = format!("stdin is data channel 0, not {channel}");
                    reply(conn, &mut client, &mut stop, Message::error(ErrorCode::UnexpectedMessage, message)).await;
                }
                Ok(Some(Frame::Message(body))) => match Message::parse(&body) {
                    Ok(Message::ExecEof) => pending = Some(InputCommand::End),
                    Ok(Message::ExecResize(ExecResize { rows, cols })) => pending = Some(InputCommand::Resize(rows, cols)),
                    Ok(Message::ExecSignal(ExecSignal { signal })) => match terminate::parse_signal(&signal) {
                        Some(signal) => terminate::signal_group(pgid, signal),
                        None => {
                            let message = format!("unknown signal '{}'", signal.chars().take(16).collect::<String>());
                            reply(conn, &mut client, &mut stop, Message::error(ErrorCode::BadMessage, message)).await;
                        }
                    },
                    Ok(Message::Ping(Ping { seq })) => reply(conn, &mut client, &mut stop, Message::Pong(Pong { seq })).await,
                    Ok(other) => {
                        let message = format!("'{}' is not valid while a command runs", other.kind());
                        reply(conn, &mut client, &mut stop, Message::error(ErrorCode::UnexpectedMessage, message)).await;
                    }
                    Err(e) => reply(conn, &mut client, &mut stop, Message::error(e.code(), e.to_string())).await,
                },
                // The client closed or broke the connection: end the command.
                Ok(None) | Err(_) => {
                    client = false;
                    stop.begin();
                }
            },
        }
    }
    feeder.abort();
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
    if !client {
        return Ok(RelayEnd::ClientGone);
    }
    let exit = Message::ExecExit(ExecExit {
        code: status.code(),
        signal: status.signal(),
        timed_out,
    });
    if conn.write_message(&exit).await.is_err() {
        return Ok(RelayEnd::ClientGone);
    }
    Ok(RelayEnd::Finished)
}

/// Sends a chunk of output; a client that cannot take it is gone.
async fn forward<S>(
    conn: &mut Connection<S>,
    client: &mut bool,
    stop: &mut Stopper,
    channel: u8,
    bytes: &[u8],
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if !*client {
        return; // discarded: the command is being ended anyway
    }
    let sent = async {
        conn.write_data(channel, bytes).await?;
        conn.flush().await
    };
    if sent.await.is_err() {
        *client = false;
        stop.begin();
    }
}

async fn reply<S>(conn: &mut Connection<S>, client: &mut bool, stop: &mut Stopper, message: Message)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if *client && conn.write_message(&message).await.is_err() {
        *client = false;
        stop.begin();
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
    tx: Option<&mpsc::Sender<InputCommand>>,
) -> Option<mpsc::Permit<'_, InputCommand>> {
    match tx {
        Some(tx) => tx.reserve().await.ok(),
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
