//! `get -r`: a listing, then every file asked for ahead of its answer (see the module above).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

use super::received::{Commits, SmallWrites, seal};
use super::{TreeOptions, TreeReport, in_step};
use crate::client::ClientError;
use crate::client::files::Transfer;
use crate::client::files::{self as client, AskedGet, Progress, join_remote};
use crate::connection::Connection;
use crate::protocol::FileKind;
use crate::transfer::hash_cache::HashCache;
use crate::transfer::partial::Sealed;

/// Gets asked before the first is answered (each holds its partial open), at most.
pub const GETS_AHEAD: usize = 64;
/// Received files made durable together, at most.
const COMMIT_EVERY: usize = 256;
/// Descriptors a tree transfer leaves to everything else (the connection, the runtime, a
/// directory walked, the standard streams).
const FDS_SPARE: u64 = 64;
/// Files listed at most this large are received into memory and written in batches.
pub const SMALL_GET: u64 = 64 * 1024;
/// Small files (and their bytes) held in memory before they are written, at most.
const SMALL_WRITES: usize = 64;
pub(super) const SMALL_WRITE_BYTES: usize = 4 << 20;

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

/// Downloads the remote directory `remote` into `target` (created if needed).
///
/// # Errors
/// The first failing file or directory (the files before it, and those already asked for
/// behind it, are kept).
pub async fn get_tree<S>(
    conn: &mut Connection<S>,
    hashes: &Arc<HashCache>,
    remote: &str,
    target: &Path,
    options: &TreeOptions,
    progress: &mut dyn Progress,
) -> Result<TreeReport, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (algorithm, check) = (options.algorithm, options.check);
    let delta = options.delta.then(|| Arc::clone(hashes));
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
                client::ask_get(conn, &remote_path, &local, algorithm, delta.clone())
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
