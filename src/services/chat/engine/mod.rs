//! Where a room's lines are kept: the one interface the chat hub calls, and its engines.
//!
//! The hub decides who hears what; an engine decides when a line counts as said and where it
//! is kept. The hub hands each line to [`Engine::append`] with what to do once it is kept
//! ([`Kept`]: broadcast it with its position, acknowledge it), reads a room's past with
//! [`Engine::recent`] and [`Engine::since`], and never learns which engine runs. Engines know
//! nothing of the hub: they see rooms by name and lines as [`Said`]. Anchored on Centrifugo,
//! whose memory and Redis engines sit behind one interface with history by offset and epoch.
//!
//! - [`memory`]: lines in memory, gone when a room empties or the server stops (tests,
//!   `[chat] store = "memory"`).
//! - [`disk`]: lines in an embedded store under the server's state directory, acknowledged
//!   only once synced (the single-server default).
//!
//! The Redis engine (`cluster`) still has its own path through the hub; it is the next to move
//! behind this interface.

pub mod disk;
mod disk_retention;
mod disk_store;
mod disk_writer;
pub mod memory;

use std::time::SystemTime;

use super::offset::StreamId;
use crate::protocol::Refusal;

/// A line as the engines keep it, to re-encode for later joiners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Said {
    /// The sender's nick.
    pub from: String,
    /// The line.
    pub text: String,
    /// An action (`/me`).
    pub action: bool,
    /// When it was said (IRC's `server-time` on history).
    pub at: SystemTime,
}

/// When an engine ran [`Kept`]: how the hub confirms the line to its sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmed {
    /// Inside [`Engine::append`]: answer now.
    Now,
    /// Later, from the engine's own task: the hub tells the sender then (`Delivery::Recorded`).
    Later,
}

/// What the hub does once a line is kept (or could not be): called exactly once, in the order
/// lines were appended, with the line's position or the refusal.
pub type Kept = Box<dyn FnOnce(Result<StreamId, Refusal>, Confirmed) + Send>;

/// What the hub does once a direct message for someone signed out was kept (with how many
/// now wait for them) or could not be.
pub type KeptDirect = Box<dyn FnOnce(Result<usize, Refusal>) + Send>;

/// What the hub does with the direct messages kept for someone who just signed in.
pub type TakeDirects = Box<dyn FnOnce(Vec<Said>) + Send>;

/// A room's latest lines, and the position of its last line.
#[derive(Debug, Default)]
pub struct Recent {
    /// Oldest first.
    pub lines: Vec<(StreamId, Said)>,
    /// The room's last line's position (also when `lines` is empty because none were asked
    /// for): a joiner skips live lines up to it, which it already has.
    pub last: Option<StreamId>,
}

/// Where lines are kept. Every method is quick: an engine that writes to disk does so on its
/// own thread and confirms through [`Kept`].
pub trait Engine: Send + Sync + std::fmt::Debug {
    /// For `ferry serve`'s banner: which engine runs, and where.
    fn describe(&self) -> String;

    /// The epoch of the data: positions from another epoch say nothing about this one (a
    /// store that was wiped, a memory engine after a restart).
    fn epoch(&self) -> String;

    /// Keeps `said` as room `room`'s next line, then runs `kept`.
    ///
    /// # Errors
    /// The engine cannot take it now (its queue is full, its store failed); `kept` was not run.
    fn append(&self, room: &str, said: Said, kept: Kept) -> Result<Confirmed, Refusal>;

    /// Up to `n` of the room's latest lines, and its last line's position.
    ///
    /// # Errors
    /// The store could not be read.
    fn recent(&self, room: &str, n: usize) -> Result<Recent, Refusal>;

    /// The room's lines after `after`; `None` when some of them are no longer kept or `max`
    /// or more follow it (the client is then told it is not recovered).
    ///
    /// # Errors
    /// The store could not be read.
    fn since(
        &self,
        room: &str,
        after: StreamId,
        max: usize,
    ) -> Result<Option<Vec<(StreamId, Said)>>, Refusal>;

    /// Runs `then` once every line appended before it was kept (or refused): the hub's notices
    /// (joins, leaves, renames, topics) reach members in the order they happened among the
    /// lines, as a cluster's stream orders them.
    fn in_order(&self, then: Box<dyn FnOnce() + Send>);

    /// Up to `n` of the room's latest lines said before `before_ms` (ms since the Unix
    /// epoch), oldest first: a page of scrollback (IRC's `CHATHISTORY`).
    ///
    /// # Errors
    /// The store could not be read.
    fn older(&self, room: &str, before_ms: u64, n: usize)
    -> Result<Vec<(StreamId, Said)>, Refusal>;

    /// Up to `n` of the room's earliest lines said after `after_ms`, oldest first.
    ///
    /// # Errors
    /// The store could not be read.
    fn newer(&self, room: &str, after_ms: u64, n: usize) -> Result<Vec<(StreamId, Said)>, Refusal>;

    /// The room's topic as last set, kept as its lines are.
    fn topic(&self, room: &str) -> Option<String>;

    /// Keeps the room's topic (`None`: cleared).
    fn set_topic(&self, room: &str, topic: Option<&str>);

    /// Keeps a direct message for configured user `user`, who is not signed in, until they
    /// next join chat; at most `limit` wait for one user (past it, a clear refusal).
    fn keep_direct(&self, user: &str, said: Said, limit: usize, kept: KeptDirect);

    /// Hands over, oldest first, and forgets the direct messages kept for `user`.
    fn take_directs(&self, user: &str, take: TakeDirects);

    /// Bytes of lines this engine holds in the server's memory (not on disk).
    fn held_bytes(&self) -> usize;

    /// No member of the room is left on this server: an engine that keeps nothing beyond its
    /// members may forget the room.
    fn room_emptied(&self, room: &str);

    /// The server stops: what was taken is kept before this returns.
    fn close(&self);
}

/// The next position after `last` for a line kept at `now_ms`: Redis's rule for stream IDs,
/// so positions stay ordered even when the clock steps back.
pub fn next_position(last: Option<StreamId>, now_ms: u64) -> StreamId {
    match last {
        Some(last) if last.ms >= now_ms => StreamId {
            ms: last.ms,
            seq: last.seq + 1,
        },
        _ => StreamId { ms: now_ms, seq: 0 },
    }
}

/// The refusal for a direct message to someone whose kept messages are at the bound.
pub fn directs_full(user: &str, limit: usize) -> Refusal {
    Refusal::new(
        crate::protocol::ErrorCode::ServerBusy,
        format!(
            "{user} is not signed in and already has {limit} messages waiting, the most kept: this one was not sent"
        ),
    )
}

/// What the sender of a direct message kept for signed-out `user` is told (`waiting`: how
/// many wait for them now).
pub fn kept_notice(user: &str, waiting: &str) -> String {
    format!(
        "{user} is not signed in: your message is kept and delivered when they next join chat ({waiting} waiting)"
    )
}

/// Now, in ms since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A fresh epoch: 12 hex digits.
pub fn new_epoch() -> String {
    crate::protocol::hex::encode(&crate::random::random_bytes::<6>())
}
