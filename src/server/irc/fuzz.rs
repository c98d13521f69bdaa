//! The IRC door's reader and parser on arbitrary bytes, for the fuzz target `irc_lines`
//! (fuzz/): whatever a client sends, in whatever pieces, the reader never panics, never
//! hands out a line longer than its limit, and every line parses or is refused cleanly.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};

use super::line;
use super::reader::{LineReader, Read};

/// Bytes handed out at most `piece` at a time, as a network delivers them.
struct Pieces<'a> {
    data: &'a [u8],
    piece: usize,
}

impl AsyncRead for Pieces<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = self.data.len().min(self.piece).min(buf.remaining());
        buf.put_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Poll::Ready(Ok(()))
    }
}

/// Reads `data` (delivered `piece` bytes at a time) as the door does with a `max`-byte line
/// limit, parsing each line; returns how many lines were read.
///
/// # Panics
/// When a contract breaks: a line longer than `max`, a parsed command with an empty name.
pub fn lines(data: &[u8], max: usize, piece: usize) -> usize {
    let runtime = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(runtime) => runtime,
        Err(_) => return 0,
    };
    runtime.block_on(async {
        let mut reader = LineReader::new(
            Pieces {
                data,
                piece: piece.max(1),
            },
            max,
        );
        let mut count = 0;
        loop {
            match reader.next().await {
                Ok(Read::Line(bytes)) => {
                    assert!(bytes.len() <= max, "a line past the limit");
                    if let Ok(text) = std::str::from_utf8(&bytes)
                        && let Some(command) = line::parse(text)
                    {
                        assert!(!command.name.is_empty(), "a command without a name");
                    }
                    count += 1;
                }
                Ok(Read::TooLong) => count += 1,
                Ok(Read::Closed) | Err(_) => return count,
            }
        }
    })
}
