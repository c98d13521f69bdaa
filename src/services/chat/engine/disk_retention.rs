//! What the disk store holds per room, and keeping it within its bounds: lines per room and
//! their age (`[cluster] history_entries`, `history_age_secs`, which bound a Redis stream too),
//! and bytes across all rooms (`[chat] store_bytes`), past which the oldest lines of all rooms
//! go first, so a disk is never filled by chat however many rooms speak.
//!
//! The writer learns every room's count, bytes and ends in one pass over the store when it
//! starts (about 0.3 s for a million lines, while the first lines wait), then keeps them as it
//! writes and deletes: no later write needs to read a room to know where it ends.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, SystemTime};

use fjall::Batch;

use super::disk_store::{Store, id_of, last_key, line_key, room_of};
use crate::services::chat::offset::StreamId;

/// How long and how much the store keeps.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Lines per room.
    pub entries: usize,
    /// Age of a line, in seconds.
    pub age_secs: u64,
    /// Bytes of lines across all rooms (keys and values as written, before compression).
    pub bytes: u64,
}

/// What the store holds of one room.
#[derive(Debug, Default)]
pub(super) struct RoomState {
    /// The newest line's position (kept when every line is deleted: positions go on).
    pub(super) last: Option<StreamId>,
    /// The oldest line's position; `None` when the room holds none.
    oldest: Option<StreamId>,
    count: usize,
    bytes: u64,
}

/// Every room the store holds lines of.
#[derive(Default)]
pub(super) struct Rooms {
    rooms: HashMap<String, RoomState>,
    bytes: u64,
}

impl Rooms {
    /// Reads every room's count, bytes and ends from the store, in one pass.
    pub(super) fn scan(store: &Store) -> Rooms {
        let mut rooms = Rooms::default();
        for (key, value) in store.lines.iter().flatten() {
            let (Some(room), Some(id)) = (room_of(&key), id_of(&key)) else {
                continue;
            };
            let state = match rooms.rooms.get_mut(room) {
                Some(state) => state,
                None => rooms.rooms.entry(room.to_string()).or_default(),
            };
            state.oldest.get_or_insert(id);
            state.last = Some(id);
            state.count += 1;
            let bytes = (key.len() + value.len()) as u64;
            state.bytes += bytes;
            rooms.bytes += bytes;
        }
        rooms
    }

    /// The room's state (a room new to the store holds nothing yet).
    pub(super) fn state(&mut self, room: &str) -> &RoomState {
        if !self.rooms.contains_key(room) {
            self.rooms.insert(room.to_string(), RoomState::default());
        }
        &self.rooms[room]
    }

    /// Counts a line written at `id` in `room`, `bytes` long with its key.
    pub(super) fn added(&mut self, room: &str, id: StreamId, bytes: u64) {
        let state = match self.rooms.get_mut(room) {
            Some(state) => state,
            None => self.rooms.entry(room.to_string()).or_default(),
        };
        state.last = Some(id);
        state.oldest.get_or_insert(id);
        state.count += 1;
        state.bytes += bytes;
        self.bytes += bytes;
    }

    /// Deletes the oldest lines beyond the bounds: of `touched` rooms past their count or
    /// age, then, past the byte bound, the oldest of all rooms until a tenth is free again (so
    /// that not every line written at the bound deletes one). The deletions need no sync: a
    /// deleted line that comes back after a crash is deleted again.
    pub(super) fn trim(&mut self, store: &Store, touched: &[String], retention: &Retention) {
        let cutoff = SystemTime::now()
            .checked_sub(Duration::from_secs(retention.age_secs))
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0));
        let mut batch = store.keyspace.batch();
        for room in touched {
            let Some(state) = self.rooms.get(room) else {
                continue;
            };
            let excess = state.count.saturating_sub(retention.entries);
            if excess > 0 || state.oldest.is_some_and(|oldest| oldest.ms < cutoff) {
                let keep = StreamId { ms: cutoff, seq: 0 };
                self.delete_oldest(store, &mut batch, room, excess, keep, None);
            }
        }
        if self.bytes > retention.bytes {
            let target = retention.bytes - retention.bytes / 10;
            // Rooms by their oldest line, oldest first: built once, each room put back with
            // its new oldest line after giving up its head, so a store of many rooms is not
            // sorted again for every room it passes through.
            let mut heads: BinaryHeap<Reverse<(StreamId, String)>> = self
                .rooms
                .iter()
                .filter_map(|(name, state)| Some(Reverse((state.oldest?, name.clone()))))
                .collect();
            while self.bytes > target {
                let Some(Reverse((_, room))) = heads.pop() else {
                    break;
                };
                let next = heads.peek().map_or(StreamId::MAX, |Reverse((id, _))| *id);
                let over = self.bytes - target;
                self.delete_oldest(
                    store,
                    &mut batch,
                    &room,
                    0,
                    StreamId::MIN,
                    Some((next, over)),
                );
                if let Some(oldest) = self.rooms.get(&room).and_then(|state| state.oldest) {
                    heads.push(Reverse((oldest, room)));
                }
            }
        }
        if !batch.is_empty()
            && let Err(e) = batch.commit()
        {
            tracing::warn!(error = %e, "the chat store could not delete old lines");
        }
    }

    /// Deletes `room`'s oldest lines: at least `excess` of them, and any older than `keep`;
    /// or, with `shed = Some((next, over))`, lines until `over` bytes are gone or the room's
    /// oldest is newer than `next` (another room's oldest).
    fn delete_oldest(
        &mut self,
        store: &Store,
        batch: &mut Batch,
        room: &str,
        mut excess: usize,
        keep: StreamId,
        shed: Option<(StreamId, u64)>,
    ) {
        let Some(state) = self.rooms.get_mut(room) else {
            return;
        };
        let Some(from) = state.oldest else { return };
        let mut freed = 0u64;
        state.oldest = None;
        // From the oldest line still counted: what this round deleted is not met again.
        for (key, value) in store
            .lines
            .range(line_key(room, from)..=last_key(room))
            .flatten()
        {
            let Some(id) = id_of(&key) else { continue };
            let done = match shed {
                Some((next, over)) => freed >= over || (freed > 0 && id > next),
                None => excess == 0 && id >= keep,
            };
            if done {
                state.oldest = Some(id);
                break;
            }
            batch.remove(&store.lines, key.clone());
            let bytes = (key.len() + value.len()) as u64;
            freed += bytes;
            excess = excess.saturating_sub(1);
            state.count = state.count.saturating_sub(1);
            state.bytes = state.bytes.saturating_sub(bytes);
            self.bytes = self.bytes.saturating_sub(bytes);
        }
    }
}
