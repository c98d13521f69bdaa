//! The disk engine: every room's lines in an embedded store under the server's state
//! directory (`STATE/chat/`), so a restart, an upgrade or a crash loses no acknowledged line,
//! and a room's past is there when someone comes back after everyone left.
//!
//! The store is fjall, an LSM tree with a write-ahead journal. Chosen by measurement on this
//! machine (2026-12-07, 120-byte lines, one fsync per commit): a commit of 64 lines took
//! 0.29 ms with fjall against 1.73 ms with redb (copy-on-write pages, two syncs per commit);
//! 1,000,000 lines took 18 MB on disk against 272 MB; reopening them after a kill and reading
//! a room's last 50 lines took 0.25 s against 0.45 s. SQLite would add a C build to every
//! checkout. The journal is synced by this engine, never in the background
//! (`fsync_ms` unset), and compaction runs on fjall's own threads.
//!
//! Group commit: one writer thread takes every line waiting, writes them as one batch, syncs
//! the journal once, and only then runs each line's [`Kept`] (broadcast, acknowledgement), in
//! order. While it syncs, the next lines gather: the busier chat is, the more lines share a
//! sync. Lines older than `[cluster] history_age_secs` and beyond `history_entries` per room
//! are deleted after the acknowledgements, in batches that need no sync (a deleted line that
//! comes back after a crash is deleted again).
//!
//! Keys: `[room length u16][room][ms u64][seq u64]`, big-endian, so a room's lines are one
//! contiguous, ordered range. Values: the line as JSON (`f` nick, `t` text, `a` action).

use std::collections::HashMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::{Duration, SystemTime};

use fjall::{Batch, Keyspace, PartitionCreateOptions, PartitionHandle, PersistMode};
use serde::{Deserialize, Serialize};

use super::{Confirmed, Engine, Kept, Recent, Said, new_epoch, next_position, now_ms};
use crate::protocol::{ErrorCode, Refusal};
use crate::services::chat::offset::StreamId;

/// Lines waiting for the writer at most; past it, lines are refused (try again).
const QUEUE: usize = 65_536;

/// Lines written in one batch (one sync) at most.
const BATCH: usize = 4096;

/// How long lines are kept: the `[cluster]` history bounds, which bound a Redis stream too.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Lines per room.
    pub entries: usize,
    /// Age of a line, in seconds.
    pub age_secs: u64,
}

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open the chat store in {path}: {reason}")]
pub struct OpenError {
    path: String,
    reason: String,
}

#[derive(Serialize, Deserialize)]
struct StoredLine {
    f: String,
    t: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    a: bool,
}

enum Job {
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
    Stop,
}

/// The handle the hub calls.
pub struct DiskEngine {
    lines: PartitionHandle,
    meta: PartitionHandle,
    jobs: SyncSender<Job>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    epoch: String,
    path: PathBuf,
}

impl std::fmt::Debug for DiskEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskEngine")
            .field("path", &self.path)
            .finish()
    }
}

const EPOCH_KEY: &[u8] = b"epoch";

fn topic_key(room: &str) -> Vec<u8> {
    let mut key = b"topic:".to_vec();
    key.extend_from_slice(room.as_bytes());
    key
}

/// The first bytes of every key of `room`.
fn room_prefix(room: &str) -> Vec<u8> {
    let len = u16::try_from(room.len()).unwrap_or(u16::MAX);
    let mut key = Vec::with_capacity(2 + room.len() + 16);
    key.extend_from_slice(&len.to_be_bytes());
    key.extend_from_slice(room.as_bytes());
    key
}

fn line_key(room: &str, id: StreamId) -> Vec<u8> {
    let mut key = room_prefix(room);
    key.extend_from_slice(&id.ms.to_be_bytes());
    key.extend_from_slice(&id.seq.to_be_bytes());
    key
}

/// The position a key ends with; `None` for a key that is not a line's.
fn id_of(key: &[u8]) -> Option<StreamId> {
    let tail = key.len().checked_sub(16)?;
    let ms = u64::from_be_bytes(key[tail..tail + 8].try_into().ok()?);
    let seq = u64::from_be_bytes(key[tail + 8..].try_into().ok()?);
    Some(StreamId { ms, seq })
}

fn decode(key: &[u8], value: &[u8]) -> Option<(StreamId, Said)> {
    let id = id_of(key)?;
    let line: StoredLine = serde_json::from_slice(value).ok()?;
    Some((
        id,
        Said {
            from: line.f,
            text: line.t,
            action: line.a,
            at: id.time(),
        },
    ))
}

impl DiskEngine {
    /// Opens (or creates) the store in `dir` and starts its writer.
    ///
    /// # Errors
    /// The directory cannot be created, or the store in it cannot be opened (another server
    /// holds it, or it is damaged).
    pub fn open(dir: &Path, retention: Retention) -> Result<DiskEngine, OpenError> {
        let failed = |reason: String| OpenError {
            path: dir.display().to_string(),
            reason,
        };
        std::fs::create_dir_all(dir).map_err(|e| failed(e.to_string()))?;
        let keyspace = fjall::Config::new(dir)
            .flush_workers(1)
            .compaction_workers(1)
            .open()
            .map_err(|e| failed(e.to_string()))?;
        let lines = keyspace
            .open_partition("lines", PartitionCreateOptions::default())
            .map_err(|e| failed(e.to_string()))?;
        let meta = keyspace
            .open_partition("meta", PartitionCreateOptions::default())
            .map_err(|e| failed(e.to_string()))?;
        let epoch = match meta.get(EPOCH_KEY).map_err(|e| failed(e.to_string()))? {
            Some(epoch) => String::from_utf8_lossy(&epoch).into_owned(),
            None => {
                let epoch = new_epoch();
                meta.insert(EPOCH_KEY, epoch.as_bytes())
                    .and_then(|()| keyspace.persist(PersistMode::SyncAll))
                    .map_err(|e| failed(e.to_string()))?;
                epoch
            }
        };
        let (jobs, queue) = std::sync::mpsc::sync_channel(QUEUE);
        let writer = Writer {
            keyspace,
            lines: lines.clone(),
            meta: meta.clone(),
            rooms: HashMap::new(),
            retention,
            path: dir.display().to_string(),
        };
        let writer = std::thread::Builder::new()
            .name("chat-store".into())
            .spawn(move || writer.run(queue))
            .map_err(|e| failed(e.to_string()))?;
        Ok(DiskEngine {
            lines,
            meta,
            jobs,
            writer: Mutex::new(Some(writer)),
            epoch,
            path: dir.to_path_buf(),
        })
    }

    fn read_failed(&self, e: &fjall::Error) -> Refusal {
        Refusal::new(
            ErrorCode::Internal,
            format!(
                "the chat store in {} could not be read: {e}",
                self.path.display()
            ),
        )
    }
}

impl Engine for DiskEngine {
    fn describe(&self) -> String {
        format!(
            "on disk in {} (this server only; every line is synced before it is acknowledged)",
            self.path.display()
        )
    }

    fn epoch(&self) -> String {
        self.epoch.clone()
    }

    fn append(&self, room: &str, said: Said, kept: Kept) -> Result<Confirmed, Refusal> {
        let job = Job::Line {
            room: room.to_string(),
            said,
            kept,
        };
        match self.jobs.try_send(job) {
            Ok(()) => Ok(Confirmed::Later),
            Err(TrySendError::Full(_)) => Err(Refusal::new(
                ErrorCode::ServerBusy,
                "the chat store is behind: the line was not sent; try again",
            )),
            Err(TrySendError::Disconnected(_)) => Err(Refusal::new(
                ErrorCode::Unavailable,
                "the chat store is closed: the server is stopping",
            )),
        }
    }

    fn recent(&self, room: &str, n: usize) -> Result<Recent, Refusal> {
        let mut lines = Vec::new();
        let mut last = None;
        for item in self.lines.prefix(room_prefix(room)).rev() {
            let (key, value) = item.map_err(|e| self.read_failed(&e))?;
            if last.is_none() {
                last = id_of(&key);
            }
            if lines.len() >= n {
                break;
            }
            if let Some(line) = decode(&key, &value) {
                lines.push(line);
            }
        }
        lines.reverse();
        Ok(Recent { lines, last })
    }

    fn since(
        &self,
        room: &str,
        after: StreamId,
        max: usize,
    ) -> Result<Option<Vec<(StreamId, Said)>>, Refusal> {
        let prefix = room_prefix(room);
        let oldest = match self.lines.prefix(&prefix).next() {
            Some(item) => item.map_err(|e| self.read_failed(&e))?.0,
            None => return Ok(None),
        };
        // Complete only when nothing after `after` was deleted: the oldest line kept is not
        // newer than it (deletion only ever takes the oldest).
        if id_of(&oldest).is_none_or(|oldest| oldest > after) {
            return Ok(None);
        }
        let end = line_key(
            room,
            StreamId {
                ms: u64::MAX,
                seq: u64::MAX,
            },
        );
        let mut found = Vec::new();
        for item in self
            .lines
            .range::<Vec<u8>, _>((Bound::Excluded(line_key(room, after)), Bound::Included(end)))
        {
            let (key, value) = item.map_err(|e| self.read_failed(&e))?;
            if found.len() + 1 >= max {
                return Ok(None);
            }
            if let Some(line) = decode(&key, &value) {
                found.push(line);
            }
        }
        Ok(Some(found))
    }

    fn in_order(&self, then: Box<dyn FnOnce() + Send>) {
        if let Err(
            TrySendError::Full(Job::Then(then)) | TrySendError::Disconnected(Job::Then(then)),
        ) = self.jobs.try_send(Job::Then(then))
        {
            // Overloaded or stopping: the notice goes out now rather than never.
            then();
        }
    }

    fn topic(&self, room: &str) -> Option<String> {
        self.meta
            .get(topic_key(room))
            .ok()
            .flatten()
            .map(|t| String::from_utf8_lossy(&t).into_owned())
    }

    fn set_topic(&self, room: &str, topic: Option<&str>) {
        // A topic lost to a full queue is the one thing not kept; the room shows it meanwhile.
        let _ = self.jobs.try_send(Job::Topic {
            room: room.to_string(),
            topic: topic.map(str::to_string),
        });
    }

    fn held_bytes(&self) -> usize {
        0
    }

    fn room_emptied(&self, _room: &str) {}

    fn close(&self) {
        let _ = self.jobs.send(Job::Stop);
        let writer = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(writer) = writer {
            let _ = writer.join();
        }
    }
}

/// What the writer does after a batch is synced, in order.
enum Done {
    Line(Kept, StreamId),
    Then(Box<dyn FnOnce() + Send>),
}

/// What the writer knows of a room it wrote to.
struct RoomState {
    last: Option<StreamId>,
    oldest: Option<StreamId>,
    count: usize,
}

/// The writer thread: the only one that writes lines.
struct Writer {
    keyspace: Keyspace,
    lines: PartitionHandle,
    meta: PartitionHandle,
    rooms: HashMap<String, RoomState>,
    retention: Retention,
    path: String,
}

impl Writer {
    fn run(mut self, queue: Receiver<Job>) {
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

    /// Writes one batch, syncs it, then confirms each line in order, then trims.
    fn write(&mut self, jobs: Vec<Job>) {
        let mut batch = self.keyspace.batch();
        let mut done: Vec<Done> = Vec::with_capacity(jobs.len());
        let mut touched: Vec<String> = Vec::new();
        for job in jobs {
            match job {
                Job::Line { room, said, kept } => {
                    let state = self.state(&room);
                    let id = next_position(state.last, now_ms());
                    state.last = Some(id);
                    state.oldest.get_or_insert(id);
                    state.count += 1;
                    let value = serde_json::to_vec(&StoredLine {
                        f: said.from,
                        t: said.text,
                        a: said.action,
                    })
                    .unwrap_or_default();
                    batch.insert(&self.lines, line_key(&room, id), value);
                    if !touched.contains(&room) {
                        touched.push(room);
                    }
                    done.push(Done::Line(kept, id));
                }
                Job::Topic { room, topic } => match topic {
                    Some(topic) => batch.insert(&self.meta, topic_key(&room), topic),
                    None => batch.remove(&self.meta, topic_key(&room)),
                },
                Job::Then(then) => done.push(Done::Then(then)),
                Job::Stop => {}
            }
        }
        let synced = batch
            .commit()
            .and_then(|()| self.keyspace.persist(PersistMode::SyncAll));
        match synced {
            Ok(()) => {
                for done in done {
                    match done {
                        Done::Line(kept, id) => kept(Ok(id), Confirmed::Later),
                        Done::Then(then) => then(),
                    }
                }
                self.trim(&touched);
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
                for done in done {
                    match done {
                        Done::Line(kept, _) => kept(Err(refusal.clone()), Confirmed::Later),
                        Done::Then(then) => then(),
                    }
                }
                // What the store holds is read again on the next line.
                for room in touched {
                    self.rooms.remove(&room);
                }
            }
        }
    }

    /// The room's state, read from the store the first time the writer meets it.
    fn state(&mut self, room: &str) -> &mut RoomState {
        if !self.rooms.contains_key(room) {
            let mut state = RoomState {
                last: None,
                oldest: None,
                count: 0,
            };
            for (key, _) in self.lines.prefix(room_prefix(room)).flatten() {
                let id = id_of(&key);
                state.oldest = state.oldest.or(id);
                state.last = id.or(state.last);
                state.count += 1;
            }
            self.rooms.insert(room.to_string(), state);
        }
        self.rooms
            .get_mut(room)
            .unwrap_or_else(|| unreachable!("inserted above"))
    }

    /// Deletes the oldest lines of `rooms` beyond the retention bounds.
    fn trim(&mut self, rooms: &[String]) {
        let cutoff = SystemTime::now()
            .checked_sub(Duration::from_secs(self.retention.age_secs))
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0));
        let mut batch: Batch = self.keyspace.batch();
        let mut any = false;
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
                any = true;
            }
        }
        if any && let Err(e) = batch.commit() {
            tracing::warn!(error = %e, "the chat store could not delete old lines");
        }
    }
}
