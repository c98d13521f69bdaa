//! The 8-byte preamble each side sends before anything else, in the clear.
//!
//! It exists so that mismatched ends fail with a clear message instead of a hang or a TLS
//! alphabet soup: a plaintext client meeting a TLS server (or the reverse), a client of another
//! protocol version, a non-ferry program on either end, or a server that is full.
//!
//! # Format
//!
//! ```text
//! "FERRY" (5 bytes) | version: u8 | mode: u8 | reserved: u8 = 0
//! ```
//!
//! The client sends first with mode `T` (wants TLS) or `P` (wants plaintext). The server answers
//! with the same mode to proceed, or with mode `E`, after which exactly one plaintext message
//! frame follows (an `error` message) and the server closes the connection.

/// The first five bytes of every ferry connection, in both directions.
pub const MAGIC: &[u8; 5] = b"FERRY";
/// The protocol version this build speaks.
pub const PROTOCOL_VERSION: u8 = 1;
/// The preamble's size on the wire.
pub const PREAMBLE_LEN: usize = 8;

/// What a preamble asks for or answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// TLS 1.3 follows (client hello first).
    Tls,
    /// Frames follow directly.
    Plaintext,
    /// Server only: one plaintext error frame follows, then the connection closes.
    Refused,
}

impl Mode {
    fn byte(self) -> u8 {
        match self {
            Mode::Tls => b'T',
            Mode::Plaintext => b'P',
            Mode::Refused => b'E',
        }
    }
}

/// A decoded preamble.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preamble {
    /// The protocol version, 1.
    pub version: u8,
    /// TLS, plaintext, or (from a server) refused.
    pub mode: Mode,
}

/// Why 8 bytes are not a ferry preamble.
#[allow(missing_docs)] // Each variant's `#[error]` text is its documentation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreambleError {
    #[error("the peer does not speak the ferry protocol")]
    NotFerry,
    #[error("unknown transport mode byte 0x{0:02x}")]
    UnknownMode(u8),
}

impl Preamble {
    /// A preamble of this build's version.
    pub fn new(mode: Mode) -> Self {
        Preamble {
            version: PROTOCOL_VERSION,
            mode,
        }
    }

    /// The 8 bytes to send.
    pub fn encode(self) -> [u8; PREAMBLE_LEN] {
        let mut out = [0u8; PREAMBLE_LEN];
        out[..5].copy_from_slice(MAGIC);
        out[5] = self.version;
        out[6] = self.mode.byte();
        out
    }

    /// Parses 8 received bytes.
    ///
    /// # Errors
    /// [`PreambleError::NotFerry`] without the magic, [`PreambleError::UnknownMode`] for a mode
    /// byte this version does not know.
    pub fn decode(bytes: &[u8; PREAMBLE_LEN]) -> Result<Self, PreambleError> {
        if &bytes[..5] != MAGIC {
            return Err(PreambleError::NotFerry);
        }
        let mode = match bytes[6] {
            b'T' => Mode::Tls,
            b'P' => Mode::Plaintext,
            b'E' => Mode::Refused,
            other => return Err(PreambleError::UnknownMode(other)),
        };
        Ok(Preamble {
            version: bytes[5],
            mode,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_mode() {
        for mode in [Mode::Tls, Mode::Plaintext, Mode::Refused] {
            let p = Preamble::new(mode);
            assert_eq!(Preamble::decode(&p.encode()), Ok(p));
        }
    }

    #[test]
    fn rejects_other_protocols() {
        assert_eq!(Preamble::decode(b"GET / HT"), Err(PreambleError::NotFerry));
        // A TLS ClientHello starts with 0x16 0x03: not ferry.
        assert_eq!(
            Preamble::decode(&[0x16, 3, 1, 0, 0xc8, 1, 0, 0]),
            Err(PreambleError::NotFerry)
        );
        assert_eq!(
            Preamble::decode(b"FERRY\x01X\x00"),
            Err(PreambleError::UnknownMode(b'X'))
        );
    }
}
