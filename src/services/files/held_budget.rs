//! What all sessions together may hold for shared commits ([`super::held_puts`]).
//!
//! A held upload keeps descriptors open (a sealed partial and its directory; a small file from
//! its creation to its link) and a small one keeps its bytes in memory until the commit. Each
//! session bounds its own (`MAX_HELD` files, `MAX_HELD_BYTES`), but sessions are many: two or
//! three writers ran a server under an open-file limit of a few thousand out of descriptors,
//! and then every other client's accept and open failed too; a thousand sessions trickling
//! whole frames could keep gigabytes held. So every held upload also takes its share of one
//! budget for the whole server — one file, and its bytes if it waits in memory — sized from the
//! open-file limit and a fixed amount of memory, and gives it back when its commit is done.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes of small uploads all sessions together may keep in memory until their commits: 64
/// sessions' full batches (`held_puts::MAX_HELD_BYTES`, 4 MiB, each). Past it, sessions commit
/// as they go, which costs speed, not memory.
pub const HELD_BYTES: usize = 256 << 20;

/// The server's budget for held uploads: files and bytes.
#[derive(Debug, Clone)]
pub struct HeldBudget {
    files: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
}

/// One held upload's share of the budget, given back when dropped.
#[derive(Debug)]
pub struct HeldShare {
    _file: OwnedSemaphorePermit,
    _bytes: Option<OwnedSemaphorePermit>,
}

impl HeldBudget {
    /// The budget of a server whose soft open-file limit is `open_file_limit` (`None`:
    /// unlimited).
    pub fn new(open_file_limit: Option<u64>) -> Self {
        HeldBudget {
            files: Arc::new(Semaphore::new(files_for_limit(open_file_limit))),
            bytes: Arc::new(Semaphore::new(HELD_BYTES)),
        }
    }

    /// The share of one upload keeping `bytes` in memory (0 for one sealed on the disk), if the
    /// budget has it now: never waits.
    pub fn try_take(&self, bytes: usize) -> Option<HeldShare> {
        let file = Arc::clone(&self.files).try_acquire_owned().ok()?;
        let bytes = match u32::try_from(bytes) {
            Ok(0) => None,
            Ok(n) => Some(Arc::clone(&self.bytes).try_acquire_many_owned(n).ok()?),
            Err(_) => return None,
        };
        Some(HeldShare {
            _file: file,
            _bytes: bytes,
        })
    }

    /// The files' part (tests spend it to see what a session does when others hold it all).
    pub fn files(&self) -> &Arc<Semaphore> {
        &self.files
    }

    /// The bytes' part.
    pub fn bytes(&self) -> &Arc<Semaphore> {
        &self.bytes
    }
}

/// Uploads all sessions together may hold under a soft open-file limit of `limit`: a quarter of
/// it, as each may keep two descriptors open, so at least half stays for connections, transfers
/// in progress and the server's own files. Never below a few, so a tiny limit still batches.
fn files_for_limit(limit: Option<u64>) -> usize {
    limit.map_or(Semaphore::MAX_PERMITS, |limit| {
        usize::try_from(limit / 4)
            .unwrap_or(usize::MAX)
            .clamp(8, Semaphore::MAX_PERMITS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_a_quarter_of_the_open_file_limit_and_never_tiny() {
        for limit in [256u64, 1024, 4096, 1 << 20] {
            let files = files_for_limit(Some(limit)) as u64;
            // Two descriptors per held upload leave at least half the limit for the rest.
            assert!(2 * files <= limit / 2, "limit {limit}: {files}");
            assert!(files >= limit / 4 - 1, "limit {limit}: {files}");
        }
        assert_eq!(
            files_for_limit(Some(4)),
            8,
            "a tiny limit still batches a few"
        );
        assert_eq!(files_for_limit(None), Semaphore::MAX_PERMITS);
    }

    #[test]
    fn a_share_takes_a_file_and_its_bytes_or_nothing() {
        let budget = HeldBudget::new(Some(64));
        let whole = budget.files().available_permits();
        let sealed = budget.try_take(0).unwrap();
        assert_eq!(budget.files().available_permits(), whole - 1);
        assert_eq!(
            budget.bytes().available_permits(),
            HELD_BYTES,
            "a sealed one keeps no bytes"
        );
        let small = budget.try_take(1000).unwrap();
        assert_eq!(budget.bytes().available_permits(), HELD_BYTES - 1000);
        // More bytes than are left: no share, and the file it would have taken is not kept.
        assert!(budget.try_take(HELD_BYTES).is_none());
        assert_eq!(budget.files().available_permits(), whole - 2);
        drop((sealed, small));
        assert_eq!(budget.files().available_permits(), whole);
        assert_eq!(budget.bytes().available_permits(), HELD_BYTES);
    }
}
