//! A whole-file hash computed on a thread of its own, behind the thread that writes the file.
//!
//! Why: a delta's receiver builds most of a large file by copying it out of its base (read,
//! write) and must hash every byte it wrote to prove the result. On one thread the two run one
//! after the other (on the bench machine 1 GiB: about 0.5 s of copying, 0.25 s of BLAKE3);
//! while the sender has nothing left to do, the second core is idle. Here the writer hands
//! each block over once written and goes on copying; the hash follows a few blocks behind.
//! Copied blocks come back to be reused, so a large copy touches no fresh memory.

use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;

use bytes::Bytes;

use super::hashing::Hasher;

/// Blocks in flight at most (each at most a copy buffer or a frame: a few MiB held).
const DEPTH: usize = 4;

/// A block handed to the hashing thread.
enum Block {
    /// Bytes copied out of the base, in a buffer to hand back.
    Copied(Vec<u8>),
    /// Bytes that arrived as they are.
    Arrived(Bytes),
}

/// A hash being computed behind the writer.
pub struct HashBehind {
    blocks: Option<SyncSender<Block>>,
    spare: Receiver<Vec<u8>>,
    thread: Option<JoinHandle<Hasher>>,
}

impl HashBehind {
    /// Starts hashing with `hasher` (which may have seen earlier bytes) on a new thread.
    ///
    /// # Errors
    /// The thread could not be started.
    pub fn start(hasher: Hasher) -> std::io::Result<Self> {
        let (blocks, incoming) = mpsc::sync_channel::<Block>(DEPTH);
        let (give_back, spare) = mpsc::sync_channel::<Vec<u8>>(DEPTH + 1);
        let thread = std::thread::Builder::new()
            .name("ferry-hash".into())
            .spawn(move || {
                let mut hasher = hasher;
                for block in incoming {
                    match block {
                        Block::Copied(buffer) => {
                            hasher.update(&buffer);
                            let _ = give_back.try_send(buffer);
                        }
                        Block::Arrived(bytes) => hasher.update(&bytes),
                    }
                }
                hasher
            })?;
        Ok(HashBehind {
            blocks: Some(blocks),
            spare,
            thread: Some(thread),
        })
    }

    /// A buffer to copy into: one the hashing thread is done with, or a new one.
    pub fn buffer(&mut self) -> Vec<u8> {
        self.spare.try_recv().unwrap_or_default()
    }

    /// Hashes `buffer` (bytes copied and written), after everything handed over before.
    pub fn copied(&mut self, buffer: Vec<u8>) {
        self.send(Block::Copied(buffer));
    }

    /// Hashes `bytes` (bytes that arrived and were written), after everything before.
    pub fn arrived(&mut self, bytes: Bytes) {
        self.send(Block::Arrived(bytes));
    }

    fn send(&mut self, block: Block) {
        if let Some(blocks) = &self.blocks
            && blocks.send(block).is_err()
        {
            // The thread is gone (it panicked): `finish` reports it.
            self.blocks = None;
        }
    }

    /// The hash of everything handed over, once the thread has caught up.
    ///
    /// # Errors
    /// The hashing thread panicked.
    pub fn finish(mut self) -> std::io::Result<Hasher> {
        self.blocks = None;
        self.thread
            .take()
            .ok_or_else(|| std::io::Error::other("the hash was already finished"))?
            .join()
            .map_err(|_| std::io::Error::other("the hashing thread panicked"))
    }
}

impl Drop for HashBehind {
    fn drop(&mut self) {
        // Closing the channel ends the thread; it is not waited for.
        self.blocks = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::HashAlgorithm;

    #[test]
    fn a_hash_behind_equals_the_hash_in_line() {
        let bytes: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut behind = HashBehind::start(Hasher::new(HashAlgorithm::Blake3)).unwrap();
        for (i, piece) in bytes.chunks(300_000).enumerate() {
            if i % 2 == 0 {
                let mut buffer = behind.buffer();
                buffer.clear();
                buffer.extend_from_slice(piece);
                behind.copied(buffer);
            } else {
                behind.arrived(Bytes::copy_from_slice(piece));
            }
        }
        let mut in_line = Hasher::new(HashAlgorithm::Blake3);
        in_line.update(&bytes);
        assert_eq!(behind.finish().unwrap().finish_hex(), in_line.finish_hex());
    }
}
