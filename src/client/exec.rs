//! The client peer of the exec service: starts a command, streams stdin out and stdout/stderr
//! in, forwards resizes and signals, and returns how the command ended.

use crate::protocol::{Exec, ExecExit, ExecResize, ExecSignal, Goodbye, Refusal};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, WriteHalf};
use tokio::sync::mpsc;

use super::ClientError;
use super::error::unexpected;
use crate::connection::{BoxedStream, Connection, FrameWriter};
use crate::protocol::{Frame, Message};

/// Something for the running command besides stdin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecEvent {
    /// The local terminal changed size.
    Resize {
        /// Lines.
        rows: u16,
        /// Columns.
        cols: u16,
    },
    /// Deliver this signal (`INT`, `TERM`...) to the command's group.
    Signal(String),
}

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecOutcome {
    /// It exited with this status.
    Exited(i32),
    /// A signal (this number) ended it.
    Signaled(i32),
    /// Its timeout passed and it was ended.
    TimedOut,
    /// Our own stdout was closed (e.g. `| head`): the command was abandoned.
    OutputClosed,
}

impl ExecOutcome {
    /// The exit status to report, as a shell would: the code, 128+N for signal N, 124 for a
    /// timeout (as timeout(1) does), 141 (SIGPIPE) when our output was closed.
    pub fn exit_code(self) -> u8 {
        match self {
            ExecOutcome::Exited(code) => (code & 0xff) as u8,
            ExecOutcome::Signaled(signal) => (128 + (signal & 0x7f)) as u8,
            ExecOutcome::TimedOut => 124,
            ExecOutcome::OutputClosed => 141,
        }
    }
}

/// Runs `request` on an open session, wiring the command to `stdin`, `stdout` and `stderr`.
///
/// # Errors
/// The server's refusal (`permission_denied`, `not_found`, `exec_failed`...) or a broken
/// connection.
pub async fn run<I, O, E>(
    mut conn: Connection<BoxedStream>,
    request: Exec,
    stdin: I,
    mut stdout: O,
    mut stderr: E,
    events: mpsc::Receiver<ExecEvent>,
) -> Result<ExecOutcome, ClientError>
where
    I: AsyncRead + Unpin + Send + 'static,
    O: AsyncWrite + Unpin,
    E: AsyncWrite + Unpin,
{
    conn.write_message(&Message::Exec(request)).await?;
    match conn.read_message().await? {
        Message::ExecStarted(_) => {}
        other => return Err(unexpected(other)),
    }
    let (mut reader, writer) = conn.split();
    let feeder = tokio::spawn(forward_input(writer, stdin, events));
    let outcome = loop {
        let frame = match reader.read_frame().await? {
            Some(frame) => frame,
            None => {
                break Err(ClientError::Protocol(
                    "the server closed the connection before the command finished".into(),
                ));
            }
        };
        let written = match frame {
            Frame::Data {
                channel: 0,
                payload,
            } => write_through(&mut stdout, &payload).await,
            Frame::Data {
                channel: 1,
                payload,
            } => write_through(&mut stderr, &payload).await,
            Frame::Data { .. } => Ok(()),
            Frame::Message(body) => {
                match Message::parse(&body).map_err(crate::connection::ConnectionError::from)? {
                    Message::ExecExit(ExecExit {
                        code,
                        signal,
                        timed_out,
                    }) => {
                        break Ok(match (timed_out, code, signal) {
                            (true, _, _) => ExecOutcome::TimedOut,
                            (false, Some(code), _) => ExecOutcome::Exited(code),
                            (false, None, Some(signal)) => ExecOutcome::Signaled(signal),
                            (false, None, None) => ExecOutcome::Exited(255),
                        });
                    }
                    Message::Error(Refusal { message, .. }) => {
                        tracing::warn!("server: {message}");
                        Ok(())
                    }
                    Message::Goodbye(Goodbye { reason }) => {
                        break Err(ClientError::Goodbye { reason });
                    }
                    _ => Ok(()),
                }
            }
        };
        if let Err(e) = written {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                break Ok(ExecOutcome::OutputClosed);
            }
            break Err(e.into());
        }
    };
    feeder.abort();
    outcome
}

async fn write_through<W: AsyncWrite + Unpin>(out: &mut W, bytes: &[u8]) -> std::io::Result<()> {
    out.write_all(bytes).await?;
    out.flush().await
}

/// Sends stdin (then `exec_eof`) and events until both run dry.
async fn forward_input<I>(
    mut writer: FrameWriter<WriteHalf<BoxedStream>>,
    mut stdin: I,
    mut events: mpsc::Receiver<ExecEvent>,
) -> Result<(), ClientError>
where
    I: AsyncRead + Unpin,
{
    let mut buf = vec![0u8; 64 * 1024];
    let (mut stdin_open, mut events_open) = (true, true);
    while stdin_open || events_open {
        // Biased, events first: a resize or Ctrl-C that happened before the user typed on
        // reaches the command before that input (a random pick let `stty size` after a resize
        // report the old size).
        tokio::select! {
            biased;
            event = events.recv(), if events_open => match event {
                Some(ExecEvent::Resize { rows, cols }) => {
                    writer.write_message(&Message::ExecResize(ExecResize { rows, cols })).await?;
                }
                Some(ExecEvent::Signal(signal)) => {
                    writer.write_message(&Message::ExecSignal(ExecSignal { signal })).await?;
                }
                None => events_open = false,
            },
            read = stdin.read(&mut buf), if stdin_open => match read {
                Ok(n) if n > 0 => {
                    writer.write_data(0, &buf[..n]).await?;
                    writer.flush().await?;
                }
                _ => {
                    stdin_open = false;
                    writer.write_message(&Message::ExecEof).await?;
                }
            },
        }
    }
    Ok(())
}

/// Milliseconds for `Exec::timeout_ms`.
pub fn timeout_ms(timeout: Duration) -> u64 {
    u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)
}
