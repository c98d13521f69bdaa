//! Cutting a file into content-defined chunks (FastCDC 2020, normalization level 1, the
//! `fastcdc` crate's gear table), streamed through a fixed window so no file is held whole.
//!
//! `fastcdc::v2020::StreamCDC` would do the streaming too, but it copies its whole window
//! down after every chunk and allocates each chunk's bytes; this reads 4 MiB windows and
//! hands out slices of them.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use fastcdc::v2020::{Normalization, cut, select_masks};

/// Bytes read at a time (more than the largest chunk, 4 MiB).
const WINDOW: usize = 8 << 20;

/// The sizes one average gives: min a quarter of it, max four times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    min: usize,
    avg: usize,
    max: usize,
    mask_s: u64,
    mask_l: u64,
}

impl Sizes {
    /// The sizes for average `avg` (see [`super::valid_average`]).
    pub fn new(avg: u32) -> Self {
        let avg = avg as usize;
        let (mask_s, mask_l) = select_masks(avg, Normalization::Level1);
        Sizes {
            min: avg / 4,
            avg,
            max: avg * 4,
            mask_s,
            mask_l,
        }
    }

    /// The largest chunk.
    pub fn max(&self) -> usize {
        self.max
    }

    /// The length of the first chunk of `bytes`; `None` when `bytes` may be cut later than
    /// its end (it is shorter than the largest chunk and more of the file follows).
    pub(super) fn first_cut(&self, bytes: &[u8], at_end: bool) -> Option<usize> {
        let (_, count) = cut(
            bytes,
            self.min,
            self.avg,
            self.max,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
        );
        (count < bytes.len() || at_end || bytes.len() >= self.max).then_some(count)
    }
}

/// A file being cut a piece at a time: each [`Chunker::step`] hands out the next chunks, about
/// a budget's worth, reading the file through the window as it goes, so a caller can cut a file
/// in several trips to a blocking thread (a sender that waits on its peer between them holds no
/// thread).
pub struct Chunker {
    sizes: Sizes,
    len: u64,
    window: Vec<u8>,
    /// `window[start..held]` is read and not yet cut.
    start: usize,
    held: usize,
    /// File offset after the last byte read.
    read_to: u64,
    /// File offset of `window[0]`.
    window_at: u64,
    done: bool,
}

impl Chunker {
    /// A chunker for the first `len` bytes of a file.
    pub fn new(len: u64, sizes: Sizes) -> Self {
        Chunker {
            sizes,
            len,
            window: vec![0u8; WINDOW.max(2 * sizes.max)],
            start: 0,
            held: 0,
            read_to: 0,
            window_at: 0,
            done: false,
        }
    }

    /// Whether every chunk has been handed out.
    pub fn done(&self) -> bool {
        self.done
    }

    /// Calls `each(offset, bytes)` for the next chunks in order until they add up to `budget`
    /// bytes at least, or the file ends. Stops at the first error `each` returns.
    ///
    /// # Errors
    /// Read errors; `UnexpectedEof` when the file is shorter than `len`; `each`'s error.
    pub fn step(
        &mut self,
        file: &File,
        budget: usize,
        mut each: impl FnMut(u64, &[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut handed = 0usize;
        while !self.done && handed < budget {
            if self.held - self.start < self.sizes.max && self.read_to < self.len {
                self.refill(file)?;
            }
            let at_end = self.read_to == self.len;
            if self.start == self.held && at_end {
                self.done = true;
                break;
            }
            // After a refill the window holds a largest chunk's worth, or the file's end.
            let bytes = &self.window[self.start..self.held];
            let count = self.sizes.first_cut(bytes, at_end).unwrap_or(bytes.len());
            each(
                self.window_at + self.start as u64,
                &self.window[self.start..self.start + count],
            )?;
            self.start += count;
            handed += count;
        }
        Ok(())
    }

    /// Moves what is not yet cut to the window's start and reads behind it as much as fits.
    fn refill(&mut self, file: &File) -> io::Result<()> {
        self.window.copy_within(self.start..self.held, 0);
        self.held -= self.start;
        self.window_at += self.start as u64;
        self.start = 0;
        let room = self.window.len() - self.held;
        let want = usize::try_from(self.len - self.read_to).map_or(room, |left| left.min(room));
        file.read_exact_at(&mut self.window[self.held..self.held + want], self.read_to)?;
        self.held += want;
        self.read_to += want as u64;
        Ok(())
    }
}

/// Cuts the first `len` bytes of `file` into chunks, calling `each(offset, bytes)` for each in
/// order. Stops at the first error `each` returns.
///
/// # Errors
/// Read errors; `UnexpectedEof` when the file is shorter than `len`; `each`'s error.
pub fn chunk_file(
    file: &File,
    len: u64,
    sizes: Sizes,
    mut each: impl FnMut(u64, &[u8]) -> io::Result<()>,
) -> io::Result<()> {
    Chunker::new(len, sizes).step(file, usize::MAX, &mut each)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn chunks_of(bytes: &[u8], avg: u32) -> Vec<(u64, usize)> {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(bytes).unwrap();
        let mut out = Vec::new();
        chunk_file(
            &file,
            bytes.len() as u64,
            Sizes::new(avg),
            |offset, chunk| {
                out.push((offset, chunk.len()));
                Ok(())
            },
        )
        .unwrap();
        out
    }

    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn the_window_cuts_where_the_whole_slice_would() {
        // Windows end mid-chunk many times over (3 windows); the cuts must be the crate's own.
        let bytes = noise(20 << 20, 7);
        let avg = 64 * 1024;
        let sizes = Sizes::new(avg);
        let expected: Vec<(u64, usize)> =
            fastcdc::v2020::FastCDC::new(&bytes, sizes.min, sizes.avg, sizes.max)
                .map(|c| (c.offset as u64, c.length))
                .collect();
        assert_eq!(chunks_of(&bytes, avg), expected);
    }

    #[test]
    fn steps_cut_where_one_pass_would() {
        let bytes = noise(20 << 20, 11);
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&bytes).unwrap();
        let avg = 256 * 1024;
        let mut chunker = Chunker::new(bytes.len() as u64, Sizes::new(avg));
        let mut stepped = Vec::new();
        let mut steps = 0;
        while !chunker.done() {
            let before = stepped.len();
            chunker
                .step(&file, 1 << 20, |offset, chunk| {
                    stepped.push((offset, chunk.len()));
                    Ok(())
                })
                .unwrap();
            let handed: usize = stepped[before..].iter().map(|(_, n)| n).sum();
            assert!(
                handed < (1 << 20) + 4 * avg as usize,
                "a step stays near its budget"
            );
            steps += 1;
        }
        assert!(steps >= 10, "{steps} steps");
        assert_eq!(stepped, chunks_of(&bytes, avg));
    }

    #[test]
    fn empty_and_tiny_files_have_zero_and_one_chunk() {
        assert!(chunks_of(&[], 1024).is_empty());
        assert_eq!(chunks_of(b"abc", 1024), vec![(0, 3)]);
    }
}
