//! `get -r`: a listing, then every file asked for ahead of its answer (see the module above).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

use super::filter::{Filter, IGNORE_FILE};
use super::links::{HardLinks, RealDirs, hard_link, make_link, set_attrs};
use super::local::{self, Links};
use super::plan;
use super::received::{Commits, Received, SmallWrites, seal};
use super::{Change, attrs_differ};
use super::{TreeOptions, TreeReport, in_step};
use crate::client::ClientError;
use crate::client::files::{self as client, AskedGet, Progress, join_remote};
use crate::connection::Connection;
use crate::protocol::FileEntry;
use crate::protocol::FileKind;
use crate::transfer::hash_cache::HashCache;

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

/// Downloads the remote directory `remote` into `target` (created if needed), as `options`
/// say: filtered, mirrored, or only planned.
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
    let mut report = TreeReport::default();
    let listing = client::list(conn, remote, true).await?;
    // Every listed path is checked before anything else (a hostile server's too).
    for entry in &listing {
        local_path(target, &entry.path)?;
    }
    let top = client::describe(conn, remote).await?;
    let filter = remote_filter(conn, remote, &listing, options).await?;
    let mut source = vec![FileEntry {
        path: String::new(),
        ..top
    }];
    for entry in listing {
        if entry.not_utf8 {
            report
                .skipped
                .push((entry.path.clone(), "name is not UTF-8 on the server".into()));
        } else if !filter.excludes_or_parent(&entry.path, entry.kind == FileKind::Dir) {
            source.push(entry);
        }
    }
    let held = local::walk(target, &Filter::default(), Links::Keep)?;
    let held: Vec<FileEntry> = held.entries.into_iter().map(|(e, _)| e).collect();
    let plan = plan::plan(&source, &held, &filter, options.delete);
    let hard = HardLinks::of(&plan, options.hard_links);
    report.skipped.extend(plan.skipped.iter().cloned());
    let (files, dirs, bytes) = plan.removed();
    if !plan.removals.is_empty()
        && !options.dry_run
        && let Some(approve) = options.approve_removals
        && !approve(&target.display().to_string(), files, dirs, bytes)
    {
        return Err(ClientError::Declined);
    }
    let mut wanted = Vec::new();
    let mut attrs = Vec::new();
    for (entry, held) in &plan.files {
        if hard.is_link(&entry.path) {
            continue;
        }
        let local = local_path(target, &entry.path)?;
        let remote_path = join_remote(remote, &entry.path);
        if client::is_same(conn, &remote_path, Some(entry), &local, check).await? {
            report.up_to_date.push(entry.path.clone());
            if held.as_ref().is_some_and(|h| attrs_differ(entry, h)) {
                attrs.push((entry.path.clone(), local, entry.mode, entry.mtime_ns));
            }
            continue;
        }
        let change = if held.is_some() {
            Change::Update
        } else {
            Change::Create
        };
        wanted.push((entry.path.clone(), remote_path, local, entry.size, change));
    }
    if options.dry_run {
        let mut sizes: Vec<(String, u64, Change)> = wanted
            .iter()
            .map(|(rel, _, _, size, change)| (rel.clone(), *size, *change))
            .collect();
        sizes.extend(
            attrs
                .iter()
                .map(|(rel, ..)| (rel.clone(), 0, Change::Attrs)),
        );
        report.planned = plan::itemize(&plan, &held, &sizes, &hard);
        return Ok(report);
    }
    let local_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ClientError::Local { path, source }
    };
    let mut real = RealDirs::new(target);
    for removal in &plan.removals {
        let local = local_path(target, &removal.path)?;
        real.check_parent(&local)?;
        let removed = if removal.kind == FileKind::Dir {
            std::fs::remove_dir(&local)
        } else {
            std::fs::remove_file(&local)
        };
        removed.map_err(local_err(&local))?;
        real.forget(&local);
        report.removed.push(removal.path.clone());
    }
    std::fs::create_dir_all(target).map_err(local_err(target))?;
    let mut dirs = Vec::new();
    for dir in &plan.dirs {
        let local = local_path(target, &dir.path)?;
        real.check_parent(&local)?;
        match std::fs::create_dir(&local) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && local.is_dir() => {}
            Err(e) => return Err(local_err(&local)(e)),
        }
        if !dir.path.is_empty() {
            report.dirs += 1;
        }
        dirs.push((local, dir.mode, dir.mtime_ns));
    }
    for (_, _, local, _, _) in &wanted {
        real.check_parent(local)?;
    }
    progress.plan(
        wanted.len() as u64,
        wanted.iter().map(|(_, _, _, size, _)| size).sum(),
    );
    let wanted: Vec<(String, String, PathBuf, u64)> = wanted
        .into_iter()
        .map(|(rel, remote_path, local, size, _)| (rel, remote_path, local, size))
        .collect();
    let mut wanted = wanted.into_iter();
    let depth = Depth::for_limit(crate::fd_limit::soft());
    let mut asked: VecDeque<(String, PathBuf, Asked)> = VecDeque::new();
    let mut small = SmallWrites::new(depth.small_writes);
    let mut received: Vec<Received> = Vec::new();
    let mut commits = Commits::default();
    let mut failed: Option<ClientError> = None;
    let mut again: Vec<(String, PathBuf)> = Vec::new();
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
                client::ask_get(
                    conn,
                    &remote_path,
                    &local,
                    algorithm,
                    delta.clone(),
                    options.compress,
                )
                .await
                .map(|one| Asked::Large(Box::new(one)))
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
                let delta = one.is_delta();
                let got = client::receive_get(conn, *one, progress).await;
                match got {
                    Ok((transfer, verified)) => {
                        received.push(seal(rel, transfer, verified, local));
                        Ok(())
                    }
                    // A delta that did not verify is fetched whole once the pipeline is done.
                    Err(e) if delta && client::failed_verification(&e) => {
                        again.push((rel, local));
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
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
    for (rel, local) in again {
        let remote_path = join_remote(remote, &rel);
        let transfer = client::get_file(
            conn,
            &remote_path,
            &local,
            algorithm,
            None,
            options.compress,
            progress,
        )
        .await?;
        report.files.push((rel, transfer));
    }
    for (rel, local, mode, mtime_ns) in attrs {
        real.check_parent(&local)?;
        set_attrs(&local, mode, mtime_ns).map_err(local_err(&local))?;
        report.attrs.push(rel);
    }
    for link in &plan.links {
        let local = local_path(target, &link.path)?;
        real.check_parent(&local)?;
        make_link(&local, link).map_err(local_err(&local))?;
        report.links.push(link.path.clone());
    }
    for (path, first) in hard.links() {
        let (local, original) = (local_path(target, path)?, local_path(target, first)?);
        real.check_parent(&local)?;
        hard_link(&original, &local).map_err(local_err(&local))?;
        report.links.push(path.clone());
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

/// The tree's filter: the options' rules, then the source's `.ferryignore` when it has one at
/// its top (fetched first, small, into memory) and the options read it.
async fn remote_filter<S>(
    conn: &mut Connection<S>,
    remote: &str,
    listing: &[FileEntry],
    options: &TreeOptions,
) -> Result<Filter, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let has_ignore_file = listing
        .iter()
        .any(|e| e.path == IGNORE_FILE && e.kind == FileKind::File);
    if !options.ignore_file || !has_ignore_file {
        return Ok(options.filter.clone());
    }
    let path = join_remote(remote, IGNORE_FILE);
    client::ask_whole_get(conn, &path, options.algorithm).await?;
    let (_, got) =
        client::receive_small_get(conn, &path, options.algorithm, &mut client::NoProgress).await?;
    let text = String::from_utf8_lossy(&got.bytes);
    options
        .filter
        .clone()
        .with_ignore_file(&text)
        .map_err(ClientError::Protocol)
}

/// A get asked for and not yet answered.
enum Asked {
    /// A small file, received into memory (its remote path).
    Small(String),
    /// A larger one, received into its partial (boxed: it is many times a small one's size).
    Large(Box<AskedGet>),
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
