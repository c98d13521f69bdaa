//! The partial filled from the base while the delta is still being worked out.
//!
//! Why: most of a changed file is its base, in place (an edit, an append, a cut). A receiver
//! that waits for the delta's copy instructions before it writes anything starts the disk only
//! once the base is signed and the sender has matched its chunks; on the bench machine the
//! durable write of 1 GiB alone takes about as long as everything before it
//! (`examples/delta_costs.rs`). So while the base is signed and the sender cuts, a thread
//! copies the base into the partial at the same offsets, in the kernel (`copy_file_range`),
//! and starts its writeback. A copy instruction that names base bytes at the very offset they
//! take in the new file then finds them already written: the builder only hashes them. Any
//! other write (literal bytes, a copy from elsewhere) stops the filling first if it could
//! still reach that range, so the filling never writes over what the delta wrote.
//!
//! Nothing here is trusted: bytes filled but never named by the delta are overwritten or cut
//! off before the file is sealed, and every byte kept is hashed by the builder as for any
//! copy, so the whole-file hash still proves the result. A transfer that fails keeps only
//! what the delta confirmed (the builder cuts the partial back to it), so a resume offers no
//! bytes the delta never named; and a partial left by a crash is checked by its prefix hash
//! as every offer is.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;

use crate::transfer::writeback::BackgroundSyncs;

/// Bytes copied at a time: stopping waits for at most one such copy.
const BLOCK: u64 = 4 << 20;
/// Bases smaller than this are not filled ahead: there is little disk time to win and a
/// thread to start (a tree's many files would each start one).
pub const PREFILL_MIN: u64 = 2 << 20;
/// Fillings running at once in this process, at most: a tree get asks for many files ahead,
/// and a server serves many puts; beyond this a delta copies as it goes, as it always could.
const MAX_RUNNING: usize = 4;

/// Fillings running now (their copying threads).
static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// A base being copied into a partial, in order from its first byte.
pub struct Prefill {
    shared: Arc<Shared>,
    /// The copying thread; it hands back its background syncs when it ends.
    copier: Option<JoinHandle<BackgroundSyncs>>,
    /// The copier's syncs, once it has ended.
    syncs: Option<BackgroundSyncs>,
    /// The partial, emptied again when the filling is dropped unfinished.
    out: File,
    finished: bool,
}

struct Shared {
    progress: Mutex<Progress>,
    moved: Condvar,
    stop: AtomicBool,
}

struct Progress {
    /// Bytes `0..reached` of the partial hold the base's same bytes.
    reached: u64,
    running: bool,
}

impl Shared {
    fn progress(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Prefill {
    /// Starts copying bytes `0..limit` of `base` into the same bytes of `out` (an empty
    /// partial) on a thread of its own.
    ///
    /// # Errors
    /// The descriptors cannot be duplicated or the thread not started.
    pub fn start(base: &File, out: &File, limit: u64) -> io::Result<Prefill> {
        if RUNNING.fetch_add(1, Ordering::AcqRel) >= MAX_RUNNING {
            RUNNING.fetch_sub(1, Ordering::AcqRel);
            return Err(io::Error::other(
                "enough bases are being filled ahead already",
            ));
        }
        let started = Self::spawn(base, out, limit);
        if started.is_err() {
            RUNNING.fetch_sub(1, Ordering::AcqRel);
        }
        started
    }

    fn spawn(base: &File, out: &File, limit: u64) -> io::Result<Prefill> {
        let (base, mine, out) = (base.try_clone()?, out.try_clone()?, out.try_clone()?);
        let shared = Arc::new(Shared {
            progress: Mutex::new(Progress {
                reached: 0,
                running: true,
            }),
            moved: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let copying = Arc::clone(&shared);
        let copier = std::thread::Builder::new()
            .name("ferry-prefill".into())
            .spawn(move || {
                let syncs = fill(&copying, &base, &out, limit);
                RUNNING.fetch_sub(1, Ordering::AcqRel);
                syncs
            })?;
        Ok(Prefill {
            shared,
            copier: Some(copier),
            syncs: None,
            out: mine,
            finished: false,
        })
    }

    /// Starts filling `out`, an empty partial, from `base` (a regular file of at least
    /// [`PREFILL_MIN`] bytes) up to the smaller of their sizes, `size` being the new file's
    /// (`u64::MAX` when not known yet); `None` when not so, or when it cannot start (the delta
    /// then copies as it goes).
    pub fn ahead_of_signing(base: &File, out: &File, size: u64) -> Option<Prefill> {
        let base_meta = base.metadata().ok()?;
        let empty = out.metadata().ok()?.len() == 0;
        (base_meta.is_file() && base_meta.len() >= PREFILL_MIN && empty)
            .then(|| Prefill::start(base, out, base_meta.len().min(size)).ok())
            .flatten()
    }

    /// Waits until the partial holds the base's bytes up to `end`, or the filling ended
    /// short of it; returns how far it holds them.
    pub fn wait_for(&self, end: u64) -> u64 {
        let mut progress = self.shared.progress();
        while progress.running && progress.reached < end {
            progress = self
                .shared
                .moved
                .wait(progress)
                .unwrap_or_else(PoisonError::into_inner);
        }
        progress.reached
    }

    /// Makes sure the filling will never write below `end` again: it is past it, or it is
    /// stopped (after the block it is copying). Returns how far it filled.
    pub fn clear(&mut self, end: u64) -> u64 {
        {
            let progress = self.shared.progress();
            if !progress.running || progress.reached >= end {
                return progress.reached;
            }
        }
        self.stop()
    }

    /// Stops the filling after the block it is copying and waits for it; how far it filled.
    pub fn stop(&mut self) -> u64 {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(copier) = self.copier.take() {
            // A copier that panicked only ended the filling early (its syncs are then left to
            // end by themselves).
            self.syncs = copier.join().ok();
        }
        self.shared.progress().reached
    }

    /// Stops the filling and waits for its syncs (a writeback error is reported once per open
    /// file, which the final `fsync` shares: it must not be lost).
    ///
    /// # Errors
    /// The first error a background sync returned: the file may not be on the disk.
    pub fn finish(mut self) -> io::Result<u64> {
        self.finished = true;
        let reached = self.stop();
        match self.syncs.take() {
            Some(syncs) => syncs.finish().map(|()| reached),
            None => Ok(reached),
        }
    }
}

impl Drop for Prefill {
    /// Dropped unfinished (the delta was declined, or the put refused before it): the filling
    /// stops before the partial is used otherwise, so nothing of it lands afterwards, and the
    /// partial is emptied again, as it was when the filling started (nothing of the delta was
    /// confirmed). A sync still running is left to end by itself.
    fn drop(&mut self) {
        self.stop();
        if !self.finished {
            let _ = self.out.set_len(0);
        }
    }
}

/// The copying thread: block by block until `limit`, the base's end, a failure (the builder
/// then copies the rest itself) or a stop, with background syncs as it goes
/// ([`BackgroundSyncs`]), which it hands back.
fn fill(shared: &Shared, base: &File, out: &File, limit: u64) -> BackgroundSyncs {
    let mut syncs = BackgroundSyncs::of(out);
    let mut at = 0u64;
    while at < limit && !shared.stop.load(Ordering::Relaxed) {
        let want = usize::try_from((limit - at).min(BLOCK)).unwrap_or(BLOCK as usize);
        let (mut from, mut to) = (at, at);
        let copied =
            match rustix::fs::copy_file_range(base, Some(&mut from), out, Some(&mut to), want) {
                Ok(0) | Err(_) => break,
                Ok(n) => n as u64,
            };
        at += copied;
        shared.progress().reached = at;
        shared.moved.notify_all();
        syncs.wrote(copied);
    }
    shared.progress().running = false;
    shared.moved.notify_all();
    syncs
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::FileExt;

    fn file_of(bytes: &[u8]) -> (tempfile::NamedTempFile, File) {
        let mut named = tempfile::NamedTempFile::new().unwrap();
        named.write_all(bytes).unwrap();
        let file = File::options()
            .read(true)
            .write(true)
            .open(named.path())
            .unwrap();
        (named, file)
    }

    #[test]
    fn the_base_is_copied_in_place_up_to_the_limit() {
        let bytes: Vec<u8> = (0..(9u32 << 20)).map(|i| (i % 253) as u8).collect();
        let (_base_path, base) = file_of(&bytes);
        let (_out_path, out) = file_of(b"");
        let limit = (5 << 20) + 17;
        let prefill = Prefill::start(&base, &out, limit).unwrap();
        assert_eq!(prefill.wait_for(limit), limit);
        assert_eq!(prefill.finish().unwrap(), limit);
        let mut copied = vec![0u8; limit as usize];
        out.read_exact_at(&mut copied, 0).unwrap();
        assert!(copied == bytes[..limit as usize]);
        assert_eq!(out.metadata().unwrap().len(), limit);
    }

    #[test]
    fn a_cleared_range_is_never_written_after() {
        let bytes = vec![7u8; 64 << 20];
        let (_base_path, base) = file_of(&bytes);
        let (_out_path, out) = file_of(b"");
        let mut prefill = Prefill::start(&base, &out, bytes.len() as u64).unwrap();
        // Whatever it reached, nothing of it lands in 0..end once cleared.
        let end = 48 << 20;
        let reached = prefill.clear(end);
        let mine = vec![1u8; 4096];
        let at = reached.min(end - 4096);
        out.write_all_at(&mine, at).unwrap();
        let filled = prefill.finish().unwrap();
        assert!(filled >= reached);
        let mut back = vec![0u8; 4096];
        out.read_exact_at(&mut back, at).unwrap();
        assert_eq!(back, mine, "filled {filled}, wrote at {at}");
    }
}
