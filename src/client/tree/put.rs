//! `put -r`: a walk of the local tree, then its files pipelined (see the module above).

use std::collections::{HashMap, VecDeque};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncRead, AsyncWrite};

use super::{TreeOptions, TreeReport, in_step};
use crate::client::ClientError;
use crate::client::files::{self as client, Check, Progress, SentPut, join_remote};
use crate::connection::Connection;
use crate::protocol::FileEntry;
use crate::transfer::hash_cache::HashCache;

/// Whole puts sent before the first is answered; more than the server holds for one commit
/// (`MAX_HELD`), so the server commits because its batch is full, not because the client
/// stopped to wait.
pub const PUTS_AHEAD: usize = 1024;
/// Small files sent in one write (and read in one trip to a blocking thread), at most.
const SMALL_PUTS_AT_ONCE: usize = 64;
/// Files up to this size are put `whole` (pipelined, not resumable); larger ones resumably.
pub const WHOLE_PUT_MAX: u64 = 4 << 20;

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
    options: &TreeOptions,
    progress: &mut dyn Progress,
) -> Result<TreeReport, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (algorithm, check) = (options.algorithm, options.check);
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
            match client::put_file(
                conn,
                hashes,
                &path,
                &target,
                algorithm,
                options.delta,
                progress,
            )
            .await
            {
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
