//! Wire messages of port forwarding (PROTOCOL.md 5.7): a `forward` request turns the session
//! into a carrier of many TCP streams, each opened, credited, half-closed and closed by
//! messages, its bytes in data frames on channel [`FORWARD_CHANNEL`] behind a 4-byte stream id.

use serde::{Deserialize, Serialize};

use super::ErrorCode;

/// The data channel of forwarded bytes: payload = stream id (u32, big-endian), then bytes.
pub const FORWARD_CHANNEL: u8 = 4;

/// Client → server: carry streams on this session from now on (needs `forward`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forward {}

/// Server → client: the session carries streams now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardReady {
    /// Bytes either side may send on a new stream before the other grants more.
    pub window: u32,
    /// Streams open at once on this session, at most.
    pub max_streams: u32,
}

/// Either direction: open stream `id` (odd ids are the client's, even the server's). From the
/// client: to `host:port` as the server resolves it. From the server: a connection arrived on
/// the client's listener `listener` (`forward_listen`), from `from`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamOpen {
    /// The stream's id.
    pub id: u32,
    /// Where to connect (client → server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Its port (client → server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The listener it arrived on (server → client).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener: Option<u32>,
    /// Who connected, `IP:PORT` (server → client).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

/// Either direction: stream `id` is connected; bytes may flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamOpened {
    /// The stream's id.
    pub id: u32,
}

/// Either direction: stream `id` could not be opened, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamRefused {
    /// The stream's id.
    pub id: u32,
    /// Why, for programs.
    pub code: ErrorCode,
    /// Why, for people.
    pub message: String,
}

/// Either direction: the sender may send `bytes` more on stream `id` (its data was written on).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamCredit {
    /// The stream's id.
    pub id: u32,
    /// More bytes granted.
    pub bytes: u32,
}

/// Either direction: no more bytes come on stream `id` from the sender (its socket read an
/// end); the receiver shuts its socket's writing side, as TCP's half-close does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamEof {
    /// The stream's id.
    pub id: u32,
}

/// Either direction: stream `id` is gone (an error, or a reset); the receiver drops it at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamClose {
    /// The stream's id.
    pub id: u32,
}

/// Client → server: listen on `bind:port` (`-R`); connections arriving there are opened to
/// the client as streams naming listener `id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardListen {
    /// The listener's id, the client's choice.
    pub id: u32,
    /// The address to listen on (`127.0.0.1` unless the server's config allows others).
    pub bind: String,
    /// The port (0: any free one).
    pub port: u16,
}

/// Server → client: listener `id` listens on `port`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenReady {
    /// The listener's id.
    pub id: u32,
    /// The port it got.
    pub port: u16,
}

/// Server → client: listener `id` could not be opened, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenRefused {
    /// The listener's id.
    pub id: u32,
    /// Why, for programs.
    pub code: ErrorCode,
    /// Why, for people.
    pub message: String,
}
