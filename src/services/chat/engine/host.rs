//! What an engine whose stream carries every change to every server (Redis) needs of the
//! chat it serves, as an interface. The hub implements it; the engine's tasks (the subscriber,
//! the presence loop, reconciliation) hand records and events to it through these calls and
//! never name the hub's types, so the engine and the hub do not import each other. A room
//! being caught up is reached through [`CatchingUp`].

use std::sync::Arc;

use super::record::Record;
use crate::services::chat::offset::StreamId;
use crate::services::chat::participant::Delivery;

/// The chat an engine that carries changes serves.
pub trait Host: Send + Sync + 'static {
    /// Redis became unreachable (`false`) or answers again (`true`).
    fn engine_state_changed(&self, up: bool);
    /// Every room with members here, each holding live records back until it has read back
    /// what it missed.
    fn rooms_to_catch_up(&self) -> Vec<Arc<dyn CatchingUp>>;
    /// A record published in `room`'s stream at `id` (of data epoch `epoch`; records made by
    /// this server name it `node`).
    fn apply(&self, room: &str, node: &str, epoch: &str, id: StreamId, record: Record);
    /// A delivery from another server for participant `pid` of this server.
    fn deliver(&self, pid: u64, delivery: Delivery);
    /// Ends the session holding `nick` here, telling it `reason`.
    fn evict(&self, nick: &str, reason: &str);
    /// What this server holds, for reconciliation: its nicks and its members of each room.
    fn local_state(&self) -> serde_json::Value;
}

/// A room reading back what it missed while Redis was away.
pub trait CatchingUp: Send + Sync {
    /// The room's name.
    fn name(&self) -> &str;
    /// The last position it applied; `None` for a room that has applied nothing yet.
    fn applied(&self) -> Option<StreamId>;
    /// Applies entries read back (`done`: the last batch; live records flow again).
    fn catch_up(&self, node: &str, epoch: &str, entries: Vec<(StreamId, Record)>, done: bool);
}
