//! The disk engine's writer: the one thread that writes to the store. It takes every job
//! waiting, writes them as one batch, syncs the journal once, and only then confirms each, in
//! order (group commit). Taking a user's kept direct messages first syncs what came before it,
//! so a message kept just before its recipient signs in is handed over, never left behind.

use std::collections::HashMap;
use std::sync::mpsc::Receiver;
use std::time::{Duration, SystemTime};

use fjall::{Batch, Keyspace, PartitionHandle, PersistMode};

use super::disk::{Retention, StoredLine, decode, id_of, line_key, room_prefix, topic_key};
use super::{Confirmed, Kept, KeptDirect, Said, TakeDirects, directs_full, next_position, now_ms};
use crate::protocol::{ErrorCode, Refusal};
use crate::services::chat::offset::StreamId;

/// Jobs written in one batch (one sync) at most.
const BATCH: usize = 4096;

/// What the engine's handle asks of the writer.
pub(super) enum Job {
    Line {
        room: String,
        said: Said,
        kept: Kept,
    },
    Topic {
        room: String,
        topic: Option<String>,
    },
    Then(Box<dyn FnOnce() + Send>),
    KeepDirect {
        user: String,
        said: Said,
        limit: usize,
        kept: KeptDirect,
    },
    TakeDirects {
        user: String,
        take: TakeDirects,
    },
    Stop,
}

/// What the writer does after a batch is synced, in order.
enum Done {
    Line(Kept, StreamId),
    Then(Box<dyn FnOnce() + Send>),
    Direct(KeptDirect, usize),
}

/// What the writer knows of a room it wrote to.
struct RoomState {
    last: Option<StreamId>,
    oldest: Option<StreamId>,
    count: usize,
}

/// One batch being gathered.
struct Pending {
    batch: Batch,
    done: Vec<Done>,
    touched: Vec<String>,
    /// Direct messages kept in this batch, per user: how many wait now, and the last key.
    directs: HashMap<String, (usize, Option<StreamId>)>,
}

/// The writer thread's state.
pub(super) struct Writer {
    keyspace: Keyspace,
    lines: PartitionHandle,
    meta: PartitionHandle,
    directs: PartitionHandle,
    rooms: HashMap<String, RoomState>,
    retention: Retention,
    path: String,
}

/// How many keys start with `prefix` in `partition`, and the last one's position: a room's
/// lines, or a user's kept messages.
fn count_and_last(
    partition: &PartitionHandle,
    prefix: Vec<u8>,
) -> (usize, Option<StreamId>, Option<StreamId>) {
    let (mut count, mut first, mut last) = (0, None, None);
    for (key, _) in partition.prefix(prefix).flatten() {
        let id = id_of(&key);
        first = first.or(id);
        last = id.or(last);
        count += 1;
    }
    (count, first, last)
}

fn stored(said: Said) -> Vec<u8> {
    serde_json::to_vec(&StoredLine {
        f: said.from,
        t: said.text,
        a: said.action,
    })
    .unwrap_or_default()
}

impl Writer {
    pub(super) fn new(
        keyspace: Keyspace,
        lines: PartitionHandle,
        meta: PartitionHandle,
        directs: PartitionHandle,
        retention: Retention,
        path: String,
    ) -> Writer {
        Writer {
            keyspace,
            lines,
            meta,
            directs,
            rooms: HashMap::new(),
            retention,
            path,
        }
    }

    /// Runs until [`Job::Stop`] or the handle is gone.
    pub(super) fn run(mut self, queue: Receiver<Job>) {
        let mut jobs = Vec::with_capacity(BATCH);
        while let Ok(first) = queue.recv() {
            jobs.push(first);
            while jobs.len() < BATCH {
                match queue.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(_) => break,
                }
            }
            let stop = jobs.iter().any(|job| matches!(job, Job::Stop));
            self.write(std::mem::take(&mut jobs));
            if stop {
                return;
            }
        }
    }

    fn pending(&self) -> Pending {
        Pending {
            batch: self.keyspace.batch(),
            done: Vec::new(),
            touched: Vec::new(),
            directs: HashMap::new(),
        }
    }

    /// Writes one batch of jobs: syncs, then confirms each in order, then trims.
    fn write(&mut self, jobs: Vec<Job>) {
        let mut pending = self.pending();
        for job in jobs {
            match job {
                Job::Line { room, said, kept } => {
                    let state = self.state(&room);
                    let id = next_position(state.last, now_ms());
                    state.last = Some(id);
                    state.oldest.get_or_insert(id);
                    state.count += 1;
                    pending
                        .batch
                        .insert(&self.lines, line_key(&room, id), stored(said));
                    if !pending.touched.contains(&room) {
                        pending.touched.push(room);
                    }
                    pending.done.push(Done::Line(kept, id));
                }
                Job::Topic { room, topic } => match topic {
                    Some(topic) => pending.batch.insert(&self.meta, topic_key(&room), topic),
                    None => pending.batch.remove(&self.meta, topic_key(&room)),
                },
                Job::Then(then) => pending.done.push(Done::Then(then)),
                Job::KeepDirect {
                    user,
                    said,
                    limit,
                    kept,
                } => self.keep_direct(&mut pending, user, said, limit, kept),
                Job::TakeDirects { user, take } => {
                    // What came before is synced first: a message kept just now is handed over.
                    let before = std::mem::replace(&mut pending, self.pending());
                    self.sync(before);
                    take(self.take_directs(&user));
                }
                Job::Stop => {}
            }
        }
        self.sync(pending);
    }

    fn keep_direct(
        &self,
        pending: &mut Pending,
        user: String,
        said: Said,
        limit: usize,
        kept: KeptDirect,
    ) {
        let (count, last) = match pending.directs.get(&user) {
            Some(known) => *known,
            None => {
                let (count, _, last) = count_and_last(&self.directs, room_prefix(&user));
                (count, last)
            }
        };
        if count >= limit {
            return kept(Err(directs_full(&user, limit)));
        }
        let id = next_position(last, now_ms());
        pending
            .batch
            .insert(&self.directs, line_key(&user, id), stored(said));
        pending.directs.insert(user, (count + 1, Some(id)));
        pending.done.push(Done::Direct(kept, count + 1));
    }

    /// Reads and deletes what waits for `user` (synced before it is handed over).
    fn take_directs(&mut self, user: &str) -> Vec<Said> {
        let mut batch = self.keyspace.batch();
        let mut found = Vec::new();
        for (key, value) in self.directs.prefix(room_prefix(user)).flatten() {
            if let Some((_, said)) = decode(&key, &value) {
                found.push(said);
            }
            batch.remove(&self.directs, key);
        }
        if found.is_empty() {
            return found;
        }
        let deleted = batch
            .commit()
            .and_then(|()| self.keyspace.persist(PersistMode::SyncAll));
        if let Err(e) = deleted {
            // Handed over anyway: kept again, they would be delivered twice.
            tracing::warn!(error = %e, "the chat store could not forget delivered direct messages");
        }
        found
    }

    /// Syncs one batch, then confirms its jobs in order, then trims the rooms it wrote to.
    fn sync(&mut self, pending: Pending) {
        if pending.done.is_empty() && pending.batch.is_empty() {
            return;
        }
        let synced = pending
            .batch
            .commit()
            .and_then(|()| self.keyspace.persist(PersistMode::SyncAll));
        match synced {
            Ok(()) => {
                for done in pending.done {
                    match done {
                        Done::Line(kept, id) => kept(Ok(id), Confirmed::Later),
                        Done::Then(then) => then(),
                        Done::Direct(kept, n) => kept(Ok(n)),
                    }
                }
                self.trim(&pending.touched);
            }
            Err(e) => {
                tracing::error!(error = %e, path = %self.path, "the chat store could not keep lines");
                let refusal = Refusal::new(
                    ErrorCode::Unavailable,
                    format!(
                        "the chat store in {} could not keep the line ({e}): it was not sent",
                        self.path
                    ),
                );
                for done in pending.done {
                    match done {
                        Done::Line(kept, _) => kept(Err(refusal.clone()), Confirmed::Later),
                        Done::Then(then) => then(),
                        Done::Direct(kept, _) => kept(Err(refusal.clone())),
                    }
                }
                // What the store holds is read again on the next line.
                for room in pending.touched {
                    self.rooms.remove(&room);
                }
            }
        }
    }

    /// The room's state, read from the store the first time the writer meets it.
    fn state(&mut self, room: &str) -> &mut RoomState {
        if !self.rooms.contains_key(room) {
            let (count, oldest, last) = count_and_last(&self.lines, room_prefix(room));
            let state = RoomState {
                last,
                oldest,
                count,
            };
            self.rooms.insert(room.to_string(), state);
        }
        self.rooms
            .get_mut(room)
            .unwrap_or_else(|| unreachable!("inserted above"))
    }

    /// Deletes the oldest lines of `rooms` beyond the retention bounds, in a batch that needs
    /// no sync (a deleted line that comes back after a crash is deleted again).
    fn trim(&mut self, rooms: &[String]) {
        let cutoff = SystemTime::now()
            .checked_sub(Duration::from_secs(self.retention.age_secs))
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0));
        let mut batch = self.keyspace.batch();
        for room in rooms {
            let entries = self.retention.entries;
            let Some(state) = self.rooms.get_mut(room) else {
                continue;
            };
            let too_old = state.oldest.is_some_and(|oldest| oldest.ms < cutoff);
            if state.count <= entries && !too_old {
                continue;
            }
            let mut excess = state.count.saturating_sub(entries);
            state.oldest = None;
            for (key, _) in self.lines.prefix(room_prefix(room)).flatten() {
                let Some(id) = id_of(&key) else { continue };
                if excess == 0 && id.ms >= cutoff {
                    state.oldest = Some(id);
                    break;
                }
                batch.remove(&self.lines, key);
                excess = excess.saturating_sub(1);
                state.count = state.count.saturating_sub(1);
            }
        }
        if !batch.is_empty()
            && let Err(e) = batch.commit()
        {
            tracing::warn!(error = %e, "the chat store could not delete old lines");
        }
    }
}
