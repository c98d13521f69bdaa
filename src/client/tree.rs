//! Whole trees (`get -r`, `put -r`) as a walk plus single-file transfers, so every file of a
//! tree is verified on its own. Directories get their mode and mtime last, after their contents
//! stopped changing them. Symlinks, devices and fifos inside a tree are not transferred: they
//! are reported in [`TreeReport::skipped`].
//!
//! Both directions keep the connection full instead of paying a round trip per file: the
//! server answers requests in order, so the client sends many before it reads the first
//! answer. `get -r` asks for up to [`GETS_AHEAD`] files ahead; `put -r` sends small files as
//! `whole` puts (request, bytes and `put_end` back to back), up to [`PUTS_AHEAD`] unanswered,
//! and larger ones with the resumable exchange. Received files are made durable in batches
//! ([`commit_all`]: two `syncfs` per batch instead of two `fsync` per file); the server does
//! the same with the puts it receives.

use std::collections::{HashMap, VecDeque};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncRead, AsyncWrite};

use super::ClientError;
use super::files::{
    self as client, AskedGet, Check, Progress, SentPut, SmallGet, Transfer, VerifiedGet,
    join_remote,
};
use crate::connection::Connection;
use crate::protocol::{FileEntry, FileKind, HashAlgorithm};
use crate::transfer::hash_cache::HashCache;
use crate::transfer::partial::{Sealed, commit_all, open_dir, parent_and_name, write_whole};
use std::os::fd::OwnedFd;
use std::sync::Arc;

/// Gets asked before the first is answered (each holds its partial open), at most.
pub const GETS_AHEAD: usize = 64;
/// Whole puts sent before the first is answered; more than the server holds for one commit
/// (`MAX_HELD`), so the server commits because its batch is full, not because the client
/// stopped to wait.
pub const PUTS_AHEAD: usize = 1024;
/// Small files sent in one write (and read in one trip to a blocking thread), at most.
const SMALL_PUTS_AT_ONCE: usize = 64;
/// Files up to this size are put `whole` (pipelined, not resumable); larger ones resumably.
pub const WHOLE_PUT_MAX: u64 = 4 << 20;
/// Received files made durable together, at most.
const COMMIT_EVERY: usize = 256;
/// Descriptors a tree transfer leaves to everything else (the connection, the runtime, a
/// directory walked, the standard streams).
const FDS_SPARE: u64 = 64;
/// Files listed at most this large are received into memory and written in batches.
pub const SMALL_GET: u64 = 64 * 1024;
/// Small files (and their bytes) held in memory before they are written, at most.
const SMALL_WRITES: usize = 64;
const SMALL_WRITE_BYTES: usize = 4 << 20;

/// How many files a `get -r` keeps in flight, fitted to the open-file limit. Every file between
/// its request and its commit holds up to two descriptors (the file and its directory): the
/// ones asked ahead, the batch of small files being written, the files waiting for the next
/// commit and those of the running one. At the full depth that is up to ~1,500 descriptors;
/// under a lower limit (`ulimit -n 256`) the depth shrinks so the transfer still completes,
/// slower, instead of failing with "Too many open files" half-way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Depth {
    gets_ahead: usize,
    small_writes: usize,
    commit_every: usize,
}

impl Depth {
    /// The depth that keeps the files held (two descriptors each) within `limit`, less
    /// [`FDS_SPARE`]; the full depth when there is no limit or it is high enough.
    fn for_limit(limit: Option<u64>) -> Self {
        let files = limit.map_or(usize::MAX, |limit| {
            usize::try_from(limit.saturating_sub(FDS_SPARE) / 2).unwrap_or(usize::MAX)
        });
        let gets_ahead = (files / 8).clamp(1, GETS_AHEAD);
        let small_writes = (files / 8).clamp(1, SMALL_WRITES);
        // Held at most: the asked, the small batch being written, and twice (waiting, and
        // committing) a commit's files plus the small batch that may overshoot it.
        let commit_every =
            (files.saturating_sub(gets_ahead + 3 * small_writes) / 2).clamp(1, COMMIT_EVERY);
        Depth {
            gets_ahead,
            small_writes,
            commit_every,
        }
    }
}

/// What a tree transfer did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeReport {
    /// Directories created.
    pub dirs: u64,
    /// Each file's relative path and transfer.
    pub files: Vec<(String, Transfer)>,
    /// Relative paths not transferred (symlinks, devices, fifos, non-UTF-8 names), with why.
    pub skipped: Vec<(String, String)>,
    /// Relative paths already the same on both sides (by the tree's [`Check`]): not moved.
    pub up_to_date: Vec<String>,
}

/// Whether the connection is still in step after `e` (the request was answered whole), so the
/// answers to the requests behind it can still be read.
fn in_step(e: &ClientError) -> bool {
    matches!(e, ClientError::Server(_) | ClientError::Integrity(_))
}

/// Downloads the remote directory `remote` into `target` (created if needed).
///
/// # Errors
/// The first failing file or directory (the files before it, and those already asked for
/// behind it, are kept).
pub async fn get_tree<S>(
    conn: &mut Connection<S>,
    remote: &str,
    target: &Path,
    algorithm: HashAlgorithm,
    check: Check,
    progress: &mut dyn Progress,
) -> Result<TreeReport, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let entries = client::list(conn, remote, true).await?;
    let mut report = TreeReport::default();
    let local_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ClientError::Local { path, source }
    };
    std::fs::create_dir_all(target).map_err(local_err(target))?;
    let mut dirs = Vec::new();
    let mut wanted = Vec::new();
    for entry in &entries {
        if entry.not_utf8 {
            report
                .skipped
                .push((entry.path.clone(), "name is not UTF-8 on the server".into()));
            continue;
        }
        let local = local_path(target, &entry.path)?;
        match entry.kind {
            FileKind::Dir => {
                std::fs::create_dir_all(&local).map_err(local_err(&local))?;
                dirs.push((local, entry.mode, entry.mtime_ns));
                report.dirs += 1;
            }
            FileKind::File => {
                let remote_path = join_remote(remote, &entry.path);
                if client::is_same(conn, &remote_path, Some(entry), &local, check).await? {
                    report.up_to_date.push(entry.path.clone());
                    continue;
                }
                wanted.push((entry.path.clone(), remote_path, local, entry.size));
            }
            FileKind::Symlink => report.skipped.push((entry.path.clone(), "symlink".into())),
            FileKind::Other => report
                .skipped
                .push((entry.path.clone(), "not a regular file".into())),
        }
    }
    let mut wanted = wanted.into_iter();
    let depth = Depth::for_limit(crate::fd_limit::soft());
    let mut asked: VecDeque<(String, PathBuf, Asked)> = VecDeque::new();
    let mut small = SmallWrites::new(depth.small_writes);
    let mut received: Vec<(String, Transfer, Sealed, PathBuf)> = Vec::new();
    let mut commits = Commits::default();
    let mut failed: Option<ClientError> = None;
    loop {
        while failed.is_none() && asked.len() < depth.gets_ahead {
            let Some((rel, remote_path, local, size)) = wanted.next() else {
                break;
            };
            let one = if size <= SMALL_GET {
                client::ask_whole_get(conn, &remote_path, algorithm)
                    .await
                    .map(|()| Asked::Small(remote_path))
            } else {
                client::ask_get(conn, &remote_path, &local, algorithm)
                    .await
                    .map(Asked::Large)
            };
            match one {
                Ok(one) => asked.push_back((rel, local, one)),
                Err(e) => failed = Some(e),
            }
        }
        let Some((rel, local, one)) = asked.pop_front() else {
            break;
        };
        let outcome = match one {
            Asked::Small(remote_path) => {
                client::receive_small_get(conn, &remote_path, algorithm, progress)
                    .await
                    .map(|(transfer, got)| small.push(rel, local, transfer, got))
            }
            Asked::Large(one) => {
                client::receive_get(conn, one, progress)
                    .await
                    .map(|(transfer, verified)| {
                        received.push((rel, transfer, seal(verified, &local), local));
                    })
            }
        };
        match outcome {
            Ok(()) => {}
            Err(e) if in_step(&e) => {
                failed.get_or_insert(e);
            }
            Err(e) => return Err(e),
        }
        if small.is_full() {
            received.extend(small.write().await?);
        }
        if received.len() >= depth.commit_every {
            commits.start(&mut received, &mut report).await?;
        }
    }
    received.extend(small.write().await?);
    received.extend(small.wait().await?);
    commits.start(&mut received, &mut report).await?;
    commits.finish(&mut report).await?;
    if let Some(e) = failed {
        return Err(e);
    }
    // Deepest first, so setting a parent's mtime is not undone by a child.
    dirs.sort_by_key(|(path, _, _)| std::cmp::Reverse(path.components().count()));
    for (dir, mode, mtime_ns) in dirs {
        let file = std::fs::File::open(&dir).map_err(local_err(&dir))?;
        crate::transfer::metadata::apply_metadata(&file, Some(mode), Some(mtime_ns))
            .map_err(local_err(&dir))?;
    }
    Ok(report)
}

/// A get asked for and not yet answered.
enum Asked {
    /// A small file, received into memory (its remote path).
    Small(String),
    /// A larger one, received into its partial.
    Large(AskedGet),
}

/// Small files received into memory, written to their partials together in one trip to a
/// blocking thread, while the next ones arrive.
struct SmallWrites {
    files: Vec<(String, PathBuf, Transfer, SmallGet)>,
    bytes: usize,
    /// Files held before they are written, at most.
    most: usize,
    running: Option<tokio::task::JoinHandle<WrittenSmall>>,
}

type WrittenSmall = Result<Vec<(String, Transfer, Sealed, PathBuf)>, ClientError>;

impl SmallWrites {
    fn new(most: usize) -> Self {
        SmallWrites {
            files: Vec::new(),
            bytes: 0,
            most,
            running: None,
        }
    }

    fn push(&mut self, rel: String, local: PathBuf, transfer: Transfer, got: SmallGet) {
        self.bytes += got.bytes.len();
        self.files.push((rel, local, transfer, got));
    }

    fn is_full(&self) -> bool {
        self.files.len() >= self.most || self.bytes >= SMALL_WRITE_BYTES
    }

    /// Waits for the running write; its files, sealed for the next commit.
    async fn wait(&mut self) -> WrittenSmall {
        match self.running.take() {
            Some(task) => task.await.map_err(std::io::Error::other)?,
            None => Ok(Vec::new()),
        }
    }

    /// Starts writing every held file into its partial, after the running write is done;
    /// returns that one's files, sealed for the next commit.
    async fn write(&mut self) -> WrittenSmall {
        let done = self.wait().await?;
        let files = std::mem::take(&mut self.files);
        self.bytes = 0;
        if !files.is_empty() {
            self.running = Some(tokio::task::spawn_blocking(move || write_small(files)));
        }
        Ok(done)
    }
}

/// Writes small files, each sealed for a commit: unnamed where the file system can (see
/// `transfer::unnamed`), else into their partials. Each directory is opened once per batch.
fn write_small(files: Vec<(String, PathBuf, Transfer, SmallGet)>) -> WrittenSmall {
    let mut dirs: HashMap<PathBuf, Arc<OwnedFd>> = HashMap::new();
    files
        .into_iter()
        .map(|(rel, local, transfer, got)| {
            let written = (|| -> std::io::Result<Sealed> {
                let (parent, name) = parent_and_name(&local);
                let dir = match dirs.get(parent) {
                    Some(dir) => Arc::clone(dir),
                    None => {
                        let dir = Arc::new(open_dir(parent)?);
                        dirs.insert(parent.to_path_buf(), Arc::clone(&dir));
                        dir
                    }
                };
                write_whole(dir, &name, &got.bytes, Some(got.mode), Some(got.mtime_ns))
            })();
            match written {
                Ok(sealed) => Ok((rel, transfer, sealed, local)),
                Err(source) => Err(ClientError::Local {
                    path: local,
                    source,
                }),
            }
        })
        .collect()
}

/// A verified partial with the server's mode and mtime, waiting for a commit.
fn seal(verified: VerifiedGet, local: &Path) -> Sealed {
    let (_, name) = parent_and_name(local);
    let VerifiedGet {
        partial,
        mode,
        mtime_ns,
    } = verified;
    partial.seal(&name, Some(mode), Some(mtime_ns))
}

/// Received files being made durable and renamed into place on a blocking thread while the
/// next ones arrive: a commit waits for the disk (two `syncfs`), and the connection need not.
/// One runs at a time; each file joins the report once its commit is done.
#[derive(Default)]
struct Commits {
    running: Option<RunningCommit>,
}

type RunningCommit = (
    tokio::task::JoinHandle<Vec<std::io::Result<()>>>,
    Vec<(String, Transfer, PathBuf)>,
);

impl Commits {
    /// Starts committing `received` (after the running commit, if any, is done).
    async fn start(
        &mut self,
        received: &mut Vec<(String, Transfer, Sealed, PathBuf)>,
        report: &mut TreeReport,
    ) -> Result<(), ClientError> {
        self.finish(report).await?;
        if received.is_empty() {
            return Ok(());
        }
        let (sealed, rest): (Vec<Sealed>, Vec<(String, Transfer, PathBuf)>) = received
            .drain(..)
            .map(|(rel, transfer, sealed, local)| (sealed, (rel, transfer, local)))
            .unzip();
        self.running = Some((
            tokio::task::spawn_blocking(move || commit_all(sealed)),
            rest,
        ));
        Ok(())
    }

    /// Waits for the running commit; its files join the report.
    async fn finish(&mut self, report: &mut TreeReport) -> Result<(), ClientError> {
        let Some((task, rest)) = self.running.take() else {
            return Ok(());
        };
        let results = task.await.map_err(std::io::Error::other)?;
        for (result, (rel, transfer, local)) in results.into_iter().zip(rest) {
            result.map_err(|source| ClientError::Local {
                path: local,
                source,
            })?;
            report.files.push((rel, transfer));
        }
        Ok(())
    }
}

/// Where a listed entry goes under `target`. The path comes from the server, so it gets the
/// same plain-names-only check the server applies to client paths: a hostile server must not
/// be able to make the client write outside `target`.
///
/// # Errors
/// [`ClientError::Protocol`] for an absolute path or one with `..`.
fn local_path(target: &Path, listed: &str) -> Result<PathBuf, ClientError> {
    let names = crate::protocol::path::components(listed).map_err(|e| {
        ClientError::Protocol(format!("the server listed an unsafe path: {}", e.message))
    })?;
    Ok(names
        .into_iter()
        .fold(target.to_path_buf(), |path, name| path.join(name)))
}

/// A local tree, walked before anything is sent.
#[derive(Default)]
struct LocalTree {
    /// Each directory's relative path (`""` the top), mode and mtime.
    dirs: Vec<(String, u32, i64)>,
    /// Each regular file's relative path, local path and size.
    files: Vec<(String, PathBuf, u64)>,
}

/// Walks `source` (depth first, names sorted), noting what cannot be sent in `report`.
fn walk(source: &Path, report: &mut TreeReport) -> Result<LocalTree, ClientError> {
    let local_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ClientError::Local { path, source }
    };
    let mut tree = LocalTree::default();
    let mut pending: Vec<(PathBuf, String)> = vec![(source.to_path_buf(), String::new())];
    while let Some((dir, rel_dir)) = pending.pop() {
        let meta = std::fs::metadata(&dir).map_err(local_err(&dir))?;
        tree.dirs.push((
            rel_dir.clone(),
            meta.permissions().mode() & 0o7777,
            crate::transfer::metadata::mtime_ns(&meta),
        ));
        let mut children: Vec<_> = std::fs::read_dir(&dir)
            .map_err(local_err(&dir))?
            .filter_map(Result::ok)
            .collect();
        children.sort_by_key(std::fs::DirEntry::file_name);
        for child in children {
            let Some(name) = child.file_name().to_str().map(str::to_string) else {
                let shown = child.file_name().to_string_lossy().into_owned();
                report
                    .skipped
                    .push((join_remote(&rel_dir, &shown), "name is not UTF-8".into()));
                continue;
            };
            let rel = join_remote(&rel_dir, &name);
            let kind = child.file_type().map_err(local_err(&child.path()))?;
            if kind.is_dir() {
                pending.push((child.path(), rel));
            } else if kind.is_file() {
                let size = child.metadata().map_err(local_err(&child.path()))?.len();
                tree.files.push((rel, child.path(), size));
            } else if kind.is_symlink() {
                report.skipped.push((rel, "symlink".into()));
            } else {
                report.skipped.push((rel, "not a regular file".into()));
            }
        }
    }
    Ok(tree)
}

/// Uploads the local directory `source` to `remote` (created if needed).
///
/// # Errors
/// The first failing file or directory (the files before it, and those already sent behind
/// it, are kept).
pub async fn put_tree<S>(
    conn: &mut Connection<S>,
    hashes: &HashCache,
    source: &Path,
    remote: &str,
    algorithm: HashAlgorithm,
    check: Check,
    progress: &mut dyn Progress,
) -> Result<TreeReport, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut report = TreeReport::default();
    let tree = walk(source, &mut report)?;
    // Parents before children: the walk met them in that order.
    let made: Vec<(String, Option<u32>, Option<i64>)> = tree
        .dirs
        .iter()
        .map(|(rel, _, _)| (join_remote(remote, rel), None, None))
        .collect();
    client::mkdir_all(conn, &made).await?;
    report.dirs = tree.dirs.len() as u64 - 1;
    // What the server already holds, to skip what is the same (one listing, not one per file).
    let held: HashMap<String, FileEntry> = if check == Check::Never {
        HashMap::new()
    } else {
        client::list(conn, remote, true)
            .await?
            .into_iter()
            .map(|e| (e.path.clone(), e))
            .collect()
    };
    let mut to_send = Vec::new();
    for (rel, path, size) in tree.files {
        let target = join_remote(remote, &rel);
        if client::is_same(conn, &target, held.get(&rel), &path, check).await? {
            report.up_to_date.push(rel);
        } else {
            to_send.push((rel, path, size, target));
        }
    }
    let mut sent: VecDeque<(String, SentPut)> = VecDeque::new();
    let mut failed: Option<ClientError> = None;
    let mut small: Vec<(String, PathBuf, String)> = Vec::new();
    let mut to_send = to_send.into_iter().peekable();
    while failed.is_none() {
        let Some((rel, path, size, target)) = to_send.next() else {
            break;
        };
        if size <= client::SMALL_PUT_BATCHED {
            small.push((rel, path, target));
            let next_small = to_send
                .peek()
                .is_some_and(|(_, _, size, _)| *size <= client::SMALL_PUT_BATCHED);
            if small.len() < SMALL_PUTS_AT_ONCE && next_small {
                continue;
            }
            let (rels, files): (Vec<String>, Vec<(PathBuf, String)>) = small
                .drain(..)
                .map(|(rel, path, target)| (rel, (path, target)))
                .unzip();
            let group = client::send_small_puts(conn, files, algorithm, progress).await?;
            sent.extend(rels.into_iter().zip(group));
            answers(conn, &mut sent, PUTS_AHEAD, &mut report, &mut failed).await?;
            continue;
        }
        if size > WHOLE_PUT_MAX {
            // The resumable exchange waits for answers: the ones before it come first.
            answers(conn, &mut sent, 0, &mut report, &mut failed).await?;
            if failed.is_some() {
                break;
            }
            match client::put_file(conn, hashes, &path, &target, algorithm, progress).await {
                Ok(transfer) => report.files.push((rel, transfer)),
                Err(e) if in_step(&e) => failed = Some(e),
                Err(e) => return Err(e),
            }
            continue;
        }
        let one = client::send_whole_put(conn, hashes, &path, &target, algorithm, progress).await?;
        sent.push_back((rel, one));
        answers(conn, &mut sent, PUTS_AHEAD, &mut report, &mut failed).await?;
    }
    answers(conn, &mut sent, 0, &mut report, &mut failed).await?;
    if let Some(e) = failed {
        return Err(e);
    }
    let mut finished: Vec<(String, Option<u32>, Option<i64>)> = tree
        .dirs
        .into_iter()
        .map(|(rel, mode, mtime)| (rel, Some(mode), Some(mtime)))
        .collect();
    // Deepest first, so setting a parent's mtime is not undone by a child.
    finished.sort_by_key(|(rel, _, _)| {
        std::cmp::Reverse(rel.matches('/').count() + usize::from(!rel.is_empty()))
    });
    for entry in &mut finished {
        entry.0 = join_remote(remote, &entry.0);
    }
    client::mkdir_all(conn, &finished).await?;
    Ok(report)
}

/// Reads answers to sent puts until at most `keep` are unanswered; a refusal is kept in
/// `failed` (the first one) and the rest are still read.
async fn answers<S>(
    conn: &mut Connection<S>,
    sent: &mut VecDeque<(String, SentPut)>,
    keep: usize,
    report: &mut TreeReport,
    failed: &mut Option<ClientError>,
) -> Result<(), ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    while sent.len() > keep {
        let Some((rel, one)) = sent.pop_front() else {
            break;
        };
        match client::receive_put(conn, &one).await {
            Ok(transfer) => report.files.push((rel, transfer)),
            Err(e) if in_step(&e) => {
                failed.get_or_insert(e);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod depth_tests {
    use super::{Depth, FDS_SPARE};

    /// The most descriptors a `get -r` at `depth` holds: two per file in flight.
    fn most_held(depth: Depth) -> u64 {
        let files =
            depth.gets_ahead + depth.small_writes + 2 * (depth.commit_every + depth.small_writes);
        2 * files as u64
    }

    #[test]
    fn the_full_depth_needs_a_high_limit_and_a_lower_limit_gets_a_depth_that_fits() {
        let full = Depth::for_limit(None);
        assert_eq!(full, Depth::for_limit(Some(1 << 20)));
        assert!(
            most_held(full) > 1024,
            "the full depth would not fit the usual 1,024"
        );
        for limit in [256, 300, 512, 1024, 2048] {
            let depth = Depth::for_limit(Some(limit));
            assert!(
                most_held(depth) + FDS_SPARE <= limit,
                "{depth:?} holds {} of {limit}",
                most_held(depth)
            );
            assert!(depth.gets_ahead >= 1 && depth.commit_every >= 1 && depth.small_writes >= 1);
        }
    }
}
