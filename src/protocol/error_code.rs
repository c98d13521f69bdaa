//! Machine-readable error codes carried by `error` messages.
//!
//! Every failure a server reports has one code (for programs) and one human sentence (for
//! people). Codes are stable strings on the wire; a code this build does not know decodes as
//! [`ErrorCode::Other`] so an older client still shows the sentence.

use serde::{Deserialize, Serialize};

/// Why a request or connection failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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
    /// The received bytes do not hash to the sender's hash; nothing was kept.
    Integrity,
    /// A file system error on the server (permissions, a failing disk); the message says which.
    Io,
    /// The server's disk has no room for the file (found before or while writing it); nothing
    /// of it was kept.
    NoSpace,
    /// The server is at its connection limit.
    ServerBusy,
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
