//! Pages of a room's past, for clients that scroll back (IRC's `CHATHISTORY`): the latest
//! lines, those before or after a time, around one, or between two. Each page is made of two
//! primitives every engine answers (the lines just before a time, the lines just after one),
//! so the same paging holds on memory, disk and Redis.

use super::{ChatHub, Said};
use crate::protocol::Refusal;

/// Which page (times in ms since the Unix epoch; every page is oldest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// The latest `n` lines.
    Latest(usize),
    /// The latest `n` lines said after a time.
    LatestAfter(u64, usize),
    /// The `n` lines just before a time.
    Before(u64, usize),
    /// The `n` lines just after a time.
    After(u64, usize),
    /// `n` lines around a time: half before it, the rest at or after it.
    Around(u64, usize),
    /// Up to `n` lines strictly between two times, taken from the first one's side.
    Between(u64, u64, usize),
}

impl ChatHub {
    /// A page of room `room`'s past lines, oldest first.
    ///
    /// # Errors
    /// The engine could not be read (a cluster's Redis unreachable).
    pub async fn scrollback(&self, room: &str, page: Page) -> Result<Vec<Said>, Refusal> {
        let found = match page {
            Page::Latest(n) => self.engine.older(room, u64::MAX, n).await?,
            Page::LatestAfter(at, n) => {
                let latest = self.engine.older(room, u64::MAX, n).await?;
                latest.into_iter().filter(|(id, _)| id.ms > at).collect()
            }
            Page::Before(at, n) => self.engine.older(room, at, n).await?,
            Page::After(at, n) => self.engine.newer(room, at, n).await?,
            Page::Around(at, n) => {
                let mut found = self.engine.older(room, at, n / 2).await?;
                let rest = n - found.len();
                found.extend(self.engine.newer(room, at.saturating_sub(1), rest).await?);
                found
            }
            Page::Between(from, to, n) if from <= to => self
                .engine
                .newer(room, from, n)
                .await?
                .into_iter()
                .filter(|(id, _)| id.ms < to)
                .collect(),
            Page::Between(from, to, n) => self
                .engine
                .older(room, from, n)
                .await?
                .into_iter()
                .filter(|(id, _)| id.ms > to)
                .collect(),
        };
        Ok(found.into_iter().map(|(_, said)| said).collect())
    }
}
