//! What the Redis engine needs of the chat it carries, as an interface. The hub implements
//! it; the engine's tasks (the subscriber, the presence loop, reconciliation) hand records and
//! events to it through these calls and never name the hub's types, so the engine and the hub
//! no longer import each other. A room being caught up is reached through [`CatchingUp`].

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::Cluster;
use super::record::{NodeMessage, Record};
use crate::services::chat::offset::StreamId;

/// The chat a Redis engine serves.
pub trait Host: Send + Sync + 'static {
    /// The engine, once attached.
    fn cluster(&self) -> Option<&Arc<Cluster>>;
    /// Attaches the engine (once, at start).
    fn attach(&self, cluster: Arc<Cluster>);
    /// Cancelled when the server stops.
    fn closed(&self) -> &CancellationToken;
    /// Redis became unreachable (`false`) or answers again (`true`).
    fn engine_state_changed(&self, up: bool);
    /// Every room with members here, each holding live records back until it has read back
    /// what it missed.
    fn rooms_to_catch_up(&self) -> Vec<Arc<dyn CatchingUp>>;
    /// A record published in `room`'s stream at `id`.
    fn apply(&self, room: &str, id: StreamId, record: Record);
    /// A message for participant `pid` of this server.
    fn deliver(&self, pid: u64, message: NodeMessage);
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
