//! Getting a received file onto the disk while it is still arriving.
//!
//! A receiver makes the file durable (`fsync`) before it takes its final name. Left alone, the
//! kernel starts writing a fresh file back only after its dirty pages age (30 s) or pass a share
//! of memory, so the final `fsync` of a 1 GiB file found the whole gigabyte still in memory and
//! waited for all of it: 0.4 s of a 1.05 s transfer on the bench machine. Here a background
//! `fdatasync` starts each time another [`EVERY`] bytes were written (never two at once), so the
//! disk works while the network does and the final `fsync` only waits for the tail.
//!
//! `sync_file_range(SYNC_FILE_RANGE_WRITE)` would start the writeback without waiting for it,
//! but neither rustix nor nix offers it and this crate has no `unsafe`; an `fdatasync` on a
//! blocking thread waits only that thread. Its errors are kept and returned: Linux reports a
//! writeback error once per open file description, which the background sync shares with the
//! final one, so an error seen here must not be dropped.

use std::fs::File;
use std::io;
use std::thread::JoinHandle;

/// Bytes written between two background syncs.
pub const EVERY: u64 = 32 << 20;

/// Background syncs of one file as it is written, on threads of their own, never two at once;
/// the first error one returned is kept. Its calls never wait, but [`BackgroundSyncs::finish`]:
/// a plain receive drives it from the runtime through [`Writeback`], the base copied into a
/// partial ahead of a delta from its own thread ([`crate::transfer::delta::prefill`]).
pub struct BackgroundSyncs {
    /// A second descriptor of the file, or `None`: nothing to sync.
    file: Option<File>,
    since: u64,
    running: Option<JoinHandle<io::Result<()>>>,
    failed: Option<io::Error>,
}

impl BackgroundSyncs {
    /// Background syncs for `file` (a regular file; none for anything else, or when it cannot
    /// be duplicated: the final `fsync` then does all the work).
    pub fn of(file: &File) -> Self {
        let file = file
            .metadata()
            .ok()
            .filter(std::fs::Metadata::is_file)
            .and_then(|_| file.try_clone().ok());
        BackgroundSyncs {
            file,
            since: 0,
            running: None,
            failed: None,
        }
    }

    /// Counts `n` more bytes written (their `write` returned) and starts a sync when
    /// [`EVERY`] were written since the last one started and none is running.
    pub fn wrote(&mut self, n: u64) {
        self.since += n;
        if self.running.as_ref().is_some_and(JoinHandle::is_finished) {
            self.collect();
        }
        if self.since < EVERY || self.running.is_some() || self.failed.is_some() {
            return;
        }
        let Some(file) = self.file.as_ref().and_then(|f| f.try_clone().ok()) else {
            return;
        };
        self.since = 0;
        self.running = std::thread::Builder::new()
            .name("ferry-sync".into())
            .spawn(move || file.sync_data())
            .ok();
    }

    /// Waits for the running sync, if any (blocking).
    ///
    /// # Errors
    /// The first error a background sync met: the file may not be on the disk.
    pub fn finish(mut self) -> io::Result<()> {
        self.collect();
        self.failed.map_or(Ok(()), Err)
    }

    fn collect(&mut self) {
        if let Some(sync) = self.running.take() {
            let result = sync
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("a background sync panicked")));
            if let Err(e) = result {
                self.failed.get_or_insert(e);
            }
        }
    }
}

/// The background syncs of one file being received, driven from the runtime.
pub struct Writeback(Option<BackgroundSyncs>);

impl Writeback {
    /// Background syncs for `file`, which will receive `len` bytes; none when that is less
    /// than [`EVERY`] (nothing to overlap: no syscall is spent), or the file is not a regular
    /// file (a pipe, a terminal).
    pub fn of(file: &File, len: u64) -> Self {
        Writeback((len >= EVERY).then(|| BackgroundSyncs::of(file)))
    }

    /// Counts `n` more bytes written; see [`BackgroundSyncs::wrote`].
    pub async fn wrote(&mut self, n: u64) {
        if let Some(syncs) = &mut self.0 {
            syncs.wrote(n);
        }
    }

    /// Waits for the running sync, if any, off the runtime.
    ///
    /// # Errors
    /// The first error a background sync met: the file may not be on the disk.
    pub async fn finish(self) -> io::Result<()> {
        match self.0 {
            Some(syncs) => tokio::task::spawn_blocking(move || syncs.finish())
                .await
                .unwrap_or_else(|e| Err(io::Error::other(e))),
            None => Ok(()),
        }
    }
}
