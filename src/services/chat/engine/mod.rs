//! Where chat is kept and carried: the one interface the chat hub calls, and its engines.
//!
//! The hub decides who on this server hears what; an engine decides when a line counts as
//! said, where it is kept, and how far it travels. The hub hands each line to
//! [`Engine::say`] with what to do once it is kept ([`Kept`]: broadcast it with its position,
//! acknowledge it), each change with what to tell its own members ([`Tell`]), reads a room's
//! past through [`Engine::join`], [`Engine::older`] and [`Engine::newer`], and never learns
//! which engine runs. Engines know nothing of the hub: they see rooms by name, participants as
//! [`Participant`] and lines as [`Said`]. Anchored on Centrifugo, whose memory and Redis
//! engines sit behind one interface with history by offset and epoch.
//!
//! - [`one_server`]: one server's chat, its lines in a [`store::LineStore`]:
//!   - [`memory`]: lines in memory, gone when a room empties or the server stops (tests,
//!     `[chat] store = "memory"`);
//!   - [`disk`]: lines in an embedded store under the server's state directory, acknowledged
//!     only once synced (the single-server default).
//! - `cluster`: several servers on one Redis, which keeps the lines and carries every change.

pub mod disk;
mod disk_retention;
mod disk_store;
mod disk_writer;
pub mod host;
pub mod memory;
pub mod one_server;
pub mod record;
pub mod store;

use std::time::SystemTime;

use super::offset::StreamId;
use super::participant::Participant;
use crate::protocol::{Refusal, RoomInfo};

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

/// What the hub does once a topic was kept (or could not be), confirmed now or later.
pub type KeptTopic = Box<dyn FnOnce(Result<(), Refusal>, Confirmed) + Send>;

/// The hub told whether a change was kept: it tells the room, or takes the change back.
pub type Settled = Box<dyn FnOnce(bool) + Send>;

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

/// Records (lines and changes) a join with `since` reads back at most; further behind, the
/// client is told it is not recovered and gets the recent history.
pub const MAX_CATCH_UP: usize = 1000;

/// A future an engine answers with later (Redis), or at once (one server).
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// The hub telling this server's members of a change (a join, a leave, a rename, a topic).
pub type Tell = Box<dyn FnOnce() + Send>;

/// What a join asks for besides the room.
#[derive(Debug, Clone, Default)]
pub struct JoinOptions {
    /// Recent lines to replay.
    pub history: usize,
    /// Replay every line after this offset instead (`since` recovery).
    pub since: Option<String>,
}

/// A room's past as a joiner gets it.
#[derive(Debug, Default)]
pub struct Past {
    /// The latest lines (or those after the joiner's offset), oldest first.
    pub lines: Vec<(StreamId, Said)>,
    /// The position of the last event the join already accounts for: the joiner skips live
    /// lines up to it.
    pub last: Option<StreamId>,
    /// Answering a join with `since`: whether every line after it followed.
    pub recovered: Option<bool>,
    /// On an engine that spans servers: the room as its stream had it at the join.
    pub everywhere: Option<Everywhere>,
}

/// A room as an engine that spans servers had it at a join: what the hub's room starts from.
#[derive(Debug, Default)]
pub struct Everywhere {
    /// This server's name in the engine (its members are this server's own).
    pub node: String,
    /// The room's members on every server, the joiner included, sorted.
    pub members: Vec<String>,
    /// The room's topic.
    pub topic: Option<String>,
}

/// Something for a participant no one on this server holds the nick of.
pub enum Routed {
    /// A direct message; with `keep` (the configured user the nick names, the most kept for
    /// them) it is kept for that user when no one holds the nick anywhere.
    Direct {
        /// Its sender.
        from: Participant,
        /// The sender's nick.
        from_nick: String,
        /// The line.
        text: String,
        /// An action (`/me`).
        action: bool,
        /// The sender's request, acked once delivered or kept.
        id: u64,
        /// The user it is kept for when no one holds the nick, and the most kept for them.
        keep: Option<(String, usize)>,
    },
    /// `from` opened a direct conversation.
    Opened {
        /// Who opened it.
        from: Participant,
        /// Their nick.
        from_nick: String,
    },
}

/// The one interface the chat hub calls. On one server ([`one_server::OneServer`] over a
/// [`store::LineStore`]) nicks, rooms and their changes live in the hub and only lines go to the
/// store; the Redis engine (`cluster`) also claims nicks across servers, reaches participants
/// on other servers, and carries every change of a room through the room's stream back to
/// every server's rooms (as [`record::Record`]s, through the hub as its [`host::Host`]). So the hub hands each change both ways: what
/// to record, and what to tell its own members ([`Tell`]), which an engine that carries the
/// change itself drops.
pub trait Engine: Send + Sync + std::fmt::Debug {
    /// For `ferry serve`'s banner: which engine runs, and where.
    fn describe(&self) -> String;

    /// The epoch of the data: positions from another epoch say nothing about this one.
    fn epoch(&self) -> String;

    /// Bytes of lines this engine holds in the server's memory (not on disk, not in Redis).
    fn held_bytes(&self) -> usize;

    /// This server's name among the servers chat spans (`None`: it is the only one).
    fn server_name(&self) -> Option<String>;

    /// Whether what the engine needs beyond this server answers (`None`: it needs nothing).
    fn reachable(&self) -> Option<bool>;

    /// Claims `nick` for participant `pid` beyond this server (`force`: the bot, whose
    /// lease decides); the hub has already checked its own directory.
    ///
    /// # Errors
    /// Someone on another server holds it (or one like it), or the engine is unreachable.
    fn claim<'a>(
        &'a self,
        pid: u64,
        nick: &'a str,
        force: bool,
    ) -> BoxFuture<'a, Result<(), Refusal>>;

    /// Gives `nick` up (if `pid` still holds it).
    fn release(&self, pid: u64, nick: &str);

    /// Renames participant `pid` from `old` to `new`, in its `rooms`, beyond this server.
    ///
    /// # Errors
    /// Someone on another server holds `new`, or the engine is unreachable.
    fn rename<'a>(
        &'a self,
        pid: u64,
        old: &'a str,
        new: &'a str,
        rooms: &'a [String],
    ) -> BoxFuture<'a, Result<(), Refusal>>;

    /// Who holds `nick` beyond this server (as they spell it), if anyone.
    ///
    /// # Errors
    /// The engine is unreachable.
    fn find<'a>(&'a self, nick: &'a str) -> BoxFuture<'a, Result<Option<String>, Refusal>>;

    /// Carries `routed` to whoever holds `to` beyond this server, or keeps a direct message
    /// for the user it names; the sender is told what became of it.
    ///
    /// # Errors
    /// No one holds `to` and it is not kept (`not_online`), the recipient's kept messages are
    /// at their bound, or the engine is unreachable.
    fn route(&self, to: &str, routed: Routed, not_online: Refusal) -> Result<(), Refusal>;

    /// Hands over, oldest first, and forgets the direct messages kept for `user`.
    fn take_directs(&self, user: &str, take: TakeDirects);

    /// Enters `nick` (participant `pid`) in room `room` and reads its past; the hub has
    /// already entered it in its own room.
    ///
    /// # Errors
    /// The store could not be read, another server's member holds the nick in the room, or
    /// the engine is unreachable.
    fn join<'a>(
        &'a self,
        room: &'a str,
        pid: u64,
        nick: &'a str,
        options: &'a JoinOptions,
    ) -> BoxFuture<'a, Result<Past, Refusal>>;

    /// Keeps `said`, a line `origin` said in `room`, then runs `kept` (which tells this
    /// server's members and confirms it); an engine that carries lines through its stream
    /// drops `kept` and confirms request `id` to `origin` itself.
    ///
    /// # Errors
    /// The engine cannot take it now (nothing was sent).
    fn say(
        &self,
        room: &str,
        origin: &Participant,
        said: Said,
        id: Option<u64>,
        kept: Kept,
    ) -> Result<Confirmed, Refusal>;

    /// Keeps `room`'s topic as `by` (participant `origin`) set it (`None`: cleared); later
    /// confirmations go to `origin` for request `id`. `settled` is told, in order among the
    /// lines, whether it was kept (the hub then tells its members, or takes the topic back);
    /// an engine whose stream carries the change drops it.
    ///
    /// # Errors
    /// The engine cannot take it now (nothing was changed).
    #[allow(clippy::too_many_arguments)]
    fn set_topic(
        &self,
        room: &str,
        origin: &Participant,
        by: &str,
        topic: Option<&str>,
        id: Option<u64>,
        settled: Settled,
    ) -> Result<Confirmed, Refusal>;

    /// `nick` (participant `pid`) left `room` (`dropped`: for not reading).
    fn leave(&self, room: &str, pid: u64, nick: &str, dropped: bool);

    /// Runs `tell` at once, unless the change already reaches this server's members through
    /// the engine's stream (then drops it).
    fn tell_now(&self, tell: Tell);

    /// Runs `tell` once every line said before it was kept (members hear a change in the order
    /// it happened among the lines), unless the change reaches them through the engine's
    /// stream, in that order already (then drops it).
    fn tell_in_order(&self, tell: Tell);

    /// The room's topic as last kept, for a room this server starts to hold.
    fn topic(&self, room: &str) -> Option<String>;

    /// No member of the room is left on this server.
    fn room_emptied(&self, room: &str);

    /// Every room with members anywhere, when the engine spans servers (`None`: the hub's
    /// own rooms are all of them).
    ///
    /// # Errors
    /// The engine is unreachable.
    fn rooms(&self) -> BoxFuture<'_, Result<Option<Vec<RoomInfo>>, Refusal>>;

    /// Up to `n` of the room's latest lines said before `before_ms` (ms since the Unix
    /// epoch), oldest first: a page of scrollback (IRC's `CHATHISTORY`).
    ///
    /// # Errors
    /// The store could not be read.
    fn older<'a>(
        &'a self,
        room: &'a str,
        before_ms: u64,
        n: usize,
    ) -> BoxFuture<'a, Result<Vec<(StreamId, Said)>, Refusal>>;

    /// Up to `n` of the room's earliest lines said after `after_ms`, oldest first.
    ///
    /// # Errors
    /// The store could not be read.
    fn newer<'a>(
        &'a self,
        room: &'a str,
        after_ms: u64,
        n: usize,
    ) -> BoxFuture<'a, Result<Vec<(StreamId, Said)>, Refusal>>;

    /// Whether this server may hold the bot now (taking or renewing its lease).
    fn hold_bot(&self) -> BoxFuture<'_, bool>;

    /// How often the bot's lease is renewed, when there is one.
    fn bot_renewal(&self) -> Option<std::time::Duration>;

    /// The server stops: this server's members leave every room beyond it at once.
    fn depart(&self) -> BoxFuture<'_, ()>;

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
