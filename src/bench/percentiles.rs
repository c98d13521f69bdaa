//! Latency summaries: nearest-rank percentiles of a set of samples.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// min, p50, p90, p99 and max of some durations, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub samples: usize,
    pub min_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    /// Summarises `samples` (reordered in place); `None` when there are none.
    pub fn of(samples: &mut [Duration]) -> Option<Percentiles> {
        samples.sort_unstable();
        let (first, last) = (samples.first()?, samples.last()?);
        let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
        Some(Percentiles {
            samples: samples.len(),
            min_ms: ms(first),
            p50_ms: ms(&samples[rank(samples.len(), 50.0)]),
            p90_ms: ms(&samples[rank(samples.len(), 90.0)]),
            p99_ms: ms(&samples[rank(samples.len(), 99.0)]),
            max_ms: ms(last),
        })
    }
}

/// The nearest-rank index of percentile `p` among `n` sorted samples (n > 0).
fn rank(n: usize, p: f64) -> usize {
    let rank = (p / 100.0 * n as f64).ceil() as usize;
    rank.clamp(1, n) - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut samples: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let p = Percentiles::of(&mut samples).unwrap();
        assert_eq!(
            (p.samples, p.min_ms, p.p50_ms, p.p90_ms, p.p99_ms, p.max_ms),
            (100, 1.0, 50.0, 90.0, 99.0, 100.0)
        );
        let mut one = vec![Duration::from_millis(7)];
        let p = Percentiles::of(&mut one).unwrap();
        assert_eq!((p.p50_ms, p.p99_ms), (7.0, 7.0));
        assert!(Percentiles::of(&mut []).is_none());
    }
}
