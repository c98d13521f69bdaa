//! `ferry get` and `ferry put`, with scp's and rsync's habits: `HOST[:PORT]:PATH` arguments,
//! several sources into a directory, remote globs, `-` for stdout and stdin, files already the
//! same skipped ("up to date"), a one-line summary per file on a terminal, and Ctrl-C leaving
//! the partial file for the next run to resume.

mod get;
mod options;
mod put;
mod report;
mod sync;
mod watch;

use anyhow::bail;
use clap::Args;

pub use get::get;
pub use options::TransferOptions;
pub use put::put;
pub use sync::{SyncArgs, sync};

use super::ClientArgs;
use super::address::{RemoteArg, server_address};
use ferry::client::{Client, ClientError};
use ferry::protocol::{ErrorCode, FileEntry, Refusal};

#[derive(Debug, Args)]
#[command(override_usage = "ferry get [OPTIONS] [HOST[:PORT]:]REMOTE... [LOCAL | -]")]
pub struct GetArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub options: TransferOptions,
    /// Remote paths ([HOST[:PORT]:]PATH; the last name may be a glob, quoted), then where to
    /// put them: a file, a directory, or - for stdout [default: the current directory].
    #[arg(value_name = "PATH", required = true, num_args = 1..)]
    pub paths: Vec<String>,
}

#[derive(Debug, Args)]
#[command(
    override_usage = "ferry put [OPTIONS] LOCAL... [[HOST[:PORT]:]REMOTE]\n       ferry put [OPTIONS] - [HOST[:PORT]:]REMOTE"
)]
pub struct PutArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub options: TransferOptions,
    /// Create the remote directory (and its parents) when it does not exist.
    #[arg(short = 'p', long)]
    pub mkdir: bool,
    /// After copying the tree, follow its changes until Ctrl-C (one local directory, -r).
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Local files (directories with -r; - for stdin), then where they go under the server's
    /// root ([HOST[:PORT]:]PATH) [default: the root, under their own names].
    #[arg(value_name = "PATH", required = true, num_args = 1..)]
    pub paths: Vec<String>,
}

/// The sources and the destination of `SRC... [DEST]`.
pub(super) fn split_last(paths: &[String]) -> (&[String], Option<&String>) {
    match paths {
        [only] => (std::slice::from_ref(only), None),
        [sources @ .., last] => (sources, Some(last)),
        [] => (&[], None),
    }
}

/// Connects to the one server the arguments name (or `--server`).
pub(super) async fn connect(client: &ClientArgs, named: &[&RemoteArg]) -> anyhow::Result<Client> {
    let mut servers = named.iter().filter_map(|r| r.server.as_deref());
    let server = servers.next();
    let same = |a: &str, b: &str| a == b || server_address(a) == server_address(b);
    if let Some(other) = servers.find(|s| !server.is_some_and(|first| same(s, first))) {
        bail!(
            "all remote paths must be on one server; got {} and {}",
            server.unwrap_or_default(),
            other
        );
    }
    let mut args = client.clone();
    if let Some(server) = server {
        args.server = vec![server.to_string()];
    }
    args.connect().await
}

/// Runs a transfer; on Ctrl-C, says the partial file stays and exits 130 as shells report it.
pub(super) async fn interruptible<T>(
    transfer: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::select! {
        done = transfer => done,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("\nferry: interrupted: partial kept: re-run to resume");
            std::process::exit(130);
        }
    }
}

/// The entry describing `path`, or `None` when it does not exist.
pub(super) async fn describe(client: &mut Client, path: &str) -> anyhow::Result<Option<FileEntry>> {
    match client.files().describe(path).await {
        Ok(entry) => Ok(Some(entry)),
        Err(ClientError::Server(Refusal {
            code: ErrorCode::NotFound,
            ..
        })) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_argument_is_the_destination() {
        let one = vec!["a".to_string()];
        assert_eq!(split_last(&one), (&one[..], None));
        let three: Vec<String> = ["a", "b", "d/"].map(String::from).to_vec();
        assert_eq!(split_last(&three), (&three[..2], Some(&three[2])));
    }
}
