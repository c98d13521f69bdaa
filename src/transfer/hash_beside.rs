//! A whole-file hash computed on a second thread, beside the thread that writes the file, for
//! the length of one large write.
//!
//! Why: a delta's receiver builds most of a large file by copying it out of its base (read,
//! write) and must hash every byte it wrote to prove the result. On one thread the two run one
//! after the other (examples/delta_costs.rs: on the bench machine, per GiB, about 0.25 s of
//! copying and 0.17 s of BLAKE3); while the sender has nothing left to do, the second core is
//! idle. Here the writer hands each block over once written and goes on copying; the hash
//! follows a block or two behind, and blocks come back to be reused, so a large copy touches
//! no fresh memory.
//!
//! The hashing thread is scoped to the one write: it never outlives it and never waits on a
//! peer (a receiver between two frames holds no thread at all).

use std::io;
use std::sync::mpsc::{self, Receiver, SyncSender};

use super::hashing::Hasher;

/// Blocks in flight at most.
const DEPTH: usize = 2;

/// The writer's end: where it takes buffers from and hands written blocks to.
pub struct Beside {
    blocks: SyncSender<Vec<u8>>,
    spare: Receiver<Vec<u8>>,
}

impl Beside {
    /// A buffer to fill: one the hashing thread is done with, or a new one.
    pub fn buffer(&mut self) -> Vec<u8> {
        self.spare.try_recv().unwrap_or_default()
    }

    /// Hands over `block` (written): it is hashed after every block before it.
    pub fn hash(&mut self, block: Vec<u8>) {
        // The receiving end lives until this write returns: a send cannot fail before.
        let _ = self.blocks.send(block);
    }
}

/// Runs `write` on this thread while a second one feeds `hasher` every block `write` hands
/// over, in order; returns once both are done.
///
/// # Errors
/// `write`'s error (the blocks handed over before it are hashed all the same).
pub fn hashing_beside<T>(
    hasher: &mut Hasher,
    write: impl FnOnce(&mut Beside) -> io::Result<T>,
) -> io::Result<T> {
    std::thread::scope(|scope| {
        let (blocks, incoming) = mpsc::sync_channel::<Vec<u8>>(DEPTH);
        let (give_back, spare) = mpsc::sync_channel::<Vec<u8>>(DEPTH + 1);
        scope.spawn(move || {
            for block in incoming {
                hasher.update(&block);
                let _ = give_back.try_send(block);
            }
        });
        let mut beside = Beside { blocks, spare };
        write(&mut beside)
        // `beside` is dropped here: the hashing thread drains what is left and ends, and the
        // scope waits for it.
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::HashAlgorithm;

    #[test]
    fn a_hash_beside_equals_the_hash_in_line() {
        let bytes: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut hasher = Hasher::new(HashAlgorithm::Blake3);
        hasher.update(b"before");
        let handed = hashing_beside(&mut hasher, |beside| {
            let mut n = 0;
            for piece in bytes.chunks(300_000) {
                let mut buffer = beside.buffer();
                buffer.clear();
                buffer.extend_from_slice(piece);
                beside.hash(buffer);
                n += 1;
            }
            Ok(n)
        })
        .unwrap();
        assert_eq!(handed, 17);
        let mut in_line = Hasher::new(HashAlgorithm::Blake3);
        in_line.update(b"before");
        in_line.update(&bytes);
        assert_eq!(hasher.finish_hex(), in_line.finish_hex());
    }
}
