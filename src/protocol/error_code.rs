//! Machine-readable error codes carried by `error` messages.
//!
//! Every failure a server reports has one code (for programs) and one human sentence (for
//! people). Codes are stable strings on the wire; a code this build does not know decodes as
//! [`ErrorCode::Other`] so an older client still shows the sentence.

use serde::{Deserialize, Serialize};

/// Why a request or connection failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ErrorCode {
    /// The byte stream is not valid frames (fatal: the server closes).
    BadFrame,
    /// A frame longer than the receiver's maximum (fatal).
    FrameTooLarge,
    /// A control frame that is not a well-formed message of its type.
    BadMessage,
    /// A message type the receiver does not know.
    UnknownMessage,
    /// A valid message that is not allowed at this point of the conversation.
    UnexpectedMessage,
    /// The preamble is missing or names another protocol version.
    UnsupportedVersion,
    /// The client asked for plaintext, the server requires TLS.
    TlsRequired,
    /// The client asked for TLS, the server runs plaintext only.
    PlaintextOnly,
    /// Wrong token or unknown user; deliberately does not say which.
    AuthFailed,
    /// Too many failed authentications from this address; retry later.
    RateLimited,
    /// Authenticated, but the user lacks the permission the request needs.
    PermissionDenied,
    /// A nickname already used in the room (or reserved).
    NickInUse,
    /// A nickname or room name that breaks the naming rules.
    InvalidName,
    /// A message longer than the limit; it was refused, not truncated.
    TooLong,
    /// The named participant (or file) does not exist.
    NotFound,
    /// A command could not be started (not executable, exec disabled, a bad request).
    ExecFailed,
    /// A path that is absolute, has `..`, or leads outside the server root.
    BadPath,
    /// A directory, device, fifo or symlink where a regular file is needed (or the reverse).
    NotAFile,
    /// `remove` of a directory that still holds something.
    NotEmpty,
    /// The received bytes do not hash to the sender's hash; nothing was kept.
    Integrity,
    /// A file system error on the server (permissions, a failing disk); the message says which.
    Io,
    /// The server's disk has no room for the file (found before or while writing it); nothing
    /// of it was kept.
    NoSpace,
    /// The server is at its connection limit.
    ServerBusy,
    /// A service the request needs is unreachable for now (a cluster's Redis); nothing was
    /// done, and the same request may succeed later.
    Unavailable,
    /// The handshake or the connection idled past its limit.
    Timeout,
    /// The server is shutting down.
    ShuttingDown,
    /// A fault inside the server; the message says what.
    Internal,
    /// A code from a newer peer that this build does not know.
    #[serde(other)]
    Other,
}

impl ErrorCode {
    /// Every code this build sends (all but [`ErrorCode::Other`]), for documentation checks.
    pub const ALL: &[ErrorCode] = &[
        ErrorCode::BadFrame,
        ErrorCode::FrameTooLarge,
        ErrorCode::BadMessage,
        ErrorCode::UnknownMessage,
        ErrorCode::UnexpectedMessage,
        ErrorCode::UnsupportedVersion,
        ErrorCode::TlsRequired,
        ErrorCode::PlaintextOnly,
        ErrorCode::AuthFailed,
        ErrorCode::RateLimited,
        ErrorCode::PermissionDenied,
        ErrorCode::NickInUse,
        ErrorCode::InvalidName,
        ErrorCode::TooLong,
        ErrorCode::NotFound,
        ErrorCode::ExecFailed,
        ErrorCode::BadPath,
        ErrorCode::NotAFile,
        ErrorCode::NotEmpty,
        ErrorCode::Integrity,
        ErrorCode::Io,
        ErrorCode::NoSpace,
        ErrorCode::ServerBusy,
        ErrorCode::Unavailable,
        ErrorCode::Timeout,
        ErrorCode::ShuttingDown,
        ErrorCode::Internal,
    ];

    /// The code's name on the wire (serde's and strum's `snake_case`, checked equal by a
    /// test).
    pub fn name(self) -> &'static str {
        self.into()
    }

    /// [`ErrorCode::name`], owned.
    pub fn wire_name(self) -> String {
        self.name().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_code_s_name_is_its_json() {
        for code in ErrorCode::ALL.iter().chain([&ErrorCode::Other]) {
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::Value::from(code.name())
            );
        }
    }

    /// `ALL` lists every variant, in order: the match is exhaustive, so a new variant does not
    /// compile until it is given its place here — and then this test wants it in `ALL`.
    #[test]
    fn all_lists_every_code() {
        fn position(code: ErrorCode) -> Option<usize> {
            match code {
                ErrorCode::BadFrame => Some(0),
                ErrorCode::FrameTooLarge => Some(1),
                ErrorCode::BadMessage => Some(2),
                ErrorCode::UnknownMessage => Some(3),
                ErrorCode::UnexpectedMessage => Some(4),
                ErrorCode::UnsupportedVersion => Some(5),
                ErrorCode::TlsRequired => Some(6),
                ErrorCode::PlaintextOnly => Some(7),
                ErrorCode::AuthFailed => Some(8),
                ErrorCode::RateLimited => Some(9),
                ErrorCode::PermissionDenied => Some(10),
                ErrorCode::NickInUse => Some(11),
                ErrorCode::InvalidName => Some(12),
                ErrorCode::TooLong => Some(13),
                ErrorCode::NotFound => Some(14),
                ErrorCode::ExecFailed => Some(15),
                ErrorCode::BadPath => Some(16),
                ErrorCode::NotAFile => Some(17),
                ErrorCode::NotEmpty => Some(18),
                ErrorCode::Integrity => Some(19),
                ErrorCode::Io => Some(20),
                ErrorCode::NoSpace => Some(21),
                ErrorCode::ServerBusy => Some(22),
                ErrorCode::Unavailable => Some(23),
                ErrorCode::Timeout => Some(24),
                ErrorCode::ShuttingDown => Some(25),
                ErrorCode::Internal => Some(26),
                ErrorCode::Other => None,
            }
        }
        for (i, code) in ErrorCode::ALL.iter().enumerate() {
            assert_eq!(position(*code), Some(i), "{code:?}");
        }
        assert_eq!(
            position(ErrorCode::Internal),
            Some(ErrorCode::ALL.len() - 1)
        );
        assert_eq!(ErrorCode::NotAFile.wire_name(), "not_a_file");
    }
}
