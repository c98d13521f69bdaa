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
    ChatAck, ChatDirect, ChatJoin, ChatJoined, ChatMembers, ChatMessage, ChatNick, ChatNotice,
    ChatSay, ChatWho,
};
use super::exec::{Exec, ExecExit, ExecResize, ExecSignal, ExecStarted};
use super::files::{
    Get, GetEnd, GetReady, List, ListDone, ListEntries, Mkdir, Put, PutDone, PutEnd, PutReady,
    PutStart, Remove,
};
use super::refusal::Refusal;
use super::session::{Challenge, Goodbye, Hello, Ping, Pong, Proof, Welcome};

/// Every control message of protocol version 1. Directions and meanings are on the body types.
#[derive(
    Debug, Clone, PartialEq, Eq, Serialize, Deserialize, strum::IntoStaticStr, strum::VariantNames,
)]
#[serde(tag = "type", rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Message {
    Hello(Hello),
    Challenge(Challenge),
    Proof(Proof),
    Welcome(Welcome),
    Ping(Ping),
    Pong(Pong),
    /// Either direction: a request or the connection failed.
    Error(Refusal),
    Goodbye(Goodbye),

    ChatJoin(ChatJoin),
    ChatJoined(ChatJoined),
    ChatSay(ChatSay),
    ChatDirect(ChatDirect),
    ChatWho(ChatWho),
    ChatMembers(ChatMembers),
    ChatNick(ChatNick),
    ChatAck(ChatAck),
    ChatMessage(ChatMessage),
    ChatNotice(ChatNotice),
    /// Client → server: end the chat exchange (the session goes on).
    ChatLeave,
    /// Server → client: the chat exchange is over.
    ChatLeft,

    Exec(Exec),
    ExecStarted(ExecStarted),
    /// Client → server: the command's stdin has ended.
    ExecEof,
    ExecResize(ExecResize),
    ExecSignal(ExecSignal),
    ExecExit(ExecExit),

    List(List),
    ListEntries(ListEntries),
    ListDone(ListDone),
    Get(Get),
    GetReady(GetReady),
    GetEnd(GetEnd),
    Put(Put),
    PutReady(PutReady),
    PutStart(PutStart),
    PutEnd(PutEnd),
    PutDone(PutDone),
    Mkdir(Mkdir),
    Remove(Remove),
    /// Server → client: a `mkdir` or `remove` succeeded.
    Done,
}

/// The `type` names of every message this build knows; used to tell an unknown type from a
/// malformed known one.
pub const MESSAGE_TYPES: &[&str] = <Message as strum::VariantNames>::VARIANTS;

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
mod tests {
    use super::*;
    use crate::protocol::{FileEntry, HashAlgorithm, Permission, TtySize};

    fn samples() -> Vec<Message> {
        vec![
            Message::Hello(Hello {
                client: "ferry/0.1".into(),
                user: Some("alice".into()),
                nonce: Some("bm9uY2U=".into()),
            }),
            Message::Challenge(Challenge {
                nonce: "a".into(),
                salt: "b".into(),
            }),
            Message::Proof(Proof { proof: "c".into() }),
            Message::Welcome(Welcome {
                server: "ferry/0.1".into(),
                user: None,
                permissions: vec![Permission::Chat, Permission::Read],
                max_frame: 1 << 20,
                signature: None,
            }),
            Message::Ping(Ping { seq: 7 }),
            Message::Pong(Pong { seq: 7 }),
            Message::error(ErrorCode::AuthFailed, "no"),
            Message::Goodbye(Goodbye {
                reason: "bye".into(),
            }),
            Message::ChatJoin(ChatJoin {
                room: Some("lobby".into()),
                with: None,
                nick: Some("alice".into()),
                history: false,
            }),
            Message::ChatJoined(ChatJoined {
                room: None,
                with: Some("babyshen".into()),
                nick: "alice".into(),
                members: vec!["alice".into(), "babyshen".into()],
            }),
            Message::ChatSay(ChatSay {
                id: 1,
                text: "我".into(),
            }),
            Message::ChatDirect(ChatDirect {
                id: 2,
                to: "bob".into(),
                text: "hi".into(),
            }),
            Message::ChatWho(ChatWho { id: 3 }),
            Message::ChatMembers(ChatMembers {
                id: 3,
                room: "lobby".into(),
                nicks: vec!["alice".into()],
            }),
            Message::ChatNick(ChatNick {
                id: 4,
                nick: "carol".into(),
            }),
            Message::ChatAck(ChatAck { id: 4 }),
            Message::ChatMessage(ChatMessage {
                room: Some("lobby".into()),
                from: "bob".into(),
                to: None,
                text: "hello".into(),
                history: true,
            }),
            Message::ChatNotice(ChatNotice {
                room: Some("lobby".into()),
                text: "bob joined".into(),
            }),
            Message::ChatLeave,
            Message::ChatLeft,
            Message::Exec(Exec {
                argv: vec!["ls".into(), "-l".into()],
                shell: false,
                tty: Some(TtySize {
                    term: "xterm".into(),
                    rows: 24,
                    cols: 80,
                }),
                timeout_ms: Some(1000),
            }),
            Message::ExecStarted(ExecStarted { pid: 42 }),
            Message::ExecEof,
            Message::ExecResize(ExecResize {
                rows: 30,
                cols: 100,
            }),
            Message::ExecSignal(ExecSignal {
                signal: "INT".into(),
            }),
            Message::ExecExit(ExecExit {
                code: None,
                signal: Some(9),
                timed_out: true,
            }),
            Message::List(List {
                path: "a b/c".into(),
                recursive: true,
                itself: true,
            }),
            Message::ListEntries(ListEntries {
                entries: vec![FileEntry {
                    path: "世界.txt".into(),
                    kind: crate::protocol::files::FileKind::Symlink,
                    size: 0,
                    mode: 0o777,
                    mtime_ns: 1_700_000_000_123_456_789,
                    target: Some("x".into()),
                }],
            }),
            Message::ListDone(ListDone { count: 1 }),
            Message::Get(Get {
                path: "f".into(),
                hash: HashAlgorithm::Sha256,
                offset: 10,
                prefix_hash: Some("ab".into()),
            }),
            Message::GetReady(GetReady {
                size: 100,
                mode: 0o644,
                mtime_ns: -5,
                offset: 10,
            }),
            Message::GetEnd(GetEnd { hash: "cd".into() }),
            Message::Put(Put {
                path: "f".into(),
                size: 3,
                mode: 0o600,
                mtime_ns: 7,
                hash: HashAlgorithm::Blake3,
            }),
            Message::PutReady(PutReady {
                offset: 0,
                prefix_hash: None,
            }),
            Message::PutStart(PutStart { offset: 0 }),
            Message::PutEnd(PutEnd { hash: "ef".into() }),
            Message::PutDone(PutDone {
                size: 3,
                hash: "ef".into(),
            }),
            Message::Mkdir(Mkdir {
                path: "d".into(),
                mode: Some(0o700),
                mtime_ns: None,
            }),
            Message::Remove(Remove { path: "d".into() }),
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
        assert_eq!(m, Message::Ping(Ping { seq: 1 }));
        let e = Message::parse(br#"{"type":"error","code":"quantum_flux","message":"m"}"#);
        assert_eq!(e.unwrap(), Message::error(ErrorCode::Other, "m"));
        let join = Message::parse(br#"{"type":"chat_join","room":"r","nick":"n"}"#).unwrap();
        assert!(
            matches!(join, Message::ChatJoin(ChatJoin { history: true, .. })),
            "history defaults on"
        );
    }

    fn arb_message() -> impl proptest::strategy::Strategy<Value = Message> {
        use proptest::prelude::*;
        prop_oneof![
            any::<u64>().prop_map(|seq| Message::Ping(Ping { seq })),
            any::<u64>().prop_map(|seq| Message::Pong(Pong { seq })),
            ".*".prop_map(|reason| Message::Goodbye(Goodbye { reason })),
            (".*", proptest::option::of("[a-z]{1,8}")).prop_map(|(client, user)| {
                Message::Hello(Hello {
                    client,
                    nonce: user
                        .as_ref()
                        .map(|_| "bm9uY2Vub25jZW5vbmNlMTY=".to_string()),
                    user,
                })
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
