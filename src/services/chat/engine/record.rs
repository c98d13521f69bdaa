//! A change to a room as an engine's stream carries it to every server (Redis keeps it in
//! each room's stream and publishes it on the room's channel as `ID JSON`), and the hub's
//! rooms apply it: the words shared by such an engine and the hub, owned by neither.

use serde::{Deserialize, Serialize};

use super::Said;
use crate::services::chat::offset::StreamId;

fn is_false(b: &bool) -> bool {
    !*b
}

/// A change to a room, as its stream keeps it. `n` is the server (node) and `p` the
/// participant on it that caused it, `f` the nick, `t` the text (a line, a new nick, a topic),
/// `a` an action. One-letter names: each line crosses Redis once per server.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "lowercase")]
pub enum Record {
    /// A line.
    Say {
        n: String,
        p: u64,
        f: String,
        t: String,
        #[serde(default, skip_serializing_if = "is_false")]
        a: bool,
    },
    /// `f` entered.
    Join { n: String, p: u64, f: String },
    /// `f` left: by choice, `dropped` for not reading, or `gone` with its server.
    Leave {
        n: String,
        p: u64,
        f: String,
        #[serde(default, skip_serializing_if = "is_false")]
        dropped: bool,
        #[serde(default, skip_serializing_if = "is_false")]
        gone: bool,
    },
    /// `f` is now `t`.
    Nick {
        n: String,
        p: u64,
        f: String,
        t: String,
    },
    /// `f` set the topic to `t` (`None`: cleared it).
    Topic {
        n: String,
        p: u64,
        f: String,
        t: Option<String>,
    },
}

impl Record {
    /// The record's server and participant.
    pub fn origin(&self) -> (&str, u64) {
        match self {
            Record::Say { n, p, .. }
            | Record::Join { n, p, .. }
            | Record::Leave { n, p, .. }
            | Record::Nick { n, p, .. }
            | Record::Topic { n, p, .. } => (n, *p),
        }
    }

    /// As JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl Record {
    /// The line this record is, at stream position `id` (when it is one).
    pub fn into_said(self, id: StreamId) -> Option<Said> {
        match self {
            Record::Say { f, t, a, .. } => Some(Said {
                from: f,
                text: t,
                action: a,
                at: id.time(),
            }),
            _ => None,
        }
    }
}
