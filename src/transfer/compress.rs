//! `-z`: literal file bytes compressed with zstd where it pays, block by block.
//!
//! Each data frame on [`COMPRESSED_CHANNEL`] is one zstd frame holding one block of the file
//! (at most [`super::chunks::CHUNK`] bytes), its size written in the frame header, so the
//! receiver knows how many bytes of the file it stands for before it decompresses, and refuses
//! a block that claims more than is left or than a block may hold (a "zip bomb" ends the
//! session instead of filling memory). A block that does not shrink by a tenth goes raw on
//! channel 0, so incompressible data (media, archives, encrypted files) costs the compression
//! attempt and nothing on the wire. Level 3: zstd's default, about 300–500 MB/s a core.

/// The data channel of compressed blocks.
pub const COMPRESSED_CHANNEL: u8 = 3;
/// zstd's level.
pub const LEVEL: i32 = 3;
/// The most a compressed block may stand for.
pub const MOST: usize = super::chunks::CHUNK;

/// A block as it goes: compressed on [`COMPRESSED_CHANNEL`] when that is at least a tenth
/// smaller, else raw on channel 0.
pub fn pack(raw: Vec<u8>) -> (u8, Vec<u8>) {
    if raw.len() < 512 || raw.len() > MOST {
        return (0, raw);
    }
    match zstd::bulk::compress(&raw, LEVEL) {
        Ok(packed) if packed.len() * 10 < raw.len() * 9 => (COMPRESSED_CHANNEL, packed),
        _ => (0, raw),
    }
}

/// The size of the block a compressed frame announces, if it is one this side takes: at
/// most [`MOST`] and at most `left`.
///
/// # Errors
/// Why the frame is refused.
pub fn announced(payload: &[u8], left: u64) -> Result<usize, String> {
    match zstd::zstd_safe::get_frame_content_size(payload) {
        Ok(Some(size)) if size > 0 && size <= MOST as u64 && size <= left => Ok(size as usize),
        Ok(Some(size)) => Err(format!(
            "a compressed block of {size} bytes (at most {} here, {left} left)",
            MOST
        )),
        _ => Err("a compressed block without its size".into()),
    }
}

/// Decompresses a block announced as `size` bytes; anything else is an error.
///
/// # Errors
/// A damaged block, or one that is not `size` bytes.
pub fn unpack(payload: &[u8], size: usize) -> std::io::Result<Vec<u8>> {
    let raw = zstd::bulk::decompress(payload, size)?;
    if raw.len() != size {
        return Err(std::io::Error::other(format!(
            "a compressed block held {} bytes, not the {size} it announced",
            raw.len()
        )));
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_packed_noise_is_not_and_sizes_are_checked() {
        let text = b"ferry carries files ".repeat(1000);
        let (channel, packed) = pack(text.clone());
        assert_eq!(channel, COMPRESSED_CHANNEL);
        assert!(packed.len() < text.len() / 10);
        assert_eq!(announced(&packed, 1 << 30), Ok(text.len()));
        assert_eq!(unpack(&packed, text.len()).unwrap(), text);
        // More than is left, or damaged: refused.
        assert!(announced(&packed, 100).is_err());
        assert!(announced(b"not zstd at all", 1 << 30).is_err());
        let mut x = 1u64;
        let noise: Vec<u8> = (0..100_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert_eq!(pack(noise.clone()), (0, noise));
    }

    #[test]
    fn a_block_claiming_more_than_a_block_is_refused_before_it_is_unpacked() {
        let huge = zstd::bulk::compress(&vec![0u8; MOST + 1], LEVEL).unwrap();
        assert!(announced(&huge, u64::MAX).is_err());
    }
}
