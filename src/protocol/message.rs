//! Control messages: JSON objects with a `"type"` field, one per message frame.
//!
//! JSON keeps the control plane speakable from any language's standard library; bulk bytes
//! never travel here but in data frames. Fields a receiver does not know are ignored, so a newer
//! peer may add optional fields; a `type` it does not know gets an `unknown_message` error.

use serde::{Deserialize, Serialize};

use super::files::{FileEntry, HashAlgorithm};
use super::{ErrorCode, Permission};

/// Every control message of protocol version 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    /// Client → server, first message after the transport is up.
    Hello {
        /// Free-form client name and version, for the server's logs.
        client: String,
        /// The user to authenticate as; absent for an anonymous session.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<String>,
        /// Base64 client nonce (at least 16 random bytes); required with `user`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nonce: Option<String>,
    },
    /// Server → client: the salt of the user's credential and the server's nonce.
    Challenge {
        /// Base64 server nonce.
        nonce: String,
        /// Base64 salt stored with the user's credential.
        salt: String,
    },
    /// Client → server: proof that the client holds the token (see `auth::scram`).
    Proof {
        /// Base64 of ClientKey XOR ClientSignature.
        proof: String,
    },
    /// Server → client: the session is open.
    Welcome {
        /// Server name and version.
        server: String,
        /// The authenticated user, absent when anonymous.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<String>,
        /// What this session may do.
        permissions: Vec<Permission>,
        /// The largest frame length the server accepts.
        max_frame: u32,
        /// Base64 ServerSignature proving the server knows the credential (authenticated only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature: Option<String>,
    },
    /// Client → server: a round-trip probe.
    Ping { seq: u64 },
    /// Server → client: the answer to `ping`, echoing its `seq`.
    Pong { seq: u64 },
    /// Either direction: a request or the connection failed.
    Error {
        code: ErrorCode,
        message: String,
        /// The `id` of the request this answers, for requests that carry one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    },
    /// Server → client: the server is closing this connection (shutdown, idle timeout).
    Goodbye { reason: String },

    /// Client → server: enter a room (`room`) or a direct conversation (`with`); inside a chat
    /// exchange, move to another room (`nick` may then be omitted to keep the current one).
    ChatJoin {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        with: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nick: Option<String>,
        /// Replay the room's recent messages first. Default true.
        #[serde(default = "yes")]
        history: bool,
    },
    /// Server → client: the join succeeded.
    ChatJoined {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        with: Option<String>,
        nick: String,
        /// Members of the room (or the conversation partner), including the joiner.
        members: Vec<String>,
    },
    /// Client → server: a line for the room, or for the partner of a direct conversation.
    ChatSay { id: u64, text: String },
    /// Client → server: a direct message to `to` (`/msg`).
    ChatDirect { id: u64, to: String, text: String },
    /// Client → server: who is in the room (`/who`).
    ChatWho { id: u64 },
    /// Server → client: the answer to `chat_who`.
    ChatMembers {
        id: u64,
        room: String,
        nicks: Vec<String>,
    },
    /// Client → server: change nick (`/nick`).
    ChatNick { id: u64, nick: String },
    /// Server → client: request `id` was carried out.
    ChatAck { id: u64 },
    /// Server → client: a message from `from`, in `room` or directly to this member (`to`).
    ChatMessage {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        from: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<String>,
        text: String,
        /// Part of the replay on join, not live.
        #[serde(default, skip_serializing_if = "is_false")]
        history: bool,
    },
    /// Server → client: something happened (a join, a leave, a nick change, a drop).
    ChatNotice {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
        text: String,
    },
    /// Client → server: end the chat exchange (the session goes on).
    ChatLeave,
    /// Server → client: the chat exchange is over.
    ChatLeft,

    /// Client → server: run a command (needs `exec`).
    Exec {
        /// Program and arguments, run directly (no shell). Empty with `shell`.
        #[serde(default)]
        argv: Vec<String>,
        /// Run the server account's login shell instead of `argv` (needs `tty`).
        #[serde(default, skip_serializing_if = "is_false")]
        shell: bool,
        /// Run on a pseudo-terminal of this size and type.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tty: Option<TtySize>,
        /// End the command (its whole process group) after this many milliseconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
    /// Server → client: the command runs; data frames follow (0 stdout, 1 stderr).
    ExecStarted { pid: u32 },
    /// Client → server: the command's stdin has ended.
    ExecEof,
    /// Client → server: the terminal was resized.
    ExecResize { rows: u16, cols: u16 },
    /// Client → server: deliver a signal (`INT`, `TERM`, `HUP`, `QUIT`, `KILL`, `USR1`, `USR2`)
    /// to the command's process group.
    ExecSignal { signal: String },
    /// Server → client: the command ended; the exchange is over.
    ExecExit {
        /// Exit status, when it exited.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<i32>,
        /// Signal number, when a signal ended it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signal: Option<i32>,
        /// It was ended because its `timeout_ms` passed.
        #[serde(default, skip_serializing_if = "is_false")]
        timed_out: bool,
    },

    /// Client → server: list a directory (or describe a file), optionally the whole tree; with
    /// `itself`, only the entry describing `path` itself (like `ls -d`).
    List {
        path: String,
        #[serde(default, skip_serializing_if = "is_false")]
        recursive: bool,
        #[serde(default, skip_serializing_if = "is_false")]
        itself: bool,
    },
    /// Server → client: some entries of the listing (repeated as needed).
    ListEntries { entries: Vec<FileEntry> },
    /// Server → client: the listing is complete.
    ListDone { count: u64 },
    /// Client → server: send a file. With `offset` and `prefix_hash`, the client holds the
    /// first `offset` bytes already and the server resumes there if they match its own.
    Get {
        path: String,
        #[serde(default)]
        hash: HashAlgorithm,
        #[serde(default, skip_serializing_if = "is_zero")]
        offset: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prefix_hash: Option<String>,
    },
    /// Server → client: data frames follow from `offset` to `size`, then `get_end`.
    GetReady {
        size: u64,
        mode: u32,
        mtime_ns: i64,
        offset: u64,
    },
    /// Server → client: the hash of the whole file as sent.
    GetEnd { hash: String },
    /// Client → server: receive a file of `size` bytes for `path` (needs `write`).
    Put {
        path: String,
        size: u64,
        mode: u32,
        mtime_ns: i64,
        #[serde(default)]
        hash: HashAlgorithm,
    },
    /// Server → client: the server holds `offset` bytes of an earlier attempt whose hash is
    /// `prefix_hash` (0 and none when it holds nothing).
    PutReady {
        offset: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prefix_hash: Option<String>,
    },
    /// Client → server: data frames follow from `offset` (the server's offset if the prefix
    /// matched, else 0), then `put_end`.
    PutStart { offset: u64 },
    /// Client → server: the hash of the whole file as the client has it.
    PutEnd { hash: String },
    /// Server → client: verified and in place under its final name.
    PutDone { size: u64, hash: String },
    /// Client → server: create a directory (and its parents); on an existing directory, set
    /// `mode` and `mtime_ns` when given (needs `write`).
    Mkdir {
        path: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mode: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mtime_ns: Option<i64>,
    },
    /// Client → server: remove a file or an empty directory (needs `write`).
    Remove { path: String },
    /// Server → client: a `mkdir` or `remove` succeeded.
    Done,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A terminal's type and size, for commands run on a pseudo-terminal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TtySize {
    /// The `TERM` value, e.g. `xterm-256color`.
    pub term: String,
    pub rows: u16,
    pub cols: u16,
}

fn yes() -> bool {
    true
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The `type` names of every message this build knows; used to tell an unknown type from a
/// malformed known one.
pub const MESSAGE_TYPES: &[&str] = &[
    "hello",
    "challenge",
    "proof",
    "welcome",
    "ping",
    "pong",
    "error",
    "goodbye",
    "chat_join",
    "chat_joined",
    "chat_say",
    "chat_direct",
    "chat_who",
    "chat_members",
    "chat_nick",
    "chat_ack",
    "chat_message",
    "chat_notice",
    "chat_leave",
    "chat_left",
    "exec",
    "exec_started",
    "exec_eof",
    "exec_resize",
    "exec_signal",
    "exec_exit",
    "list",
    "list_entries",
    "list_done",
    "get",
    "get_ready",
    "get_end",
    "put",
    "put_ready",
    "put_start",
    "put_end",
    "put_done",
    "mkdir",
    "remove",
    "done",
];

/// Why a message frame's body is not a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("control frame is not a JSON object with a string \"type\": {0}")]
    NotJson(String),
    #[error("unknown message type '{0}'")]
    UnknownType(String),
    #[error("malformed '{kind}' message: {reason}")]
    Invalid { kind: String, reason: String },
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
        Message::Error {
            code,
            message: message.into(),
            id: None,
        }
    }

    /// The `type` name, for logs and "unexpected message" errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::Hello { .. } => "hello",
            Message::Challenge { .. } => "challenge",
            Message::Proof { .. } => "proof",
            Message::Welcome { .. } => "welcome",
            Message::Ping { .. } => "ping",
            Message::Pong { .. } => "pong",
            Message::Error { .. } => "error",
            Message::Goodbye { .. } => "goodbye",
            Message::ChatJoin { .. } => "chat_join",
            Message::ChatJoined { .. } => "chat_joined",
            Message::ChatSay { .. } => "chat_say",
            Message::ChatDirect { .. } => "chat_direct",
            Message::ChatWho { .. } => "chat_who",
            Message::ChatMembers { .. } => "chat_members",
            Message::ChatNick { .. } => "chat_nick",
            Message::ChatAck { .. } => "chat_ack",
            Message::ChatMessage { .. } => "chat_message",
            Message::ChatNotice { .. } => "chat_notice",
            Message::ChatLeave => "chat_leave",
            Message::ChatLeft => "chat_left",
            Message::Exec { .. } => "exec",
            Message::ExecStarted { .. } => "exec_started",
            Message::ExecEof => "exec_eof",
            Message::ExecResize { .. } => "exec_resize",
            Message::ExecSignal { .. } => "exec_signal",
            Message::ExecExit { .. } => "exec_exit",
            Message::List { .. } => "list",
            Message::ListEntries { .. } => "list_entries",
            Message::ListDone { .. } => "list_done",
            Message::Get { .. } => "get",
            Message::GetReady { .. } => "get_ready",
            Message::GetEnd { .. } => "get_end",
            Message::Put { .. } => "put",
            Message::PutReady { .. } => "put_ready",
            Message::PutStart { .. } => "put_start",
            Message::PutEnd { .. } => "put_end",
            Message::PutDone { .. } => "put_done",
            Message::Mkdir { .. } => "mkdir",
            Message::Remove { .. } => "remove",
            Message::Done => "done",
        }
    }
}

/// Shortens untrusted text before it is echoed back or logged.
fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Message> {
        vec![
            Message::Hello {
                client: "ferry/0.1".into(),
                user: Some("alice".into()),
                nonce: Some("bm9uY2U=".into()),
            },
            Message::Challenge {
                nonce: "a".into(),
                salt: "b".into(),
            },
            Message::Proof { proof: "c".into() },
            Message::Welcome {
                server: "ferry/0.1".into(),
                user: None,
                permissions: vec![Permission::Chat, Permission::Read],
                max_frame: 1 << 20,
                signature: None,
            },
            Message::Ping { seq: 7 },
            Message::Pong { seq: 7 },
            Message::error(ErrorCode::AuthFailed, "no"),
            Message::Goodbye {
                reason: "bye".into(),
            },
            Message::ChatJoin {
                room: Some("lobby".into()),
                with: None,
                nick: Some("alice".into()),
                history: false,
            },
            Message::ChatJoined {
                room: None,
                with: Some("babyshen".into()),
                nick: "alice".into(),
                members: vec!["alice".into(), "babyshen".into()],
            },
            Message::ChatSay {
                id: 1,
                text: "我".into(),
            },
            Message::ChatDirect {
                id: 2,
                to: "bob".into(),
                text: "hi".into(),
            },
            Message::ChatWho { id: 3 },
            Message::ChatMembers {
                id: 3,
                room: "lobby".into(),
                nicks: vec!["alice".into()],
            },
            Message::ChatNick {
                id: 4,
                nick: "carol".into(),
            },
            Message::ChatAck { id: 4 },
            Message::ChatMessage {
                room: Some("lobby".into()),
                from: "bob".into(),
                to: None,
                text: "hello".into(),
                history: true,
            },
            Message::ChatNotice {
                room: Some("lobby".into()),
                text: "bob joined".into(),
            },
            Message::ChatLeave,
            Message::ChatLeft,
            Message::Exec {
                argv: vec!["ls".into(), "-l".into()],
                shell: false,
                tty: Some(TtySize {
                    term: "xterm".into(),
                    rows: 24,
                    cols: 80,
                }),
                timeout_ms: Some(1000),
            },
            Message::ExecStarted { pid: 42 },
            Message::ExecEof,
            Message::ExecResize {
                rows: 30,
                cols: 100,
            },
            Message::ExecSignal {
                signal: "INT".into(),
            },
            Message::ExecExit {
                code: None,
                signal: Some(9),
                timed_out: true,
            },
            Message::List {
                path: "a b/c".into(),
                recursive: true,
                itself: true,
            },
            Message::ListEntries {
                entries: vec![FileEntry {
                    path: "世界.txt".into(),
                    kind: crate::protocol::files::FileKind::Symlink,
                    size: 0,
                    mode: 0o777,
                    mtime_ns: 1_700_000_000_123_456_789,
                    target: Some("x".into()),
                }],
            },
            Message::ListDone { count: 1 },
            Message::Get {
                path: "f".into(),
                hash: HashAlgorithm::Sha256,
                offset: 10,
                prefix_hash: Some("ab".into()),
            },
            Message::GetReady {
                size: 100,
                mode: 0o644,
                mtime_ns: -5,
                offset: 10,
            },
            Message::GetEnd { hash: "cd".into() },
            Message::Put {
                path: "f".into(),
                size: 3,
                mode: 0o600,
                mtime_ns: 7,
                hash: HashAlgorithm::Blake3,
            },
            Message::PutReady {
                offset: 0,
                prefix_hash: None,
            },
            Message::PutStart { offset: 0 },
            Message::PutEnd { hash: "ef".into() },
            Message::PutDone {
                size: 3,
                hash: "ef".into(),
            },
            Message::Mkdir {
                path: "d".into(),
                mode: Some(0o700),
                mtime_ns: None,
            },
            Message::Remove { path: "d".into() },
            Message::Done,
        ]
    }

    #[test]
    fn every_message_round_trips_and_its_type_is_listed() {
        for m in samples() {
            let json = m.to_json();
            assert_eq!(Message::parse(&json).unwrap(), m);
            assert!(MESSAGE_TYPES.contains(&m.kind()), "{} not listed", m.kind());
            let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
            assert_eq!(value["type"], m.kind());
        }
        assert_eq!(samples().len(), MESSAGE_TYPES.len());
    }

    #[test]
    fn tells_unknown_types_from_malformed_ones() {
        assert!(matches!(
            Message::parse(br#"{"type":"teleport"}"#),
            Err(MessageError::UnknownType(t)) if t == "teleport"
        ));
        assert!(matches!(
            Message::parse(br#"{"type":"ping","seq":"x"}"#),
            Err(MessageError::Invalid { kind, .. }) if kind == "ping"
        ));
        assert!(matches!(
            Message::parse(b"\xff\xfe not json"),
            Err(MessageError::NotJson(_))
        ));
        assert!(matches!(
            Message::parse(br#"[1,2,3]"#),
            Err(MessageError::NotJson(_))
        ));
    }

    #[test]
    fn ignores_unknown_fields_and_codes_from_newer_peers() {
        let m = Message::parse(br#"{"type":"ping","seq":1,"future":true}"#).unwrap();
        assert_eq!(m, Message::Ping { seq: 1 });
        let e = Message::parse(br#"{"type":"error","code":"quantum_flux","message":"m"}"#);
        assert_eq!(e.unwrap(), Message::error(ErrorCode::Other, "m"));
        let join = Message::parse(br#"{"type":"chat_join","room":"r","nick":"n"}"#).unwrap();
        assert!(
            matches!(join, Message::ChatJoin { history: true, .. }),
            "history defaults on"
        );
    }

    fn arb_message() -> impl proptest::strategy::Strategy<Value = Message> {
        use proptest::prelude::*;
        prop_oneof![
            any::<u64>().prop_map(|seq| Message::Ping { seq }),
            any::<u64>().prop_map(|seq| Message::Pong { seq }),
            ".*".prop_map(|reason| Message::Goodbye { reason }),
            (".*", proptest::option::of("[a-z]{1,8}")).prop_map(|(client, user)| {
                Message::Hello {
                    client,
                    nonce: user
                        .as_ref()
                        .map(|_| "bm9uY2Vub25jZW5vbmNlMTY=".to_string()),
                    user,
                }
            }),
            "\\PC*".prop_map(|message| Message::error(ErrorCode::BadMessage, message)),
        ]
    }

    proptest::proptest! {
        /// The sticky-packet property at the message level: any messages, framed, merged into
        /// one buffer or cut at arbitrary points, decode and parse to the same messages.
        #[test]
        fn messages_survive_any_split_or_merge(
            messages in proptest::collection::vec(arb_message(), 0..12),
            cuts in proptest::collection::vec(proptest::prelude::any::<proptest::sample::Index>(), 0..16),
        ) {
            use crate::protocol::frame::{self, Frame};
            let wire: Vec<u8> = messages
                .iter()
                .flat_map(|m| frame::encode(&Frame::Message(m.to_json().into())))
                .collect();
            let mut points: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
            points.extend([0, wire.len()]);
            points.sort_unstable();
            let mut buf = bytes::BytesMut::new();
            let mut got = Vec::new();
            for pair in points.windows(2) {
                buf.extend_from_slice(&wire[pair[0]..pair[1]]);
                while let Some(frame) = frame::decode(&mut buf, frame::DEFAULT_MAX_FRAME).unwrap() {
                    let Frame::Message(body) = frame else { panic!("data frame") };
                    got.push(Message::parse(&body).unwrap());
                }
            }
            proptest::prop_assert_eq!(got, messages);
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(Message::parse(deep.as_bytes()).is_err());
    }
}
