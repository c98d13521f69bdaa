//! `put -r`: a walk of the local tree, then its files pipelined (see the module above).

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};

use tokio::io::{AsyncRead, AsyncWrite};

use super::filter::{Filter, IGNORE_FILE};
use super::links::HardLinks;
use super::{Change, TreeOptions, TreeReport, attrs_differ, in_step, local, plan};
use crate::client::ClientError;
use crate::client::files::{self as client, Check, Progress, SentPut, join_remote};
use crate::connection::Connection;
use crate::protocol::FileEntry;
use crate::protocol::{Attrs, ErrorCode, HardLink, Message, Remove, Symlink};
use crate::transfer::hash_cache::HashCache;

/// Whole puts sent before the first is answered; more than the server holds for one commit
/// (`MAX_HELD`), so the server commits because its batch is full, not because the client
/// stopped to wait.
pub const PUTS_AHEAD: usize = 1024;
/// Small files sent in one write (and read in one trip to a blocking thread), at most.
const SMALL_PUTS_AT_ONCE: usize = 64;
/// Files up to this size are put `whole` (pipelined, not resumable); larger ones resumably.
pub const WHOLE_PUT_MAX: u64 = 4 << 20;

/// Uploads the local directory `source` to `remote` (created if needed), as `options` say:
/// filtered, mirrored, or only planned.
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
    let filter = local_filter(source, options)?;
    let tree = local::walk(source, &filter, options.links)?;
    report.skipped.extend(tree.skipped.iter().cloned());
    let local_paths: HashMap<&str, &PathBuf> = tree
        .entries
        .iter()
        .map(|(e, p)| (e.path.as_str(), p))
        .collect();
    let entries: Vec<FileEntry> = tree.entries.iter().map(|(e, _)| e.clone()).collect();
    // What the server already holds (one listing, not one question per file).
    let held = match client::list(conn, remote, true).await {
        Ok(held) => held,
        Err(ClientError::Server(refusal)) if refusal.code == ErrorCode::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    let plan = plan::plan(&entries, &held, &filter, options.delete);
    let hard = HardLinks::of_inodes(&plan, options.hard_links, &tree.inodes);
    report.skipped.extend(plan.skipped.iter().cloned());
    let (files, dirs, bytes) = plan.removed();
    if !plan.removals.is_empty()
        && !options.dry_run
        && let Some(approve) = options.approve_removals
        && !approve(remote, files, dirs, bytes)
    {
        return Err(ClientError::Declined);
    }
    let mut to_send = Vec::new();
    let mut attrs = Vec::new();
    for (entry, there) in &plan.files {
        if hard.is_link(&entry.path) {
            continue;
        }
        let target = join_remote(remote, &entry.path);
        let path = local_paths
            .get(entry.path.as_str())
            .map(|p| (*p).clone())
            .unwrap_or_else(|| source.join(&entry.path));
        let same = check != Check::Never
            && client::is_same(conn, &target, there.as_ref(), &path, check).await?;
        if same {
            report.up_to_date.push(entry.path.clone());
            if there.as_ref().is_some_and(|t| attrs_differ(entry, t)) {
                attrs.push((entry.path.clone(), target, entry.mode, entry.mtime_ns));
            }
        } else {
            let change = if there.is_some() {
                Change::Update
            } else {
                Change::Create
            };
            to_send.push((entry.path.clone(), path, entry.size, target, change));
        }
    }
    if options.dry_run {
        let mut sizes: Vec<(String, u64, Change)> = to_send
            .iter()
            .map(|(rel, _, size, _, change)| (rel.clone(), *size, *change))
            .collect();
        sizes.extend(
            attrs
                .iter()
                .map(|(rel, ..)| (rel.clone(), 0, Change::Attrs)),
        );
        report.planned = plan::itemize(&plan, &held, &sizes, &hard);
        return Ok(report);
    }
    let removals: Vec<Message> = plan
        .removals
        .iter()
        .map(|e| {
            Message::Remove(Remove {
                path: join_remote(remote, &e.path),
            })
        })
        .collect();
    client::all_done(conn, &removals).await?;
    report
        .removed
        .extend(plan.removals.iter().map(|e| e.path.clone()));
    // Parents before children: the walk met them in that order.
    let made: Vec<(String, Option<u32>, Option<i64>)> = plan
        .dirs
        .iter()
        .filter(|d| !is_root(&join_remote(remote, &d.path)))
        .map(|d| (join_remote(remote, &d.path), None, None))
        .collect();
    client::mkdir_all(conn, &made).await?;
    report.dirs = plan.dirs.iter().filter(|d| !d.path.is_empty()).count() as u64;
    progress.plan(
        to_send.len() as u64,
        to_send.iter().map(|(_, _, size, _, _)| size).sum(),
    );
    let to_send: Vec<(String, PathBuf, u64, String)> = to_send
        .into_iter()
        .map(|(rel, path, size, target, _)| (rel, path, size, target))
        .collect();
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
                options.compress,
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
    let mut links: Vec<Message> = plan
        .links
        .iter()
        .map(|l| {
            Message::Symlink(Symlink {
                path: join_remote(remote, &l.path),
                target: l.target.clone().unwrap_or_default(),
                mtime_ns: Some(l.mtime_ns),
            })
        })
        .collect();
    links.extend(hard.links().map(|(path, first)| {
        Message::HardLink(HardLink {
            path: join_remote(remote, path),
            existing: join_remote(remote, first),
        })
    }));
    links.extend(attrs.iter().map(|(_, target, mode, mtime_ns)| {
        Message::Attrs(Attrs {
            path: target.clone(),
            mode: Some(*mode),
            mtime_ns: Some(*mtime_ns),
        })
    }));
    client::all_done(conn, &links).await?;
    report.attrs.extend(attrs.into_iter().map(|(rel, ..)| rel));
    report
        .links
        .extend(plan.links.iter().map(|l| l.path.clone()));
    report.links.extend(hard.links().map(|(p, _)| p.clone()));
    let mut finished: Vec<(String, Option<u32>, Option<i64>)> = plan
        .dirs
        .iter()
        .filter(|d| !is_root(&join_remote(remote, &d.path)))
        .map(|d| (d.path.clone(), Some(d.mode), Some(d.mtime_ns)))
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

/// Whether a remote path names the server's root (which no request may change).
fn is_root(path: &str) -> bool {
    path.trim_matches('/').is_empty() || path.trim_matches('/') == "."
}

/// The tree's filter: the options' rules, then the source's `.ferryignore` when the options
/// read it and it has one.
///
/// # Errors
/// The ignore file cannot be read or holds an invalid pattern.
pub fn local_filter(source: &Path, options: &TreeOptions) -> Result<Filter, ClientError> {
    let path = source.join(IGNORE_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) if options.ignore_file => options
            .filter
            .clone()
            .with_ignore_file(&text)
            .map_err(ClientError::Protocol),
        Ok(_) => Ok(options.filter.clone()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(options.filter.clone()),
        Err(e) => Err(ClientError::Local { path, source: e }),
    }
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
