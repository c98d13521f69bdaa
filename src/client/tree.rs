//! Whole trees (`get -r`, `put -r`) as a walk plus single-file transfers, so every file of a
//! tree is verified and resumable on its own. Directories get their mode and mtime last, after
//! their contents stopped changing them. Symlinks, devices and fifos inside a tree are not
//! transferred: they are reported in [`TreeReport::skipped`].

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncRead, AsyncWrite};

use super::ClientError;
use super::files::{self as client, Check, Progress, Transfer, join_remote};
use crate::connection::Connection;
use crate::protocol::{FileEntry, FileKind, HashAlgorithm};
use crate::transfer::hash_cache::HashCache;

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

/// Downloads the remote directory `remote` into `target` (created if needed).
///
/// # Errors
/// The first failing file or directory.
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
    for entry in &entries {
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
                let transfer =
                    client::get_file(conn, &remote_path, &local, algorithm, progress).await?;
                report.files.push((entry.path.clone(), transfer));
            }
            FileKind::Symlink => report.skipped.push((entry.path.clone(), "symlink".into())),
            FileKind::Other => report
                .skipped
                .push((entry.path.clone(), "not a regular file".into())),
        }
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

/// Uploads the local directory `source` to `remote` (created if needed).
///
/// # Errors
/// The first failing file or directory.
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
    let mut dirs = Vec::new();
    client::mkdir(conn, remote, None, None).await?;
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
    let mut pending: Vec<(PathBuf, String)> = vec![(source.to_path_buf(), String::new())];
    while let Some((dir, rel_dir)) = pending.pop() {
        let meta = std::fs::metadata(&dir).map_err(|e| ClientError::Local {
            path: dir.clone(),
            source: e,
        })?;
        dirs.push((
            rel_dir.clone(),
            meta.permissions().mode() & 0o7777,
            crate::transfer::metadata::mtime_ns(&meta),
        ));
        let mut children: Vec<_> = std::fs::read_dir(&dir)
            .map_err(|e| ClientError::Local {
                path: dir.clone(),
                source: e,
            })?
            .filter_map(Result::ok)
            .collect();
        children.sort_by_key(|c| c.file_name());
        for child in children {
            let Some(name) = child.file_name().to_str().map(str::to_string) else {
                let shown = child.file_name().to_string_lossy().into_owned();
                report
                    .skipped
                    .push((join_remote(&rel_dir, &shown), "name is not UTF-8".into()));
                continue;
            };
            let rel = join_remote(&rel_dir, &name);
            let kind = child.file_type().map_err(|e| ClientError::Local {
                path: child.path(),
                source: e,
            })?;
            if kind.is_dir() {
                client::mkdir(conn, &join_remote(remote, &rel), None, None).await?;
                report.dirs += 1;
                pending.push((child.path(), rel));
            } else if kind.is_file() {
                let target = join_remote(remote, &rel);
                if client::is_same(conn, &target, held.get(&rel), &child.path(), check).await? {
                    report.up_to_date.push(rel);
                    continue;
                }
                let transfer = client::put_file(
                    conn,
                    hashes,
                    &child.path(),
                    &join_remote(remote, &rel),
                    algorithm,
                    progress,
                )
                .await?;
                report.files.push((rel, transfer));
            } else if kind.is_symlink() {
                report.skipped.push((rel, "symlink".into()));
            } else {
                report.skipped.push((rel, "not a regular file".into()));
            }
        }
    }
    dirs.sort_by_key(|(rel, _, _)| {
        std::cmp::Reverse(rel.matches('/').count() + usize::from(!rel.is_empty()))
    });
    for (rel, mode, mtime) in dirs {
        client::mkdir(conn, &join_remote(remote, &rel), Some(mode), Some(mtime)).await?;
    }
    Ok(report)
}
