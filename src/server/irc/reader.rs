//! Reading a client's lines, bounded: a line longer than the limit is answered (417) and
//! skipped to its end, never buffered whole, and the connection goes on.
//!
//! Written by hand because the line codecs of tokio-util end the stream at the first
//! over-long line, where IRC answers it and reads on.

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// What reading gave.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Read {
    /// One line, without its CR-LF (or LF).
    Line(Vec<u8>),
    /// A line longer than the limit went by; nothing of it is kept.
    TooLong,
    /// The client closed its side.
    Closed,
}

/// A client's lines, at most `max` bytes each.
pub(super) struct LineReader<R> {
    inner: R,
    buf: BytesMut,
    max: usize,
    /// Skipping the rest of an over-long line.
    skipping: bool,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    pub(super) fn new(inner: R, max: usize) -> Self {
        LineReader {
            inner,
            buf: BytesMut::with_capacity(1024),
            max,
            skipping: false,
        }
    }

    /// The next line. Cancel safe: what was read stays buffered for the next call.
    pub(super) async fn next(&mut self) -> std::io::Result<Read> {
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line = self.buf.split_to(end + 1);
                line.truncate(end);
                if line.last() == Some(&b'\r') {
                    line.truncate(end - 1);
                }
                if std::mem::take(&mut self.skipping) {
                    continue;
                }
                if line.len() > self.max {
                    return Ok(Read::TooLong);
                }
                return Ok(Read::Line(line.to_vec()));
            }
            // No LF yet: the line so far, and perhaps its CR.
            if self.buf.len() > self.max + 1 {
                self.buf.advance(self.buf.len());
                if !std::mem::replace(&mut self.skipping, true) {
                    return Ok(Read::TooLong);
                }
            }
            if self.inner.read_buf(&mut self.buf).await? == 0 {
                return Ok(Read::Closed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever bytes arrive, in whatever pieces, no line handed on is over the limit, and
        /// every short line arrives whole and in order.
        #[test]
        fn no_line_over_the_limit_whatever_arrives(
            lines in proptest::collection::vec("[a-z ]{0,40}", 0..20),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let wire: Vec<u8> = lines.iter().flat_map(|l| format!("{l}\r\n").into_bytes()).collect();
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
            points.extend([0, wire.len()]);
            points.sort_unstable();
            let mut builder = tokio_test_io(&wire, &points);
            let got = tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
                let mut reader = LineReader::new(&mut builder, 24);
                let mut got = Vec::new();
                loop {
                    match reader.next().await.unwrap() {
                        Read::Closed => return got,
                        read => got.push(read),
                    }
                }
            });
            let want: Vec<Read> = lines
                .iter()
                .map(|l| if l.len() > 24 { Read::TooLong } else { Read::Line(l.as_bytes().to_vec()) })
                .collect();
            prop_assert_eq!(got, want);
        }
    }

    /// The bytes of `wire`, delivered in the pieces `points` cut them into.
    fn tokio_test_io(wire: &[u8], points: &[usize]) -> Pieces {
        Pieces(
            points
                .windows(2)
                .map(|w| wire[w[0]..w[1]].to_vec())
                .rev()
                .collect(),
        )
    }

    /// A reader that gives its pieces one read at a time.
    struct Pieces(Vec<Vec<u8>>);

    impl AsyncRead for Pieces {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            while let Some(piece) = self.0.pop() {
                if piece.is_empty() {
                    continue;
                }
                let n = piece.len().min(buf.remaining());
                buf.put_slice(&piece[..n]);
                if n < piece.len() {
                    self.0.push(piece[n..].to_vec());
                }
                break;
            }
            std::task::Poll::Ready(Ok(()))
        }
    }

    async fn lines(input: &'static [u8], max: usize) -> Vec<Read> {
        let mut reader = LineReader::new(input, max);
        let mut got = Vec::new();
        loop {
            let read = reader.next().await.unwrap();
            let done = read == Read::Closed;
            got.push(read);
            if done {
                return got;
            }
        }
    }

    #[tokio::test]
    async fn lines_split_on_lf_with_or_without_cr_and_an_over_long_one_is_skipped_whole() {
        let got = lines(
            b"NICK a\r\nUSER a 0 * :A\nxxxxxxxxxxxxxxxxxxxxxxxx\r\nPING x\r\n",
            16,
        )
        .await;
        assert_eq!(
            got,
            vec![
                Read::Line(b"NICK a".to_vec()),
                Read::Line(b"USER a 0 * :A".to_vec()),
                Read::TooLong,
                Read::Line(b"PING x".to_vec()),
                Read::Closed,
            ]
        );
    }
}
