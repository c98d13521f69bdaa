//! Rate limiting of failed authentications per client address.
//!
//! Only failures touch this lock, so it is off every hot path; successful sessions never take it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries kept before expired ones are swept, bounding memory under an address-spraying attack.
const SWEEP_AT: usize = 4096;

/// Counts failures per address in fixed windows.
#[derive(Debug)]
pub struct FailureLimiter {
    max_failures: u32,
    window: Duration,
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl FailureLimiter {
    /// Allows `max_failures` failed attempts per address per `window`.
    pub fn new(max_failures: u32, window: Duration) -> Self {
        FailureLimiter {
            max_failures,
            window,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(time left)` while `ip` has used up its failures for the current window.
    pub fn blocked_for(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let (start, count) = failures.get(&ip)?;
        let elapsed = now.saturating_duration_since(*start);
        (*count >= self.max_failures && elapsed < self.window).then(|| self.window - elapsed)
    }

    /// Records one failed attempt from `ip`.
    pub fn record_failure(&self, ip: IpAddr, now: Instant) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if failures.len() >= SWEEP_AT {
            failures.retain(|_, (start, _)| now.saturating_duration_since(*start) < self.window);
        }
        let entry = failures.entry(ip).or_insert((now, 0));
        if now.saturating_duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }
}

impl FailureLimiter {
    /// Takes back one attempt recorded for `ip` in the current window (it succeeded).
    pub fn forgive(&self, ip: IpAddr, now: Instant) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = failures.get_mut(&ip)
            && now.saturating_duration_since(entry.0) < self.window
        {
            entry.1 = entry.1.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_the_limit_until_the_window_ends() {
        let limiter = FailureLimiter::new(3, Duration::from_secs(60));
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..2 {
            limiter.record_failure(ip, t0);
        }
        assert_eq!(limiter.blocked_for(ip, t0), None);
        limiter.record_failure(ip, t0);
        assert_eq!(
            limiter.blocked_for(ip, t0 + Duration::from_secs(10)),
            Some(Duration::from_secs(50))
        );
        assert_eq!(limiter.blocked_for(other, t0), None);
        assert_eq!(limiter.blocked_for(ip, t0 + Duration::from_secs(60)), None);
        limiter.record_failure(ip, t0 + Duration::from_secs(61));
        assert_eq!(limiter.blocked_for(ip, t0 + Duration::from_secs(61)), None);
    }
}
