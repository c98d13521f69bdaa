//! The whole-file hash, in either algorithm, behind one type.

use crate::protocol::HashAlgorithm;

/// An incremental hash of a file's bytes.
#[derive(Clone)]
pub enum Hasher {
    /// BLAKE3 in progress.
    Blake3(Box<blake3::Hasher>),
    /// SHA-256 in progress.
    Sha256(Box<ring::digest::Context>),
}

impl Hasher {
    /// A fresh hash of `algorithm`.
    pub fn new(algorithm: HashAlgorithm) -> Self {
        match algorithm {
            HashAlgorithm::Blake3 => Hasher::Blake3(Box::new(blake3::Hasher::new())),
            HashAlgorithm::Sha256 => {
                Hasher::Sha256(Box::new(ring::digest::Context::new(&ring::digest::SHA256)))
            }
        }
    }

    /// The algorithm it computes.
    pub fn algorithm(&self) -> HashAlgorithm {
        match self {
            Hasher::Blake3(_) => HashAlgorithm::Blake3,
            Hasher::Sha256(_) => HashAlgorithm::Sha256,
        }
    }

    /// Adds `bytes`.
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Blake3(h) => {
                h.update(bytes);
            }
            Hasher::Sha256(h) => h.update(bytes),
        }
    }

    /// The digest as lowercase hex.
    pub fn finish_hex(self) -> String {
        let bytes: Vec<u8> = match self {
            Hasher::Blake3(h) => h.finalize().as_bytes().to_vec(),
            Hasher::Sha256(h) => h.finish().as_ref().to_vec(),
        };
        crate::protocol::hex::encode(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        let mut sha = Hasher::new(HashAlgorithm::Sha256);
        sha.update(b"abc");
        assert_eq!(
            sha.finish_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let mut b3 = Hasher::new(HashAlgorithm::Blake3);
        b3.update(b"abc");
        assert_eq!(
            b3.finish_hex(),
            "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"
        );
    }
}
