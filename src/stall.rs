//! A stream wrapper that fails writes a peer takes too little of for too long.
//!
//! TCP flow control is what keeps ferry's memory bounded — a peer that stops reading stops the
//! writer. The other side of that coin is a peer that stops reading *forever*, or reads a
//! trickle (a byte now and then) to keep the writer waiting while holding its slot, its buffers
//! and the resources of its request. Wrapping every server session's stream in [`StallGuard`]
//! turns such a write into a `TimedOut` error, on every service at once: once a write has to
//! wait, the peer must take at least `min_bytes` within `limit` (or let everything buffered be
//! flushed) for the wait to count as progress; any trickle below that rate is cut off. Written by
//! hand: `tokio-io-timeout` cuts only a write that makes no progress at all, which a trickle
//! defeats.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// A stream whose writes fail when the peer takes less than `min_bytes` per `limit` while the
/// writer waits for it.
pub struct StallGuard<S> {
    inner: S,
    limit: Duration,
    min_bytes: u64,
    /// Open from the first write that had to wait until the peer has taken `min_bytes` or the
    /// buffered bytes were flushed: its deadline, and the bytes taken since it opened.
    window: Option<(Pin<Box<Sleep>>, u64)>,
}

impl<S> StallGuard<S> {
    /// Wraps `inner`: a write must move `min_bytes` within each `limit`.
    pub fn new(inner: S, limit: Duration, min_bytes: u64) -> Self {
        StallGuard {
            inner,
            limit,
            min_bytes,
            window: None,
        }
    }

    /// Counts `n` bytes taken by the peer.
    fn taken(&mut self, n: usize) {
        if let Some((_, bytes)) = &mut self.window {
            *bytes += n as u64;
            if *bytes >= self.min_bytes {
                self.window = None;
            }
        }
    }

    /// The writer has to wait: opens the window if needed, and fails once it has run out.
    fn waiting<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let limit = self.limit;
        let (deadline, bytes) = self.window.get_or_insert_with(|| {
            (
                Box::pin(tokio::time::sleep_until(Instant::now() + limit)),
                0,
            )
        });
        match deadline.as_mut().poll(cx) {
            Poll::Ready(()) => {
                let message = format!(
                    "the peer took {bytes} bytes in {} s while the server waited for it to read",
                    limit.as_secs()
                );
                self.window = None;
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, message)))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for StallGuard<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for StallGuard<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                self.taken(n);
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => {
                self.window = None;
                Poll::Ready(Err(e))
            }
            Poll::Pending => self.waiting(cx),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(Ok(n)) => {
                self.taken(n);
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => {
                self.window = None;
                Poll::Ready(Err(e))
            }
            Poll::Pending => self.waiting(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Ready(result) => {
                // Everything written reached the socket: the peer is keeping up.
                self.window = None;
                Poll::Ready(result)
            }
            Poll::Pending => self.waiting(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_shutdown(cx) {
            Poll::Ready(result) => {
                self.window = None;
                Poll::Ready(result)
            }
            Poll::Pending => self.waiting(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test(start_paused = true)]
    async fn a_write_nobody_reads_fails_after_the_limit() {
        let (a, _b) = tokio::io::duplex(16);
        let mut guarded = StallGuard::new(a, Duration::from_secs(5), 4);
        guarded.write_all(&[0u8; 16]).await.unwrap(); // fills the pipe: progress, no error
        let started = Instant::now();
        let err = guarded.write_all(&[0u8; 1]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_reader_that_keeps_taking_is_never_cut_off() {
        use tokio::io::AsyncReadExt;
        let (a, mut b) = tokio::io::duplex(4);
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut buf = [0u8; 4];
            loop {
                tokio::time::sleep(Duration::from_secs(4)).await; // slower than... nothing: under the limit
                match b.read(&mut buf).await.unwrap() {
                    0 => return got,
                    n => got.extend_from_slice(&buf[..n]),
                }
            }
        });
        let mut guarded = StallGuard::new(a, Duration::from_secs(5), 4);
        guarded.write_all(b"0123456789abcdef").await.unwrap();
        guarded.shutdown().await.unwrap();
        drop(guarded);
        assert_eq!(reader.await.unwrap(), b"0123456789abcdef");
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_below_the_minimum_is_cut_off() {
        use tokio::io::AsyncReadExt;
        let (a, mut b) = tokio::io::duplex(16);
        // Takes one byte every 4 s: always some progress, far below 64 bytes per 5 s.
        let reader = tokio::spawn(async move {
            let mut byte = [0u8; 1];
            loop {
                tokio::time::sleep(Duration::from_secs(4)).await;
                if b.read(&mut byte).await.unwrap_or(0) == 0 {
                    return;
                }
            }
        });
        let mut guarded = StallGuard::new(a, Duration::from_secs(5), 64);
        let started = Instant::now();
        let err = guarded.write_all(&[0u8; 1024]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(
            started.elapsed() <= Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        drop(guarded);
        reader.await.unwrap();
    }
}
