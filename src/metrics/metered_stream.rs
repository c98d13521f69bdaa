//! A stream wrapper that counts the bytes a session carries, for the service the session is
//! serving at that moment (`ServiceCell`, set by the request loop before each request).
//! Counting here, under the connection, catches every byte of every service — data frames,
//! control messages, chat lines — without each service counting its own.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};

use prometheus_client::metrics::counter::Counter;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{Direction, Metrics, Service};

/// The service a session is serving now, and its byte counters; shared between the session's
/// request loop (which says which service it serves) and its stream (which counts).
///
/// Bytes that arrive between requests belong to the request they carry, which is not known
/// until it is read: they wait (`pending_in`) and go to the service of the next request, or
/// to `session` when the session ends without one (the handshake is counted so).
#[derive(Debug, Clone)]
pub struct ServiceCell(Arc<Meter>);

#[derive(Debug)]
struct Meter {
    current: AtomicUsize,
    pending_in: AtomicU64,
    /// Counters by service index: (in, out).
    counters: Vec<(Counter, Counter)>,
}

impl ServiceCell {
    /// Counters for one session (or door connection), counting for `session` until told
    /// otherwise.
    pub fn new(metrics: &Metrics) -> ServiceCell {
        let counters = Service::ALL
            .iter()
            .map(|&s| {
                (
                    metrics.bytes_counter(s, Direction::In),
                    metrics.bytes_counter(s, Direction::Out),
                )
            })
            .collect();
        ServiceCell(Arc::new(Meter {
            current: AtomicUsize::new(Service::Session.index()),
            pending_in: AtomicU64::new(0),
            counters,
        }))
    }

    /// From now on, bytes count for `service`; bytes that came in since the last request
    /// count for it too (they carried its request).
    pub fn set(&self, service: Service) {
        self.0.current.store(service.index(), Ordering::Relaxed);
        if service != Service::Session {
            self.0.credit_pending(service);
        }
    }

    /// The bytes that came in so far without a request (the handshake) count for `session`.
    pub fn settle(&self) {
        self.0.credit_pending(Service::Session);
    }

    /// Counts `n` bytes in one direction.
    fn count(&self, direction: Direction, n: usize) {
        let meter = &self.0;
        let service = Service::from_index(meter.current.load(Ordering::Relaxed));
        if direction == Direction::In && service == Service::Session {
            meter.pending_in.fetch_add(n as u64, Ordering::Relaxed);
            return;
        }
        if let Some((received, sent)) = meter.counters.get(service.index()) {
            let counter = if direction == Direction::In {
                received
            } else {
                sent
            };
            counter.inc_by(n as u64);
        }
    }
}

impl Meter {
    fn credit_pending(&self, service: Service) {
        let pending = self.pending_in.swap(0, Ordering::Relaxed);
        if pending > 0
            && let Some((received, _)) = self.counters.get(service.index())
        {
            received.inc_by(pending);
        }
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        self.credit_pending(Service::Session);
    }
}

/// A stream whose bytes are counted per service.
pub struct MeteredStream<S> {
    inner: S,
    meter: ServiceCell,
}

impl<S> MeteredStream<S> {
    /// Wraps `inner`, counting for the service `meter` names.
    pub fn new(inner: S, meter: ServiceCell) -> Self {
        MeteredStream { inner, meter }
    }

    fn count(&self, direction: Direction, n: usize) {
        if n > 0 {
            self.meter.count(direction, n);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for MeteredStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let n = buf.filled().len() - before;
            self.count(Direction::In, n);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for MeteredStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            self.count(Direction::Out, n);
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = polled {
            self.count(Direction::Out, n);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
