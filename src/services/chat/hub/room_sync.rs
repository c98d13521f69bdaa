//! A room following its stream, on a server in a cluster: records arrive from the subscriber
//! (live, on the room's channel) or from a read-back (after a reconnection); each is applied
//! once, in stream order. Until the room's first join on this server has told it where the
//! stream stood (`seed`), and while it reads back what it missed (`catch_up`), live records
//! wait in `pending`, so a member list read at one point of the stream and the records after
//! it always line up.

use super::lock;
use super::room::{REMOTE, Room, RoomChange};
use crate::services::chat::engine::record::Record;
use crate::services::chat::offset::StreamId;

/// How far a room has followed its stream.
#[derive(Debug)]
pub(crate) struct RoomSync {
    /// The last record applied; `None` until the room is seeded.
    applied: Option<StreamId>,
    /// Live records held back while the room is not seeded or catches up.
    pending: Option<Vec<(StreamId, Record)>>,
}

impl Default for RoomSync {
    fn default() -> Self {
        RoomSync {
            applied: None,
            pending: Some(Vec::new()),
        }
    }
}

impl Room {
    /// The last record applied, once seeded.
    pub(crate) fn applied(&self) -> Option<StreamId> {
        lock(&self.sync).applied
    }

    /// A live record from the room's channel.
    pub(crate) fn apply(&self, node: &str, epoch: &str, id: StreamId, record: Record) {
        let mut sync = lock(&self.sync);
        if let Some(pending) = &mut sync.pending {
            pending.push((id, record));
            return;
        }
        self.apply_in_order(&mut sync, node, epoch, id, record);
    }

    /// Starts the room at the stream's point `id` (its first join here): the members and topic
    /// then, and any live records after it.
    pub(crate) fn seed(
        &self,
        node: &str,
        epoch: &str,
        id: StreamId,
        members: &[String],
        topic: Option<String>,
    ) {
        let mut sync = lock(&self.sync);
        if sync.applied.is_some() {
            return;
        }
        {
            let mut here = lock(&self.members);
            for nick in members {
                here.by_nick.entry(nick.clone()).or_insert(REMOTE);
            }
        }
        *lock(&self.topic) = topic;
        sync.applied = Some(id);
        for (id, record) in sync.pending.take().unwrap_or_default() {
            self.apply_in_order(&mut sync, node, epoch, id, record);
        }
    }

    /// Holds live records back while the room reads back what it missed; `false` when the
    /// room is not seeded yet (its first join will seed it).
    pub(crate) fn begin_catch_up(&self) -> bool {
        let mut sync = lock(&self.sync);
        if sync.applied.is_none() {
            return false;
        }
        sync.pending.get_or_insert_with(Vec::new);
        true
    }

    /// Applies records read back; with `done`, then the live records held back meanwhile.
    pub(crate) fn catch_up(
        &self,
        node: &str,
        epoch: &str,
        entries: Vec<(StreamId, Record)>,
        done: bool,
    ) {
        let mut sync = lock(&self.sync);
        for (id, record) in entries {
            self.apply_in_order(&mut sync, node, epoch, id, record);
        }
        if done {
            for (id, record) in sync.pending.take().unwrap_or_default() {
                self.apply_in_order(&mut sync, node, epoch, id, record);
            }
        }
    }

    /// Applies `record` unless it is not after the last one applied (a record read back and
    /// received live, or one from before the seed).
    fn apply_in_order(
        &self,
        sync: &mut RoomSync,
        node: &str,
        epoch: &str,
        id: StreamId,
        record: Record,
    ) {
        if sync.applied.is_some_and(|applied| id <= applied) {
            return;
        }
        sync.applied = Some(id);
        let (from_node, pid) = record.origin();
        let here = from_node == node;
        // This server's own members are entered and removed by the calls that make the
        // records; the records only move other servers' members.
        let origin = if here { pid } else { REMOTE };
        let change = match record {
            record @ Record::Say { .. } => {
                if let Some(said) = record.into_said(id) {
                    self.broadcast_line(origin, said, Some((id, epoch)));
                }
                return;
            }
            Record::Join { f, .. } => {
                if !here {
                    lock(&self.members)
                        .by_nick
                        .entry(f.clone())
                        .or_insert(REMOTE);
                }
                RoomChange::Joined(f)
            }
            Record::Leave {
                f, dropped, gone, ..
            } => {
                if !here {
                    let mut members = lock(&self.members);
                    if members.by_nick.get(&f) == Some(&REMOTE) {
                        members.by_nick.remove(&f);
                    }
                }
                if gone {
                    RoomChange::Gone(f)
                } else if dropped {
                    RoomChange::Dropped(f)
                } else {
                    RoomChange::Left(f)
                }
            }
            Record::Nick { f, t, .. } => {
                if !here {
                    let mut members = lock(&self.members);
                    if members.by_nick.get(&f) == Some(&REMOTE) {
                        members.by_nick.remove(&f);
                    }
                    members.by_nick.entry(t.clone()).or_insert(REMOTE);
                }
                RoomChange::Renamed { old: f, new: t }
            }
            Record::Topic { f, t, .. } => {
                lock(&self.topic).clone_from(&t);
                RoomChange::Topic { by: f, topic: t }
            }
        };
        self.notice_at(origin, change, Some(id));
    }
}
