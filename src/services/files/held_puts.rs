//! Verified uploads whose `put_done` waits for one shared commit.
//!
//! A client sending a tree pipelines its small files as `whole` puts (PROTOCOL.md 5.6): the
//! request, the bytes and `put_end` back to back, the next file right behind. Each verified
//! file is sealed here instead of being synced and renamed on its own, and all are made durable
//! with two `syncfs` calls ([`commit_all`]) when the client stops sending (no whole frame is
//! waiting), the batch is full, or anything else is about to be answered — so answers still go
//! out in the order of the requests, and `put_done` still means the file is on the disk under
//! its name.

use tokio::io::{AsyncRead, AsyncWrite};

use crate::connection::{Connection, ConnectionError};
use crate::protocol::{ErrorCode, Message, PutDone, Refusal};
use crate::services::{RequestError, off_runtime};
use crate::transfer::partial::{Sealed, commit_all};

/// Files held at most before a commit: bounds the descriptors a session holds (each sealed
/// partial stays open and locked until it is renamed).
pub const MAX_HELD: usize = 128;

/// The session's verified, not yet committed puts, in request order.
#[derive(Default)]
pub struct HeldPuts {
    held: Vec<(Sealed, PutDone, String)>,
}

impl HeldPuts {
    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Whether the next verified put must wait for a commit first.
    pub fn is_full(&self) -> bool {
        self.held.len() >= MAX_HELD
    }

    /// Holds a verified upload of `path`, to be answered with `done` once committed.
    pub fn hold(&mut self, sealed: Sealed, done: PutDone, path: String) {
        self.held.push((sealed, done, path));
    }

    /// Makes every held upload durable and in place, and answers each: `put_done`, or `error`
    /// `io` for one that could not be renamed. Nothing is held afterwards.
    ///
    /// # Errors
    /// The connection failed, or the blocking pool did.
    pub async fn commit<S>(&mut self, conn: &mut Connection<S>) -> Result<(), RequestError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        if self.held.is_empty() {
            return Ok(());
        }
        let (sealed, answers): (Vec<Sealed>, Vec<(PutDone, String)>) = self
            .held
            .drain(..)
            .map(|(sealed, done, path)| (sealed, (done, path)))
            .unzip();
        let results = off_runtime(move || commit_all(sealed)).await?;
        let mut batch = conn.batch();
        for (result, (done, path)) in results.into_iter().zip(answers) {
            let answer = match result {
                Ok(()) => Message::PutDone(done),
                Err(e) => Message::Error(Refusal::new(
                    ErrorCode::Io,
                    format!("cannot finish '{path}': {e}"),
                )),
            };
            batch.message(&answer).map_err(ConnectionError::Io)?;
        }
        conn.write_batch(batch).await.map_err(ConnectionError::Io)?;
        Ok(())
    }
}
