//! Members of one hub, each over an in-memory pipe, on paused time: what a room, a rename, a
//! direct message and a member that stops reading look like from the client's side.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{DuplexStream, duplex};
use tokio::task::JoinHandle;

use super::{JoinRequest, Member};
use crate::config::ChatConfig;
use crate::connection::Connection;
use crate::protocol::{
    ChatAck, ChatDirect, ChatJoined, ChatMessage, ChatNick, ChatNotice, ChatSay, ErrorCode,
    Message, Refusal,
};
use crate::services::chat::hub::ChatHub;
use crate::services::{CloseReason, RequestError};

/// A hub without the bot, with a short send timeout.
fn hub() -> Arc<ChatHub> {
    let mut config = ChatConfig::default();
    config.bot.enabled = false;
    config.send_timeout_ms = 1_000;
    ChatHub::new(config, in_memory())
}

/// A member's client end, and its exchange running on the server side.
struct Client {
    conn: Connection<DuplexStream>,
    exchange: JoinHandle<Result<(), RequestError>>,
}

impl Client {
    /// The next message; on paused time a missing one fails the test at once, not hangs.
    async fn next(&mut self) -> Message {
        tokio::time::timeout(Duration::from_secs(60), self.conn.read_message())
            .await
            .expect("a message arrives")
            .unwrap()
    }

    async fn send(&mut self, message: Message) {
        self.conn.write_message(&message).await.unwrap();
    }

    /// The next message that is not a notice.
    async fn next_message(&mut self) -> Message {
        loop {
            match self.next().await {
                Message::ChatNotice(_) => {}
                other => return other,
            }
        }
    }
}

/// Joins `room` as `nick`, with `buffer` bytes of pipe between the member and its client.
async fn join(
    hub: &Arc<ChatHub>,
    room: &str,
    nick: &str,
    buffer: usize,
) -> Result<Client, Refusal> {
    let (server_end, client_end) = duplex(buffer);
    let mut server_conn = Connection::new(server_end);
    let mut conn = Connection::new(client_end);
    let request = JoinRequest {
        room: Some(room.into()),
        with: None,
        nick: nick.into(),
        history: true,
        user: None,
        since: None,
    };
    let hub = Arc::clone(hub);
    let (joined_tx, joined_rx) = tokio::sync::oneshot::channel();
    let exchange = tokio::spawn(async move {
        let member = match Member::join(&hub, &mut server_conn, request).await {
            Ok(member) => {
                let _ = joined_tx.send(Ok(()));
                member
            }
            Err(RequestError::Refused(refusal)) => {
                let _ = joined_tx.send(Err(refusal));
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let closing = std::pin::pin!(std::future::pending::<CloseReason>());
        member.run(&mut server_conn, closing).await
    });
    joined_rx.await.unwrap()?;
    match conn.read_message().await.unwrap() {
        Message::ChatJoined(ChatJoined { nick: got, .. }) => assert_eq!(got, nick),
        other => panic!("expected chat_joined, got {other:?}"),
    }
    Ok(Client { conn, exchange })
}

fn ferry_offset_parses(offset: &str) -> bool {
    crate::services::chat::offset::Offset::parse(offset).is_some()
}

#[tokio::test(start_paused = true)]
async fn a_line_said_in_a_room_reaches_the_others_and_is_acked_to_its_sender() {
    let hub = hub();
    let mut alice = join(&hub, "lobby", "alice", 1 << 16).await.unwrap();
    let mut bob = join(&hub, "lobby", "bob", 1 << 16).await.unwrap();
    assert!(
        matches!(alice.next().await, Message::ChatNotice(ChatNotice { text, .. }) if text == "bob joined")
    );
    alice
        .send(Message::ChatSay(ChatSay {
            id: 7,
            text: "hello".into(),
            action: false,
        }))
        .await;
    assert_eq!(alice.next().await, Message::ChatAck(ChatAck { id: 7 }));
    let Message::ChatMessage(got) = bob.next_message().await else {
        panic!("expected the line");
    };
    // Every engine gives a line its position in the room (`EPOCH:MS-SEQ`).
    let offset = got.offset.clone().expect("a live line carries its offset");
    assert!(
        ferry_offset_parses(&offset),
        "an offset as EPOCH:MS-SEQ: {offset}"
    );
    assert_eq!(
        got,
        ChatMessage {
            room: Some("lobby".into()),
            from: "alice".into(),
            to: None,
            text: "hello".into(),
            history: false,
            action: false,
            offset: Some(offset),
            at: None,
        }
    );
    alice.send(Message::ChatLeave).await;
    assert_eq!(alice.next().await, Message::ChatLeft);
    assert!(
        alice.exchange.await.unwrap().is_ok(),
        "leaving is not an error"
    );
    assert!(
        matches!(bob.next().await, Message::ChatNotice(ChatNotice { text, .. }) if text == "alice left")
    );
}

#[tokio::test(start_paused = true)]
async fn a_nick_in_use_or_alike_is_refused_and_a_rename_is_announced() {
    let hub = hub();
    let mut alice = join(&hub, "lobby", "alice", 1 << 16).await.unwrap();
    let taken = join(&hub, "lobby", "alice", 1 << 16).await.err().unwrap();
    assert_eq!(taken.code, ErrorCode::NickInUse);
    // A look-alike (Cyrillic 'а') is the same nick to a reader.
    let alike = join(&hub, "lobby", "\u{430}lice", 1 << 16)
        .await
        .err()
        .unwrap();
    assert_eq!(alike.code, ErrorCode::NickInUse);

    let mut bob = join(&hub, "lobby", "bob", 1 << 16).await.unwrap();
    bob.send(Message::ChatNick(ChatNick {
        id: 1,
        nick: "alice".into(),
    }))
    .await;
    assert!(
        matches!(bob.next().await, Message::Error(r) if r.code == ErrorCode::NickInUse && r.id == Some(1))
    );
    bob.send(Message::ChatNick(ChatNick {
        id: 2,
        nick: "robert".into(),
    }))
    .await;
    assert_eq!(bob.next().await, Message::ChatAck(ChatAck { id: 2 }));
    let renamed = loop {
        match alice.next().await {
            Message::ChatNotice(ChatNotice { text, .. }) if text.contains("known as") => {
                break text;
            }
            _ => {}
        }
    };
    assert_eq!(renamed, "bob is now known as robert");
}

#[tokio::test(start_paused = true)]
async fn a_direct_message_is_acked_only_after_its_recipient_took_it() {
    let hub = hub();
    let mut alice = join(&hub, "a", "alice", 1 << 16).await.unwrap();
    let mut bob = join(&hub, "b", "bob", 1 << 16).await.unwrap();
    alice
        .send(Message::ChatDirect(ChatDirect {
            id: 3,
            to: "bob".into(),
            text: "psst".into(),
        }))
        .await;
    let got = bob.next_message().await;
    assert!(
        matches!(got, Message::ChatMessage(ChatMessage { ref to, ref text, .. }) if to.as_deref() == Some("bob") && text == "psst"),
        "{got:?}"
    );
    assert_eq!(alice.next().await, Message::ChatAck(ChatAck { id: 3 }));
    alice
        .send(Message::ChatDirect(ChatDirect {
            id: 4,
            to: "nobody".into(),
            text: "?".into(),
        }))
        .await;
    assert!(
        matches!(alice.next().await, Message::Error(r) if r.code == ErrorCode::NotFound && r.id == Some(4))
    );
}

#[tokio::test(start_paused = true)]
async fn a_member_that_stops_reading_is_dropped_at_the_send_timeout() {
    let hub = hub();
    // A tiny pipe: the member's writes block as soon as its client stops reading.
    let stalled = join(&hub, "lobby", "sleepy", 256).await.unwrap();
    let mut talker = join(&hub, "lobby", "talker", 1 << 16).await.unwrap();
    // Whatever notices arrive meanwhile are kept: the drop may happen during the talk.
    let mut notices = Vec::new();
    for id in 0..200 {
        talker
            .send(Message::ChatSay(ChatSay {
                id,
                text: "x".repeat(100),
                action: false,
            }))
            .await;
        loop {
            match talker.next().await {
                Message::ChatNotice(ChatNotice { text, .. }) => notices.push(text),
                other => {
                    assert_eq!(other, Message::ChatAck(ChatAck { id }));
                    break;
                }
            }
        }
    }
    let ended = tokio::time::timeout(Duration::from_secs(5), stalled.exchange)
        .await
        .expect("the stalled member is dropped within the send timeout")
        .unwrap();
    assert!(matches!(ended, Err(RequestError::NotReading)), "{ended:?}");
    while !notices.iter().any(|n| n.contains("dropped")) {
        if let Message::ChatNotice(ChatNotice { text, .. }) = talker.next().await {
            notices.push(text);
        }
    }
    let dropped = notices.iter().find(|n| n.contains("dropped")).unwrap();
    assert_eq!(dropped, "sleepy was dropped: not reading");
}

#[tokio::test]
async fn a_room_list_fits_one_message_however_many_rooms_and_topics_there_are() {
    let mut config = ChatConfig::default();
    config.bot.enabled = false;
    let hub = ChatHub::new(config, in_memory());
    let mut members = Vec::new();
    for i in 0..1000 {
        let nick = format!("m{i}");
        let (participant, inbox) = hub.register(&nick, None).await.unwrap();
        let room = format!("{i:04}{}", "r".repeat(60));
        let joined = hub
            .join_room(&room, &participant, &nick, Default::default())
            .await
            .unwrap();
        hub.set_topic(&joined.room, &participant, &nick, &"t".repeat(4000), None)
            .unwrap();
        members.push((participant, inbox, joined));
    }
    let listed = hub.rooms();
    let json = serde_json::to_vec(&listed).unwrap();
    assert!(
        json.len() <= crate::services::chat::hub::LISTED_ROOMS_BYTES,
        "{}",
        json.len()
    );
    assert!(
        listed.len() > 100,
        "a long list is cut, not emptied: {}",
        listed.len()
    );
    assert!(
        listed.windows(2).all(|w| w[0].room < w[1].room),
        "sorted by name"
    );
    assert!(
        listed
            .iter()
            .all(|r| r.topic.as_ref().unwrap().chars().count() == 80)
    );
}

/// One server's engine keeping lines in memory.
fn in_memory() -> std::sync::Arc<crate::services::chat::engine::one_server::OneServer> {
    use crate::services::chat::engine::{memory::MemoryEngine, one_server::OneServer};
    std::sync::Arc::new(OneServer::new(std::sync::Arc::new(MemoryEngine::new(
        20,
        32 << 20,
    ))))
}
