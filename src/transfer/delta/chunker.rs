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
    fn first_cut(&self, bytes: &[u8], at_end: bool) -> Option<usize> {
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
    let mut window = vec![0u8; WINDOW.max(2 * sizes.max)];
    let mut held = 0usize; // bytes at the window's start not yet cut
    let mut read_to = 0u64; // file offset after the last byte read
    let mut cut_to = 0u64; // file offset of window[0]
    loop {
        let want = usize::try_from(len - read_to)
            .map_or(window.len() - held, |left| left.min(window.len() - held));
        if want > 0 {
            file.read_exact_at(&mut window[held..held + want], read_to)?;
            held += want;
            read_to += want as u64;
        }
        let at_end = read_to == len;
        let mut start = 0usize;
        while start < held {
            let Some(count) = sizes.first_cut(&window[start..held], at_end) else {
                break;
            };
            each(cut_to + start as u64, &window[start..start + count])?;
            start += count;
        }
        window.copy_within(start..held, 0);
        held -= start;
        cut_to += start as u64;
        if at_end && held == 0 {
            return Ok(());
        }
    }
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
    fn empty_and_tiny_files_have_zero_and_one_chunk() {
        assert!(chunks_of(&[], 1024).is_empty());
        assert_eq!(chunks_of(b"abc", 1024), vec![(0, 3)]);
    }
}
