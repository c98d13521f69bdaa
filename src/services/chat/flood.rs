//! The per-member flood limit: a token bucket (a burst, then a steady rate). Excess messages
//! are not dropped but delayed ("fakelag", as ergo does): the member's next request is not read
//! until a token is free, so TCP pushes back on the sender and the server buffers nothing.

use std::time::Duration;

use tokio::time::Instant;

/// A token bucket over time.
#[derive(Debug, Clone)]
pub struct FloodGate {
    burst: f64,
    per_second: f64,
    tokens: f64,
    last: Instant,
}

impl FloodGate {
    /// A full bucket of `burst` tokens refilling at `per_second`.
    pub fn new(burst: u32, per_second: f64, now: Instant) -> Self {
        FloodGate {
            burst: f64::from(burst),
            per_second,
            tokens: f64::from(burst),
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        self.last = now;
    }

    /// When the next message may be read.
    pub fn ready_at(&mut self, now: Instant) -> Instant {
        self.refill(now);
        if self.tokens >= 1.0 {
            now
        } else {
            // Saturates instead of panicking for a vanishingly small configured rate.
            let wait = Duration::try_from_secs_f64((1.0 - self.tokens) / self.per_second)
                .unwrap_or(Duration::from_secs(3600));
            now + wait
        }
    }

    /// Spends one token (the caller waited for [`FloodGate::ready_at`]).
    pub fn take(&mut self, now: Instant) {
        self.refill(now);
        self.tokens -= 1.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_steady_rate() {
        let t0 = Instant::now();
        let mut gate = FloodGate::new(3, 2.0, t0);
        for _ in 0..3 {
            assert_eq!(gate.ready_at(t0), t0);
            gate.take(t0);
        }
        assert_eq!(gate.ready_at(t0), t0 + Duration::from_millis(500));
        let later = t0 + Duration::from_millis(500);
        assert_eq!(gate.ready_at(later), later);
        gate.take(later);
        // Idle time refills up to the burst, never beyond.
        let much_later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(gate.ready_at(much_later), much_later);
            gate.take(much_later);
        }
        assert!(gate.ready_at(much_later) > much_later);
    }

    #[test]
    fn an_absurdly_slow_rate_waits_long_instead_of_panicking() {
        let t0 = Instant::now();
        let mut gate = FloodGate::new(1, 1e-300, t0);
        gate.take(t0);
        assert!(gate.ready_at(t0) >= t0 + Duration::from_secs(3600));
    }
}
