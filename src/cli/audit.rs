//! `ferry audit`: the server's audit log, readably — one line per entry, oldest first, across
//! the rotated files; `--follow` keeps printing as the server writes (and follows a rotation).
//! Everything in the log came from clients (paths, commands, names), so it is escaped before it
//! reaches the terminal; `--json` prints the lines exactly as stored.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use clap::Args;
use serde_json::Value;

use ferry::audit::{AuditFilter, log_files};
use ferry::config::ServerConfig;

use ferry::safe_text::escape;

/// How often `--follow` looks for new entries.
const FOLLOW_POLL: Duration = Duration::from_millis(250);

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Keep printing new entries as the server writes them (Ctrl-C stops).
    #[arg(short, long)]
    pub follow: bool,
    /// Only this user's entries.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Only entries since this time: a duration back from now (`10m`, `2h`, `3days`) or a
    /// time (`2026-11-26T09:00:00Z`, `2026-11-26 09:00:00`, UTC).
    #[arg(long, value_name = "WHEN", value_parser = parse_since)]
    pub since: Option<SystemTime>,
    /// Print the entries as stored (one JSON object per line).
    #[arg(long)]
    pub json: bool,
    /// The log file [default: the config's [audit] path, else STATE/audit.log].
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// The server's state directory [default: FERRY_HOME/server].
    #[arg(long, value_name = "DIR")]
    pub state: Option<PathBuf>,
    /// The server's config file [default: STATE/config.toml, if it exists].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

fn parse_since(text: &str) -> Result<SystemTime, String> {
    if let Ok(back) = humantime::parse_duration(text) {
        return SystemTime::now()
            .checked_sub(back)
            .ok_or_else(|| format!("'{text}' reaches back before 1970"));
    }
    humantime::parse_rfc3339_weak(text).map_err(|_| {
        format!("'{text}' is neither a duration (10m, 2h) nor a time (2026-11-26T09:00:00Z)")
    })
}

pub fn run(args: AuditArgs) -> anyhow::Result<ExitCode> {
    let path = log_path(&args)?;
    let filter = AuditFilter {
        user: args.user.clone(),
        since: args.since,
    };
    let files = log_files(&path);
    if files.is_empty() && !args.follow {
        anyhow::bail!(
            "there is no audit log at {} (does the server keep it elsewhere? --file, --state or --config say where)",
            path.display()
        );
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    // A line cut short by a crash or a full disk, or cut inside a character, hides nothing
    // after it: it is skipped, counted, and the count said at the end.
    let mut skipped = 0u64;
    for file in &files {
        let mut reader = BufReader::new(
            File::open(file).with_context(|| format!("cannot read {}", file.display()))?,
        );
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = reader
                .read_until(b'\n', &mut line)
                .with_context(|| format!("cannot read {}", file.display()))?;
            if n == 0 {
                break;
            }
            match show(&mut out, &line, &filter, args.json)? {
                Shown::Yes => {}
                Shown::Skipped => skipped += 1,
                Shown::OutputClosed => return Ok(ExitCode::SUCCESS),
            }
        }
    }
    if skipped > 0 {
        eprintln!(
            "ferry: skipped {skipped} line{} that {} not audit entries (cut short or damaged)",
            if skipped == 1 { "" } else { "s" },
            if skipped == 1 { "is" } else { "are" }
        );
    }
    if args.follow {
        follow(&mut out, &path, &filter, args.json)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Where the log is: `--file`, else the config's `[audit] path`, else `STATE/audit.log`.
fn log_path(args: &AuditArgs) -> anyhow::Result<PathBuf> {
    if let Some(file) = &args.file {
        return Ok(file.clone());
    }
    let state = match &args.state {
        Some(dir) => dir.clone(),
        None => super::default_state_dir()?,
    };
    let config_path = args
        .config
        .clone()
        .unwrap_or_else(|| state.join("config.toml"));
    let config = ServerConfig::load(&config_path, args.config.is_some())?;
    Ok(config.audit.path_in(&state))
}

/// What became of one stored line.
enum Shown {
    /// Shown, or left out by the filter.
    Yes,
    /// Not an entry (cut short, damaged, not UTF-8): skipped. An empty line is no entry and
    /// no damage either (the writer starts a fresh line after a partial one).
    Skipped,
    /// stdout is closed (`| head`): stop.
    OutputClosed,
}

/// Prints one stored line if the filter keeps it.
fn show(
    out: &mut impl Write,
    line: &[u8],
    filter: &AuditFilter,
    json: bool,
) -> anyhow::Result<Shown> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    if line.is_empty() {
        return Ok(Shown::Yes);
    }
    let Ok(line) = std::str::from_utf8(line) else {
        return Ok(Shown::Skipped);
    };
    let Ok(entry) = serde_json::from_str::<Value>(line) else {
        return Ok(Shown::Skipped);
    };
    if !entry.is_object() || !filter.keeps(&entry) {
        return Ok(if entry.is_object() {
            Shown::Yes
        } else {
            Shown::Skipped
        });
    }
    let text = if json {
        line.to_string()
    } else {
        describe(&entry)
    };
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Ok(()) => Ok(Shown::Yes),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(Shown::OutputClosed),
        Err(e) => Err(e.into()),
    }
}

/// Prints what the server appends from now on; after a rotation, the rest of the old file and
/// then the new one from its top (a line being written is printed once it is whole).
fn follow(
    out: &mut impl Write,
    path: &Path,
    filter: &AuditFilter,
    json: bool,
) -> anyhow::Result<()> {
    // The reader, its file's inode, and a line read only in part so far.
    let mut open: Option<(BufReader<File>, u64)> = match File::open(path) {
        Ok(mut file) => {
            // What was there was printed already.
            file.seek(SeekFrom::End(0))?;
            let ino = file.metadata()?.ino();
            Some((BufReader::new(file), ino))
        }
        Err(_) => None,
    };
    let mut pending = Vec::new();
    loop {
        if let Some((reader, _)) = &mut open
            && !print_whole_lines(out, reader, &mut pending, filter, json)?
        {
            return Ok(());
        }
        // The server rotates by renaming: a new inode under the name is a new file, and the
        // old one was read to its end just above.
        let now = std::fs::metadata(path).ok().map(|m| m.ino());
        let moved = match (&open, now) {
            (None, Some(_)) => true,
            (Some((_, ino)), Some(now)) => now != *ino,
            _ => false,
        };
        if moved && let Ok(file) = File::open(path) {
            let ino = file.metadata()?.ino();
            open = Some((BufReader::new(file), ino));
            pending.clear();
            continue;
        }
        std::thread::sleep(FOLLOW_POLL);
    }
}

/// Prints the whole lines `reader` has now; `false` once stdout is closed.
fn print_whole_lines(
    out: &mut impl Write,
    reader: &mut BufReader<File>,
    pending: &mut Vec<u8>,
    filter: &AuditFilter,
    json: bool,
) -> anyhow::Result<bool> {
    loop {
        let n = reader.read_until(b'\n', pending)?;
        if n == 0 || !pending.ends_with(b"\n") {
            return Ok(true); // the rest of the line is still being written
        }
        if matches!(show(out, pending, filter, json)?, Shown::OutputClosed) {
            return Ok(false);
        }
        pending.clear();
    }
}

/// One entry as a line: when, what, who, and the details of its kind.
fn describe(entry: &Value) -> String {
    let text = |key: &str| entry.get(key).and_then(Value::as_str).unwrap_or("");
    let time = text("time").replacen('T', " ", 1);
    let kind = text("kind");
    let who = match (
        entry.get("user"),
        entry.get("address").and_then(Value::as_str),
    ) {
        (Some(Value::String(user)), Some(address)) => format!("{user}@{address}"),
        (_, Some(address)) => format!("anonymous@{address}"),
        (Some(Value::String(user)), None) => user.clone(),
        _ => "-".to_string(),
    };
    let details = match kind {
        "sign_in" => match entry.get("ok").and_then(Value::as_bool) {
            Some(true) => format!("{} ok", text("transport")),
            _ => format!("{} refused: {}", text("transport"), text("reason")),
        },
        "exec" => {
            let argv: Vec<&str> = entry
                .get("argv")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let ended = if let Some(code) = entry.get("exit_code").and_then(Value::as_i64) {
                format!("exit {code}")
            } else if let Some(signal) = entry.get("signal").and_then(Value::as_i64) {
                format!("signal {signal}")
            } else {
                format!("not run to its end: {}", text("error"))
            };
            let took = entry
                .get("duration_ms")
                .and_then(Value::as_u64)
                .unwrap_or(0) as f64
                / 1000.0;
            let pty = if entry.get("pty").and_then(Value::as_bool) == Some(true) {
                ", pty"
            } else {
                ""
            };
            format!("{} -> {ended} ({took:.3} s{pty})", argv.join(" "))
        }
        "file_write" => {
            let size = entry.get("size").and_then(Value::as_u64).unwrap_or(0);
            // The start of the hash is enough to tell files apart (by characters: the log may
            // be any file, so no byte index is trusted).
            let hash: String = text("hash").chars().take(24).collect();
            format!("{} ({size} bytes, {hash})", text("path"))
        }
        "remove" | "mkdir" => text("path").to_string(),
        "move" => format!("{} -> {}", text("from"), text("to")),
        "repeated" => format!(
            "{} more {} entries from {} to {} (beyond this actor's share of the log: counted)",
            entry.get("count").and_then(Value::as_u64).unwrap_or(0),
            text("of"),
            text("first"),
            text("last")
        ),
        "refused" => format!(
            "{} {} refused ({}): {}",
            text("request"),
            text("target"),
            text("code"),
            text("reason")
        ),
        "config_reload" => match entry.get("ok").and_then(Value::as_bool) {
            Some(true) => format!("{} ({}) ok", text("path"), text("why")),
            _ => format!(
                "{} ({}) failed: {}",
                text("path"),
                text("why"),
                text("error")
            ),
        },
        "user_added" | "permissions_changed" | "anonymous_changed" => {
            let permissions: Vec<&str> = entry
                .get("permissions")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            format!("may now: {}", permissions.join(","))
        }
        "legacy" => format!("{} {} {}", text("listener"), text("action"), text("detail")),
        "server_start" => format!(
            "listening on {} (ferry {})",
            text("listen"),
            text("version")
        ),
        "dropped" => format!(
            "{} entries lost: the log fell behind",
            entry.get("count").and_then(Value::as_u64).unwrap_or(0)
        ),
        _ => entry
            .as_object()
            .map(|fields| {
                fields
                    .iter()
                    .filter(|(k, _)| !["time", "kind", "user", "address"].contains(&k.as_str()))
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default(),
    };
    let line = format!("{time}  {kind:<19} {who:<24} {}", details.trim_end());
    escape(&line).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_read_as_lines_with_control_characters_escaped() {
        let entry = serde_json::json!({
            "time": "2026-11-26T10:00:00.000Z", "kind": "exec", "user": "alice",
            "address": "127.0.0.1", "argv": ["echo", "\u{1b}[2Jhi"], "pty": true,
            "exit_code": 0, "duration_ms": 1500
        });
        let line = describe(&entry);
        assert!(line.starts_with("2026-11-26 10:00:00.000Z  exec"), "{line}");
        assert!(line.contains("alice@127.0.0.1"), "{line}");
        assert!(
            line.contains("echo \\e[2Jhi -> exit 0 (1.500 s, pty)"),
            "{line}"
        );
        assert!(!line.contains('\u{1b}'));
        // A line from any file: a hash of multi-byte characters is cut by characters.
        let odd = serde_json::json!({"kind": "file_write", "path": "p", "size": 1, "hash": format!("x{}", "é".repeat(30))});
        assert!(describe(&odd).contains(&format!("x{})", "é".repeat(23))));
    }

    #[test]
    fn since_takes_a_duration_or_a_time() {
        assert!(parse_since("10m").unwrap() < SystemTime::now());
        assert_eq!(
            parse_since("2026-11-26 09:00:00").unwrap(),
            humantime::parse_rfc3339("2026-11-26T09:00:00Z").unwrap()
        );
        assert!(parse_since("yesterday-ish").is_err());
    }
}
