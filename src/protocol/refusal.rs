//! The one shape of "no": a machine-readable code and a sentence for people.
//!
//! It is the body of the wire's `error` message, and the error type of every service: a
//! service returns `Err(Refusal)`, and the session's dispatcher is the one place that writes it
//! to the wire. The client library hands the same value back to its caller.

use serde::{Deserialize, Serialize};

use super::ErrorCode;

/// A request or a connection refused, with why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    /// For programs.
    pub code: ErrorCode,
    /// For people; may carry the peer's words, so print it escaped.
    pub message: String,
    /// The `id` of the request this answers, for requests that carry one (chat).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
}

impl Refusal {
    /// A refusal not tied to an id-carrying request.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            message: message.into(),
            id: None,
        }
    }

    /// The same refusal, answering the request with this `id`.
    #[must_use]
    pub fn answering(mut self, id: Option<u64>) -> Refusal {
        self.id = id;
        self
    }
}
