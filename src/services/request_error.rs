//! How a request ends when it does not end with its own answer. Services return it; only
//! [`dispatch`](super::dispatch) turns it into words on the wire or the end of the session.

use crate::connection::ConnectionError;
use crate::protocol::{Permission, Refusal};

/// Why a request did not finish with its own answer.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Refused: answered with this `error`, and the session goes on.
    #[error("{0}")]
    Refused(Refusal),
    /// Refused with the stream out of step (more or fewer bytes than announced): answered with
    /// this `error`, then the session ends.
    #[error("{0}; the session ends")]
    OutOfStep(Refusal),
    /// The client gave up in the middle of the data with an `error` of its own; the session
    /// ends (as it did before any refusal could be answered).
    #[error("the client abandoned the transfer: {0}")]
    Abandoned(Refusal),
    /// The connection failed; the session ends.
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    /// Work on a blocking thread failed (it panicked, or the runtime is stopping).
    #[error("a blocking task failed: {0}")]
    Blocking(std::io::Error),
    /// A chat member that did not read its messages was dropped.
    #[error("dropped: not reading")]
    NotReading,
    /// The client left while its command ran (the command was ended).
    #[error("the client left while its command ran")]
    ClientLeft,
    /// The server closed an exchange that outlasts a request (chat): it is stopping, or the
    /// session's rights were taken away.
    #[error("{0}")]
    Closed(CloseReason),
}

/// Why the server ends a long exchange on its own.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloseReason {
    /// Graceful shutdown began.
    #[error("server shutting down")]
    ShuttingDown,
    /// The session's user was removed or its token rotated.
    #[error("access revoked: the user was removed or its token rotated")]
    Revoked,
    /// The chat hub closed (the server is stopping).
    #[error("the chat closed")]
    ChatClosed,
    /// In a cluster: this server was cut off, and another server's member took the nick.
    #[error(
        "this server was cut off from the cluster and someone on another server took your nick meanwhile"
    )]
    Superseded,
    /// A reload took a permission the exchange needs.
    #[error("the '{0}' permission was withdrawn")]
    Withdrawn(Permission),
}

impl From<Refusal> for RequestError {
    fn from(refusal: Refusal) -> Self {
        RequestError::Refused(refusal)
    }
}

impl From<std::io::Error> for RequestError {
    fn from(e: std::io::Error) -> Self {
        RequestError::Connection(ConnectionError::Io(e))
    }
}
