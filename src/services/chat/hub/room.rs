//! One room: its members, its broadcast ring, its history, and the memory bounds on both.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use bytes::Bytes;
use tokio::sync::broadcast;

use super::lock;
use crate::protocol::{ChatMessage, ChatNotice, Message};
pub use crate::services::chat::engine::Said;
use crate::services::chat::offset::StreamId;

/// A room event as fanned out: the frame is encoded once for every member.
///
/// The frame's bytes belong to the room's store of recent frames (`RecentFrames`), which is
/// bounded in bytes per room and across all rooms; the broadcast ring only points at them. A
/// member that reaches an event whose bytes were already given back counts it as skipped, as
/// if the ring itself had passed it by. So a room's ring costs its slots (a few dozen bytes
/// each), not `room_queue` times the largest message.
#[derive(Debug)]
pub struct RoomEvent {
    /// The participant that caused it; its own task skips it.
    pub origin: u64,
    /// The encoded `chat_message` or `chat_notice` frame, while the room still keeps it.
    pub(super) frame: Weak<Bytes>,
    /// For messages (not notices): sender and text, to re-encode as history.
    pub(super) said: Option<Said>,
    /// For notices: what changed, for doors that say it in their own words (IRC).
    pub(super) change: Option<RoomChange>,
    /// In a cluster, the event's position in the room's stream.
    pub(super) offset: Option<StreamId>,
    /// For a notice that waited behind pending lines: the room's joins when its change
    /// happened (members who joined later skip it); otherwise `u64::MAX`.
    pub(super) joins: u64,
    /// The event as a door that speaks another protocol encodes it, once for all its members
    /// in the room, in up to [`DOOR_ENCODINGS`] variants (IRC: with and without `server-time`).
    door_encodings: [OnceLock<Bytes>; DOOR_ENCODINGS],
}

/// Where a member's join stands among a room's events (see [`RoomEvent::before`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JoinMark {
    /// The position up to which live lines are already in its history.
    pub after: Option<StreamId>,
    /// Its join's number among the room's joins.
    pub number: u64,
}

/// Variants of an event another door may keep encoded (see [`RoomEvent::encoded_for_door`]).
pub const DOOR_ENCODINGS: usize = 2;

/// A change in a room that its members are told of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomChange {
    /// `nick` entered.
    Joined(String),
    /// `nick` left.
    Left(String),
    /// `nick` was dropped for not reading.
    Dropped(String),
    /// `nick` left because its server (in a cluster) stopped answering.
    Gone(String),
    /// The cluster's Redis became unreachable (`up: false`) or came back: this server's own
    /// word to its members, not a change anyone made.
    Engine {
        /// Whether Redis answers again.
        up: bool,
    },
    /// A member changed its nick.
    Renamed {
        /// The nick before.
        old: String,
        /// The nick now.
        new: String,
    },
    /// `by` set the topic (`None`: cleared it).
    Topic {
        /// Who set it.
        by: String,
        /// The topic now.
        topic: Option<String>,
    },
}

impl RoomChange {
    /// How a native member reads it, in a `chat_notice`.
    pub fn text(&self) -> String {
        match self {
            RoomChange::Joined(nick) => format!("{nick} joined"),
            RoomChange::Left(nick) => format!("{nick} left"),
            RoomChange::Dropped(nick) => format!("{nick} was dropped: not reading"),
            RoomChange::Gone(nick) => format!("{nick} left: their server stopped answering"),
            RoomChange::Engine { up: false } => {
                "the chat engine (Redis) is unreachable: lines are refused until it is back"
                    .to_string()
            }
            RoomChange::Engine { up: true } => {
                "the chat engine (Redis) is back: chat goes on".to_string()
            }
            RoomChange::Renamed { old, new } => format!("{old} is now known as {new}"),
            RoomChange::Topic { by, topic: None } => format!("{by} cleared the topic"),
            RoomChange::Topic {
                by,
                topic: Some(topic),
            } => format!("{by} set the topic: {topic}"),
        }
    }
}

impl RoomEvent {
    /// The encoded frame, or `None` when memory bounds already gave it back.
    pub fn frame(&self) -> Option<Arc<Bytes>> {
        self.frame.upgrade()
    }

    /// The line, when the event is one.
    pub fn said(&self) -> Option<&Said> {
        self.said.as_ref()
    }

    /// The change, when the event is a notice of one.
    pub fn change(&self) -> Option<&RoomChange> {
        self.change.as_ref()
    }

    /// A line's position in the room's history (notices have none).
    pub fn offset(&self) -> Option<StreamId> {
        self.offset
    }

    /// Whether the event happened before the member's join (`mark` from its [`Joined`]):
    /// a line its history already holds, or a change its member list already shows. Every
    /// door skips these.
    ///
    /// [`Joined`]: super::Joined
    pub fn before(&self, mark: JoinMark) -> bool {
        let in_history = mark
            .after
            .is_some_and(|after| self.offset.is_some_and(|o| o <= after));
        in_history || self.joins < mark.number
    }

    /// The event in another door's words, variant `variant` (below [`DOOR_ENCODINGS`]):
    /// encoded by the first member that needs it, shared by the rest, as the native frame is.
    pub fn encoded_for_door(&self, variant: usize, encode: impl FnOnce() -> Bytes) -> Bytes {
        match self.door_encodings.get(variant) {
            Some(slot) => slot.get_or_init(encode).clone(),
            None => encode(),
        }
    }
}

/// Bytes of frames all rooms keep together, against `chat.memory_bytes`.
#[derive(Debug)]
pub(super) struct FrameBudget {
    pub(super) used: AtomicUsize,
    pub(super) limit: usize,
}

/// A room's recent frames: the only owners of their bytes.
#[derive(Debug, Default)]
pub(super) struct RecentFrames {
    pub(super) frames: VecDeque<Arc<Bytes>>,
    pub(super) bytes: usize,
}

/// The participant id a room keeps for a member on another server of a cluster (ids of this
/// server's participants start at 1).
pub(super) const REMOTE: u64 = 0;

#[derive(Debug, Default)]
pub(super) struct Members {
    /// Every member by nick: this server's by participant id, other servers' as [`REMOTE`].
    pub(super) by_nick: BTreeMap<String, u64>,
    /// Set when the last member of this server left and the room is being removed: joiners
    /// retry.
    pub(super) closed: bool,
    /// Joins so far: each joiner's number is the count with its own join. A notice that waits
    /// behind pending lines carries the count when its change happened, and members who joined
    /// after it skip it (their member list already says what it would tell).
    pub(super) joins: u64,
}

impl Members {
    /// Whether none of the members is on this server.
    pub(super) fn none_here(&self) -> bool {
        self.by_nick.values().all(|&id| id == REMOTE)
    }
}

/// One room.
#[derive(Debug)]
pub struct Room {
    /// The room's name.
    pub name: String,
    pub(super) events: broadcast::Sender<Arc<RoomEvent>>,
    pub(super) members: Mutex<Members>,
    pub(super) recent: Mutex<RecentFrames>,
    pub(super) frames_budget: Arc<FrameBudget>,
    /// Most bytes of recent frames this room keeps (`chat.room_bytes`).
    pub(super) room_bytes: usize,
    /// Most recent frames kept: the ring's capacity (older ones it has overwritten anyway).
    pub(super) room_queue: usize,
    /// The topic, once someone set one.
    pub(super) topic: Mutex<Option<String>>,
    /// In a cluster: how far the room has followed its stream.
    pub(super) sync: Mutex<super::room_sync::RoomSync>,
}

impl Drop for Room {
    fn drop(&mut self) {
        let frames = lock(&self.recent).bytes;
        self.frames_budget.used.fetch_sub(frames, Ordering::Relaxed);
    }
}

impl Room {
    /// Broadcasts `said`, at `offset` in the room's history (numbered by the engine that
    /// kept it, in its `epoch`).
    pub(super) fn broadcast_line(&self, origin: u64, said: Said, offset: Option<(StreamId, &str)>) {
        let message = Message::ChatMessage(ChatMessage {
            room: Some(self.name.clone()),
            from: said.from.clone(),
            to: None,
            text: said.text.clone(),
            action: said.action,
            history: false,
            offset: offset.map(|(id, epoch)| id.offset_in(epoch)),
            at: None,
        });
        let event = self.event(
            origin,
            message.to_frame(),
            Some(said),
            None,
            offset.map(|o| o.0),
            u64::MAX,
        );
        // An error only means no member is listening right now.
        let _ = self.events.send(event);
    }

    pub(super) fn notice(&self, origin: u64, change: RoomChange) {
        self.notice_at(origin, change, None);
    }

    pub(super) fn notice_at(&self, origin: u64, change: RoomChange, offset: Option<StreamId>) {
        self.send_notice(origin, change, offset, u64::MAX);
    }

    /// A notice of a change that happened when the room had seen `joins` joins: members who
    /// joined after skip it.
    pub(super) fn notice_after_joins(&self, origin: u64, change: RoomChange, joins: u64) {
        self.send_notice(origin, change, None, joins);
    }

    fn send_notice(&self, origin: u64, change: RoomChange, offset: Option<StreamId>, joins: u64) {
        let message = Message::ChatNotice(ChatNotice {
            room: Some(self.name.clone()),
            text: change.text(),
        });
        let event = self.event(
            origin,
            message.to_frame(),
            None,
            Some(change),
            offset,
            joins,
        );
        let _ = self.events.send(event);
    }

    /// An event whose frame the room's store of recent frames owns. The store gives back its
    /// oldest frames while it holds more than the ring's capacity, more than `room_bytes`, or
    /// while all rooms together hold more than `memory_bytes` (the newest frame always stays,
    /// so a line reaches members that keep up).
    fn event(
        &self,
        origin: u64,
        frame: Vec<u8>,
        said: Option<Said>,
        change: Option<RoomChange>,
        offset: Option<StreamId>,
        joins: u64,
    ) -> Arc<RoomEvent> {
        let frame = Arc::new(Bytes::from(frame));
        let event = Arc::new(RoomEvent {
            origin,
            frame: Arc::downgrade(&frame),
            said,
            change,
            offset,
            joins,
            door_encodings: Default::default(),
        });
        let budget = &self.frames_budget;
        let mut recent = lock(&self.recent);
        recent.bytes += frame.len();
        budget.used.fetch_add(frame.len(), Ordering::Relaxed);
        recent.frames.push_back(frame);
        while recent.frames.len() > 1
            && (recent.frames.len() > self.room_queue
                || recent.bytes > self.room_bytes
                || budget.used.load(Ordering::Relaxed) > budget.limit)
        {
            if let Some(old) = recent.frames.pop_front() {
                recent.bytes -= old.len();
                budget.used.fetch_sub(old.len(), Ordering::Relaxed);
            }
        }
        event
    }

    /// The room's topic, if one was set.
    pub fn topic(&self) -> Option<String> {
        lock(&self.topic).clone()
    }

    /// How many are in the room.
    pub fn member_count(&self) -> usize {
        lock(&self.members).by_nick.len()
    }

    /// The nicks in the room, sorted.
    pub fn nicks(&self) -> Vec<String> {
        lock(&self.members).by_nick.keys().cloned().collect()
    }
}

pub(super) fn history_frame(room: &str, said: &Said, offset: Option<String>) -> Bytes {
    Bytes::from(
        Message::ChatMessage(ChatMessage {
            room: Some(room.to_string()),
            from: said.from.clone(),
            to: None,
            text: said.text.clone(),
            action: said.action,
            history: true,
            offset,
            at: Some(humantime::format_rfc3339_millis(said.at).to_string()),
        })
        .to_frame(),
    )
}
