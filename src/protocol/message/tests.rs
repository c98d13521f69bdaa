//! Unit tests of `message`.
use super::*;
use crate::protocol::forward::*;
use crate::protocol::{FileEntry, HashAlgorithm, Permission, TtySize};

fn samples() -> Vec<Message> {
    vec![
        Message::Hello(Hello {
            client: "ferry/0.1".into(),
            user: Some("alice".into()),
            nonce: Some("bm9uY2U=".into()),
            keys: Vec::new(),
        }),
        Message::Challenge(Challenge {
            nonce: "a".into(),
            salt: "b".into(),
        }),
        Message::Proof(Proof { proof: "c".into() }),
        Message::Hello(Hello {
            client: "ferry/0.1".into(),
            user: Some("alice".into()),
            nonce: Some("bm9uY2U=".into()),
            keys: vec!["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA".into()],
        }),
        Message::KeyChallenge(KeyChallenge {
            nonce: "a".into(),
            key: 1,
        }),
        Message::KeyProof(KeyProof {
            signature: "c2ln".into(),
        }),
        Message::Forward(Forward {}),
        Message::ForwardReady(ForwardReady {
            window: 262_144,
            max_streams: 64,
        }),
        Message::StreamOpen(StreamOpen {
            id: 1,
            host: Some("127.0.0.1".into()),
            port: Some(5432),
            listener: None,
            from: None,
        }),
        Message::StreamOpen(StreamOpen {
            id: 2,
            host: None,
            port: None,
            listener: Some(1),
            from: Some("127.0.0.1:40000".into()),
        }),
        Message::StreamOpened(StreamOpened { id: 1 }),
        Message::StreamRefused(StreamRefused {
            id: 1,
            code: ErrorCode::PermissionDenied,
            message: "no".into(),
        }),
        Message::StreamCredit(StreamCredit {
            id: 1,
            bytes: 65536,
        }),
        Message::StreamEof(StreamEof { id: 1 }),
        Message::StreamClose(StreamClose { id: 1 }),
        Message::ForwardListen(ForwardListen {
            id: 1,
            bind: "127.0.0.1".into(),
            port: 0,
        }),
        Message::ListenReady(ListenReady { id: 1, port: 8000 }),
        Message::ListenRefused(ListenRefused {
            id: 1,
            code: ErrorCode::PermissionDenied,
            message: "no".into(),
        }),
        Message::Welcome(Welcome {
            server: "ferry/0.1".into(),
            user: None,
            permissions: vec![Permission::Chat, Permission::Read],
            max_frame: 1 << 20,
            signature: None,
            node: Some("vm:9999".into()),
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
            since: Some("a1b2:1700000000000-0".into()),
        }),
        Message::ChatJoined(ChatJoined {
            room: None,
            with: Some("babyshen".into()),
            nick: "alice".into(),
            members: vec!["alice".into(), "babyshen".into()],
            topic: None,
            recovered: Some(true),
            replayed: Some(1),
        }),
        Message::ChatSay(ChatSay {
            id: 1,
            text: "我".into(),
            action: false,
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
            action: false,
            offset: Some("a1b2:1700000000000-1".into()),
            at: Some("2026-12-07T06:45:00.123Z".into()),
        }),
        Message::ChatNotice(ChatNotice {
            room: Some("lobby".into()),
            text: "bob joined".into(),
        }),
        Message::ChatSay(ChatSay {
            id: 5,
            text: "waves".into(),
            action: true,
        }),
        Message::ChatList(crate::protocol::ChatList { id: 6 }),
        Message::ChatRooms(crate::protocol::ChatRooms {
            id: 6,
            rooms: vec![crate::protocol::RoomInfo {
                room: "lobby".into(),
                members: 3,
                topic: Some("ferry".into()),
            }],
        }),
        Message::ChatTopic(crate::protocol::ChatTopic {
            id: 7,
            topic: Some("ferry".into()),
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
                not_utf8: true,
                hard_link_of: Some("a".into()),
            }],
        }),
        Message::ListDone(ListDone { count: 1 }),
        Message::Get(Get {
            path: "f".into(),
            hash: HashAlgorithm::Sha256,
            offset: 10,
            prefix_hash: Some("ab".into()),
            base: Some(crate::protocol::DeltaBase {
                size: 5000,
                avg: 1024,
                chunks: 4,
                chunk_hash: Default::default(),
            }),
            signing: None,
            compress: true,
        }),
        Message::Get(Get {
            path: "g".into(),
            hash: HashAlgorithm::Blake3,
            offset: 0,
            prefix_hash: None,
            base: None,
            signing: Some(crate::protocol::Signing {
                size: 5000,
                avg: 1024,
                chunk_hash: crate::protocol::ChunkHashing::Xxh3,
            }),
            compress: false,
        }),
        Message::BaseSigned(crate::protocol::BaseSigned {
            base: Some(crate::protocol::DeltaBase {
                size: 5000,
                avg: 1024,
                chunks: 4,
                chunk_hash: crate::protocol::ChunkHashing::Xxh3,
            }),
        }),
        Message::BaseSigned(crate::protocol::BaseSigned { base: None }),
        Message::GetReady(GetReady {
            size: 100,
            mode: 0o644,
            mtime_ns: -5,
            offset: 10,
            delta: true,
            compress: true,
        }),
        Message::GetEnd(GetEnd { hash: "cd".into() }),
        Message::Put(Put {
            path: "f".into(),
            size: 3,
            mode: 0o600,
            mtime_ns: 7,
            hash: HashAlgorithm::Blake3,
            whole: false,
            delta: true,
            avg: Some(4096),
            chunk_hash: Some(crate::protocol::ChunkHashing::Xxh3),
            compress: false,
        }),
        Message::PutReady(PutReady {
            offset: 0,
            prefix_hash: None,
            base: None,
            compress: false,
        }),
        Message::PutStart(PutStart {
            offset: 0,
            delta: true,
        }),
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
        Message::Attrs(crate::protocol::Attrs {
            path: "f".into(),
            mode: Some(0o600),
            mtime_ns: None,
        }),
        Message::HardLink(crate::protocol::HardLink {
            path: "b".into(),
            existing: "a".into(),
        }),
        Message::Symlink(crate::protocol::Symlink {
            path: "l".into(),
            target: "../x".into(),
            mtime_ns: Some(5),
        }),
        Message::Rename(crate::protocol::Rename {
            from: "a".into(),
            to: "b/c".into(),
        }),
        Message::Done,
        Message::Stats(crate::protocol::Stats::default()),
        Message::StatsReport(crate::protocol::StatsReport {
            samples: vec![
                crate::protocol::Sample {
                    name: "ferry_sessions_open".into(),
                    labels: [("transport".to_string(), "tcp".to_string())].into(),
                    value: 2.0,
                },
                crate::protocol::Sample {
                    name: "ferry_chat_rooms".into(),
                    labels: Default::default(),
                    value: 0.0,
                },
            ],
        }),
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
    let kinds: std::collections::HashSet<&str> = samples().iter().map(Message::kind).collect();
    assert_eq!(kinds.len(), MESSAGE_TYPES.len(), "every type has a sample");
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
                keys: Vec::new(),
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
