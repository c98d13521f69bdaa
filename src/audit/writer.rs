//! The audit log's writer: one thread that owns the file, so that no session ever waits on the
//! disk. It writes what is queued in batches, makes it durable at the configured interval,
//! rotates by size, and writes a `dropped` entry for whatever the queue had to refuse.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tracing::warn;

use super::event::{AuditEvent, AuditRecord};
use super::limiter::{Limiter, REPORT_EVERY};

/// Entries written between two looks at the clock, the rotation size and the drop count.
const BATCH: usize = 1024;
/// How long the writer rests after a batch, so that the next one gathers several entries.
const BATCH_PAUSE: Duration = Duration::from_millis(5);

/// What the writer is asked to do.
pub(super) enum Command {
    /// Append this event, which happened at this time (stamped by the session, formatted and
    /// encoded here, off the session's path).
    Record(SystemTime, AuditEvent),
    /// Answer once everything queued before is written and synced.
    Flush(SyncSender<()>),
}

/// Counts shared by the handle (which drops) and the writer (which reports drops).
#[derive(Debug, Default)]
pub(super) struct Drops {
    /// Entries lost since the server started: the queue was full or the disk refused them.
    pub(super) total: AtomicU64,
    /// Entries dropped since the last `dropped` entry was written.
    pub(super) unreported: AtomicU64,
    /// Rotated files kept beyond `keep` because they are younger than `keep_days`.
    pub(super) over_budget: AtomicU64,
}

/// How the writer keeps the file.
#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub(super) path: PathBuf,
    pub(super) fsync_interval: Duration,
    pub(super) rotate_bytes: u64,
    pub(super) keep: usize,
    /// No rotated file younger than this is removed, whatever `keep` says.
    pub(super) keep_min_age: Duration,
}

/// The open log file and how much it holds.
pub(super) struct Writer {
    settings: Settings,
    file: BufWriter<File>,
    size: u64,
    /// Written since the last `fsync`.
    dirty: bool,
    last_sync: Instant,
    drops: Arc<Drops>,
    /// The actors' shares, whose `repeated` entries this writer writes when due.
    limiter: Arc<Mutex<Limiter>>,
    /// Whether the last write failed (so a failing disk is reported once, not per entry).
    failing: bool,
    /// The file may end inside a line (a crash, a full disk): the next entry starts on a new
    /// line, so it is never glued onto a partial one and hidden with it.
    needs_newline: bool,
}

impl Writer {
    /// Opens (creating) the log for appending; private to its owner, since it names users and
    /// addresses.
    ///
    /// # Errors
    /// The file cannot be opened.
    pub(super) fn open(
        settings: Settings,
        drops: Arc<Drops>,
        limiter: Arc<Mutex<Limiter>>,
    ) -> std::io::Result<Writer> {
        let file = open_append(&settings.path)?;
        let size = file.metadata()?.len();
        let needs_newline = size > 0 && !ends_with_newline(&settings.path, size)?;
        Ok(Writer {
            settings,
            file: BufWriter::with_capacity(64 * 1024, file),
            size,
            dirty: false,
            last_sync: Instant::now(),
            drops,
            limiter,
            failing: false,
            needs_newline,
        })
    }

    /// Serves the queue until every handle is gone, then syncs and returns.
    pub(super) fn run(mut self, queue: Receiver<Command>) {
        let mut flushes: Vec<SyncSender<()>> = Vec::new();
        loop {
            let mut wait = if self.dirty {
                self.settings
                    .fsync_interval
                    .saturating_sub(self.last_sync.elapsed())
            } else {
                Duration::from_secs(3600)
            };
            if self.counts_wait() {
                wait = wait.min(REPORT_EVERY);
            }
            let first = match queue.recv_timeout(wait) {
                Ok(command) => Some(command),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut batch = first
                .into_iter()
                .chain(std::iter::from_fn(|| queue.try_recv().ok()));
            for command in batch.by_ref().take(BATCH) {
                match command {
                    Command::Record(at, event) => self.append(AuditRecord::at(at, event)),
                    Command::Flush(answer) => flushes.push(answer),
                }
            }
            self.report_counts(false);
            self.report_drops();
            self.end_batch(!flushes.is_empty());
            let flushed = !flushes.is_empty();
            for answer in flushes.drain(..) {
                let _ = answer.send(());
            }
            // Entries that come one by one (a tree of small files puts one per file) are written
            // a pause's worth at a time: a thread woken per entry costs the sessions, on a small
            // machine, more than the entry itself. The queue holds far more than a pause brings.
            if !flushed {
                std::thread::sleep(BATCH_PAUSE);
            }
        }
        self.report_counts(true);
        self.report_drops();
        self.end_batch(true);
    }

    /// Whether the limiter holds counts that will be due.
    fn counts_wait(&self) -> bool {
        self.limiter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .has_counts()
    }

    /// Writes the `repeated` entries that are due (all of them when `all`).
    fn report_counts(&mut self, all: bool) {
        let due = self
            .limiter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .due(Instant::now(), all);
        for event in due {
            self.append(AuditRecord::now(event));
        }
    }

    /// Writes one entry as one line, its fields cut to their bounds first (`cap`).
    fn append(&mut self, mut record: AuditRecord) {
        record.cut = record.event.cap();
        let Ok(json) = serde_json::to_vec(&record) else {
            return;
        };
        let mut line = Vec::with_capacity(json.len() + 2);
        if self.needs_newline {
            line.push(b'\n');
        }
        line.extend_from_slice(&json);
        line.push(b'\n');
        // Rotated before a line would take the file past its size, so no file is larger
        // (unless one line alone is).
        if self.size > 0
            && self.size + line.len() as u64 > self.settings.rotate_bytes
            && let Err(e) = self.rotate()
        {
            warn!(path = %self.settings.path.display(), error = %e, "cannot rotate the audit log; it keeps growing");
        }
        match self.file.write_all(&line) {
            Ok(()) => {
                self.size += line.len() as u64;
                self.dirty = true;
                self.needs_newline = false;
                if self.failing {
                    self.failing = false;
                    warn!(path = %self.settings.path.display(), "the audit log is written again");
                }
            }
            Err(e) => self.lost(&e),
        }
    }

    /// Writes a `dropped` entry for what was refused since the last one.
    fn report_drops(&mut self) {
        let count = self.drops.unreported.swap(0, Ordering::Relaxed);
        if count > 0 {
            self.append(AuditRecord::now(AuditEvent::Dropped { count }));
        }
    }

    /// Hands the batch to the kernel, and syncs when the interval is up (or `now`).
    fn end_batch(&mut self, now: bool) {
        if let Err(e) = self.file.flush() {
            self.lost(&e);
        }
        if self.dirty && (now || self.last_sync.elapsed() >= self.settings.fsync_interval) {
            if let Err(e) = self.file.get_ref().sync_data() {
                warn!(path = %self.settings.path.display(), error = %e, "cannot sync the audit log");
            }
            self.dirty = false;
            self.last_sync = Instant::now();
        }
    }

    /// A write the disk refused: the entry is lost, so it is counted as dropped.
    fn lost(&mut self, error: &std::io::Error) {
        self.drops.total.fetch_add(1, Ordering::Relaxed);
        // Part of the line may have reached the file.
        self.needs_newline = true;
        if !self.failing {
            self.failing = true;
            warn!(path = %self.settings.path.display(), %error, "cannot write the audit log; entries are lost and counted");
        }
    }

    /// `PATH` becomes `PATH.1`, `PATH.1` becomes `PATH.2`, … and the oldest beyond `keep`
    /// go — but never one younger than `keep_min_age` (`[audit] keep_days`): an actor that
    /// writes fast must not be able to push the record of what it did out of the log. When the
    /// budget and the age disagree the age wins, and the server says so loudly (its log, and
    /// the `audit_kept_over_budget` figure).
    fn rotate(&mut self) -> std::io::Result<()> {
        let path = self.settings.path.clone();
        let keep = self.settings.keep;
        self.file.flush()?;
        self.file.get_ref().sync_all()?;
        // Every rotated file there is; after the shift below `PATH.n` is `PATH.(n+1)`, so
        // those from `PATH.keep` on would be past `keep`: they go, oldest first, while they
        // are old enough.
        let mut last = 0;
        while numbered(&path, last + 1).exists() {
            last += 1;
        }
        let mut kept_over = 0;
        for n in (keep.max(1)..=last).rev() {
            let old = numbered(&path, n);
            if self.old_enough(&old) {
                std::fs::remove_file(&old)?;
                last = n - 1;
            } else {
                kept_over = n + 1 - keep;
                break;
            }
        }
        if kept_over > 0 || (keep == 0 && !self.old_enough(&path)) {
            let over = kept_over.max(1);
            self.drops.over_budget.store(over as u64, Ordering::Relaxed);
            warn!(
                path = %path.display(),
                keep,
                kept_beyond = over,
                "the audit log keeps more files than [audit] keep allows: their entries are younger than [audit] keep_days; it grows until they age (raise keep or rotate_bytes, or lower keep_days)"
            );
        } else {
            self.drops.over_budget.store(0, Ordering::Relaxed);
        }
        if keep == 0 && self.old_enough(&path) {
            std::fs::remove_file(&path)?;
        } else {
            for n in (1..=last).rev() {
                match std::fs::rename(numbered(&path, n), numbered(&path, n + 1)) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            std::fs::rename(&path, numbered(&path, 1))?;
        }
        let file = open_append(&path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
        self.file = BufWriter::with_capacity(64 * 1024, file);
        self.size = 0;
        self.dirty = false;
        self.needs_newline = false;
        Ok(())
    }

    /// Whether the newest entry of `file` is older than `keep_min_age` (by its mtime).
    fn old_enough(&self, file: &Path) -> bool {
        std::fs::metadata(file)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|modified| modified.elapsed().ok())
            .is_none_or(|age| age >= self.settings.keep_min_age)
    }
}

/// Whether the file's last byte is a newline (read through a handle of its own: the log's is
/// append-only).
fn ends_with_newline(path: &Path, size: u64) -> std::io::Result<bool> {
    use std::os::unix::fs::FileExt;
    let mut last = [0u8; 1];
    File::open(path)?.read_exact_at(&mut last, size - 1)?;
    Ok(last[0] == b'\n')
}

/// `PATH.n`, the n-th newest rotated file.
pub(super) fn numbered(path: &Path, n: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

fn open_append(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}
