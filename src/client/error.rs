//! Everything that can go wrong for a client, each as one sentence a user can act on.

use std::path::PathBuf;

use crate::connection::ConnectionError;
use crate::protocol::{Goodbye, Message, Refusal};

/// Why a client operation failed.
#[allow(missing_docs)] // Each variant's `#[error]` text is its documentation.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid server address '{0}': expected HOST:PORT")]
    BadAddress(String),
    /// Signing in with an SSH key cannot go on (no key, an agent that fails, an encrypted key
    /// without a terminal).
    #[error("{0}")]
    Key(String),
    #[error("cannot connect to {server}: {source}")]
    Connect {
        server: String,
        source: std::io::Error,
    },
    #[error("{server} did not answer within {secs} s")]
    Timeout { server: String, secs: u64 },
    #[error(
        "{server} is not a ferry server (it did not answer with the ferry preamble); if it is a ferry \
         server's web door, connect to it as wss://{server} (ws://{server} with --plaintext)"
    )]
    NotFerry { server: String },
    #[error("{server} speaks ferry protocol version {theirs}; this client speaks version {ours}")]
    Version {
        server: String,
        theirs: u8,
        ours: u8,
    },
    #[error("{server} refused the connection: {refusal}")]
    Refused { server: String, refusal: Refusal },
    #[error("TLS handshake with {server} failed: {source}")]
    Tls {
        server: String,
        source: std::io::Error,
    },
    #[error(
        "SERVER IDENTITY CHANGED for {server}: it presented {presented}, but {pinned} is pinned in {}. \
         This could be an attack. If the server's identity was changed on purpose, forget the old pin \
         with 'ferry forget {server}' and connect again",
        store.display()
    )]
    IdentityChanged {
        server: String,
        presented: String,
        pinned: String,
        store: PathBuf,
    },
    #[error("the identity of {server} is not known yet (fingerprint {presented})")]
    UnknownServer { server: String, presented: String },
    #[error("cannot use the pin store {}: {source}", path.display())]
    PinStore {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The server refused a request, in its words.
    #[error(transparent)]
    Server(#[from] Refusal),
    #[error("server closed the session: {reason}")]
    Goodbye { reason: String },
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("the server's signature does not match: it does not hold this user's credential")]
    BadServerSignature,
    #[error("{}: {source}", path.display())]
    Local {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Integrity(String),
    /// A mirror's removals were not approved: nothing was changed.
    #[error("nothing was changed: the removals were not approved")]
    Declined,
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
}

/// Turns a message the client did not expect into the right error: a server's refusal is
/// shown as the server worded it.
pub(crate) fn unexpected(message: Message) -> ClientError {
    match message {
        Message::Error(refusal) => ClientError::Server(refusal),
        Message::Goodbye(Goodbye { reason }) => ClientError::Goodbye { reason },
        other => ClientError::Protocol(format!("unexpected '{}' message", other.kind())),
    }
}
