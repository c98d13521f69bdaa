//! Counting what each client address holds at once — connections, authentications in
//! progress, file requests — so that one address cannot take what every other client needs.
//!
//! The map is touched only when a slot is taken or given back, never while a slot is used.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// At most `limit` slots per address at once.
#[derive(Debug)]
pub struct PerAddress {
    limit: usize,
    held: Mutex<HashMap<IpAddr, usize>>,
}

/// One slot held by an address; given back when dropped, on every exit path.
#[derive(Debug)]
pub struct AddressSlot {
    owner: Arc<PerAddress>,
    ip: IpAddr,
}

impl PerAddress {
    /// At most `limit` slots per address.
    pub fn new(limit: usize) -> Arc<PerAddress> {
        Arc::new(PerAddress {
            limit,
            held: Mutex::new(HashMap::new()),
        })
    }

    /// The per-address limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Takes a slot for `ip`, or `None` when it already holds `limit`.
    pub fn try_take(self: &Arc<Self>, ip: IpAddr) -> Option<AddressSlot> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let count = held.entry(ip).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            owner: Arc::clone(self),
            ip,
        })
    }

    /// Slots `ip` holds now.
    pub fn held_by(&self, ip: IpAddr) -> usize {
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.get(&ip).copied().unwrap_or(0)
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut held = self.owner.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = held.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.ip);
            }
        }
    }
}

/// At most `limit` holders per address at once; further callers from that address wait their
/// turn (used for authentications: parallel guesses are checked a few at a time, so the failure
/// count stops them, while parallel honest logins only queue briefly).
#[derive(Debug)]
pub struct PerAddressQueue {
    limit: usize,
    queues: Mutex<HashMap<IpAddr, Arc<Semaphore>>>,
}

/// A turn held by an address; given back when dropped.
#[derive(Debug)]
pub struct Turn {
    owner: Arc<PerAddressQueue>,
    ip: IpAddr,
    queue: Arc<Semaphore>,
    permit: Option<OwnedSemaphorePermit>,
}

impl PerAddressQueue {
    /// At most `limit` turns at once per address; the rest wait in line.
    pub fn new(limit: usize) -> Arc<PerAddressQueue> {
        Arc::new(PerAddressQueue {
            limit,
            queues: Mutex::new(HashMap::new()),
        })
    }

    /// Waits for a turn for `ip`.
    pub async fn turn(self: &Arc<Self>, ip: IpAddr) -> Option<Turn> {
        let queue = {
            let mut queues = self.queues.lock().unwrap_or_else(|e| e.into_inner());
            Arc::clone(
                queues
                    .entry(ip)
                    .or_insert_with(|| Arc::new(Semaphore::new(self.limit))),
            )
        };
        let permit = Arc::clone(&queue).acquire_owned().await.ok()?;
        Some(Turn {
            owner: Arc::clone(self),
            ip,
            queue,
            permit: Some(permit),
        })
    }

    /// Addresses with a queue now (for tests of clean-up).
    pub fn addresses(&self) -> usize {
        self.queues.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        drop(self.permit.take());
        let mut queues = self.owner.queues.lock().unwrap_or_else(|e| e.into_inner());
        // Only the map and this turn know the queue: no one holds or waits for a turn.
        if Arc::strong_count(&self.queue) == 2 {
            queues.remove(&self.ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_holds_at_most_the_limit_and_gets_slots_back() {
        let limits = PerAddress::new(2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let first = limits.try_take(a).unwrap();
        let _second = limits.try_take(a).unwrap();
        assert!(limits.try_take(a).is_none());
        assert!(
            limits.try_take(b).is_some(),
            "other addresses are not affected"
        );
        drop(first);
        assert!(limits.try_take(a).is_some());
        assert_eq!(limits.held_by(b), 0, "dropped slots leave no entry behind");
    }

    #[tokio::test(start_paused = true)]
    async fn a_queue_lets_limit_through_and_the_rest_wait_their_turn() {
        let queue = PerAddressQueue::new(2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let first = queue.turn(a).await.unwrap();
        let _second = queue.turn(a).await.unwrap();
        let third = queue.turn(a);
        tokio::pin!(third);
        assert!(
            tokio::time::timeout(std::time::Duration::from_secs(1), &mut third)
                .await
                .is_err(),
            "a third turn waits"
        );
        drop(first);
        let third = third.await.unwrap();
        drop(third);
        drop(_second);
        assert_eq!(
            queue.addresses(),
            0,
            "no queue is kept once everyone is done"
        );
    }
}
