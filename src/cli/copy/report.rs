//! How a transfer's outcome is shown: JSON on stdout, a line per file on a terminal, details
//! with -v.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Instant;

use super::TransferOptions;
use crate::cli::units::{count, human_size};
use ferry::client::files::Transfer;
use ferry::client::tree::{Change, TreeReport};
use ferry::safe_text::escape;

/// What became of one file.
pub(super) enum Outcome {
    Moved(Transfer),
    UpToDate(u64),
}

/// How results are shown: JSON on stdout, a line per file on a terminal, details with -v.
pub(super) struct Report {
    dry_run: bool,
    json: bool,
    terminal: bool,
    verbose: u8,
    lines: Vec<serde_json::Value>,
}

impl Report {
    pub(super) fn new(options: &TransferOptions, verbose: u8) -> Report {
        Report {
            dry_run: options.dry_run,
            json: options.json,
            terminal: std::io::stderr().is_terminal(),
            verbose,
            lines: Vec::new(),
        }
    }

    pub(super) fn file(&mut self, from: &str, to: &str, outcome: &Outcome, started: Instant) {
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
                let moved = transfer.size - transfer.resumed_from - transfer.matched;
                if self.json {
                    self.lines.push(serde_json::json!({
                        "from": from,
                        "to": to,
                        "size": transfer.size,
                        "resumed_from": transfer.resumed_from,
                        "bytes_moved": moved,
                        "bytes_matched": transfer.matched,
                        "algorithm": transfer.algorithm.name(),
                        "hash": transfer.hash,
                        "seconds": seconds,
                    }));
                    return;
                }
                if !self.terminal {
                    // One line, copied or up to date alike: a script sees the same shape.
                    eprintln!(
                        "ferry: {}: copied ({})",
                        escape(to),
                        human_size(transfer.size)
                    );
                } else {
                    // As scp leaves one: what, how much, how long, how fast (this run's bytes).
                    let mut resumed = if transfer.resumed_from > 0 {
                        format!(", {} of it resumed", human_size(transfer.resumed_from))
                    } else {
                        String::new()
                    };
                    if transfer.matched > 0 {
                        resumed += &format!(
                            ", delta: {} sent, {} matched",
                            human_size(moved),
                            human_size(transfer.matched)
                        );
                    }
                    eprintln!(
                        "{}  {}  {seconds:.1} s  {}/s{resumed}",
                        escape(to),
                        human_size(transfer.size),
                        human_size((moved as f64 / seconds.max(1e-6)) as u64),
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

    pub(super) fn tree(&mut self, from: &str, to: &str, tree: &TreeReport, started: Instant) {
        for (path, why) in &tree.skipped {
            eprintln!("ferry: {}: not transferred ({})", escape(path), escape(why));
        }
        if self.dry_run {
            self.planned(from, to, tree);
            return;
        }
        let bytes: u64 = tree
            .files
            .iter()
            .map(|(_, t)| t.size - t.resumed_from - t.matched)
            .sum();
        let matched: u64 = tree.files.iter().map(|(_, t)| t.matched).sum();
        let seconds = started.elapsed().as_secs_f64();
        if self.json {
            let files: Vec<_> = tree
                .files
                .iter()
                .map(|(path, t)| serde_json::json!({"path": path, "size": t.size, "resumed_from": t.resumed_from, "bytes_moved": t.size - t.resumed_from - t.matched, "bytes_matched": t.matched, "hash": t.hash}))
                .collect();
            let skipped: Vec<_> = tree
                .skipped
                .iter()
                .map(|(path, why)| serde_json::json!({"path": path, "reason": why}))
                .collect();
            self.lines.push(serde_json::json!({
                "from": from, "to": to, "dirs": tree.dirs, "files": files, "skipped": skipped,
                "up_to_date": tree.up_to_date, "links": tree.links, "removed": tree.removed,
                "bytes": bytes, "bytes_moved": bytes,
                "bytes_matched": matched, "seconds": seconds,
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
        // One summary line, whether or not anything was copied.
        let mut extra = String::new();
        if !tree.links.is_empty() {
            extra += &format!(", {}", count(tree.links.len() as u64, "link", "links"));
        }
        if !tree.removed.is_empty() {
            extra += &format!(", {} removed", tree.removed.len());
        }
        if matched > 0 {
            extra += &format!(", {} matched by delta", human_size(matched));
        }
        eprintln!(
            "ferry: {}: {} copied ({}), {} up to date, {}{extra}, {seconds:.1} s",
            escape(to),
            count(tree.files.len() as u64, "file", "files"),
            human_size(bytes),
            tree.up_to_date.len(),
            count(tree.dirs, "directory", "directories"),
        );
    }

    /// A dry run's plan: one line per change on stdout (rsync's `--itemize-changes` in words),
    /// or JSON, then a summary on stderr.
    fn planned(&mut self, from: &str, to: &str, tree: &TreeReport) {
        if self.json {
            let changes: Vec<_> = tree
                .planned
                .iter()
                .map(|(path, change, size)| serde_json::json!({"path": path, "change": change.word(), "size": size}))
                .collect();
            self.lines.push(serde_json::json!({
                "from": from, "to": to, "dry_run": true, "changes": changes,
                "up_to_date": tree.up_to_date,
            }));
            return;
        }
        for (path, change, size) in &tree.planned {
            let shown = if path.is_empty() { "." } else { path.as_str() };
            match change {
                Change::Create | Change::Update => {
                    println!(
                        "{:<8} {} ({})",
                        change.word(),
                        escape(shown),
                        human_size(*size)
                    );
                }
                _ => println!("{:<8} {}", change.word(), escape(shown)),
            }
        }
        let bytes: u64 = tree
            .planned
            .iter()
            .filter(|(_, c, _)| matches!(c, Change::Create | Change::Update))
            .map(|(_, _, size)| size)
            .sum();
        eprintln!(
            "ferry: {}: dry run: {} to change ({} to send at most), {} up to date; nothing was changed",
            escape(to),
            count(tree.planned.len() as u64, "path", "paths"),
            human_size(bytes),
            tree.up_to_date.len(),
        );
    }

    /// Prints the JSON (one object per source, or one array for several) and the exit code.
    pub(super) fn finish(self, skipped_any: bool) -> ExitCode {
        if self.json {
            match &self.lines[..] {
                [one] => println!("{one}"),
                many => println!("{}", serde_json::Value::Array(many.to_vec())),
            }
        }
        if skipped_any {
            eprintln!("ferry: some entries were not transferred (each is named above with why)");
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        }
    }
}
