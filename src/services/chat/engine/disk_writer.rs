//! The disk engine's writer: the one thread that writes to the store. It takes every job
//! waiting, writes them as one batch, syncs the journal once, and only then confirms each, in
//! order (group commit). Taking a user's kept direct messages first syncs what came before it,
//! so a message kept just before its recipient signs in is handed over, never left behind.
//!
//! A failed sync (a full disk) refuses that batch's lines and poisons fjall's keyspace. The
//! next batch first opens the store again; what the failed batch wrote is then deleted before
//! anything else is written, because the journal may still hold it whole (the rest of a
//! buffered write goes out when the old instance is dropped). So a refused line never comes
//! back, and chat resumes as soon as the disk takes lines again.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::Receiver;

use fjall::{Batch, PartitionHandle, PersistMode};

use super::disk_retention::{Retention, Rooms};
use super::disk_store::{
    SharedStore, Store, decode, id_of, line_key, room_prefix, stored, topic_key,
};
use super::{
    Confirmed, Kept, KeptDirect, KeptTopic, Said, TakeDirects, directs_full, next_position, now_ms,
};
use crate::protocol::{ErrorCode, Refusal};
use crate::services::chat::offset::StreamId;

/// Jobs written in one batch (one sync) at most.
const BATCH: usize = 4096;

/// A disk with less than this free is called full when a sync fails.
const FULL_BELOW: u64 = 1 << 20;

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
        kept: KeptTopic,
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
    Topic(KeptTopic),
    Then(Box<dyn FnOnce() + Send>),
    Direct(KeptDirect, usize),
}

/// One batch being gathered.
struct Pending {
    batch: Batch,
    done: Vec<Done>,
    touched: Vec<String>,
    /// Direct messages kept in this batch, per user: how many wait now, and the last key.
    directs: HashMap<String, (usize, Option<StreamId>)>,
    /// The keys of lines and of kept direct messages this batch writes.
    written: Unkept,
}

/// Keys written by batches whose sync failed: deleted (a topic: set back to what it was) once
/// the store is open again.
#[derive(Default)]
struct Unkept {
    lines: Vec<Vec<u8>>,
    directs: Vec<Vec<u8>>,
    /// A topic's key and its value before the failed batch.
    topics: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// The writer thread's state.
pub(super) struct Writer {
    store: Arc<SharedStore>,
    /// What the store holds per room; read in one pass before the first write.
    rooms: Option<Rooms>,
    retention: Retention,
    path: String,
    /// Why the last sync failed, until the store is open again and takes writes.
    broken: Option<String>,
    unkept: Unkept,
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

/// A batch that syncs the journal before it touches the memtables: when the sync fails,
/// nothing of it becomes readable.
fn durable_batch(store: &Store) -> Batch {
    store
        .keyspace
        .batch()
        .durability(Some(PersistMode::SyncAll))
}

impl Writer {
    pub(super) fn new(store: Arc<SharedStore>, retention: Retention, path: String) -> Writer {
        Writer {
            store,
            rooms: None,
            retention,
            path,
            broken: None,
            unkept: Unkept::default(),
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

    fn pending(store: &Store) -> Pending {
        Pending {
            batch: durable_batch(store),
            done: Vec::new(),
            touched: Vec::new(),
            directs: HashMap::new(),
            written: Unkept::default(),
        }
    }

    /// Writes one batch of jobs: syncs, then confirms each in order, then trims. A store
    /// broken by a failed sync is first opened again; while it cannot be, every job is refused.
    fn write(&mut self, jobs: Vec<Job>) {
        if self.broken.is_some() {
            self.recover();
        }
        let shared = Arc::clone(&self.store);
        let current = shared.get();
        let store = match (current.as_ref(), &self.broken) {
            (Some(store), None) => store,
            (_, broken) => {
                let reason = broken.clone().unwrap_or_else(|| "it is not open".into());
                return self.refuse(jobs, &reason);
            }
        };
        let mut pending = Self::pending(store);
        for job in jobs {
            match job {
                Job::Line { room, said, kept } => {
                    let rooms = self.rooms.get_or_insert_with(|| Rooms::scan(store));
                    let id = next_position(rooms.state(&room).last, now_ms());
                    let key = line_key(&room, id);
                    let value = stored(said);
                    rooms.added(&room, id, (key.len() + value.len()) as u64);
                    pending.written.lines.push(key.clone());
                    pending.batch.insert(&store.lines, key, value);
                    if !pending.touched.contains(&room) {
                        pending.touched.push(room);
                    }
                    pending.done.push(Done::Line(kept, id));
                }
                Job::Topic { room, topic, kept } => {
                    let key = topic_key(&room);
                    let before = store.meta.get(&key).ok().flatten().map(|v| v.to_vec());
                    pending.written.topics.push((key.clone(), before));
                    match topic {
                        Some(topic) => pending.batch.insert(&store.meta, key, topic),
                        None => pending.batch.remove(&store.meta, key),
                    }
                    pending.done.push(Done::Topic(kept));
                }
                Job::Then(then) => pending.done.push(Done::Then(then)),
                Job::KeepDirect {
                    user,
                    said,
                    limit,
                    kept,
                } => Self::keep_direct(store, &mut pending, user, said, limit, kept),
                Job::TakeDirects { user, take } => {
                    // What came before is synced first: a message kept just now is handed over.
                    let before = std::mem::replace(&mut pending, Self::pending(store));
                    self.sync(store, before);
                    take(self.take_directs(store, &user));
                }
                Job::Stop => {}
            }
        }
        self.sync(store, pending);
    }

    /// Opens the store again after a failed sync and deletes what the failed batches wrote;
    /// the store stays broken if either fails.
    fn recover(&mut self) {
        let reopened = self.store.reopen().and_then(|()| {
            let current = self.store.get();
            let Some(store) = current.as_ref() else {
                return Ok(());
            };
            let mut batch = durable_batch(store);
            for key in &self.unkept.lines {
                batch.remove(&store.lines, key.clone());
            }
            for key in &self.unkept.directs {
                batch.remove(&store.directs, key.clone());
            }
            // The earliest value last: a topic set twice in failed batches goes back to what
            // it was before both.
            for (key, before) in self.unkept.topics.iter().rev() {
                match before {
                    Some(value) => batch.insert(&store.meta, key.clone(), value.clone()),
                    None => batch.remove(&store.meta, key.clone()),
                }
            }
            batch.commit()
        });
        match reopened {
            Ok(()) => {
                tracing::info!(path = %self.path, "the chat store takes lines again");
                self.broken = None;
                self.unkept = Unkept::default();
            }
            Err(e) => self.broken = Some(e.to_string()),
        }
        // What the store holds is read again.
        self.rooms = None;
    }

    /// Answers every job with the store's failure: lines, topics and direct messages are
    /// refused, notices go out, nothing is handed over (it stays for the next sign-in).
    fn refuse(&self, jobs: Vec<Job>, reason: &str) {
        let refusal = NotKept::new(&self.path, reason);
        for job in jobs {
            match job {
                Job::Line { kept, .. } => kept(Err(refusal.line.clone()), Confirmed::Later),
                Job::Topic { kept, .. } => kept(Err(refusal.topic.clone()), Confirmed::Later),
                Job::KeepDirect { kept, .. } => kept(Err(refusal.line.clone())),
                Job::Then(then) => then(),
                Job::TakeDirects { take, .. } => take(Vec::new()),
                Job::Stop => {}
            }
        }
    }

    fn keep_direct(
        store: &Store,
        pending: &mut Pending,
        user: String,
        said: Said,
        limit: usize,
        kept: KeptDirect,
    ) {
        let (count, last) = match pending.directs.get(&user) {
            Some(known) => *known,
            None => {
                let (count, _, last) = count_and_last(&store.directs, room_prefix(&user));
                (count, last)
            }
        };
        if count >= limit {
            return kept(Err(directs_full(&user, limit)));
        }
        let id = next_position(last, now_ms());
        let key = line_key(&user, id);
        pending.written.directs.push(key.clone());
        pending.batch.insert(&store.directs, key, stored(said));
        pending.directs.insert(user, (count + 1, Some(id)));
        pending.done.push(Done::Direct(kept, count + 1));
    }

    /// Reads and deletes what waits for `user`, handed over only once the deletion is synced:
    /// when it cannot be, the messages stay for the next sign-in rather than come twice.
    fn take_directs(&mut self, store: &Store, user: &str) -> Vec<Said> {
        if self.broken.is_some() {
            return Vec::new();
        }
        let mut batch = durable_batch(store);
        let mut found = Vec::new();
        for (key, value) in store.directs.prefix(room_prefix(user)).flatten() {
            if let Some((_, said)) = decode(&key, &value) {
                found.push(said);
            }
            batch.remove(&store.directs, key);
        }
        if found.is_empty() {
            return found;
        }
        if let Err(e) = batch.commit() {
            tracing::error!(error = %e, path = %self.path, "the chat store could not hand over kept direct messages");
            self.broken = Some(e.to_string());
            return Vec::new();
        }
        found
    }

    /// Syncs one batch, then confirms its jobs in order, then trims the rooms it wrote to.
    fn sync(&mut self, store: &Store, pending: Pending) {
        if pending.done.is_empty() && pending.batch.is_empty() {
            return;
        }
        if let Some(reason) = &self.broken {
            // An earlier part of this round failed: nothing more is written until reopened.
            return Self::answer(pending.done, Err(&NotKept::new(&self.path, reason)));
        }
        match pending.batch.commit() {
            Ok(()) => {
                Self::answer(pending.done, Ok(()));
                if let Some(rooms) = &mut self.rooms {
                    rooms.trim(store, &pending.touched, &self.retention);
                }
            }
            Err(e) => {
                let reason = match e {
                    // fjall says only "Poisoned" for a failed sync; the likeliest cause is
                    // told from the disk itself.
                    fjall::Error::Poisoned => self.why_not_synced(),
                    e => e.to_string(),
                };
                tracing::error!(reason, path = %self.path, "the chat store could not keep lines");
                Self::answer(pending.done, Err(&NotKept::new(&self.path, &reason)));
                self.broken = Some(reason);
                self.unkept.lines.extend(pending.written.lines);
                self.unkept.directs.extend(pending.written.directs);
                self.unkept.topics.extend(pending.written.topics);
                self.rooms = None;
            }
        }
    }

    /// Why a sync failed, as far as the disk tells: full, or a write error.
    fn why_not_synced(&self) -> String {
        match rustix::fs::statvfs(self.path.as_str()) {
            Ok(disk) if disk.f_bavail.saturating_mul(disk.f_frsize) < FULL_BELOW => {
                "the disk is full".to_string()
            }
            _ => "the disk refused the write".to_string(),
        }
    }

    /// Runs what follows a batch, in order: confirmations, or refusals.
    fn answer(done: Vec<Done>, synced: Result<(), &NotKept>) {
        for done in done {
            match (done, synced) {
                (Done::Line(kept, id), Ok(())) => kept(Ok(id), Confirmed::Later),
                (Done::Line(kept, _), Err(no)) => kept(Err(no.line.clone()), Confirmed::Later),
                (Done::Topic(kept), Ok(())) => kept(Ok(()), Confirmed::Later),
                (Done::Topic(kept), Err(no)) => kept(Err(no.topic.clone()), Confirmed::Later),
                (Done::Then(then), _) => then(),
                (Done::Direct(kept, n), Ok(())) => kept(Ok(n)),
                (Done::Direct(kept, _), Err(no)) => kept(Err(no.line.clone())),
            }
        }
    }
}

/// The refusals for what a failed store could not keep: a line (or a direct message), a topic.
struct NotKept {
    line: Refusal,
    topic: Refusal,
}

impl NotKept {
    fn new(path: &str, reason: &str) -> NotKept {
        let refusal = |what: &str, not: &str| {
            Refusal::new(
                ErrorCode::Unavailable,
                format!(
                    "the chat store in {path} could not keep the {what} ({reason}): it was not {not}"
                ),
            )
        };
        NotKept {
            line: refusal("line", "sent"),
            topic: refusal("topic", "set"),
        }
    }
}
