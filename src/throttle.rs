//! `--bwlimit`: a stream that reads and writes at most `rate` bytes a second each way, as
//! rsync's option does, so a copy leaves the rest of a link to everyone else. It wraps the
//! connection's stream below TLS and framing, so every byte the session moves is counted
//! (frames, TLS records, signatures) and nothing above it changes. A short burst (a tenth of
//! a second's worth, at least 16 KiB) lets single frames and handshakes through without
//! stalling on every record.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use crate::token_bucket::TokenBucket;

/// One direction's budget and the wait it is in, if any.
struct Direction {
    bucket: TokenBucket,
    wait: Option<Pin<Box<Sleep>>>,
}

impl Direction {
    fn new(burst: f64) -> Self {
        Direction {
            bucket: TokenBucket::full(burst, Instant::now().into_std()),
            wait: None,
        }
    }

    /// How many bytes may move now (at least one), or `Pending` until some may.
    fn allowance(&mut self, cx: &mut Context<'_>, rate: f64, burst: f64) -> Poll<usize> {
        loop {
            if let Some(wait) = &mut self.wait {
                if wait.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.wait = None;
            }
            let available = self
                .bucket
                .available(rate, burst, Instant::now().into_std());
            if available >= 1.0 {
                return Poll::Ready(available as usize);
            }
            let secs = (1.0 - available) / rate;
            self.wait = Some(Box::pin(tokio::time::sleep_until(
                Instant::now() + Duration::from_secs_f64(secs),
            )));
        }
    }
}

/// A stream whose reads and writes are held to `rate` bytes a second each way.
pub struct Throttled<S> {
    inner: S,
    rate: f64,
    burst: f64,
    read: Direction,
    write: Direction,
}

impl<S> Throttled<S> {
    /// `inner`, held to `rate` bytes a second each way.
    pub fn new(inner: S, rate: u64) -> Self {
        let rate = rate.max(1) as f64;
        let burst = (rate / 10.0).max(16.0 * 1024.0);
        Throttled {
            inner,
            rate,
            burst,
            read: Direction::new(burst),
            write: Direction::new(burst),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Throttled<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let allowed = match this.read.allowance(cx, this.rate, this.burst) {
            Poll::Ready(n) => n.min(buf.remaining()),
            Poll::Pending => return Poll::Pending,
        };
        // A window of the caller's buffer, no larger than the allowance (zeroed first, so it
        // can be handed on without unsafe code; the rate, not this, is what bounds the copy).
        let window = buf.initialize_unfilled_to(allowed);
        let mut limited = ReadBuf::new(window);
        let polled = Pin::new(&mut this.inner).poll_read(cx, &mut limited);
        let n = limited.filled().len();
        if let Poll::Ready(Ok(())) = polled {
            buf.advance(n);
            this.read.bucket.spend(n as f64);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Throttled<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let allowed = match this.write.allowance(cx, this.rate, this.burst) {
            Poll::Ready(n) => n.min(data.len()),
            Poll::Pending => return Poll::Pending,
        };
        let polled = Pin::new(&mut this.inner).poll_write(cx, &data[..allowed]);
        if let Poll::Ready(Ok(n)) = polled {
            this.write.bucket.spend(n as f64);
        }
        polled
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A `--bwlimit` rate: a number of KiB a second as rsync reads it, or with a suffix `K`, `M` or
/// `G` (powers of 1024; a trailing `B`, `iB` or `/s` is allowed), as bytes a second.
///
/// # Errors
/// Anything else, or zero.
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let t = t.strip_suffix("/s").unwrap_or(t);
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (number, unit) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&t[..i], c.to_ascii_uppercase()),
        _ => (t, 'K'),
    };
    let scale: f64 = match unit {
        'K' => 1024.0,
        'M' => 1024.0 * 1024.0,
        'G' => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(format!("'{text}': the unit must be K, M or G")),
    };
    match number.trim().parse::<f64>() {
        Ok(n) if n > 0.0 && n.is_finite() => Ok((n * scale).max(1.0) as u64),
        _ => Err(format!("'{text}' is not a rate (e.g. 500, 2M, 1.5G)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn rates_read_as_rsync_reads_them() {
        assert_eq!(parse_rate("500"), Ok(500 * 1024));
        assert_eq!(parse_rate("2M"), Ok(2 << 20));
        assert_eq!(parse_rate("1.5g"), Ok(3 << 29));
        assert_eq!(parse_rate("100KiB/s"), Ok(100 * 1024));
        assert!(
            parse_rate("0").is_err() && parse_rate("fast").is_err() && parse_rate("5X").is_err()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_move_at_the_rate_after_the_burst() {
        let (a, mut b) = tokio::io::duplex(1 << 20);
        let rate = 100_000u64;
        let mut throttled = Throttled::new(a, rate);
        let started = Instant::now();
        let writer = tokio::spawn(async move {
            throttled.write_all(&vec![7u8; 316_384]).await.unwrap();
            throttled.flush().await.unwrap();
        });
        let mut got = vec![0u8; 316_384];
        b.read_exact(&mut got).await.unwrap();
        writer.await.unwrap();
        // 16 KiB of burst, then 300,000 bytes at 100,000 a second: three seconds of the
        // paused clock, not less.
        let took = started.elapsed().as_secs_f64();
        assert!((2.9..3.2).contains(&took), "{took} s");
    }
}
