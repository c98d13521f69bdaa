//! `--watch`: after the first pass, a local tree's changes are followed until Ctrl-C. Each
//! settled batch of changes (see `ferry::client::watch`) is answered by its renames, done
//! remotely as renames, and one more pass of the same copy, which sends what changed (as
//! deltas) and, for a mirror, removes what went.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use ferry::client::files::join_remote;
use ferry::client::tree::{self, TreeOptions};
use ferry::client::watch::{Batch, TreeWatcher};
use ferry::client::{Client, ClientError};
use ferry::safe_text::escape;

use super::TransferOptions;
use super::report::Report;
use crate::cli::progress::TreeProgress;

/// How long after a failed pass the next one runs when nothing else changed.
const RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// Follows `local`'s changes into `remote` until Ctrl-C (exit 0) or a broken connection.
///
/// # Errors
/// The connection failed, or the watch could not go on.
pub(super) async fn follow(
    client: &mut Client,
    mut watcher: TreeWatcher,
    local: &Path,
    remote: &str,
    tree_options: &TreeOptions,
    options: &TransferOptions,
    verbose: u8,
) -> anyhow::Result<ExitCode> {
    // Later passes mirror what the user does here, as it happens: nothing to ask again.
    let tree_options = TreeOptions {
        approve_removals: None,
        ..tree_options.clone()
    };
    eprintln!(
        "ferry: watching {} for changes (Ctrl-C stops)",
        escape(&local.display().to_string())
    );
    // One listener for the whole watch, made before anything else: a Ctrl-C that comes during
    // a pass is not lost between two waits.
    let stop = tokio::signal::ctrl_c();
    tokio::pin!(stop);
    let follow = async {
        // After a pass that failed (a file removed or changed while it was read, mid-burst), the
        // next one runs after [`RETRY`] even if nothing else changes.
        let mut retry: Option<tokio::time::Instant> = None;
        loop {
            let batch = tokio::select! {
                batch = watcher.next_batch() => batch,
                () = until(retry) => Some(Batch::default()),
            };
            retry = None;
            let Some(batch) = batch else {
                anyhow::bail!(
                    "the watch on {} ended",
                    escape(&local.display().to_string())
                );
            };
            let started = Instant::now();
            let filter = tree::source_filter(local, &tree_options)?;
            for (from, to) in &batch.renames {
                let is_dir = local.join(to).is_dir();
                if filter.excludes_or_parent(to, is_dir) {
                    continue;
                }
                // Best effort: what a rename cannot do (the old name never got there, say), the
                // pass below does by sending.
                let to_remote = join_remote(remote, to);
                if let Some((parent, _)) = to_remote.rsplit_once('/') {
                    let _ = client.files().mkdir(parent, None, None).await;
                }
                match client
                    .files()
                    .rename(&join_remote(remote, from), &to_remote)
                    .await
                {
                    Ok(()) | Err(ClientError::Server(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            let pass = client
                .files()
                .put_tree(
                    local,
                    remote,
                    &tree_options,
                    &mut TreeProgress::new(options.json),
                )
                .await;
            let mut report = Report::new(options, verbose);
            match pass {
                Ok(tree) => {
                    let shown = local.display().to_string();
                    report.tree(&shown, remote, &tree, started);
                    report.finish(false);
                }
                // A file that changed while it was sent, a refusal: the next change tries again.
                Err(
                    e @ (ClientError::Server(_)
                    | ClientError::Integrity(_)
                    | ClientError::Local { .. }),
                ) => {
                    eprintln!("ferry: {e}; trying again");
                    retry = Some(tokio::time::Instant::now() + RETRY);
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    tokio::select! {
        followed = follow => followed,
        _ = &mut stop => Ok(ExitCode::SUCCESS),
    }
}

/// Waits until `at`, or forever when there is no such moment.
async fn until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
