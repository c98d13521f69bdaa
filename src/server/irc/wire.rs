//! One IRC client's connection: its lines in (bounded, see `reader`), and what it is sent,
//! gathered in an [`Out`] and written in one go, within the send timeout (a client that stops
//! reading is dropped, never waited on).

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};

use super::line::{self, Command, Out};
use super::reader::{LineReader, Read};

/// The longest line a client may send: 512 bytes, plus IRCv3 client tags (at most 4094 bytes
/// of them and their `@` and space).
pub(super) const MAX_CLIENT_LINE: usize = line::LINE_BYTES + 4096;

/// Why writing to a client failed.
#[derive(Debug)]
pub(super) enum WriteFailed {
    /// It took nothing for the send timeout: it is not reading.
    NotReading,
    /// The connection broke.
    Broken,
}

/// A line the client sent, decoded.
pub(super) enum Incoming {
    /// A command.
    Line(String),
    /// A line that is not valid UTF-8 or holds NUL: refused (the server advertises UTF8ONLY).
    NotText(String),
    /// A line over the limit went by.
    TooLong,
    /// The client closed.
    Closed,
}

/// The connection.
pub(super) struct Wire<S> {
    reader: LineReader<ReadHalf<S>>,
    writer: WriteHalf<S>,
    pub(super) out: Out,
    send_timeout: Duration,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Wire<S> {
    pub(super) fn new(stream: S, send_timeout: Duration) -> Wire<S> {
        let (reader, writer) = tokio::io::split(stream);
        Wire {
            reader: LineReader::new(reader, MAX_CLIENT_LINE),
            writer,
            out: Out {
                nick: "*".into(),
                ..Out::default()
            },
            send_timeout,
        }
    }

    /// The next line. Cancel safe.
    pub(super) async fn next(&mut self) -> std::io::Result<Incoming> {
        Ok(match self.reader.next().await? {
            Read::Line(bytes) => match String::from_utf8(bytes) {
                Ok(text) if !text.contains('\0') => Incoming::Line(text),
                Ok(text) => Incoming::NotText(command_name(&text)),
                Err(e) => Incoming::NotText(command_name(&String::from_utf8_lossy(e.as_bytes()))),
            },
            Read::TooLong => Incoming::TooLong,
            Read::Closed => Incoming::Closed,
        })
    }

    /// Writes everything gathered in `out`.
    pub(super) async fn flush(&mut self) -> Result<(), WriteFailed> {
        if self.out.bytes.is_empty() {
            return Ok(());
        }
        let bytes = std::mem::take(&mut self.out.bytes);
        let write = async {
            self.writer.write_all(&bytes).await?;
            self.writer.flush().await
        };
        match tokio::time::timeout(self.send_timeout, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(WriteFailed::Broken),
            Err(_) => Err(WriteFailed::NotReading),
        }
    }

    /// Says `ERROR :reason` and closes, within the send timeout.
    pub(super) async fn close(mut self, reason: &str) {
        self.out.line(&format!("ERROR :Closing link: {reason}"));
        let _ = self.flush().await;
        let _ = tokio::time::timeout(self.send_timeout, self.writer.shutdown()).await;
    }

    /// Answers a line the reader had to refuse.
    pub(super) fn refuse(&mut self, incoming: &Incoming) {
        match incoming {
            Incoming::NotText(command) => {
                let command = if command.is_empty() { "*" } else { command };
                self.out.server(
                    "FAIL",
                    &[
                        command,
                        "INVALID_UTF8",
                        "Message rejected: lines must be UTF-8 text without NUL",
                    ],
                );
            }
            Incoming::TooLong => self.out.numeric(
                super::numeric::ERR_INPUTTOOLONG,
                &["Input line was too long"],
            ),
            Incoming::Line(_) | Incoming::Closed => {}
        }
    }
}

/// The command of a line that could not be read as text, for the FAIL reply.
fn command_name(text: &str) -> String {
    line::parse(text)
        .map(|Command { name, .. }| name)
        .filter(|name| name.len() <= 32 && name.bytes().all(|b| b.is_ascii_alphanumeric()))
        .unwrap_or_default()
}
