//! Verified uploads whose `put_done` waits for one shared commit.
//!
//! A client sending a tree pipelines its small files as `whole` puts (PROTOCOL.md 5.6): the
//! request, the bytes and `put_end` back to back, the next file right behind. Each verified
//! file is held here — a large one sealed in its partial, a small one still in memory — instead
//! of being written, synced and renamed on its own. A commit writes the small ones into their
//! partials and makes all of them durable with two `syncfs` calls ([`commit_all`]), in one trip
//! to a blocking thread. It happens when the client stops sending (no whole frame is waiting),
//! the batch is full, or anything else is about to be answered — so answers still go out in the
//! order of the requests, and `put_done` still means the file is on the disk under its name.
//!
//! What all sessions hold together comes out of one budget ([`HeldBudget`]): a session that
//! finds it spent commits its own held files first, and past that commits each upload as it
//! comes.

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

use super::held_budget::{HeldBudget, HeldShare};
use super::sandbox::{PlaceDirs, Sandbox};
use crate::connection::{Connection, ConnectionError};
use crate::protocol::{ErrorCode, Message, PutDone, Refusal};
use crate::services::RequestError;
use crate::services::SessionContext;
use crate::transfer::commit::{Sealed, commit_all, write_whole};

/// Files held at most before a commit: bounds the descriptors a session holds (each sealed
/// partial stays open and locked until it is renamed, each small file from its creation to
/// its link): `MAX_HELD` × ([`MAX_RUNNING`] + 1) at most.
pub const MAX_HELD: usize = 256;
/// Bytes of small files held in memory at most before a commit.
pub const MAX_HELD_BYTES: usize = 4 << 20;

/// How long the client's next frame may take to arrive before the puts held are committed
/// rather than kept waiting: a frame already on its way (up to 1 MiB, at hundreds of MB/s)
/// arrives well within it; a client that stalls holds them no longer than this.
const HOLD_GRACE: Duration = Duration::from_millis(20);

/// How long puts are held at most, however steadily the client keeps sending: one that sends a
/// tiny frame every few milliseconds would otherwise keep its batch, and its share of the
/// server's budget, for as long as it likes. A tree at full speed fills a batch well within it.
pub const HOLD_AT_MOST: Duration = Duration::from_millis(250);

/// One verified upload to hold.
pub enum Held {
    /// Written and sealed in its partial.
    Sealed(Sealed),
    /// Verified in memory, to be written at the commit.
    Small {
        /// The whole file.
        bytes: Vec<u8>,
        /// Its permission bits and modification time, as the client sent them.
        mode: u32,
        #[allow(missing_docs)]
        mtime_ns: i64,
    },
}

/// Commits of one session running at once, at most. Two: a commit is file-system work on one
/// thread (create, write, link a file at a time), and while one waits in `syncfs` or runs on
/// one core, the next batch's files are written on the other. Each runs whole and is answered
/// in turn, so answers keep the requests' order.
const MAX_RUNNING: usize = 2;

/// The session's verified, not yet committed puts, in request order; and the commits running
/// in the background (oldest first), whose answers come before theirs.
#[derive(Default)]
pub struct HeldPuts {
    held: Vec<(Held, PutDone, String)>,
    bytes: usize,
    /// The server's budget taken by what is held (one share each, but for an upload committed
    /// at once because the budget was spent).
    shares: Vec<HeldShare>,
    /// When the oldest upload held now was held.
    since: Option<tokio::time::Instant>,
    running: VecDeque<RunningCommit>,
}

/// A commit on a blocking thread, and the answers it will decide.
struct RunningCommit {
    task: tokio::task::JoinHandle<Vec<Result<(), Refusal>>>,
    answers: Vec<Answer>,
}

impl RunningCommit {
    /// Whether this commit writes any of `paths`: a later put of the same path must not be
    /// committed beside it, or the older bytes could be the ones left under the name.
    fn writes_any(&self, paths: &HashSet<&str>) -> bool {
        self.answers
            .iter()
            .any(|(_, path)| paths.contains(path.as_str()))
    }
}

/// The answer a held put gets once committed, and its path (for the audit log).
type Answer = (PutDone, String);

impl HeldPuts {
    /// Whether nothing waits (held, or being committed).
    pub fn is_empty(&self) -> bool {
        self.held.is_empty() && self.running.is_empty()
    }

    /// Whether the next verified put must wait for a commit first.
    pub fn is_full(&self) -> bool {
        self.held.len() >= MAX_HELD || self.bytes >= MAX_HELD_BYTES
    }

    /// How long the session may wait for the client's next frame before what it holds is
    /// committed: [`HOLD_GRACE`], and no more than is left of [`HOLD_AT_MOST`] since the oldest
    /// was held (zero: only a frame already here is read first).
    pub fn grace(&self) -> Duration {
        let held_for = self.since.map_or(Duration::ZERO, |since| since.elapsed());
        HOLD_GRACE.min(HOLD_AT_MOST.saturating_sub(held_for))
    }

    /// Holds a verified `upload` of `path`, to be answered with `done` once committed. It
    /// takes its share of the server's budget; when the budget is spent, this session's held
    /// uploads are committed (which gives theirs back) and it is tried again; if others hold all
    /// of it, `upload` is committed at once, alone: a session never waits on another, and keeps
    /// at most one upload beyond the budget, for the length of its commit.
    ///
    /// # Errors
    /// As [`HeldPuts::commit`].
    pub async fn hold<S>(
        &mut self,
        conn: &mut Connection<S>,
        ctx: &SessionContext,
        upload: Held,
        done: PutDone,
        path: String,
    ) -> Result<(), RequestError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let in_memory = match &upload {
            Held::Small { bytes, .. } => bytes.len(),
            Held::Sealed(_) => 0,
        };
        let take = |budget: &HeldBudget| budget.try_take(in_memory);
        let mut share = take(&ctx.held_budget);
        if share.is_none() && !self.is_empty() {
            self.commit(conn, ctx).await?;
            share = take(&ctx.held_budget);
        }
        self.bytes += in_memory;
        self.since.get_or_insert_with(tokio::time::Instant::now);
        self.held.push((upload, done, path));
        match share {
            Some(share) => self.shares.push(share),
            None => self.commit(conn, ctx).await?,
        }
        Ok(())
    }

    /// Writes the small uploads beneath `sandbox`'s root, makes every held upload durable and
    /// in place, and answers each: `put_done`, or its refusal (`bad_path`, `not_a_file`,
    /// `no_space`, `io`). Nothing is held afterwards.
    ///
    /// # Errors
    /// The connection failed, or the blocking pool did.
    pub async fn commit<S>(
        &mut self,
        conn: &mut Connection<S>,
        ctx: &SessionContext,
    ) -> Result<(), RequestError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        self.commit_in_background(conn, ctx).await?;
        while !self.running.is_empty() {
            self.answer_oldest(conn, ctx).await?;
        }
        Ok(())
    }

    /// As [`HeldPuts::commit`], but returns once the commit has started: the session reads the
    /// next uploads while the disk syncs. With [`MAX_RUNNING`] commits running, or one writing a
    /// path this one writes too, the oldest is finished (and answered) first; answers keep
    /// their order.
    ///
    /// # Errors
    /// As [`HeldPuts::commit`].
    pub async fn commit_in_background<S>(
        &mut self,
        conn: &mut Connection<S>,
        ctx: &SessionContext,
    ) -> Result<(), RequestError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        if self.held.is_empty() {
            // Nothing new to start: what runs is answered now, as a commit would answer it.
            while !self.running.is_empty() {
                self.answer_oldest(conn, ctx).await?;
            }
            return Ok(());
        }
        let paths: HashSet<&str> = self.held.iter().map(|(_, _, p)| p.as_str()).collect();
        let overlapping = self
            .running
            .iter()
            .rposition(|running| running.writes_any(&paths))
            .map_or(0, |at| at + 1);
        let must_finish = overlapping.max((self.running.len() + 1).saturating_sub(MAX_RUNNING));
        drop(paths);
        for _ in 0..must_finish {
            self.answer_oldest(conn, ctx).await?;
        }
        self.bytes = 0;
        self.since = None;
        let (held, answers): (Vec<(Held, String)>, Vec<Answer>) = self
            .held
            .drain(..)
            .map(|(held, done, path)| ((held, path.clone()), (done, path)))
            .unzip();
        let sandbox = ctx.sandbox.clone();
        let shares = std::mem::take(&mut self.shares);
        self.running.push_back(RunningCommit {
            task: tokio::task::spawn_blocking(move || {
                let results = commit_held(&sandbox, held);
                // Every file of the commit is closed and its bytes written: the budget goes
                // back, whether or not the session is still there to answer.
                drop(shares);
                results
            }),
            answers,
        });
        Ok(())
    }

    /// Waits for the oldest running commit, if any, records each file written, and sends the
    /// answers in one write.
    async fn answer_oldest<S>(
        &mut self,
        conn: &mut Connection<S>,
        ctx: &SessionContext,
    ) -> Result<(), RequestError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let Some(RunningCommit { task, answers }) = self.running.pop_front() else {
            return Ok(());
        };
        let results = task
            .await
            .map_err(|e| RequestError::Blocking(std::io::Error::other(e)))?;
        let mut batch = conn.batch();
        for (result, (done, path)) in results.into_iter().zip(answers) {
            let answer = match result {
                Ok(()) => {
                    super::put::audit_write(ctx, path, &done);
                    Message::PutDone(done)
                }
                Err(refusal) => Message::Error(refusal),
            };
            batch.message(&answer).map_err(ConnectionError::Io)?;
        }
        conn.write_batch(batch).await.map_err(ConnectionError::Io)?;
        Ok(())
    }
}

/// On a blocking thread: the small uploads written and sealed, then everything committed; one
/// result per upload, in order.
fn commit_held(sandbox: &Sandbox, held: Vec<(Held, String)>) -> Vec<Result<(), Refusal>> {
    let mut results: Vec<Option<Result<(), Refusal>>> = Vec::with_capacity(held.len());
    let mut sealed = Vec::new();
    let mut paths = Vec::new();
    let mut dirs = PlaceDirs::default();
    for (one, path) in held {
        let ready = match one {
            Held::Sealed(s) => Ok(s),
            Held::Small {
                bytes,
                mode,
                mtime_ns,
            } => write_small(sandbox, &mut dirs, &path, &bytes, mode, mtime_ns),
        };
        match ready {
            Ok(s) => {
                results.push(None);
                sealed.push(s);
                paths.push((results.len() - 1, path));
            }
            Err(refusal) => results.push(Some(Err(refusal))),
        }
    }
    for (result, (at, path)) in commit_all(sealed).into_iter().zip(paths) {
        results[at] = Some(
            result
                .map(|_| ())
                .map_err(|e| Refusal::new(ErrorCode::Io, format!("cannot finish '{path}': {e}"))),
        );
    }
    results.into_iter().map(|r| r.unwrap_or(Ok(()))).collect()
}

/// Writes a small upload beneath the root, sealed for the commit: as an unnamed file where the
/// file system can (nothing to rename or check by name later), else into its partial.
fn write_small(
    sandbox: &Sandbox,
    dirs: &mut PlaceDirs,
    path: &str,
    bytes: &[u8],
    mode: u32,
    mtime_ns: i64,
) -> Result<Sealed, Refusal> {
    let place = super::put::checked_place(sandbox, path, dirs)?;
    let cannot_write = |e: std::io::Error| {
        let code = if super::put::is_disk_full(&e) {
            ErrorCode::NoSpace
        } else {
            ErrorCode::Io
        };
        Refusal::new(
            code,
            format!("cannot write '{path}': {e}; nothing was kept"),
        )
    };
    write_whole(place.dir, &place.name, bytes, Some(mode), Some(mtime_ns)).map_err(cannot_write)
}
