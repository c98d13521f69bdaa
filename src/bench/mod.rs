//! `ferry bench`: load generators and measurements against a running server, through the same
//! client library every verb uses — so what it measures is what users get.
//!
//! Each test is its own module and returns a serialisable report; the CLI prints them as a
//! table or as JSON. Figures are medians and percentiles, never single runs: machines are
//! shared and noisy.

pub mod chart;
pub mod chat;
pub mod connections;
pub mod delivery_clock;
pub mod latency;
pub mod percentiles;
pub mod server_process;
pub mod throughput;

pub use delivery_clock::DeliveryClock;
pub use percentiles::Percentiles;

use std::time::Duration;

/// Megabytes (10^6 bytes, as iperf3, nc and scp report) per second.
pub fn megabytes_per_second(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / 1e6 / elapsed.as_secs_f64().max(1e-9)
}

/// The median of some figures (the upper one of an even count); `None` when there are none.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_is_the_middle_figure_whatever_the_order() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(3.0));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn megabytes_are_decimal() {
        assert_eq!(megabytes_per_second(2_000_000, Duration::from_secs(1)), 2.0);
    }
}
