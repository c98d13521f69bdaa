//! One clock for the senders and receivers of a fan-out load: each numbered line's send instant
//! is recorded before it is written, and looked up when the line arrives. Used by
//! `ferry bench chat` and by the IRC generator it is compared with, so both measure alike.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Send instants of lines `0..lines`, in nanoseconds since the clock was made.
pub struct DeliveryClock {
    epoch: Instant,
    sent_at: Vec<AtomicU64>,
}

impl DeliveryClock {
    /// A clock for `lines` numbered lines.
    pub fn new(lines: usize) -> DeliveryClock {
        DeliveryClock {
            epoch: Instant::now(),
            sent_at: (0..lines).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Records that line `seq` is being sent now (call before writing it).
    pub fn sending(&self, seq: usize) {
        if let Some(slot) = self.sent_at.get(seq) {
            let now = self.epoch.elapsed().as_nanos() as u64;
            slot.store(now, Ordering::Release);
        }
    }

    /// When a line whose text is `text` arrives now: its sequence number's latency, or `None`
    /// when the text is not one of the numbered lines.
    pub fn arrived(&self, text: &str, now: Instant) -> Option<Duration> {
        let slot = self.sent_at.get(text.parse::<usize>().ok()?)?;
        let sent = Duration::from_nanos(slot.load(Ordering::Acquire));
        Some(now.duration_since(self.epoch).saturating_sub(sent))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_numbered_line_gets_the_time_since_it_was_sent() {
        let clock = DeliveryClock::new(3);
        clock.sending(1);
        let later = Instant::now() + Duration::from_millis(5);
        let latency = clock.arrived("1", later).unwrap();
        assert!(latency >= Duration::from_millis(5), "{latency:?}");
        assert!(clock.arrived("3", later).is_none(), "out of range");
        assert!(clock.arrived("ready", later).is_none(), "not a number");
    }
}
