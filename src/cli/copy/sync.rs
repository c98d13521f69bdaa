//! `ferry sync LOCAL [HOST:]REMOTE [--watch]`: LOCAL's contents mirrored into REMOTE — `put -r
//! --delete LOCAL/ REMOTE` under one name — and with `--watch`, kept so as LOCAL changes.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::bail;
use clap::Args;

use super::report::Report;
use super::{TransferOptions, connect, interruptible, watch};
use crate::cli::ClientArgs;
use crate::cli::address::RemoteArg;
use crate::cli::progress::TreeProgress;
use ferry::client::tree::Delete;
use ferry::client::watch::TreeWatcher;
use ferry::safe_text::escape;

#[derive(Debug, Args)]
#[command(override_usage = "ferry sync [OPTIONS] LOCAL [HOST[:PORT]:]REMOTE")]
pub struct SyncArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub options: TransferOptions,
    /// Keep following LOCAL's changes until Ctrl-C: each is sent (as a delta) within a second
    /// of it settling, a burst as one batch, a rename as a rename.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// The local directory whose contents are mirrored.
    pub local: PathBuf,
    /// Where, under the server's root: [HOST[:PORT]:]PATH (made when missing).
    pub remote: String,
}

/// `ferry sync`.
pub async fn sync(args: SyncArgs, verbose: u8) -> anyhow::Result<ExitCode> {
    ferry::fd_limit::raise_to_hard_limit();
    let options = &args.options;
    if !args.local.is_dir() {
        bail!(
            "{} is not a directory: sync mirrors a directory's contents",
            escape(&args.local.display().to_string())
        );
    }
    let remote = RemoteArg::parse(&args.remote);
    let path = remote.path.trim_end_matches('/').to_string();
    if (path.is_empty() || path == ".") && !options.force {
        bail!(
            "sync onto the server's root would mirror the whole root; add --force if that is what you mean"
        );
    }
    let mut client = connect(&args.client, &[&remote]).await?;
    if let Some(rate) = options.bwlimit {
        client.limit_bandwidth(rate);
    }
    let mut tree_options = options.tree()?;
    tree_options.delete = if options.delete_excluded {
        Delete::UnmatchedAndExcluded
    } else {
        Delete::Unmatched
    };
    // Watching starts before the first pass, so a change made during it is not missed.
    let watcher = if args.watch && !options.dry_run {
        Some(TreeWatcher::start(&args.local)?)
    } else {
        None
    };
    let started = Instant::now();
    let tree = interruptible(async {
        Ok(client
            .files()
            .put_tree(
                &args.local,
                &path,
                &tree_options,
                &mut TreeProgress::new(options.json),
            )
            .await?)
    })
    .await?;
    let mut report = Report::new(options, verbose);
    let shown = args.local.display().to_string();
    report.tree(&shown, &path, &tree, started);
    let code = report.finish(!tree.skipped.is_empty());
    match watcher {
        Some(watcher) => {
            watch::follow(
                &mut client,
                watcher,
                &args.local,
                &path,
                &tree_options,
                options,
                verbose,
            )
            .await
        }
        None => Ok(code),
    }
}
