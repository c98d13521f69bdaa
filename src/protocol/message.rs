//! Control messages: JSON objects with a `"type"` field, one per message frame.
//!
//! JSON keeps the control plane speakable from any language's standard library; bulk bytes
//! never travel here but in data frames. Fields a receiver does not know are ignored, so a newer
//! peer may add optional fields; a `type` it does not know gets an `unknown_message` error.
//!
//! Each message's body is a struct of its service's module ([`super::session`],
//! [`super::chat`], [`super::exec`], [`super::files`]); a request is a value handed whole to
//! its service. The `type` names are derived once from the variant names (serde's and strum's
//! `snake_case`, checked equal by a test), never listed by hand.

use serde::{Deserialize, Serialize};

use super::ErrorCode;
use super::chat::{
    ChatAck, ChatDirect, ChatJoin, ChatJoined, ChatList, ChatMembers, ChatMessage, ChatNick,
    ChatNotice, ChatRooms, ChatSay, ChatTopic, ChatWho,
};
use super::exec::{Exec, ExecExit, ExecResize, ExecSignal, ExecStarted};
use super::files::{
    Attrs, BaseSigned, Get, GetEnd, GetReady, HardLink, List, ListDone, ListEntries, Mkdir, Put,
    PutDone, PutEnd, PutReady, PutStart, Remove, Rename, Symlink,
};
use super::forward::{
    Forward, ForwardListen, ForwardReady, ListenReady, ListenRefused, StreamClose, StreamCredit,
    StreamEof, StreamOpen, StreamOpened, StreamRefused,
};
use super::refusal::Refusal;
use super::session::{
    Challenge, Goodbye, Hello, KeyChallenge, KeyProof, Ping, Pong, Proof, Welcome,
};
use super::stats::{Stats, StatsReport};

/// Every control message of protocol version 1. Directions and meanings are on the body types.
#[derive(
    Debug, Clone, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr, strum::VariantNames,
)]
#[serde(tag = "type", rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Message {
    /// Client → server, first message after the transport is up.
    Hello(Hello),
    /// Server → client: the salt of the user's credential and the server's nonce.
    Challenge(Challenge),
    /// Client → server: proof that the client holds the token (see `auth::scram`).
    Proof(Proof),
    /// Server → client: sign in with the offered key `key` over this nonce.
    KeyChallenge(KeyChallenge),
    /// Client → server: the key's signature.
    KeyProof(KeyProof),
    /// Server → client: the session is open.
    Welcome(Welcome),
    /// Client → server: a round-trip probe.
    Ping(Ping),
    /// Server → client: the answer to `ping`, echoing its `seq`.
    Pong(Pong),
    /// Either direction: a request or the connection refused, with why.
    Error(Refusal),
    /// Server → client: the server is closing this connection (shutdown, idle timeout).
    Goodbye(Goodbye),

    /// Client → server: carry forwarded streams on this session from now on.
    Forward(Forward),
    /// Server → client: the session carries streams now.
    ForwardReady(ForwardReady),
    /// Either direction: open a stream.
    StreamOpen(StreamOpen),
    /// Either direction: the stream is connected.
    StreamOpened(StreamOpened),
    /// Either direction: the stream could not be opened.
    StreamRefused(StreamRefused),
    /// Either direction: more bytes may be sent on the stream.
    StreamCredit(StreamCredit),
    /// Either direction: no more bytes come on the stream from the sender.
    StreamEof(StreamEof),
    /// Either direction: the stream is gone.
    StreamClose(StreamClose),
    /// Client → server: listen on the server's side (`-R`).
    ForwardListen(ForwardListen),
    /// Server → client: the listener listens.
    ListenReady(ListenReady),
    /// Server → client: the listener could not be opened.
    ListenRefused(ListenRefused),

    /// Client → server: enter a room (`room`) or a direct conversation (`with`); inside a chat
    /// exchange, move to another room (`nick` may then be omitted to keep the current one).
    ChatJoin(ChatJoin),
    /// Server → client: the join succeeded.
    ChatJoined(ChatJoined),
    /// Client → server: a line for the room, or for the partner of a direct conversation.
    ChatSay(ChatSay),
    /// Client → server: a direct message to `to` (`/msg`).
    ChatDirect(ChatDirect),
    /// Client → server: who is in the room (`/who`).
    ChatWho(ChatWho),
    /// Server → client: the answer to `chat_who`.
    ChatMembers(ChatMembers),
    /// Client → server: change nick (`/nick`).
    ChatNick(ChatNick),
    /// Server → client: request `id` was carried out.
    ChatAck(ChatAck),
    /// Server → client: a message from `from`, in `room` or directly to this member (`to`).
    ChatMessage(ChatMessage),
    /// Server → client: something happened (a join, a leave, a nick change, a drop).
    ChatNotice(ChatNotice),
    /// Client → server: which rooms exist (`/list`).
    ChatList(ChatList),
    /// Server → client: the answer to `chat_list` (every room) or to a `chat_topic` without a
    /// topic (the member's room).
    ChatRooms(ChatRooms),
    /// Client → server: set the room's topic (`/topic TEXT`), or ask for it (no `topic`).
    ChatTopic(ChatTopic),
    /// Client → server: end the chat exchange (the session goes on).
    ChatLeave,
    /// Server → client: the chat exchange is over.
    ChatLeft,

    /// Client → server: run a command (needs `exec`).
    Exec(Exec),
    /// Server → client: the command runs; data frames follow (0 stdout, 1 stderr).
    ExecStarted(ExecStarted),
    /// Client → server: the command's stdin has ended.
    ExecEof,
    /// Client → server: the terminal was resized.
    ExecResize(ExecResize),
    /// Client → server: deliver a signal (`INT`, `TERM`, `HUP`, `QUIT`, `KILL`, `USR1`, `USR2`)
    /// to the command's process group.
    ExecSignal(ExecSignal),
    /// Server → client: the command ended; the exchange is over.
    ExecExit(ExecExit),

    /// Client → server: list a directory (or describe a file), optionally the whole tree; with
    /// `itself`, only the entry describing `path` itself (like `ls -d`).
    List(List),
    /// Server → client: some entries of the listing (repeated as needed).
    ListEntries(ListEntries),
    /// Server → client: the listing is complete.
    ListDone(ListDone),
    /// Client → server: send a file. With `offset` and `prefix_hash`, the client holds the first
    /// `offset` bytes already and the server resumes there if they match its own.
    Get(Get),
    /// Client → server, after a `get` with `signing`: the base's signature follows.
    BaseSigned(BaseSigned),
    /// Server → client: data frames follow from `offset` to `size`, then `get_end`.
    GetReady(GetReady),
    /// Server → client: the hash of the whole file as sent.
    GetEnd(GetEnd),
    /// Client → server: receive a file of `size` bytes for `path` (needs `write`).
    Put(Put),
    /// Server → client: the server holds `offset` bytes of an earlier attempt whose hash is
    /// `prefix_hash` (0 and none when it holds nothing).
    PutReady(PutReady),
    /// Client → server: data frames follow from `offset` (the server's offset if the prefix
    /// matched, else 0), then `put_end`.
    PutStart(PutStart),
    /// Client → server: the hash of the whole file as the client has it.
    PutEnd(PutEnd),
    /// Server → client: verified and in place under its final name.
    PutDone(PutDone),
    /// Client → server: create a directory (and its parents); on an existing directory, set `mode`
    /// and `mtime_ns` when given (needs `write`).
    Mkdir(Mkdir),
    /// Client → server: remove a file or an empty directory (needs `write`).
    Remove(Remove),
    /// Client → server: move `from` to `to` within the root, replacing a file at `to` (needs
    /// `write`).
    Rename(Rename),
    /// Client → server: make a symbolic link (needs `write`).
    Symlink(Symlink),
    /// Client → server: make a hard link to a file beneath the root (needs `write`).
    #[serde(rename = "link")]
    #[strum(serialize = "link")]
    HardLink(HardLink),
    /// Client → server: set a file's mode and mtime (needs `write`).
    Attrs(Attrs),
    /// Server → client: a `mkdir`, `rename`, `remove`, `symlink`, `link` or `attrs` succeeded.
    Done,

    /// Client → server: the server's live figures (needs `admin`).
    Stats(Stats),
    /// Server → client: the answer to `stats`.
    StatsReport(StatsReport),
}

/// The `type` names of every message this build knows; used to tell an unknown type from a
/// malformed known one.
pub const MESSAGE_TYPES: &[&str] = <Message as strum::VariantNames>::VARIANTS;

/// Why a message frame's body is not a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("control frame is not a JSON object with a string \"type\": {0}")]
    /// Not JSON, or no string `type`.
    NotJson(String),
    #[error("unknown message type '{0}'")]
    /// A `type` this build does not know.
    UnknownType(String),
    #[error("malformed '{kind}' message: {reason}")]
    /// A known `type` whose fields are wrong.
    Invalid {
        /// The `type`.
        kind: String,
        /// What is wrong, as the JSON parser saw it.
        reason: String,
    },
}

impl MessageError {
    /// The wire code for reporting this error to the peer.
    pub fn code(&self) -> ErrorCode {
        match self {
            MessageError::UnknownType(_) => ErrorCode::UnknownMessage,
            _ => ErrorCode::BadMessage,
        }
    }
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
}

impl Message {
    /// Parses the body of a message frame.
    ///
    /// # Errors
    /// [`MessageError`] telling apart non-JSON, an unknown type and a malformed known type.
    pub fn parse(body: &[u8]) -> Result<Message, MessageError> {
        match serde_json::from_slice::<Message>(body) {
            Ok(message) => Ok(message),
            Err(full_err) => match serde_json::from_slice::<Envelope>(body) {
                Err(e) => Err(MessageError::NotJson(e.to_string())),
                Ok(env) if !MESSAGE_TYPES.contains(&env.kind.as_str()) => {
                    Err(MessageError::UnknownType(truncate(&env.kind, 64)))
                }
                Ok(env) => Err(MessageError::Invalid {
                    kind: env.kind,
                    reason: full_err.to_string(),
                }),
            },
        }
    }

    /// The JSON body of this message.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("messages always serialize")
    }

    /// The whole message frame (header and JSON), for encoding once and sending many times.
    pub fn to_frame(&self) -> Vec<u8> {
        super::frame::encode(&super::Frame::Message(self.to_json().into()))
    }

    /// A convenience constructor for `error` messages.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Message {
        Message::Error(Refusal::new(code, message))
    }

    /// The `type` name, for logs and "unexpected message" errors.
    pub fn kind(&self) -> &'static str {
        self.into()
    }
}

/// Shortens untrusted text before it is echoed back or logged.
fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

#[cfg(test)]
mod tests;
