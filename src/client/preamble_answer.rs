//! The server's preamble answer, read in front of its first TLS bytes.
//!
//! Why: the client's TLS hello used to wait for the server's preamble answer, one round trip
//! on its own (50 ms on the emulated 50 ms link, where a whole delta of a 256 MiB file takes
//! under a second). The server reads exactly the 8 preamble bytes before its TLS handshake
//! (and reads out whatever a refused client sent before it closes), so the client may send its
//! hello right behind its preamble. The answer then comes first on the way back: this stream
//! takes it off before the TLS client sees a byte, and fails the handshake when it is not the
//! TLS answer, so the caller can say why from the answer itself.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::protocol::preamble::{PREAMBLE_LEN, PROTOCOL_VERSION};
use crate::protocol::{Mode, Preamble};

/// A stream whose first [`PREAMBLE_LEN`] bytes read are the server's answer, kept aside.
pub(crate) struct AnswerFirst<S> {
    inner: S,
    answer: [u8; PREAMBLE_LEN],
    got: usize,
}

/// What the answer said.
pub(crate) enum Answer {
    /// Fewer than its 8 bytes arrived before the stream ended or failed.
    Short,
    /// Not a ferry preamble.
    NotFerry,
    /// A ferry preamble.
    Ferry(Preamble),
}

impl Answer {
    /// What 8 bytes of answer say.
    pub(crate) fn of(bytes: &[u8; PREAMBLE_LEN]) -> Answer {
        Preamble::decode(bytes).map_or(Answer::NotFerry, Answer::Ferry)
    }
}

impl<S> AnswerFirst<S> {
    pub(crate) fn new(inner: S) -> Self {
        AnswerFirst {
            inner,
            answer: [0; PREAMBLE_LEN],
            got: 0,
        }
    }

    /// The answer read so far.
    pub(crate) fn answer(&self) -> Answer {
        if self.got < PREAMBLE_LEN {
            return Answer::Short;
        }
        Answer::of(&self.answer)
    }

    /// The stream, positioned right after the answer.
    pub(crate) fn into_inner(self) -> S {
        self.inner
    }
}

/// Whether `answer` lets TLS follow.
fn is_tls(answer: &[u8; PREAMBLE_LEN]) -> bool {
    Preamble::decode(answer).is_ok_and(|p| p.version == PROTOCOL_VERSION && p.mode == Mode::Tls)
}

impl<S: AsyncRead + Unpin> AsyncRead for AnswerFirst<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        while this.got < PREAMBLE_LEN {
            // Never more than the answer's own bytes: what follows belongs to TLS (or, after
            // a refusal, to the error frame the caller reads next).
            let mut rest = ReadBuf::new(&mut this.answer[this.got..]);
            match Pin::new(&mut this.inner).poll_read(cx, &mut rest) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) if rest.filled().is_empty() => {
                    return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
                }
                Poll::Ready(Ok(())) => this.got += rest.filled().len(),
            }
            if this.got == PREAMBLE_LEN && !is_tls(&this.answer) {
                return Poll::Ready(Err(io::Error::other(
                    "the server's preamble answer does not let TLS follow",
                )));
            }
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AnswerFirst<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn the_answer_is_taken_off_in_front_of_what_follows() {
        let (mut server, client) = tokio::io::duplex(64);
        let mut stream = AnswerFirst::new(client);
        server
            .write_all(&Preamble::new(Mode::Tls).encode())
            .await
            .unwrap();
        server.write_all(b"tls bytes").await.unwrap();
        let mut read = [0u8; 9];
        stream.read_exact(&mut read).await.unwrap();
        assert_eq!(&read, b"tls bytes");
        assert!(matches!(stream.answer(), Answer::Ferry(p) if p.mode == Mode::Tls));
    }

    #[tokio::test]
    async fn a_refusal_stops_the_reading_right_after_it() {
        let (mut server, client) = tokio::io::duplex(64);
        let mut stream = AnswerFirst::new(client);
        server
            .write_all(&Preamble::new(Mode::Refused).encode())
            .await
            .unwrap();
        server.write_all(b"frame").await.unwrap();
        assert!(stream.read(&mut [0u8; 16]).await.is_err());
        assert!(matches!(stream.answer(), Answer::Ferry(p) if p.mode == Mode::Refused));
        let mut rest = [0u8; 5];
        stream.into_inner().read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"frame");
    }

    #[tokio::test]
    async fn a_short_or_foreign_answer_says_so() {
        let (mut server, client) = tokio::io::duplex(64);
        let mut stream = AnswerFirst::new(client);
        server.write_all(b"HTTP").await.unwrap();
        drop(server);
        assert!(stream.read(&mut [0u8; 16]).await.is_err());
        assert!(matches!(stream.answer(), Answer::Short));
        let (mut server, client) = tokio::io::duplex(64);
        let mut stream = AnswerFirst::new(client);
        server.write_all(b"HTTP/1.1 400").await.unwrap();
        assert!(stream.read(&mut [0u8; 16]).await.is_err());
        assert!(matches!(stream.answer(), Answer::NotFerry));
    }
}
