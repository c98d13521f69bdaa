//! The chat hub: rooms, the directory of participants by nick, and delivery between them.
//!
//! Hot paths take no global lock. A room message is encoded once and handed to a per-room
//! broadcast ring, from which every member's task writes the same bytes; the ring is bounded, so a
//! member that falls behind skips lines (and is told) instead of growing memory, and one that
//! stops reading is dropped by its send timeout. Direct messages go into each
//! recipient's bounded inbox; a full inbox drops that recipient. The hub-wide maps are locked
//! only to join, leave, rename, and look up a direct message's recipient.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::metrics::ChatCounters;
use std::sync::{Arc, RwLock};

use tokio_util::sync::CancellationToken;

mod engine_side;
mod host_side;
mod kept_directs;
mod membership;
mod nicks;
mod room;
mod room_sync;
mod scrollback;

use super::engine::Engine;
use super::engine::Settled;
pub use super::engine::{Confirmed, JoinOptions, Kept, MAX_CATCH_UP};
use super::names;
pub use super::participant::{Delivery, Participant, Receipt};
use crate::config::ChatConfig;
use crate::protocol::{Refusal, RoomInfo};
pub use membership::Joined;
pub use room::{DOOR_ENCODINGS, JoinMark, Room, RoomChange, RoomEvent, Said};
use room::{FrameBudget, history_frame};
pub use scrollback::Page;

use super::lock;

/// Characters of a topic shown in a room list (`/topic` shows it whole).
pub const LISTED_TOPIC_CHARS: usize = 80;

/// Bytes of JSON a room list holds at most: under the smallest frame limit a server may
/// configure (64 KiB), so the answer always fits one message.
pub const LISTED_ROOMS_BYTES: usize = 48 * 1024;

/// All of chat.
#[derive(Debug)]
pub struct ChatHub {
    /// Chat limits and the bot's settings.
    pub config: ChatConfig,
    rooms: RwLock<HashMap<String, Arc<Room>>>,
    /// Everyone reachable, by the skeleton of their nick (unique server-wide): the nick as
    /// they chose it, and the participant.
    directory: RwLock<HashMap<String, (String, Participant)>>,
    /// Skeletons of configured users' names, each reserved for that user's own sessions.
    reserved: RwLock<HashMap<String, String>>,
    /// This server's participants by id: where messages from other servers are delivered.
    by_id: RwLock<HashMap<u64, Participant>>,
    /// Where lines are kept, and how far chat reaches (this server, or a cluster's).
    engine: Arc<dyn Engine>,
    frames_budget: Arc<FrameBudget>,
    next_id: AtomicU64,
    closed: CancellationToken,
    /// Deliveries, skipped lines and dropped members, as the server's metrics show them.
    pub counters: ChatCounters,
}

impl ChatHub {
    /// An empty hub keeping lines in `engine`; the bot (if enabled) is started by
    /// `bot::start`.
    pub fn new(config: ChatConfig, engine: Arc<dyn Engine>) -> Arc<ChatHub> {
        Arc::new(ChatHub {
            config: config.clone(),
            rooms: RwLock::default(),
            directory: RwLock::default(),
            reserved: RwLock::default(),
            by_id: RwLock::default(),
            engine,
            frames_budget: Arc::new(FrameBudget {
                used: AtomicUsize::new(0),
                limit: config.memory_bytes,
            }),
            next_id: AtomicU64::new(1),
            closed: CancellationToken::new(),
            counters: ChatCounters::default(),
        })
    }

    /// Members of all rooms now (a member of two rooms counts twice).
    pub fn member_count(&self) -> usize {
        self.rooms
            .read()
            .map(|rooms| rooms.values().map(|room| room.member_count()).sum())
            .unwrap_or(0)
    }

    /// The engine: where lines are kept and how far chat reaches.
    pub(in crate::services::chat) fn engine(&self) -> &Arc<dyn Engine> {
        &self.engine
    }

    /// This server's name among the servers chat spans (`None`: it is the only one).
    pub fn server_name(&self) -> Option<String> {
        self.engine.server_name()
    }

    /// Whether what the engine needs beyond this server answers (`None`: it needs nothing).
    pub fn engine_reachable(&self) -> Option<bool> {
        self.engine.reachable()
    }

    /// Stops the hub's own tasks (the bot, the engine's) when the server stops. In a cluster,
    /// this server's members first leave every room at once (the engine's `depart`).
    pub async fn close(&self) {
        self.engine.depart().await;
        self.closed.cancel();
        let engine = Arc::clone(&self.engine);
        let _ = tokio::task::spawn_blocking(move || engine.close()).await;
    }

    /// Where lines are kept, for `ferry serve`'s banner.
    pub fn engine_description(&self) -> String {
        self.engine.describe()
    }

    /// Cancelled when the hub closes.
    pub fn closed(&self) -> &CancellationToken {
        &self.closed
    }

    /// The nicks in room `name`, if it exists.
    pub fn nicks_in(&self, name: &str) -> Option<Vec<String>> {
        self.rooms
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .map(|room| room.nicks())
    }

    /// Bytes of history held in this server's memory now.
    pub fn history_bytes(&self) -> usize {
        self.engine.held_bytes()
    }

    /// Bytes of recent room frames all rooms keep now.
    pub fn frame_bytes(&self) -> usize {
        self.frames_budget.used.load(Ordering::Relaxed)
    }

    /// Rooms that exist now.
    pub fn room_count(&self) -> usize {
        self.rooms.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Says `text` in `room` as `nick`, once the engine kept it: confirmed at once in memory;
    /// otherwise request `id` is confirmed to `participant` later, with
    /// [`Delivery::Recorded`] (with no `id`, only a refusal is).
    ///
    /// # Errors
    /// The engine cannot take the line (nothing was sent).
    pub fn say(
        &self,
        room: &Arc<Room>,
        participant: &Participant,
        nick: &str,
        text: &str,
        action: bool,
        id: Option<u64>,
    ) -> Result<Confirmed, Refusal> {
        let said = Said {
            from: nick.to_string(),
            text: text.to_string(),
            action,
            at: std::time::SystemTime::now(),
        };
        let kept = engine_side::when_kept(
            Arc::clone(room),
            participant.clone(),
            id,
            said.clone(),
            self.engine.epoch(),
        );
        self.engine.say(&room.name, participant, said, id, kept)
    }

    /// Sets (or, with an empty one, clears) `room`'s topic as `nick`, and tells the room.
    ///
    /// # Errors
    /// The engine cannot take it (nothing was changed).
    pub fn set_topic(
        &self,
        room: &Arc<Room>,
        participant: &Participant,
        nick: &str,
        topic: &str,
        id: Option<u64>,
    ) -> Result<Confirmed, Refusal> {
        let topic = (!topic.is_empty()).then(|| topic.to_string());
        // Its setter reads it back at once (in a cluster the record sets the same everywhere);
        // the room hears of it once it is kept, and a topic not kept is taken back.
        let before = std::mem::replace(&mut *lock(&room.topic), topic.clone());
        let refused_now = before.clone();
        let joins = lock(&room.members).joins;
        let (told, origin, set) = (Arc::clone(room), participant.id, topic.clone());
        let change = RoomChange::Topic {
            by: nick.to_string(),
            topic: topic.clone(),
        };
        let settled: Settled = Box::new(move |kept| {
            if kept {
                told.notice_after_joins(origin, change, joins);
            } else {
                take_back(&told, &set, before);
            }
        });
        let answer =
            self.engine
                .set_topic(&room.name, participant, nick, topic.as_deref(), id, settled);
        if answer.is_err() {
            take_back(room, &topic, refused_now);
        }
        answer
    }

    /// The rooms for `chat_rooms`: this server's, or in a cluster every server's.
    ///
    /// # Errors
    /// The engine is unreachable.
    pub async fn list_rooms(&self) -> Result<Vec<RoomInfo>, Refusal> {
        let Some(mut list) = self.engine.rooms().await? else {
            return Ok(self.rooms());
        };
        for info in &mut list {
            info.topic = info
                .topic
                .take()
                .map(|t| t.chars().take(LISTED_TOPIC_CHARS).collect());
        }
        let mut bytes = 0;
        list.retain(|info| {
            bytes += serde_json::to_vec(info).map_or(0, |json| json.len() + 1);
            bytes <= LISTED_ROOMS_BYTES
        });
        Ok(list)
    }

    /// The rooms, sorted by name: name, member count, topic (shortened to
    /// [`LISTED_TOPIC_CHARS`]), as many as fit [`LISTED_ROOMS_BYTES`] of JSON, so that the
    /// answer is one message however many rooms there are and whatever their topics hold.
    pub fn rooms(&self) -> Vec<RoomInfo> {
        let rooms = self.rooms.read().unwrap_or_else(|e| e.into_inner());
        let mut list: Vec<RoomInfo> = rooms
            .values()
            .map(|room| {
                let mut info = room_info(room);
                info.topic = info
                    .topic
                    .map(|t| t.chars().take(LISTED_TOPIC_CHARS).collect());
                info
            })
            .collect();
        list.sort_by(|a, b| a.room.cmp(&b.room));
        let mut bytes = 0;
        list.retain(|info| {
            bytes += serde_json::to_vec(info).map_or(0, |json| json.len() + 1);
            bytes <= LISTED_ROOMS_BYTES
        });
        list
    }
}

/// Sets `room`'s topic back to `before` when it still shows `set`, a topic that was not kept
/// (one set since stays).
fn take_back(room: &Room, set: &Option<String>, before: Option<String>) {
    let mut now = lock(&room.topic);
    if *now == *set {
        *now = before;
    }
}

/// How `chat_rooms` shows a room.
pub fn room_info(room: &Room) -> RoomInfo {
    RoomInfo {
        room: room.name.clone(),
        members: room.member_count() as u64,
        topic: room.topic(),
    }
}

#[cfg(test)]
mod tests;
