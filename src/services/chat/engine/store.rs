//! One server's store of chat lines: what the memory and disk engines implement, and what
//! [`OneServer`](super::one_server::OneServer) turns into the hub's [`Engine`](super::Engine).
//! Every method is quick and synchronous: a store that writes to disk does so on its own
//! thread and confirms through [`Kept`].

use super::super::offset::StreamId;
use super::{Confirmed, Kept, KeptDirect, KeptTopic, Recent, Said, TakeDirects};
use crate::protocol::Refusal;

/// Where one server's lines are kept.
pub trait LineStore: Send + Sync + std::fmt::Debug {
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

    /// Keeps the room's topic (`None`: cleared), then runs `kept`, in order among the lines.
    ///
    /// # Errors
    /// The store cannot take it now; `kept` was not run.
    fn set_topic(
        &self,
        room: &str,
        topic: Option<&str>,
        kept: KeptTopic,
    ) -> Result<Confirmed, Refusal>;

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
