//! `ferry get` and `ferry put`, with scp's and rsync's habits: `HOST[:PORT]:PATH` arguments,
//! several sources into a directory, remote globs, `-` for stdout and stdin, files already the
//! same skipped ("up to date"), a one-line summary per file on a terminal, and Ctrl-C leaving
//! the partial file for the next run to resume.

use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;

use super::ClientArgs;
use super::address::{RemoteArg, is_glob};
use super::progress::BarProgress;
use super::safe_text::escape;
use ferry::client::files::{Check, Transfer, base_name, join_remote};
use ferry::client::tree::TreeReport;
use ferry::client::{Client, ClientError};
use ferry::protocol::{ErrorCode, FileEntry, FileKind, HashAlgorithm, Refusal};

/// Options shared by get and put.
#[derive(Debug, Args)]
pub struct TransferOptions {
    /// Copy whole directory trees.
    #[arg(short = 'r', long)]
    pub recursive: bool,
    /// A JSON summary on stdout (hashes included).
    #[arg(long)]
    pub json: bool,
    /// Verify with SHA-256 instead of BLAKE3.
    #[arg(long)]
    pub sha256: bool,
    /// Skip files whose content is the same on both sides (by hash) rather than by size and
    /// modification time.
    #[arg(short = 'c', long)]
    pub checksum: bool,
    /// Copy every file, even those already the same on both sides.
    #[arg(long, conflicts_with = "checksum")]
    pub always: bool,
}

impl TransferOptions {
    fn algorithm(&self) -> HashAlgorithm {
        if self.sha256 {
            HashAlgorithm::Sha256
        } else {
            HashAlgorithm::Blake3
        }
    }

    fn check(&self) -> Check {
        match (self.always, self.checksum) {
            (true, _) => Check::Never,
            (false, true) => Check::Checksum(self.algorithm()),
            (false, false) => Check::SizeAndTime,
        }
    }
}

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
    /// Local files (directories with -r; - for stdin), then where they go under the server's
    /// root ([HOST[:PORT]:]PATH) [default: the root, under their own names].
    #[arg(value_name = "PATH", required = true, num_args = 1..)]
    pub paths: Vec<String>,
}

/// The sources and the destination of `SRC... [DEST]`.
fn split_last(paths: &[String]) -> (&[String], Option<&String>) {
    match paths {
        [only] => (std::slice::from_ref(only), None),
        [sources @ .., last] => (sources, Some(last)),
        [] => (&[], None),
    }
}

/// Connects to the one server the arguments name (or `--server`).
async fn connect(client: &ClientArgs, named: &[&RemoteArg]) -> anyhow::Result<Client> {
    let mut servers = named.iter().filter_map(|r| r.server.as_deref());
    let server = servers.next();
    if let Some(other) = servers.find(|s| Some(*s) != server) {
        bail!(
            "all remote paths must be on one server; got {} and {}",
            server.unwrap_or_default(),
            other
        );
    }
    let mut args = client.clone();
    if let Some(server) = server {
        args.server = server.to_string();
    }
    args.connect().await
}

/// What became of one file.
enum Outcome {
    Moved(Transfer),
    UpToDate(u64),
}

/// How results are shown: JSON on stdout, a line per file on a terminal, details with -v.
struct Report {
    json: bool,
    terminal: bool,
    verbose: u8,
    lines: Vec<serde_json::Value>,
}

impl Report {
    fn new(options: &TransferOptions, verbose: u8) -> Report {
        Report {
            json: options.json,
            terminal: std::io::stderr().is_terminal(),
            verbose,
            lines: Vec::new(),
        }
    }

    fn file(&mut self, from: &str, to: &str, outcome: &Outcome, started: Instant) {
        let seconds = started.elapsed().as_secs_f64();
        match outcome {
            Outcome::UpToDate(size) => {
                if self.json {
                    self.lines.push(serde_json::json!({
                        "from": from, "to": to, "size": size, "up_to_date": true, "bytes_moved": 0,
                    }));
                } else {
                    eprintln!("ferry: {}: up to date", escape(to));
                }
            }
            Outcome::Moved(transfer) => {
                let moved = transfer.size - transfer.resumed_from;
                if self.json {
                    self.lines.push(serde_json::json!({
                        "from": from,
                        "to": to,
                        "size": transfer.size,
                        "resumed_from": transfer.resumed_from,
                        "bytes_moved": moved,
                        "algorithm": transfer.algorithm.name(),
                        "hash": transfer.hash,
                        "seconds": seconds,
                    }));
                    return;
                }
                if self.terminal {
                    // As scp leaves one: what, how much, how long, how fast (this run's bytes).
                    let resumed = if transfer.resumed_from > 0 {
                        format!(
                            ", {} of it resumed",
                            super::files::human_size(transfer.resumed_from)
                        )
                    } else {
                        String::new()
                    };
                    eprintln!(
                        "{}  {}  {seconds:.1} s  {}/s{resumed}",
                        escape(to),
                        super::files::human_size(transfer.size),
                        super::files::human_size((moved as f64 / seconds.max(1e-6)) as u64),
                    );
                }
                if self.verbose > 0 {
                    eprintln!(
                        "ferry: {} -> {}: {} bytes in {seconds:.2} s, verified {} {}",
                        escape(from),
                        escape(to),
                        transfer.size,
                        transfer.algorithm.name(),
                        transfer.hash
                    );
                }
            }
        }
    }

    fn tree(&mut self, from: &str, to: &str, tree: &TreeReport, started: Instant) {
        for (path, why) in &tree.skipped {
            eprintln!("ferry: {}: not transferred ({})", escape(path), escape(why));
        }
        let bytes: u64 = tree
            .files
            .iter()
            .map(|(_, t)| t.size - t.resumed_from)
            .sum();
        let seconds = started.elapsed().as_secs_f64();
        if self.json {
            let files: Vec<_> = tree
                .files
                .iter()
                .map(|(path, t)| serde_json::json!({"path": path, "size": t.size, "resumed_from": t.resumed_from, "hash": t.hash}))
                .collect();
            let skipped: Vec<_> = tree
                .skipped
                .iter()
                .map(|(path, why)| serde_json::json!({"path": path, "reason": why}))
                .collect();
            self.lines.push(serde_json::json!({
                "from": from, "to": to, "dirs": tree.dirs, "files": files, "skipped": skipped,
                "up_to_date": tree.up_to_date, "bytes": bytes, "seconds": seconds,
            }));
            return;
        }
        if self.verbose > 0 {
            for (path, t) in &tree.files {
                eprintln!(
                    "ferry: {}: {} bytes, {} {}",
                    escape(path),
                    t.size,
                    t.algorithm.name(),
                    t.hash
                );
            }
        }
        if self.terminal || self.verbose > 0 || !tree.up_to_date.is_empty() {
            eprintln!(
                "ferry: {}: {} files copied ({}), {} up to date, {} directories, {seconds:.1} s",
                escape(to),
                tree.files.len(),
                super::files::human_size(bytes),
                tree.up_to_date.len(),
                tree.dirs
            );
        }
    }

    /// Prints the JSON (one object per source, or one array for several) and the exit code.
    fn finish(self, skipped_any: bool) -> ExitCode {
        if self.json {
            match &self.lines[..] {
                [one] => println!("{one}"),
                many => println!("{}", serde_json::Value::Array(many.to_vec())),
            }
        }
        if skipped_any {
            eprintln!(
                "ferry: some entries were not transferred: symlinks and special files are not copied"
            );
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        }
    }
}

/// Runs a transfer; on Ctrl-C, says the partial file stays and exits 130 as shells report it.
async fn interruptible<T>(
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
async fn describe(client: &mut Client, path: &str) -> anyhow::Result<Option<FileEntry>> {
    match client.files().describe(path).await {
        Ok(entry) => Ok(Some(entry)),
        Err(ClientError::Server(Refusal {
            code: ErrorCode::NotFound,
            ..
        })) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// `ferry get`.
pub async fn get(args: GetArgs, verbose: u8) -> anyhow::Result<ExitCode> {
    let (sources, local) = split_last(&args.paths);
    let remotes: Vec<RemoteArg> = sources.iter().map(|s| RemoteArg::parse(s)).collect();
    let mut client = connect(&args.client, &remotes.iter().collect::<Vec<_>>()).await?;
    let options = &args.options;
    let mut report = Report::new(options, verbose);

    if local.is_some_and(|l| l == "-") {
        let [remote] = &remotes[..] else {
            bail!("only one file can go to stdout (-)");
        };
        if options.recursive || is_glob(&remote.path) {
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
            if glob.matches(&entry.path) && (options.recursive || entry.kind == FileKind::File) {
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
            if !options.recursive {
                bail!("'{}' is a directory; use get -r", escape(path));
            }
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
                        options.algorithm(),
                        options.check(),
                        &mut progress,
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
                        .get_file(path, &target, options.algorithm(), &mut progress)
                        .await?)
                })
                .await?,
            )
        };
        report.file(path, &shown, &outcome, started);
    }
    Ok(report.finish(skipped_any))
}

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
    let (sources, dest) = split_last(&args.paths);
    let dest = dest.map(|d| RemoteArg::parse(d)).unwrap_or(RemoteArg {
        server: None,
        path: String::new(),
    });
    let mut client = connect(&args.client, &[&dest]).await?;
    let options = &args.options;
    let mut report = Report::new(options, verbose);

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

    let mut skipped_any = false;
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
        let remote = if into_dir {
            join_remote(&dest.path, &name)
        } else {
            dest.path.clone()
        };
        let started = Instant::now();
        let mut progress = BarProgress::new(options.json);
        let meta = std::fs::metadata(&local)
            .with_context(|| format!("{}", escape(&local.display().to_string())))?;
        let held = if into_dir {
            describe(&mut client, &remote).await?
        } else {
            dest_entry.clone()
        };
        if meta.is_dir() {
            if !options.recursive {
                bail!("{} is a directory; use put -r", escape(source));
            }
            if held.as_ref().is_some_and(|e| e.kind != FileKind::Dir) {
                bail!(
                    "cannot put the directory '{}' onto the file '{}'",
                    escape(source),
                    escape(&remote)
                );
            }
            let tree = interruptible(async {
                Ok(client
                    .files()
                    .put_tree(
                        &local,
                        &remote,
                        options.algorithm(),
                        options.check(),
                        &mut progress,
                    )
                    .await?)
            })
            .await?;
            skipped_any |= !tree.skipped.is_empty();
            report.tree(source, &remote, &tree, started);
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
                        .put_file(&local, &remote, options.algorithm(), &mut progress)
                        .await?)
                })
                .await?,
            )
        };
        report.file(source, &remote, &outcome, started);
    }
    Ok(report.finish(skipped_any))
}

fn local_name(path: &Path) -> anyhow::Result<String> {
    let absolute = std::path::absolute(path).with_context(|| format!("{}", path.display()))?;
    absolute
        .file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .with_context(|| format!("{} has no usable (UTF-8) name", path.display()))
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
