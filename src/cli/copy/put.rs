//! `ferry put`: local files (or stdin) into a remote file or directory.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};

use super::report::{Outcome, Report};
use super::{PutArgs, connect, describe, interruptible, split_last};
use crate::cli::address::RemoteArg;
use crate::cli::progress::{BarProgress, TreeProgress};
use ferry::client::files::{Check, join_remote};
use ferry::protocol::FileKind;
use ferry::safe_text::escape;

/// Stdin, read to its end into a temporary file: a `put` announces its size first.
fn spool_stdin() -> anyhow::Result<tempfile::NamedTempFile> {
    use std::os::unix::fs::PermissionsExt;
    let mut spool = tempfile::NamedTempFile::new().context("cannot make a spool file for stdin")?;
    std::io::copy(&mut std::io::stdin().lock(), spool.as_file_mut()).context("reading stdin")?;
    std::fs::set_permissions(spool.path(), std::fs::Permissions::from_mode(0o644))
        .context("cannot set the spool file's mode")?;
    Ok(spool)
}

/// `ferry put`.
pub async fn put(args: PutArgs, verbose: u8) -> anyhow::Result<ExitCode> {
    // A tree keeps many files open at once; use what the hard limit allows (see `Depth`).
    ferry::fd_limit::raise_to_hard_limit();
    let (sources, dest) = split_last(&args.paths);
    let dest = dest.map(|d| RemoteArg::parse(d)).unwrap_or(RemoteArg {
        server: None,
        path: String::new(),
    });
    let mut client = connect(&args.client, &[&dest]).await?;
    let options = &args.options;
    if let Some(rate) = options.bwlimit {
        client.limit_bandwidth(rate);
    }
    let mut report = Report::new(options, verbose);
    let tree_options = options.tree()?;

    // Where each source goes: into the destination directory, or to the destination itself.
    let dest_entry = if dest.path.is_empty() {
        None
    } else {
        describe(&mut client, &dest.path).await?
    };
    let dest_is_dir = dest.path.is_empty()
        || dest_entry.as_ref().is_some_and(|e| e.kind == FileKind::Dir)
        || dest.path.ends_with('/');
    if dest_entry.is_none() && !dest.path.is_empty() {
        // The directory the files go into must exist, or be made with --mkdir.
        let needed = if dest_is_dir || sources.len() > 1 {
            dest.path.trim_end_matches('/').to_string()
        } else {
            dest.path
                .rsplit_once('/')
                .map(|(parent, _)| parent.to_string())
                .unwrap_or_default()
        };
        if !needed.is_empty() && describe(&mut client, &needed).await?.is_none() {
            if args.mkdir {
                client.files().mkdir(&needed, None, None).await?;
            } else {
                bail!(
                    "the remote directory '{}' does not exist (--mkdir, or -p, creates it)",
                    escape(&needed)
                );
            }
        }
    }
    if sources.len() > 1 && !dest_is_dir && dest_entry.is_some() {
        bail!(
            "'{}' is not a directory: several files go into a directory",
            escape(&dest.path)
        );
    }
    let into_dir = dest_is_dir || sources.len() > 1;

    // Watching starts before the first pass, so a change made during it is not missed.
    let watcher = if args.watch {
        let [source] = sources else {
            bail!("--watch follows one local directory");
        };
        if !options.recursive() || !Path::new(source).is_dir() {
            bail!("--watch follows a directory copied with -r");
        }
        (!options.dry_run)
            .then(|| ferry::client::watch::TreeWatcher::start(Path::new(source)))
            .transpose()?
    } else {
        None
    };
    let mut watched = None;
    let mut skipped_any = false;
    let mut made_dest = false;
    for source in sources {
        let stdin_spool;
        let (local, name) = if source == "-" {
            if into_dir {
                bail!("name the remote file for stdin, e.g. 'ferry put - backup.tar'");
            }
            stdin_spool = spool_stdin()?;
            (stdin_spool.path().to_path_buf(), String::from("-"))
        } else {
            let local = PathBuf::from(source);
            let name = local_name(&local)?;
            (local, name)
        };
        let started = Instant::now();
        let mut progress = BarProgress::new(options.json);
        let meta = std::fs::metadata(&local)
            .with_context(|| format!("{}", escape(&local.display().to_string())))?;
        let tree = meta.is_dir() && options.recursive();
        if tree
            && !source.ends_with('/')
            && dest_entry.as_ref().is_some_and(|e| e.kind != FileKind::Dir)
        {
            bail!(
                "cannot put the directory '{}' into '{}': it is a file",
                escape(source),
                escape(&dest.path)
            );
        }
        let remote = if tree && source.ends_with('/') {
            // rsync's rule: `SRC/` is the directory's contents, put into DEST itself.
            dest.path.trim_end_matches('/').to_string()
        } else if tree || into_dir {
            // `SRC`, a directory, is the directory itself: it goes into DEST (DEST/NAME) whether
            // or not DEST exists yet, so an interrupted copy and its re-run go to one place.
            join_remote(&dest.path, &name)
        } else {
            dest.path.clone()
        };
        if tree && dest_entry.is_none() && !dest.path.is_empty() && !made_dest {
            client
                .files()
                .mkdir(dest.path.trim_end_matches('/'), None, None)
                .await?;
            made_dest = true;
        }
        let held = if remote == dest.path {
            dest_entry.clone()
        } else {
            describe(&mut client, &remote).await?
        };
        if meta.is_dir() {
            if !options.recursive() {
                bail!("{} is a directory; use put -r", escape(source));
            }
            if held.as_ref().is_some_and(|e| e.kind != FileKind::Dir) {
                bail!(
                    "cannot put the directory '{}' onto the file '{}'",
                    escape(source),
                    escape(&remote)
                );
            }
            let root = remote.trim_matches('/').is_empty() || remote.trim_matches('/') == ".";
            if options.delete && root && !options.force {
                bail!(
                    "--delete onto the server's root would mirror the whole root; add --force if that is what you mean"
                );
            }
            let tree = interruptible(async {
                Ok(client
                    .files()
                    .put_tree(
                        &local,
                        &remote,
                        &tree_options,
                        &mut TreeProgress::new(options.json),
                    )
                    .await?)
            })
            .await?;
            skipped_any |= !tree.skipped.is_empty();
            report.tree(source, &remote, &tree, started);
            watched = Some((local.clone(), remote.clone()));
            continue;
        }
        let check = if source == "-" {
            Check::Never
        } else {
            options.check()
        };
        let outcome = if client
            .files()
            .is_same(&remote, held.as_ref(), &local, check)
            .await?
        {
            Outcome::UpToDate(meta.len())
        } else {
            Outcome::Moved(
                interruptible(async {
                    Ok(client
                        .files()
                        .put_file(
                            &local,
                            &remote,
                            options.algorithm(),
                            options.delta(),
                            options.compress,
                            &mut progress,
                        )
                        .await?)
                })
                .await?,
            )
        };
        report.file(source, &remote, &outcome, started);
    }
    let code = report.finish(skipped_any);
    match (watcher, watched) {
        (Some(watcher), Some((local, remote))) => {
            super::watch::follow(
                &mut client,
                watcher,
                &local,
                &remote,
                &tree_options,
                options,
                verbose,
            )
            .await
        }
        _ => Ok(code),
    }
}

fn local_name(path: &Path) -> anyhow::Result<String> {
    let absolute = std::path::absolute(path).with_context(|| format!("{}", path.display()))?;
    absolute
        .file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .with_context(|| format!("{} has no usable (UTF-8) name", path.display()))
}
