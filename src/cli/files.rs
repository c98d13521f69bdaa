//! `ferry ls`, `mkdir`, `rm`: files under the server's root (`get` and `put` are in `copy`).

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Args;

use super::ClientArgs;
use super::address::RemoteArg;
use super::units::human_size;
use ferry::client::{Client, ClientError};
use ferry::protocol::{FileEntry, FileKind};
use ferry::safe_text::escape;

#[derive(Debug, Args)]
pub struct LsArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// List the whole tree.
    #[arg(short = 'r', long)]
    pub recursive: bool,
    /// One JSON array on stdout.
    #[arg(long)]
    pub json: bool,
    /// [HOST[:PORT]:]PATH under the server root (or wss://HOST:PORT:PATH) [default: the root].
    pub path: Option<String>,
}

#[derive(Debug, Args)]
pub struct PathArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// [HOST[:PORT]:]PATH under the server root (or wss://HOST:PORT:PATH).
    pub path: String,
}

/// Connects to the server the path arguments name (scp's `HOST:PATH`, `wss://HOST:PORT:PATH`),
/// or to `--server`; returns the paths under that server's root.
async fn connect(args: &ClientArgs, paths: &[&str]) -> anyhow::Result<(Client, Vec<String>)> {
    let remotes: Vec<RemoteArg> = paths.iter().map(|p| RemoteArg::parse(p)).collect();
    let client = super::copy::connect(args, &remotes.iter().collect::<Vec<_>>()).await?;
    Ok((client, remotes.into_iter().map(|r| r.path).collect()))
}

/// `ferry ls`.
pub async fn ls(args: LsArgs) -> anyhow::Result<ExitCode> {
    let (mut client, paths) = connect(&args.client, &[args.path.as_deref().unwrap_or("")]).await?;
    let path = paths.into_iter().next().unwrap_or_default();
    // Printed as batches arrive: a huge tree is never held in memory.
    let mut out = std::io::stdout().lock();
    let mut first = true;
    let mut print = |batch: Vec<FileEntry>| -> std::io::Result<()> {
        use std::io::Write;
        for entry in &batch {
            if args.json {
                let separator = if first { "[\n  " } else { ",\n  " };
                write!(out, "{separator}{}", serde_json::to_string(entry)?)?;
            } else {
                writeln!(out, "{}", format_entry(entry, &path))?;
            }
            first = false;
        }
        Ok(())
    };
    client
        .files()
        .list_each(&path, args.recursive, |batch| {
            print(batch).map_err(ClientError::from)
        })
        .await?;
    if args.json {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", if first { "[]" } else { "\n]" })?;
    }
    Ok(ExitCode::SUCCESS)
}

fn format_entry(entry: &FileEntry, listed: &str) -> String {
    let kind = match entry.kind {
        FileKind::Dir => 'd',
        FileKind::Symlink => 'l',
        FileKind::File => '-',
        FileKind::Other => '?',
    };
    let name = if entry.path.is_empty() {
        listed
    } else {
        &entry.path
    };
    let name = escape(name);
    let suffix = match (&entry.kind, &entry.target) {
        (FileKind::Dir, _) => "/".to_string(),
        (FileKind::Symlink, Some(target)) => format!(" -> {}", escape(target)),
        _ => String::new(),
    };
    format!(
        "{kind}{} {:>12} {} {name}{suffix}",
        mode_string(entry.mode),
        entry.size,
        utc_minutes(entry.mtime_ns)
    )
}

fn mode_string(mode: u32) -> String {
    (0..9)
        .map(|i| {
            let bit = 1 << (8 - i);
            if mode & bit == 0 {
                '-'
            } else {
                ['r', 'w', 'x'][i % 3]
            }
        })
        .collect()
}

/// `YYYY-MM-DD HH:MM` in UTC, without a date crate (Howard Hinnant's civil-from-days).
fn utc_minutes(mtime_ns: i64) -> String {
    let secs = mtime_ns.div_euclid(1_000_000_000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// `ferry mkdir`.
pub async fn mkdir(args: PathArgs) -> anyhow::Result<ExitCode> {
    let (mut client, paths) = connect(&args.client, &[&args.path]).await?;
    client.files().mkdir(&paths[0], None, None).await?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct RmArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Remove a directory and everything in it.
    #[arg(short = 'r', long)]
    pub recursive: bool,
    /// Do not ask (needed to remove a tree when there is no terminal to ask on).
    #[arg(short = 'f', long)]
    pub force: bool,
    /// [HOST[:PORT]:]PATH under the server root (or wss://HOST:PORT:PATH).
    pub path: String,
}

#[derive(Debug, Args)]
pub struct MvArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// What to move: [HOST[:PORT]:]PATH under the server root.
    pub from: String,
    /// Where to: a new path, or an existing directory to move it into.
    pub to: String,
}

/// `ferry rm`: a file, a symlink or an empty directory; with -r a whole tree, deepest first,
/// after saying how much it holds and asking (on a terminal; --force elsewhere).
pub async fn rm(mut args: RmArgs) -> anyhow::Result<ExitCode> {
    let (mut client, paths) = connect(&args.client, &[&args.path]).await?;
    args.path.clone_from(&paths[0]);
    let entry = client.files().describe(&args.path).await?;
    if !args.recursive || entry.kind != FileKind::Dir {
        client.files().remove(&args.path).await?;
        return Ok(ExitCode::SUCCESS);
    }
    let tree = client.files().list(&args.path, true).await?;
    // A name that is not UTF-8 cannot be named in a request: say so before anything goes,
    // rather than stop half-way at a directory that is not empty.
    let unnamed: Vec<&FileEntry> = tree.iter().filter(|e| e.not_utf8).collect();
    if let Some(first) = unnamed.first() {
        anyhow::bail!(
            "'{}' holds {} name{} that {} not UTF-8 (such as '{}'), which ferry cannot name; nothing was removed: rename or remove {} on the server",
            escape(&args.path),
            unnamed.len(),
            if unnamed.len() == 1 { "" } else { "s" },
            if unnamed.len() == 1 { "is" } else { "are" },
            escape(&first.path),
            if unnamed.len() == 1 { "it" } else { "them" },
        );
    }
    let files = tree.iter().filter(|e| e.kind != FileKind::Dir).count();
    let dirs = tree.len() - files;
    let bytes: u64 = tree.iter().map(|e| e.size).sum();
    if !args.force {
        let terminal = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
        if !terminal {
            anyhow::bail!(
                "'{}' is a directory holding {}; without a terminal to ask on, removing it needs --force",
                escape(&args.path),
                super::units::count(files as u64, "file", "files")
            );
        }
        eprint!(
            "Remove '{}' and everything in it: {}, {}, {}? (yes/no) ",
            escape(&args.path),
            super::units::count(files as u64, "file", "files"),
            super::units::count(dirs as u64, "directory", "directories"),
            human_size(bytes)
        );
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            eprintln!("ferry: nothing removed");
            return Ok(ExitCode::from(1));
        }
    }
    // Deepest first, so each directory is empty when its turn comes.
    let mut paths: Vec<&FileEntry> = tree.iter().collect();
    paths.sort_by_key(|e| std::cmp::Reverse(e.path.matches('/').count()));
    let mut dirs_last: Vec<&FileEntry> = paths
        .iter()
        .copied()
        .filter(|e| e.kind != FileKind::Dir)
        .collect();
    dirs_last.extend(paths.iter().copied().filter(|e| e.kind == FileKind::Dir));
    for entry in dirs_last {
        let path = ferry::client::files::join_remote(&args.path, &entry.path);
        client.files().remove(&path).await?;
    }
    client.files().remove(&args.path).await?;
    Ok(ExitCode::SUCCESS)
}

/// `ferry mv`: into `to` when it is an existing directory, else to `to` itself.
pub async fn mv(mut args: MvArgs) -> anyhow::Result<ExitCode> {
    let (mut client, paths) = connect(&args.client, &[&args.from, &args.to]).await?;
    args.from.clone_from(&paths[0]);
    args.to.clone_from(&paths[1]);
    let into = match client.files().describe(&args.to).await {
        Ok(entry) if entry.kind == FileKind::Dir => true,
        Ok(_) => false,
        Err(ClientError::Server(refusal))
            if refusal.code == ferry::protocol::ErrorCode::NotFound =>
        {
            false
        }
        Err(e) => return Err(e.into()),
    };
    let to = match (into, ferry::client::files::base_name(&args.from)) {
        (true, Some(name)) => ferry::client::files::join_remote(&args.to, &name),
        _ => args.to.clone(),
    };
    client.files().rename(&args.from, &to).await?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_modes_and_dates() {
        assert_eq!(mode_string(0o754), "rwxr-xr--");
        assert_eq!(utc_minutes(0), "1970-01-01 00:00");
        assert_eq!(utc_minutes(1_764_000_000_000_000_000), "2025-11-24 16:00");
        assert_eq!(utc_minutes(-60_000_000_000), "1969-12-31 23:59");
    }
}
