//! The audit log's writer: one thread that owns the file, so that no session ever waits on the
//! disk. It writes what is queued in batches, makes it durable at the configured interval,
//! rotates by size, and writes a `dropped` entry for whatever the queue had to refuse.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant, SystemTime};

use tracing::warn;

use super::event::{AuditEvent, AuditRecord};

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
}

/// How the writer keeps the file.
#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub(super) path: PathBuf,
    pub(super) fsync_interval: Duration,
    pub(super) rotate_bytes: u64,
    pub(super) keep: usize,
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
    /// Whether the last write failed (so a failing disk is reported once, not per entry).
    failing: bool,
}

impl Writer {
    /// Opens (creating) the log for appending; private to its owner, since it names users and
    /// addresses.
    ///
    /// # Errors
    /// The file cannot be opened.
    pub(super) fn open(settings: Settings, drops: Arc<Drops>) -> std::io::Result<Writer> {
        let file = open_append(&settings.path)?;
        let size = file.metadata()?.len();
        Ok(Writer {
            settings,
            file: BufWriter::with_capacity(64 * 1024, file),
            size,
            dirty: false,
            last_sync: Instant::now(),
            drops,
            failing: false,
        })
    }

    /// Serves the queue until every handle is gone, then syncs and returns.
    pub(super) fn run(mut self, queue: Receiver<Command>) {
        let mut flushes: Vec<SyncSender<()>> = Vec::new();
        loop {
            let wait = if self.dirty {
                self.settings
                    .fsync_interval
                    .saturating_sub(self.last_sync.elapsed())
            } else {
                Duration::from_secs(3600)
            };
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
                    Command::Record(at, event) => self.append(&AuditRecord::at(at, event)),
                    Command::Flush(answer) => flushes.push(answer),
                }
            }
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
        self.report_drops();
        self.end_batch(true);
    }

    /// Writes one entry as one line.
    fn append(&mut self, record: &AuditRecord) {
        let Ok(mut line) = serde_json::to_vec(record) else {
            return;
        };
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
            self.append(&AuditRecord::now(AuditEvent::Dropped { count }));
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
        if !self.failing {
            self.failing = true;
            warn!(path = %self.settings.path.display(), %error, "cannot write the audit log; entries are lost and counted");
        }
    }

    /// `PATH` becomes `PATH.1`, `PATH.1` becomes `PATH.2`, … and the oldest beyond `keep`
    /// goes; then a new `PATH` is opened.
    fn rotate(&mut self) -> std::io::Result<()> {
        let path = self.settings.path.clone();
        let keep = self.settings.keep;
        self.file.flush()?;
        self.file.get_ref().sync_all()?;
        // Beyond `keep` (also what a smaller `keep` than before left behind).
        let mut extra = keep + 1;
        while std::fs::remove_file(numbered(&path, extra)).is_ok() {
            extra += 1;
        }
        if keep == 0 {
            std::fs::remove_file(&path)?;
        } else {
            for n in (1..keep).rev() {
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
        Ok(())
    }
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
