//! The memory engine: each room's latest lines in memory, as long as the room has members.
//! What tests and `[chat] store = "memory"` run on; a restart forgets everything (its epoch is
//! new each start, so a client's old position is known to say nothing).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use super::store::LineStore;
use super::{
    Confirmed, Kept, KeptDirect, KeptTopic, Recent, Said, TakeDirects, directs_full, new_epoch,
    next_position, now_ms,
};
use crate::protocol::Refusal;
use crate::services::chat::lock;
use crate::services::chat::offset::StreamId;

/// One room's lines.
#[derive(Debug, Default)]
struct RoomLines {
    lines: VecDeque<(StreamId, Said)>,
    last: Option<StreamId>,
    topic: Option<String>,
}

/// Lines in memory, bounded per room (`history_messages`) and across rooms
/// (`history_total_bytes`: past it, the room that speaks gives up its own oldest lines).
#[derive(Debug)]
pub struct MemoryEngine {
    rooms: RwLock<HashMap<String, Arc<Mutex<RoomLines>>>>,
    per_room: usize,
    total_limit: usize,
    total_used: AtomicUsize,
    epoch: String,
    /// Direct messages waiting for configured users who are signed out.
    directs: Mutex<HashMap<String, VecDeque<Said>>>,
}

/// What keeping a line costs against the total.
fn cost(said: &Said) -> usize {
    said.from.len() + said.text.len()
}

impl MemoryEngine {
    /// An empty engine keeping `per_room` lines per room and `total_bytes` across rooms.
    pub fn new(per_room: usize, total_bytes: usize) -> MemoryEngine {
        MemoryEngine {
            rooms: RwLock::default(),
            per_room,
            total_limit: total_bytes,
            total_used: AtomicUsize::new(0),
            epoch: new_epoch(),
            directs: Mutex::default(),
        }
    }

    fn room(&self, name: &str) -> Arc<Mutex<RoomLines>> {
        if let Some(room) = self
            .rooms
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return Arc::clone(room);
        }
        let mut rooms = self.rooms.write().unwrap_or_else(|e| e.into_inner());
        Arc::clone(rooms.entry(name.to_string()).or_default())
    }

    fn existing(&self, name: &str) -> Option<Arc<Mutex<RoomLines>>> {
        self.rooms
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }
}

impl LineStore for MemoryEngine {
    fn describe(&self) -> String {
        "in memory (this server only; history is lost when a room empties or the server stops)"
            .to_string()
    }

    fn epoch(&self) -> String {
        self.epoch.clone()
    }

    fn append(&self, room: &str, said: Said, kept: Kept) -> Result<Confirmed, Refusal> {
        let lines = self.room(room);
        let mut lines = lock(&lines);
        let id = next_position(lines.last, now_ms());
        lines.last = Some(id);
        if self.per_room > 0 {
            self.total_used.fetch_add(cost(&said), Ordering::Relaxed);
            lines.lines.push_back((id, said));
            while lines.lines.len() > self.per_room
                || (self.total_used.load(Ordering::Relaxed) > self.total_limit
                    && !lines.lines.is_empty())
            {
                if let Some((_, old)) = lines.lines.pop_front() {
                    self.total_used.fetch_sub(cost(&old), Ordering::Relaxed);
                }
            }
        }
        // Under the room's lock: lines reach members in the order of their positions.
        kept(Ok(id), Confirmed::Now);
        Ok(Confirmed::Now)
    }

    fn recent(&self, room: &str, n: usize) -> Result<Recent, Refusal> {
        let Some(lines) = self.existing(room) else {
            return Ok(Recent::default());
        };
        let lines = lock(&lines);
        let skip = lines.lines.len().saturating_sub(n);
        Ok(Recent {
            lines: lines.lines.iter().skip(skip).cloned().collect(),
            last: lines.last,
        })
    }

    fn since(
        &self,
        room: &str,
        after: StreamId,
        max: usize,
    ) -> Result<Option<Vec<(StreamId, Said)>>, Refusal> {
        let Some(lines) = self.existing(room) else {
            return Ok(None);
        };
        let lines = lock(&lines);
        // Complete only when nothing after `after` was given up: the oldest kept line is not
        // newer than it, or nothing at all came after it.
        let complete = lines.lines.front().is_some_and(|(id, _)| *id <= after)
            || lines.last.is_some_and(|last| last <= after);
        if !complete {
            return Ok(None);
        }
        let found: Vec<(StreamId, Said)> = lines
            .lines
            .iter()
            .filter(|(id, _)| *id > after)
            .cloned()
            .collect();
        Ok((found.len() < max).then_some(found))
    }

    fn older(
        &self,
        room: &str,
        before_ms: u64,
        n: usize,
    ) -> Result<Vec<(StreamId, Said)>, Refusal> {
        let Some(lines) = self.existing(room) else {
            return Ok(Vec::new());
        };
        let lines = lock(&lines);
        let mut found: Vec<(StreamId, Said)> = lines
            .lines
            .iter()
            .rev()
            .filter(|(id, _)| id.ms < before_ms)
            .take(n)
            .cloned()
            .collect();
        found.reverse();
        Ok(found)
    }

    fn newer(&self, room: &str, after_ms: u64, n: usize) -> Result<Vec<(StreamId, Said)>, Refusal> {
        let Some(lines) = self.existing(room) else {
            return Ok(Vec::new());
        };
        let lines = lock(&lines);
        Ok(lines
            .lines
            .iter()
            .filter(|(id, _)| id.ms > after_ms)
            .take(n)
            .cloned()
            .collect())
    }

    fn in_order(&self, then: Box<dyn FnOnce() + Send>) {
        // Lines are kept inside `append`: every earlier one already was.
        then();
    }

    fn topic(&self, room: &str) -> Option<String> {
        self.existing(room)
            .and_then(|lines| lock(&lines).topic.clone())
    }

    fn set_topic(
        &self,
        room: &str,
        topic: Option<&str>,
        kept: KeptTopic,
    ) -> Result<Confirmed, Refusal> {
        lock(&self.room(room)).topic = topic.map(str::to_string);
        kept(Ok(()), Confirmed::Now);
        Ok(Confirmed::Now)
    }

    fn keep_direct(&self, user: &str, said: Said, limit: usize, kept: KeptDirect) {
        let mut directs = lock(&self.directs);
        let waiting = directs.entry(user.to_string()).or_default();
        if waiting.len() >= limit {
            drop(directs);
            return kept(Err(directs_full(user, limit)));
        }
        waiting.push_back(said);
        let n = waiting.len();
        drop(directs);
        kept(Ok(n));
    }

    fn take_directs(&self, user: &str, take: TakeDirects) {
        let waiting = lock(&self.directs).remove(user).unwrap_or_default();
        take(waiting.into());
    }

    fn held_bytes(&self) -> usize {
        self.total_used.load(Ordering::Relaxed)
    }

    fn room_emptied(&self, room: &str) {
        let removed = self
            .rooms
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(room);
        if let Some(lines) = removed {
            let held: usize = lock(&lines).lines.iter().map(|(_, s)| cost(s)).sum();
            self.total_used.fetch_sub(held, Ordering::Relaxed);
        }
    }

    fn close(&self) {}
}
