//! Resuming a transfer, the same at both ends. The receiver offers the prefix it holds (its
//! length and hash); the sender hashes its own first bytes and starts after them only if the
//! two hashes match, else at 0; the receiver then keeps exactly what the sender chose. A `get`
//! makes the client the receiver and a `put` the server: one module, so the two cannot drift.

use std::fs::File;

use super::hashing::Hasher;
use super::partial::{self, Partial};
use crate::protocol::HashAlgorithm;

/// What a receiver holds of an earlier attempt.
pub struct Offer {
    /// Bytes held (0 when nothing can be resumed).
    pub offset: u64,
    /// Their hash, hex, in the transfer's algorithm; `None` with offset 0.
    pub prefix_hash: Option<String>,
    /// The hash state after those bytes, to continue with the rest.
    hasher: Option<Hasher>,
}

impl Offer {
    /// The receiver's offer for `partial`: its bytes if there are some, no more than `most`
    /// (a partial longer than the whole file is not a prefix of it), and they can be read.
    /// Runs on a blocking thread (it reads the prefix).
    pub fn of(partial: &mut Partial, algorithm: HashAlgorithm, most: u64) -> Offer {
        let held = partial.held_bytes().unwrap_or(0);
        if !partial.resumable || held == 0 || held > most {
            return Offer::nothing();
        }
        match partial.hash_prefix(algorithm, held) {
            Ok((hasher, hex)) => Offer {
                offset: held,
                prefix_hash: Some(hex),
                hasher: Some(hasher),
            },
            Err(_) => Offer::nothing(),
        }
    }

    /// An offer of nothing: the transfer starts at 0.
    pub fn nothing() -> Offer {
        Offer {
            offset: 0,
            prefix_hash: None,
            hasher: None,
        }
    }

    /// Whether the sender's chosen start is one a receiver can follow: 0, or the offset held.
    pub fn allows(&self, start: u64) -> bool {
        start == 0 || start == self.offset
    }

    /// The hasher the receiver continues with once the sender chose `start` (an
    /// [`allows`](Offer::allows)ed one).
    pub fn hasher_for(self, start: u64, algorithm: HashAlgorithm) -> Hasher {
        match (start, self.hasher) {
            (0, _) | (_, None) => Hasher::new(algorithm),
            (_, Some(hasher)) => hasher,
        }
    }
}

/// The sender's side: where to start sending `file` (of `size` bytes) given the receiver's
/// `offset` and `prefix_hash`, and the hasher that has seen everything before that point.
/// Runs on a blocking thread (it reads the prefix).
pub fn start_after_offer(
    file: &mut File,
    algorithm: HashAlgorithm,
    size: u64,
    offset: u64,
    prefix_hash: Option<&str>,
) -> (u64, Hasher) {
    match prefix_hash {
        Some(theirs) if offset > 0 && offset <= size => {
            match partial::hash_prefix(file, algorithm, offset) {
                Ok((hasher, ours)) if ours == theirs => (offset, hasher),
                _ => (0, Hasher::new(algorithm)),
            }
        }
        _ => (0, Hasher::new(algorithm)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_matching_prefix_is_resumed_and_a_different_one_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("source");
        std::fs::write(&source, b"hello, world").unwrap();
        let target = dir.path().join("copy");
        let mut partial = Partial::open(&target).unwrap();
        partial.writer().unwrap().write_all(b"hello").unwrap();
        let offer = Offer::of(&mut partial, HashAlgorithm::Blake3, 12);
        assert_eq!(offer.offset, 5);

        let mut file = File::open(&source).unwrap();
        let (start, sender) = start_after_offer(
            &mut file,
            HashAlgorithm::Blake3,
            12,
            offer.offset,
            offer.prefix_hash.as_deref(),
        );
        assert_eq!(start, 5);
        assert!(offer.allows(start));
        let mut receiver = offer.hasher_for(start, HashAlgorithm::Blake3);
        let mut sender = sender;
        receiver.update(b", world");
        sender.update(b", world");
        assert_eq!(receiver.finish_hex(), sender.finish_hex());

        let (start, _) = start_after_offer(
            &mut file,
            HashAlgorithm::Blake3,
            12,
            5,
            Some("not the hash"),
        );
        assert_eq!(start, 0, "a prefix that differs is sent again");
        let (start, _) = start_after_offer(&mut file, HashAlgorithm::Blake3, 12, 13, None);
        assert_eq!(start, 0, "an offset past the end is sent again");
    }

    #[test]
    fn a_partial_longer_than_the_file_offers_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut partial = Partial::open(&dir.path().join("copy")).unwrap();
        partial.writer().unwrap().write_all(b"too long").unwrap();
        let offer = Offer::of(&mut partial, HashAlgorithm::Sha256, 3);
        assert_eq!((offer.offset, offer.prefix_hash), (0, None));
    }
}
