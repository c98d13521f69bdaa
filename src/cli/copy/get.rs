//! `ferry get`: remote paths (globs expanded by a listing) into a local file, a directory, or
//! stdout.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};

use super::report::{Outcome, Report};
use super::{GetArgs, connect, describe, interruptible, split_last};
use crate::cli::address::{RemoteArg, is_glob};
use crate::cli::progress::{BarProgress, TreeProgress};
use ferry::client::files::{base_name, join_remote};
use ferry::protocol::FileKind;
use ferry::safe_text::escape;

/// `ferry get`.
pub async fn get(args: GetArgs, verbose: u8) -> anyhow::Result<ExitCode> {
    // A tree keeps many files open at once; use what the hard limit allows (see `Depth`).
    ferry::fd_limit::raise_to_hard_limit();
    let (sources, local) = split_last(&args.paths);
    let remotes: Vec<RemoteArg> = sources.iter().map(|s| RemoteArg::parse(s)).collect();
    let mut client = connect(&args.client, &remotes.iter().collect::<Vec<_>>()).await?;
    let options = &args.options;
    if let Some(rate) = options.bwlimit {
        client.limit_bandwidth(rate);
    }
    let mut report = Report::new(options, verbose);
    let tree_options = options.tree()?;

    if local.is_some_and(|l| l == "-") {
        let [remote] = &remotes[..] else {
            bail!("only one file can go to stdout (-)");
        };
        if options.recursive() || is_glob(&remote.path) {
            bail!("only one file can go to stdout (-), not a tree or a glob");
        }
        let stdout = std::io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .context("cannot write to stdout")?;
        let started = Instant::now();
        let mut progress = BarProgress::new(true);
        let transfer = interruptible(async {
            Ok(client
                .files()
                .get_to_writer(
                    &remote.path,
                    stdout.into(),
                    options.algorithm(),
                    &mut progress,
                )
                .await?)
        })
        .await?;
        report.file(&remote.path, "-", &Outcome::Moved(transfer), started);
        return Ok(report.finish(false));
    }

    // Globs become the names they match, in the order the server lists them.
    let mut paths = Vec::new();
    for remote in &remotes {
        if let Some((dir, _)) = remote.path.rsplit_once('/')
            && dir.contains(['*', '?', '['])
        {
            bail!(
                "'{}': a pattern works in the last name only (as in 'dir/*.txt', not '*/x.txt')",
                escape(&remote.path)
            );
        }
        if !is_glob(&remote.path) {
            paths.push(remote.path.clone());
            continue;
        }
        let (dir, pattern) = match remote.path.rsplit_once('/') {
            Some((dir, pattern)) => (dir.to_string(), pattern),
            None => (String::new(), remote.path.as_str()),
        };
        let glob = glob::Pattern::new(pattern)
            .with_context(|| format!("'{}' is not a valid pattern", remote.path))?;
        let before = paths.len();
        for entry in client.files().list(&dir, false).await? {
            if glob.matches(&entry.path) && (options.recursive() || entry.kind == FileKind::File) {
                paths.push(join_remote(&dir, &entry.path));
            }
        }
        if paths.len() == before {
            bail!("no remote file matches '{}'", escape(&remote.path));
        }
    }

    let local = local.map(PathBuf::from);
    let into_dir = match &local {
        None => Some(PathBuf::from(".")),
        Some(dir) if dir.is_dir() => Some(dir.clone()),
        Some(path) if paths.len() > 1 && path.exists() => {
            bail!(
                "'{}' is not a directory: several files go into a directory",
                escape(&path.display().to_string())
            );
        }
        Some(path) if paths.len() > 1 || path.to_string_lossy().ends_with('/') => {
            bail!(
                "the local directory '{}' does not exist",
                escape(&path.display().to_string())
            );
        }
        Some(path) => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
                && !parent.is_dir()
            {
                bail!(
                    "the local directory '{}' does not exist",
                    escape(&parent.display().to_string())
                );
            }
            None
        }
    };
    let mut skipped_any = false;
    for path in &paths {
        // rsync's rule: `DIR/` is the directory's contents, `DIR` the directory itself.
        let contents = path.len() > 1 && path.ends_with('/');
        let path = &path.trim_end_matches('/').to_string();
        let target = match &into_dir {
            Some(dir) => {
                let name = base_name(path)
                    .filter(|n| n != ".")
                    .with_context(|| format!("name a local target for '{}'", escape(path)))?;
                if dir == Path::new(".") {
                    PathBuf::from(name)
                } else {
                    dir.join(name)
                }
            }
            None => local.clone().unwrap_or_default(),
        };
        let shown = target.display().to_string();
        let started = Instant::now();
        let mut progress = BarProgress::new(options.json);
        let entry = describe(&mut client, path)
            .await?
            .with_context(|| format!("'{}' does not exist on the server", escape(path)))?;
        if entry.kind == FileKind::Dir {
            if !options.recursive() {
                bail!("'{}' is a directory; use get -r", escape(path));
            }
            // The directory itself goes into LOCAL (LOCAL/NAME) whether or not LOCAL exists
            // yet, so an interrupted copy and its re-run go to one place; its contents
            // (`DIR/`) go into LOCAL itself.
            let target = match (&local, contents) {
                (Some(local), true) => local.clone(),
                (None, true) => PathBuf::from("."),
                (Some(local), false) if into_dir.is_none() => {
                    let name = base_name(path)
                        .filter(|n| n != ".")
                        .with_context(|| format!("name a local target for '{}'", escape(path)))?;
                    std::fs::create_dir_all(local).with_context(|| {
                        format!("cannot make {}", escape(&local.display().to_string()))
                    })?;
                    local.join(name)
                }
                _ => target,
            };
            let shown = target.display().to_string();
            if target.exists() && !target.is_dir() {
                bail!(
                    "cannot get the directory '{}' onto the file '{}'",
                    escape(path),
                    escape(&shown)
                );
            }
            let tree = interruptible(async {
                Ok(client
                    .files()
                    .get_tree(
                        path,
                        &target,
                        &tree_options,
                        &mut TreeProgress::new(options.json),
                    )
                    .await?)
            })
            .await?;
            skipped_any |= !tree.skipped.is_empty();
            report.tree(path, &shown, &tree, started);
            continue;
        }
        let outcome = if client
            .files()
            .is_same(path, Some(&entry), &target, options.check())
            .await?
        {
            Outcome::UpToDate(entry.size)
        } else {
            Outcome::Moved(
                interruptible(async {
                    Ok(client
                        .files()
                        .get_file(
                            path,
                            &target,
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
        report.file(path, &shown, &outcome, started);
    }
    Ok(report.finish(skipped_any))
}
