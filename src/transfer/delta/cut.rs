//! The sender's cut of its new file, made on a blocking thread of its own from the moment the
//! transfer is asked for, not once the receiver's signature has arrived.
//!
//! Why ahead: the receiver must read its whole base to sign it and the sender its whole new
//! version to cut it, and neither needs the other to do so once both use the same average
//! chunk size (the sender names it in its request). Cut one after the other, as rsync's
//! generator and sender do, a delta of a large file costs both reads in turn; cut at once they
//! overlap, each side on its own core. The cut hands out its chunks (place, length, hash) in
//! batches as it goes, so once the signature is here the sender turns the chunks cut so far
//! into copies and literal bytes while the rest is still being cut.
//!
//! The whole file's hash, when it is not known, is computed by a second thread reading the
//! file on its own: it does not depend on the cuts, and on the cutting thread it would add a
//! sixth to the time the sender's pass takes (examples/delta_costs.rs measures each step).
//!
//! A cut that is not wanted after all (the receiver holds no base, or signed with another
//! average) is dropped: it stops within a step.

use std::fs::File;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::chunker::{Chunker, Sizes};
use super::signature::{ChunkHash, chunk_hash};
use crate::protocol::{ChunkHashing, HashAlgorithm};
use crate::transfer::hashing::Hasher;

/// Bytes of the file one batch of chunks covers, about.
const BATCH: usize = 1 << 20;

/// One chunk of the new file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CutChunk {
    /// Where it starts in the file.
    pub offset: u64,
    /// Its length.
    pub len: u32,
    /// Its hash prefix, as a signature holds it.
    pub hash: ChunkHash,
}

/// Chunks the cut may hold ready, at most, before the sender takes them (a few MiB of
/// records; a large file at ferry's own average fits whole: 1 GiB is about 65,000 chunks).
const AHEAD: usize = 1 << 18;

/// A cut under way: a task that cuts the file a batch per trip to a blocking thread and hands
/// the batches over through a bounded channel, so a sender whose peer stops reading holds
/// neither a thread (the task waits for room without one) nor more than [`AHEAD`] chunks.
pub struct Cut {
    avg: u32,
    hashing: ChunkHashing,
    batches: mpsc::Receiver<Vec<CutChunk>>,
    stop: Arc<AtomicBool>,
    ended: Option<JoinHandle<io::Result<()>>>,
    hashed: Option<JoinHandle<io::Result<String>>>,
}

impl Cut {
    /// Starts cutting the first `len` bytes of `file` at average `avg` (see
    /// [`super::valid_average`]), hashing the chunks as `hashing` says; with `hash`, the whole
    /// file is hashed beside.
    ///
    /// # Errors
    /// The file's descriptor could not be duplicated for the threads.
    pub fn start(
        file: &File,
        len: u64,
        avg: u32,
        hashing: ChunkHashing,
        hash: Option<HashAlgorithm>,
    ) -> io::Result<Cut> {
        let file = file.try_clone()?;
        // Batches of about a megabyte each hold about BATCH / avg chunks.
        let room = (AHEAD / (BATCH / avg as usize).max(1)).max(2);
        let (tx, batches) = mpsc::channel(room);
        let stop = Arc::new(AtomicBool::new(false));
        let hashed = match hash {
            Some(algorithm) => {
                let reading = file.try_clone()?;
                let stopped = Arc::clone(&stop);
                Some(tokio::task::spawn_blocking(move || {
                    hash_file(&reading, len, Hasher::new(algorithm), &stopped)
                }))
            }
            None => None,
        };
        let stopped = Arc::clone(&stop);
        let ended = tokio::spawn(cut_file(file, (len, avg, hashing), tx, stopped));
        Ok(Cut {
            avg,
            hashing,
            batches,
            stop,
            ended: Some(ended),
            hashed,
        })
    }

    /// The average it cuts at.
    pub fn avg(&self) -> u32 {
        self.avg
    }

    /// How it hashes the chunks.
    pub fn hashing(&self) -> ChunkHashing {
        self.hashing
    }

    /// Whether it hashes the whole file beside.
    pub fn hashes_whole(&self) -> bool {
        self.hashed.is_some()
    }

    /// Whether its chunks can be looked up in a signature cut at `avg` and hashed as
    /// `hashing` (else the file must be cut again).
    pub fn fits(&self, avg: u32, hashing: ChunkHashing) -> bool {
        self.avg == avg && self.hashing == hashing
    }

    /// The next batch of chunks in file order; `None` once all were handed out (then
    /// [`Cut::finish`] says how the cut ended).
    pub async fn next(&mut self) -> Option<Vec<CutChunk>> {
        self.batches.recv().await
    }

    /// How the cut ended: the whole file's hash when it was asked for.
    ///
    /// # Errors
    /// Read errors (`UnexpectedEof` when the file became shorter than its length).
    pub async fn finish(mut self) -> io::Result<Option<String>> {
        let ended = self.ended.take();
        let hashed = self.hashed.take();
        match ended {
            Some(ended) => ended.await.map_err(io::Error::other)??,
            None => return Err(io::Error::other("the cut was already finished")),
        }
        match hashed {
            Some(hashed) => Ok(Some(hashed.await.map_err(io::Error::other)??)),
            None => Ok(None),
        }
    }
}

impl Drop for Cut {
    fn drop(&mut self) {
        // The hashing thread stops at its next block; the cutting task when its next batch
        // finds no one listening.
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The cut itself: the first `len` bytes cut at `avg` and hashed as `hashing`, in batches cut
/// on blocking threads, one trip each, and sent until the file ends or no one listens any more.
async fn cut_file(
    file: File,
    (len, avg, hashing): (u64, u32, ChunkHashing),
    tx: mpsc::Sender<Vec<CutChunk>>,
    stop: Arc<AtomicBool>,
) -> io::Result<()> {
    let mut state = (file, Chunker::new(len, Sizes::new(avg)));
    while !state.1.done() {
        if stop.load(Ordering::Relaxed) {
            return Err(io::Error::other("the cut was stopped"));
        }
        let (next, batch) = tokio::task::spawn_blocking(move || {
            let (file, mut chunker) = state;
            let mut batch = Vec::new();
            let cut = chunker.step(&file, BATCH, |offset, bytes| {
                batch.push(CutChunk {
                    offset,
                    len: u32::try_from(bytes.len()).map_err(io::Error::other)?,
                    hash: chunk_hash(hashing, bytes),
                });
                Ok(())
            });
            ((file, chunker), cut.map(|()| batch))
        })
        .await
        .map_err(io::Error::other)?;
        state = next;
        let batch = batch?;
        if !batch.is_empty() && tx.send(batch).await.is_err() {
            return Err(io::Error::other("no one takes the cut any more"));
        }
    }
    Ok(())
}

/// The whole file's hash, on a blocking thread of its own, until `stop` is set.
fn hash_file(file: &File, len: u64, mut hasher: Hasher, stop: &AtomicBool) -> io::Result<String> {
    use std::os::unix::fs::FileExt;
    let mut block = vec![0u8; BATCH];
    let mut at = 0u64;
    while at < len {
        if stop.load(Ordering::Relaxed) {
            return Err(io::Error::other("the cut was stopped"));
        }
        let now = usize::try_from(len - at).map_or(BATCH, |left| left.min(BATCH));
        file.read_exact_at(&mut block[..now], at)?;
        hasher.update(&block[..now]);
        at += now as u64;
    }
    Ok(hasher.finish_hex())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[tokio::test]
    async fn a_cut_hands_out_every_chunk_in_order_and_the_files_hash() {
        let bytes: Vec<u8> = (0..3_000_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&bytes).unwrap();
        let mut cut = Cut::start(
            &file,
            bytes.len() as u64,
            4096,
            ChunkHashing::Xxh3,
            Some(HashAlgorithm::Blake3),
        )
        .unwrap();
        let mut chunks = Vec::new();
        while let Some(batch) = cut.next().await {
            chunks.extend(batch);
        }
        let hash = cut.finish().await.unwrap();
        let mut at = 0u64;
        for chunk in &chunks {
            assert_eq!(chunk.offset, at);
            let end = at as usize + chunk.len as usize;
            assert_eq!(
                chunk.hash,
                chunk_hash(ChunkHashing::Xxh3, &bytes[at as usize..end])
            );
            at = end as u64;
        }
        assert_eq!(at, bytes.len() as u64);
        assert!(chunks.len() > 100, "{} chunks", chunks.len());
        assert_eq!(hash, Some(blake3::hash(&bytes).to_hex().to_string()));
    }

    #[tokio::test]
    async fn a_dropped_cut_stops() {
        let file = tempfile::tempfile().unwrap();
        file.set_len(64 << 20).unwrap();
        let mut cut = Cut::start(&file, 64 << 20, 1024, ChunkHashing::Xxh3, None).unwrap();
        let _first = cut.next().await;
        let ended = cut.ended.take().unwrap();
        drop(cut);
        let error = ended.await.unwrap().unwrap_err();
        assert!(error.to_string().contains("stopped") || error.to_string().contains("no one"));
    }
}
