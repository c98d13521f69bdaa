//! What the disk engine keeps and how: the store's layout (keys and values) and its handles,
//! shared by the engine's readers and its one writer.
//!
//! Keys: `[room length u16][room][ms u64][seq u64]`, big-endian, so a room's lines are one
//! contiguous, ordered range. Values: the line as JSON (`f` nick, `t` text, `a` action).
//! Direct messages kept for a signed-out user are keyed the same way by user name, in their
//! own partition; topics and the epoch are in `meta`.
//!
//! Why the handles can be replaced: after a failed sync (a full disk, an I/O error) fjall
//! marks the keyspace poisoned and refuses every later write, so chat would stay refused when
//! space is back. The writer then drops this instance and opens the store again
//! ([`SharedStore::reopen`]); readers hold the lock only while they read, so no handle of the
//! old instance outlives it (two instances on one directory would corrupt it).

use std::path::{Path, PathBuf};
use std::sync::{RwLock, RwLockReadGuard};

use fjall::{Keyspace, PartitionCreateOptions, PartitionHandle};
use serde::{Deserialize, Serialize};

use super::Said;
use crate::services::chat::offset::StreamId;

/// One open instance of the store.
pub(super) struct Store {
    pub(super) keyspace: Keyspace,
    pub(super) lines: PartitionHandle,
    pub(super) meta: PartitionHandle,
    pub(super) directs: PartitionHandle,
}

impl Store {
    fn open(dir: &Path) -> fjall::Result<Store> {
        let keyspace = fjall::Config::new(dir)
            .flush_workers(1)
            .compaction_workers(1)
            .open()?;
        let lines = keyspace.open_partition("lines", PartitionCreateOptions::default())?;
        let meta = keyspace.open_partition("meta", PartitionCreateOptions::default())?;
        let directs = keyspace.open_partition("directs", PartitionCreateOptions::default())?;
        Ok(Store {
            keyspace,
            lines,
            meta,
            directs,
        })
    }
}

/// The store's current instance, or none while one failed to open again.
pub(super) struct SharedStore {
    current: RwLock<Option<Store>>,
    dir: PathBuf,
}

impl SharedStore {
    pub(super) fn open(dir: &Path) -> fjall::Result<SharedStore> {
        Ok(SharedStore {
            current: RwLock::new(Some(Store::open(dir)?)),
            dir: dir.to_path_buf(),
        })
    }

    /// The current instance, held for one read or one batch.
    pub(super) fn get(&self) -> RwLockReadGuard<'_, Option<Store>> {
        self.current.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops the current instance (once no reader holds it), then opens the store again:
    /// fjall recovers from its journal what was synced, and nothing that was not. Only the
    /// writer calls this, holding no guard of its own.
    pub(super) fn reopen(&self) -> fjall::Result<()> {
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        drop(current.take());
        *current = Some(Store::open(&self.dir)?);
        Ok(())
    }
}

/// A line as the store keeps it (its time is its key's).
#[derive(Serialize, Deserialize)]
pub(super) struct StoredLine {
    pub(super) f: String,
    pub(super) t: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(super) a: bool,
}

pub(super) fn stored(said: Said) -> Vec<u8> {
    serde_json::to_vec(&StoredLine {
        f: said.from,
        t: said.text,
        a: said.action,
    })
    .unwrap_or_default()
}

pub(super) const EPOCH_KEY: &[u8] = b"epoch";

pub(super) fn topic_key(room: &str) -> Vec<u8> {
    let mut key = b"topic:".to_vec();
    key.extend_from_slice(room.as_bytes());
    key
}

/// The first bytes of every key of `room` (or of a user's kept direct messages).
pub(super) fn room_prefix(room: &str) -> Vec<u8> {
    let len = u16::try_from(room.len()).unwrap_or(u16::MAX);
    let mut key = Vec::with_capacity(2 + room.len() + 16);
    key.extend_from_slice(&len.to_be_bytes());
    key.extend_from_slice(room.as_bytes());
    key
}

/// The greatest key a line of `room` can have: the end of its range.
pub(super) fn last_key(room: &str) -> Vec<u8> {
    line_key(room, StreamId::MAX)
}

pub(super) fn line_key(room: &str, id: StreamId) -> Vec<u8> {
    let mut key = room_prefix(room);
    key.extend_from_slice(&id.ms.to_be_bytes());
    key.extend_from_slice(&id.seq.to_be_bytes());
    key
}

/// The room (or user) a line's key belongs to; `None` for a key that is not a line's.
pub(super) fn room_of(key: &[u8]) -> Option<&str> {
    let len = usize::from(u16::from_be_bytes(key.get(..2)?.try_into().ok()?));
    let room = key.get(2..2 + len)?;
    (key.len() == 2 + len + 16).then_some(())?;
    std::str::from_utf8(room).ok()
}

/// The position a key ends with; `None` for a key that is not a line's.
pub(super) fn id_of(key: &[u8]) -> Option<StreamId> {
    let tail = key.len().checked_sub(16)?;
    let ms = u64::from_be_bytes(key[tail..tail + 8].try_into().ok()?);
    let seq = u64::from_be_bytes(key[tail + 8..].try_into().ok()?);
    Some(StreamId { ms, seq })
}

pub(super) fn decode(key: &[u8], value: &[u8]) -> Option<(StreamId, Said)> {
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
