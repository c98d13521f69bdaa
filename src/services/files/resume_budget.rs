//! What resuming a get may make the server hash. To resume at `offset` the server hashes the
//! first `offset` bytes and compares them with the client's `prefix_hash`; a 130-byte request
//! with `offset = size - 1` and a made-up hash cost 22 ms of CPU on a 20 MB file, and eight
//! such clients kept both cores busy. So every address has a budget of resume hashing
//! ([`PER_ADDRESS_RATE`] bytes a second after a [`PER_ADDRESS_BURST`]), and the server as a
//! whole one more ([`TOTAL_RATE`], [`TOTAL_BURST`]). A resume beyond it is not checked: the get
//! starts from the beginning — correct, only not shortened — so a cheap request never costs the
//! server a file's worth of hashing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::token_bucket::TokenBucket;

/// Resume hashing one address may ask for, per second, once its burst is spent.
pub const PER_ADDRESS_RATE: f64 = 64.0 * 1024.0 * 1024.0;
/// Resume hashing one address may ask for at once (a resumed 1 GiB file).
pub const PER_ADDRESS_BURST: f64 = 1024.0 * 1024.0 * 1024.0;
/// Resume hashing all clients together may ask for, per second.
pub const TOTAL_RATE: f64 = 256.0 * 1024.0 * 1024.0;
/// Resume hashing all clients together may ask for at once.
pub const TOTAL_BURST: f64 = 8.0 * 1024.0 * 1024.0 * 1024.0;
/// Addresses remembered; beyond it, those whose budget has refilled are forgotten.
const MAX_ADDRESSES: usize = 65_536;

/// The server's budgets of resume hashing.
#[derive(Debug)]
pub struct ResumeBudget {
    buckets: Mutex<(TokenBucket, HashMap<IpAddr, TokenBucket>)>,
    /// Bytes hashed to check resume offers, since the server started.
    hashed: AtomicU64,
}

impl Default for ResumeBudget {
    fn default() -> Self {
        ResumeBudget {
            buckets: Mutex::new((
                TokenBucket::full(TOTAL_BURST, Instant::now()),
                HashMap::new(),
            )),
            hashed: AtomicU64::new(0),
        }
    }
}

impl ResumeBudget {
    /// Whether `peer` may have `bytes` hashed to check its resume offer; if so they are
    /// spent (and counted).
    pub fn take(&self, peer: IpAddr, bytes: u64) -> bool {
        let now = Instant::now();
        let units = bytes as f64;
        let mut guard = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let (total, per_address) = &mut *guard;
        if per_address.len() >= MAX_ADDRESSES && !per_address.contains_key(&peer) {
            per_address.retain(|_, b| !b.is_full(PER_ADDRESS_RATE, PER_ADDRESS_BURST, now));
        }
        let mine = per_address
            .entry(peer)
            .or_insert_with(|| TokenBucket::full(PER_ADDRESS_BURST, now));
        // Both budgets are checked before either is spent.
        let mut probe_mine = mine.clone();
        let mut probe_total = total.clone();
        if !probe_mine.take(units, PER_ADDRESS_RATE, PER_ADDRESS_BURST, now)
            || !probe_total.take(units, TOTAL_RATE, TOTAL_BURST, now)
        {
            return false;
        }
        *mine = probe_mine;
        *total = probe_total;
        self.hashed.fetch_add(bytes, Ordering::Relaxed);
        true
    }

    /// Bytes hashed to check resume offers so far.
    pub fn hashed(&self) -> u64 {
        self.hashed.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_cannot_spend_more_than_its_share_and_others_keep_theirs() {
        let budget = ResumeBudget::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let half = 1 << 29;
        assert!(budget.take(a, half));
        assert!(budget.take(a, half));
        assert!(!budget.take(a, half));
        assert!(budget.take(b, half));
        assert_eq!(budget.hashed(), 3 * half);
    }
}
