//! `ferry ls`, `get`, `put`, `mkdir`, `rm`: files under the server's root.

use super::safe_text::escape;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Args;

use super::ClientArgs;
use super::progress::BarProgress;
use ferry::client::files::{Transfer, base_name, join_remote};
use ferry::client::tree::TreeReport;
use ferry::client::{Client, ClientError};
use ferry::protocol::{ErrorCode, FileEntry, FileKind, HashAlgorithm, Refusal};

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
    /// Path under the server root [default: the root].
    pub path: Option<String>,
}

/// Options shared by get and put.
#[derive(Debug, Args)]
pub struct TransferOptions {
    /// Copy a whole directory tree.
    #[arg(short = 'r', long)]
    pub recursive: bool,
    /// A JSON summary on stdout (hash included).
    #[arg(long)]
    pub json: bool,
    /// Verify with SHA-256 instead of BLAKE3.
    #[arg(long)]
    pub sha256: bool,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub options: TransferOptions,
    /// Path under the server root.
    pub remote: String,
    /// Where to put it [default: its name, in the current directory].
    pub local: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PutArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(flatten)]
    pub options: TransferOptions,
    /// Local file (or directory, with -r).
    pub local: PathBuf,
    /// Path under the server root [default: its name, in the root].
    pub remote: Option<String>,
}

#[derive(Debug, Args)]
pub struct PathArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Path under the server root.
    pub path: String,
}

async fn connect(args: &ClientArgs) -> anyhow::Result<Client> {
    let client = Client::connect(&args.options()?).await?;
    super::report_new_pin(client.info());
    Ok(client)
}

/// `ferry ls`.
pub async fn ls(args: LsArgs) -> anyhow::Result<ExitCode> {
    let mut client = connect(&args.client).await?;
    let path = args.path.unwrap_or_default();
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

fn algorithm(options: &TransferOptions) -> HashAlgorithm {
    if options.sha256 {
        HashAlgorithm::Sha256
    } else {
        HashAlgorithm::Blake3
    }
}

/// `ferry get`.
pub async fn get(args: GetArgs, verbose: u8) -> anyhow::Result<ExitCode> {
    let mut client = connect(&args.client).await?;
    let algorithm = algorithm(&args.options);
    let name = base_name(&args.remote).filter(|n| n != ".");
    let target = match (&args.local, name) {
        (Some(local), Some(name)) if local.is_dir() => local.join(name),
        (Some(local), _) => local.clone(),
        (None, Some(name)) => PathBuf::from(name),
        (None, None) => anyhow::bail!("name a local target for '{}'", args.remote),
    };
    let mut progress = BarProgress::new(args.options.json);
    let started = Instant::now();
    if args.options.recursive {
        let report = client
            .files()
            .get_tree(&args.remote, &target, algorithm, &mut progress)
            .await?;
        return Ok(report_tree(&report, &args.options, verbose, started));
    }
    let transfer = client
        .files()
        .get_file(&args.remote, &target, algorithm, &mut progress)
        .await?;
    report_file(
        &args.remote,
        &target.display().to_string(),
        &transfer,
        &args.options,
        verbose,
        started,
    );
    Ok(ExitCode::SUCCESS)
}

/// `ferry put`.
pub async fn put(args: PutArgs, verbose: u8) -> anyhow::Result<ExitCode> {
    let mut client = connect(&args.client).await?;
    let algorithm = algorithm(&args.options);
    let name = local_name(&args.local)?;
    let remote = match &args.remote {
        None => name,
        Some(remote) if remote.ends_with('/') || is_remote_dir(&mut client, remote).await? => {
            join_remote(remote, &name)
        }
        Some(remote) => remote.clone(),
    };
    let mut progress = BarProgress::new(args.options.json);
    let started = Instant::now();
    if args.options.recursive {
        let report = client
            .files()
            .put_tree(&args.local, &remote, algorithm, &mut progress)
            .await?;
        return Ok(report_tree(&report, &args.options, verbose, started));
    }
    if args.local.is_dir() {
        anyhow::bail!("{} is a directory; use put -r", args.local.display());
    }
    let transfer = client
        .files()
        .put_file(&args.local, &remote, algorithm, &mut progress)
        .await?;
    report_file(
        &args.local.display().to_string(),
        &remote,
        &transfer,
        &args.options,
        verbose,
        started,
    );
    Ok(ExitCode::SUCCESS)
}

fn local_name(path: &Path) -> anyhow::Result<String> {
    let absolute = std::path::absolute(path).with_context(|| format!("{}", path.display()))?;
    absolute
        .file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .with_context(|| format!("{} has no usable (UTF-8) name", path.display()))
}

async fn is_remote_dir(client: &mut Client, path: &str) -> anyhow::Result<bool> {
    match client.files().describe(path).await {
        Ok(entry) => Ok(entry.kind == FileKind::Dir),
        Err(ClientError::Server(Refusal {
            code: ErrorCode::NotFound,
            ..
        })) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// `ferry mkdir`.
pub async fn mkdir(args: PathArgs) -> anyhow::Result<ExitCode> {
    let mut client = connect(&args.client).await?;
    client.files().mkdir(&args.path, None, None).await?;
    Ok(ExitCode::SUCCESS)
}

/// `ferry rm`.
pub async fn rm(args: PathArgs) -> anyhow::Result<ExitCode> {
    let mut client = connect(&args.client).await?;
    client.files().remove(&args.path).await?;
    Ok(ExitCode::SUCCESS)
}

fn transfer_json(from: &str, to: &str, transfer: &Transfer, seconds: f64) -> serde_json::Value {
    serde_json::json!({
        "from": from,
        "to": to,
        "size": transfer.size,
        "resumed_from": transfer.resumed_from,
        "bytes_moved": transfer.size - transfer.resumed_from,
        "algorithm": transfer.algorithm.name(),
        "hash": transfer.hash,
        "seconds": seconds,
    })
}

fn report_file(
    from: &str,
    to: &str,
    transfer: &Transfer,
    options: &TransferOptions,
    verbose: u8,
    started: Instant,
) {
    let seconds = started.elapsed().as_secs_f64();
    if options.json {
        println!("{}", transfer_json(from, to, transfer, seconds));
    } else if verbose > 0 {
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

fn report_tree(
    report: &TreeReport,
    options: &TransferOptions,
    verbose: u8,
    started: Instant,
) -> ExitCode {
    let seconds = started.elapsed().as_secs_f64();
    for (path, why) in &report.skipped {
        eprintln!("ferry: {}: not transferred ({})", escape(path), escape(why));
    }
    let bytes: u64 = report.files.iter().map(|(_, t)| t.size).sum();
    if options.json {
        let files: Vec<_> = report
            .files
            .iter()
            .map(|(path, t)| transfer_json(path, path, t, 0.0))
            .collect();
        let skipped: Vec<_> = report
            .skipped
            .iter()
            .map(|(path, why)| serde_json::json!({"path": path, "reason": why}))
            .collect();
        println!(
            "{}",
            serde_json::json!({"dirs": report.dirs, "files": files, "skipped": skipped, "bytes": bytes, "seconds": seconds})
        );
    } else if verbose > 0 {
        for (path, t) in &report.files {
            eprintln!(
                "ferry: {}: {} bytes, {} {}",
                escape(path),
                t.size,
                t.algorithm.name(),
                t.hash
            );
        }
        eprintln!(
            "ferry: {} files, {} directories, {bytes} bytes in {seconds:.2} s",
            report.files.len(),
            report.dirs
        );
    }
    if report.skipped.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "ferry: {} entries were not transferred: symlinks and special files are not copied",
            report.skipped.len()
        );
        ExitCode::from(1)
    }
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
