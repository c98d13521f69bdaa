//! Control messages: JSON objects with a `"type"` field, one per message frame.
//!
//! JSON keeps the control plane speakable from any language's standard library; bulk bytes
//! never travel here but in data frames. Fields a receiver does not know are ignored, so a newer
//! peer may add optional fields; a `type` it does not know gets an `unknown_message` error.

use serde::{Deserialize, Serialize};

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
    Error { code: ErrorCode, message: String },
    /// Server → client: the server is closing this connection (shutdown, idle timeout).
    Goodbye { reason: String },
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

    /// A convenience constructor for `error` messages.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Message {
        Message::Error {
            code,
            message: message.into(),
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
