//! `ferry bench`: load generators and measurements against a running server, through the same
//! client library every verb uses — so what it measures is what users get.
//!
//! Each test is its own module and returns a serialisable report; the CLI prints them as a
//! table or as JSON. Figures are medians and percentiles, never single runs: machines are
//! shared and noisy.

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

use crate::client::{Client, ClientError, ClientOptions};

/// Opens up to `count` sessions, at most `parallel` handshakes at a time (a burst of thousands
/// would only measure the accept queue). After the first failure it starts no more, but keeps
/// those already under way that succeed. Returns the open sessions and, if short, why.
pub async fn open_sessions(
    options: &ClientOptions,
    count: usize,
    parallel: usize,
) -> (Vec<Client>, Option<ClientError>) {
    let mut opened = Vec::with_capacity(count);
    let mut pending = tokio::task::JoinSet::new();
    let mut started = 0;
    let mut failure = None;
    loop {
        while failure.is_none() && started < count && pending.len() < parallel.max(1) {
            let options = options.clone();
            pending.spawn(async move { Client::connect(&options).await });
            started += 1;
        }
        let Some(joined) = pending.join_next().await else {
            break;
        };
        match joined {
            Ok(Ok(client)) => opened.push(client),
            Ok(Err(e)) => {
                failure.get_or_insert(e);
            }
            Err(e) => {
                failure.get_or_insert(ClientError::Protocol(format!(
                    "a connecting task failed: {e}"
                )));
            }
        }
    }
    (opened, failure)
}

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
