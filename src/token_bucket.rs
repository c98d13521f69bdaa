//! A token bucket: `rate` units a second after a `burst`, for the budgets that keep one client
//! from spending what all share (audit entries, resume hashing). Written by hand: a few lines,
//! and the crates for it (governor) count whole cells, not the bytes these budgets weigh.

use std::time::Instant;

/// Units that refill at `rate` a second up to `burst`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    /// A full bucket as of `now`.
    pub fn full(burst: f64, now: Instant) -> TokenBucket {
        TokenBucket {
            tokens: burst,
            at: now,
        }
    }

    /// Takes `units` if the bucket (refilled to `now`) holds them.
    pub fn take(&mut self, units: f64, rate: f64, burst: f64, now: Instant) -> bool {
        self.refill(rate, burst, now);
        if self.tokens >= units {
            self.tokens -= units;
            true
        } else {
            false
        }
    }

    /// The units the bucket (refilled to `now`) holds.
    pub fn available(&mut self, rate: f64, burst: f64, now: Instant) -> f64 {
        self.refill(rate, burst, now);
        self.tokens
    }

    /// Spends `units` (taken as available: see [`TokenBucket::available`]).
    pub fn spend(&mut self, units: f64) {
        self.tokens -= units;
    }

    /// Whether the bucket would be full at `now` (nothing spent is still owed).
    pub fn is_full(&self, rate: f64, burst: f64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens + elapsed * rate >= burst
    }

    fn refill(&mut self, rate: f64, burst: f64, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.at = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_then_the_rate() {
        let now = Instant::now();
        let mut bucket = TokenBucket::full(10.0, now);
        assert!((0..10).all(|_| bucket.take(1.0, 5.0, 10.0, now)));
        assert!(!bucket.take(1.0, 5.0, 10.0, now));
        let later = now + Duration::from_secs(1);
        assert_eq!(
            (0..10)
                .filter(|_| bucket.take(1.0, 5.0, 10.0, later))
                .count(),
            5
        );
        assert!(bucket.is_full(5.0, 10.0, later + Duration::from_secs(2)));
    }
}
