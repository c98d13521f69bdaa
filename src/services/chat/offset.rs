//! A line's position in its room, as every chat engine numbers it and clients see it: a
//! Redis-stream-shaped ID (`MS-SEQ`, the time it was kept and its order within that
//! millisecond), and the epoch of the data it came from. The memory and disk engines number
//! lines the same way the Redis engine's streams do, so `since` works the same on all three.

use std::fmt;
use std::time::{Duration, SystemTime};

/// A position in a room (`MS-SEQ`), totally ordered: a Redis stream entry ID, or the same
/// shape from the memory and disk engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId {
    /// Redis's clock when the entry was added, in ms since the epoch.
    pub ms: u64,
    /// Order among entries of the same millisecond.
    pub seq: u64,
}

impl StreamId {
    /// Before every position.
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    /// After every position.
    pub const MAX: StreamId = StreamId {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    /// Parses `MS-SEQ`.
    pub fn parse(text: &str) -> Option<StreamId> {
        let (ms, seq) = text.split_once('-')?;
        Some(StreamId {
            ms: ms.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }

    /// When Redis added the entry (any u64 of ms fits a Linux `SystemTime`).
    pub fn time(self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(self.ms)
    }

    /// This position as a client sees it: `EPOCH:MS-SEQ` (see [`Offset`]).
    pub fn offset_in(self, epoch: &str) -> String {
        format!("{epoch}:{self}")
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// A client's position in a room: the stream ID of the last record it saw, and the epoch of
/// the Redis data it came from (a Redis that lost its data starts a new epoch, and positions
/// from the old one say nothing about the new stream). Written `EPOCH:MS-SEQ`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offset {
    /// The data's epoch.
    pub epoch: String,
    /// The position.
    pub id: StreamId,
}

impl Offset {
    /// Parses `EPOCH:MS-SEQ`.
    pub fn parse(text: &str) -> Option<Offset> {
        let (epoch, id) = text.rsplit_once(':')?;
        Some(Offset {
            epoch: epoch.to_string(),
            id: StreamId::parse(id)?,
        })
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.epoch, self.id)
    }
}
