//! The options `get` and `put` share: what is copied (trees, filters, links), how it is proved
//! (hashes), how it travels (deltas, bandwidth) and rsync's habits (`-a`, `-n`, `--delete`,
//! `-P`), each spelled as rsync spells it.

use std::io::IsTerminal;

use anyhow::Context;
use clap::Args;

use ferry::client::files::Check;
use ferry::client::tree::{ApproveRemovals, Delete, Filter, Links, Rule, TreeOptions};
use ferry::protocol::HashAlgorithm;
use ferry::safe_text::escape;

use crate::cli::units::{count, human_size};

/// Options shared by get and put.
#[derive(Debug, Args)]
pub struct TransferOptions {
    /// Copy whole directory trees (symlinks as symlinks, modes and mtimes kept).
    #[arg(short = 'r', long)]
    pub recursive: bool,
    /// rsync's archive mode: the same as -r, which already keeps links, modes and mtimes.
    #[arg(short = 'a', long)]
    pub archive: bool,
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
    /// Send changed files whole, not as a delta against the version the target holds.
    #[arg(short = 'W', long)]
    pub whole_file: bool,
    /// Compress file data with zstd where it pays (large files; off by default: on loopback
    /// and fast links it costs more CPU time than it saves).
    #[arg(short = 'z', long)]
    pub compress: bool,
    /// Copy symlinks as symlinks (the default; part of -a and -r).
    #[arg(short = 'l', long, conflicts_with = "copy_links")]
    pub links: bool,
    /// Send what local symlinks point to instead of the links (put only).
    #[arg(short = 'L', long)]
    pub copy_links: bool,
    /// Keep hard links among a tree's files.
    #[arg(short = 'H', long)]
    pub hard_links: bool,
    /// Mirror: remove from the target what the source no longer has (only under the target).
    #[arg(long)]
    pub delete: bool,
    /// With --delete, remove what the filters exclude from the target too.
    #[arg(long)]
    pub delete_excluded: bool,
    /// Remove without asking (needed without a terminal), and allow --delete on the root.
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Leave out paths matching PATTERN (rsync's rules; repeatable, first match wins).
    #[arg(long, value_name = "PATTERN")]
    pub exclude: Vec<String>,
    /// Keep paths matching PATTERN that a later --exclude would leave out.
    #[arg(long, value_name = "PATTERN")]
    pub include: Vec<String>,
    /// Read --exclude patterns from FILE, one per line (# comments and blank lines skipped).
    #[arg(long, value_name = "FILE")]
    pub exclude_from: Vec<std::path::PathBuf>,
    /// Do not read the source's .ferryignore.
    #[arg(long)]
    pub no_ignore: bool,
    /// Show what would be copied, updated, linked and deleted, and change nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Show progress (the default on a terminal; partial files are always kept for a resume).
    #[arg(short = 'P', long = "progress")]
    pub progress: bool,
    /// At most RATE bytes a second each way: KiB as rsync reads a bare number, or 2M, 1G...
    #[arg(long, value_name = "RATE", value_parser = ferry::throttle::parse_rate)]
    pub bwlimit: Option<u64>,
}

impl TransferOptions {
    /// The hash that proves each file.
    pub fn algorithm(&self) -> HashAlgorithm {
        if self.sha256 {
            HashAlgorithm::Sha256
        } else {
            HashAlgorithm::Blake3
        }
    }

    /// Whether directories are copied whole.
    pub fn recursive(&self) -> bool {
        self.recursive || self.archive
    }

    /// Whether changed files go as deltas.
    pub fn delta(&self) -> bool {
        !self.whole_file
    }

    /// Which files count as the same on both sides.
    pub fn check(&self) -> Check {
        match (self.always, self.checksum) {
            (true, _) => Check::Never,
            (false, true) => Check::Checksum(self.algorithm()),
            (false, false) => Check::SizeAndTime,
        }
    }

    /// What a tree copy does.
    ///
    /// # Errors
    /// A filter that cannot be read or compiled.
    pub fn tree(&self) -> anyhow::Result<TreeOptions> {
        let delete = match (self.delete, self.delete_excluded) {
            (false, _) => Delete::Nothing,
            (true, false) => Delete::Unmatched,
            (true, true) => Delete::UnmatchedAndExcluded,
        };
        Ok(TreeOptions {
            delta: self.delta(),
            compress: self.compress,
            filter: self.filter()?,
            ignore_file: !self.no_ignore,
            links: if self.copy_links {
                Links::Follow
            } else {
                Links::Keep
            },
            hard_links: self.hard_links,
            delete,
            dry_run: self.dry_run,
            approve_removals: (!self.force).then_some(approve_removals as ApproveRemovals),
            ..TreeOptions::new(self.algorithm(), self.check())
        })
    }

    /// The filter rules in the order they were given: clap keeps each option's values apart,
    /// so the order across `--include`, `--exclude` and `--exclude-from` (which decides, the
    /// first match winning) is read back from the command line itself.
    fn filter(&self) -> anyhow::Result<Filter> {
        let mut rules = Vec::new();
        let (mut includes, mut excludes, mut files) = (
            self.include.iter(),
            self.exclude.iter(),
            self.exclude_from.iter(),
        );
        for option in filter_order(std::env::args()) {
            match option {
                FilterOption::Include => rules.extend(includes.next().cloned().map(Rule::Include)),
                FilterOption::Exclude => rules.extend(excludes.next().cloned().map(Rule::Exclude)),
                FilterOption::ExcludeFrom => {
                    if let Some(path) = files.next() {
                        rules.extend(read_excludes(path)?);
                    }
                }
            }
        }
        // Whatever the scan missed (a program calling in without a command line) comes last.
        rules.extend(includes.cloned().map(Rule::Include));
        rules.extend(excludes.cloned().map(Rule::Exclude));
        for path in files {
            rules.extend(read_excludes(path)?);
        }
        Filter::new(&rules).map_err(anyhow::Error::msg)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FilterOption {
    Include,
    Exclude,
    ExcludeFrom,
}

/// The filter options of a command line, in order (each once per value it takes).
fn filter_order(args: impl Iterator<Item = String>) -> Vec<FilterOption> {
    let mut order = Vec::new();
    let mut args = args.skip(1);
    while let Some(arg) = args.next() {
        if arg == "--" {
            break;
        }
        let (name, inline) = match arg.split_once('=') {
            Some((name, _)) => (name.to_string(), true),
            None => (arg.clone(), false),
        };
        let option = match name.as_str() {
            "--include" => FilterOption::Include,
            "--exclude" => FilterOption::Exclude,
            "--exclude-from" => FilterOption::ExcludeFrom,
            _ => continue,
        };
        order.push(option);
        if !inline {
            args.next();
        }
    }
    order
}

/// The patterns of an `--exclude-from` file.
fn read_excludes(path: &std::path::Path) -> anyhow::Result<Vec<Rule>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--exclude-from {}", escape(&path.display().to_string())))?;
    Ok(text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .map(|l| Rule::Exclude(l.to_string()))
        .collect())
}

/// Asks on the terminal before a mirror removes anything; without one, refuses (`--force`
/// goes ahead), as `ferry rm -r` does.
fn approve_removals(target: &str, files: u64, dirs: u64, bytes: u64) -> bool {
    let what = format!(
        "{}, {} ({})",
        count(files, "file", "files"),
        count(dirs, "directory", "directories"),
        human_size(bytes)
    );
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        eprintln!(
            "ferry: --delete would remove {what} from '{}'; without a terminal to ask on, that needs --force",
            escape(target)
        );
        return false;
    }
    eprint!(
        "Remove {what} from '{}' that the source does not have? (yes/no) ",
        escape(target)
    );
    let mut answer = String::new();
    if std::io::stdin().read_line(&mut answer).is_err() {
        return false;
    }
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_options_are_read_in_command_line_order() {
        let args = [
            "ferry",
            "put",
            "-r",
            "--include",
            "keep.o",
            "--exclude=*.o",
            "--server",
            "x",
            "--exclude-from",
            "f",
            "--include",
            "a",
            "--",
            "--exclude",
        ];
        assert_eq!(
            filter_order(args.iter().map(|s| s.to_string())),
            vec![
                FilterOption::Include,
                FilterOption::Exclude,
                FilterOption::ExcludeFrom,
                FilterOption::Include
            ]
        );
    }
}
