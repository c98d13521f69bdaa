//! Chat on one server keeps its word: a line acknowledged by a server on the disk engine (the
//! default) is in the room's history after the server is killed and started again, once, in
//! order, at the position it had; and a client's `since` recovers across the restart.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{ServerProcess, WAIT};
use ferry::client::chat::{ChatReceiver, ChatSender, ChatTarget, join, join_since};
use ferry::client::{Client, ClientOptions};
use ferry::protocol::{ChatAck, ChatJoined, ChatMessage, ErrorCode, Message};

/// A config with history replayed whole and no flood limit in the way.
fn config(dir: &std::path::Path) -> PathBuf {
    let path = dir.join("chat.toml");
    std::fs::write(
        &path,
        "[chat]\nhistory_messages = 10000\nflood_burst = 100000\nflood_per_second = 1000000.0\n",
    )
    .unwrap();
    path
}

fn options(server: &ServerProcess, home: &std::path::Path) -> ClientOptions {
    ClientOptions {
        server: server.addr.to_string(),
        token: None,
        plaintext: true,
        home: home.to_path_buf(),
        connect_timeout: WAIT,
        accept_new: true,
        keys: None,
    }
}

async fn member(
    server: &ServerProcess,
    home: &std::path::Path,
    nick: &str,
) -> (ChatSender, ChatReceiver, ChatJoined) {
    member_of(server, home, "kept", nick).await
}

async fn member_of(
    server: &ServerProcess,
    home: &std::path::Path,
    room: &str,
    nick: &str,
) -> (ChatSender, ChatReceiver, ChatJoined) {
    let client = Client::connect(&options(server, home)).await.unwrap();
    join(
        client.into_connection(),
        ChatTarget::Room(room.into()),
        nick,
        true,
    )
    .await
    .unwrap()
}

/// The room's whole history as a new joiner gets it: (sender, text, offset), oldest first.
async fn history(server: &ServerProcess, home: &std::path::Path) -> Vec<(String, String, String)> {
    history_of(server, home, "kept").await
}

/// A room's whole history: (sender, text, offset), oldest first.
async fn history_of(
    server: &ServerProcess,
    home: &std::path::Path,
    room: &str,
) -> Vec<(String, String, String)> {
    // A nick of its own each time: the last reader's leave may not be done yet.
    static READERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = READERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (_tx, mut rx, joined) = member_of(server, home, room, &format!("reader{n}")).await;
    let replayed = joined
        .replayed
        .expect("chat_joined says how many lines follow");
    let mut lines = Vec::new();
    while lines.len() < replayed as usize {
        let message = tokio::time::timeout(WAIT, rx.next())
            .await
            .expect("the history arrives")
            .unwrap()
            .expect("the server stays");
        if let Message::ChatMessage(ChatMessage {
            from,
            text,
            history: true,
            offset,
            ..
        }) = message
        {
            lines.push((from, text, offset.expect("a history line has its offset")));
        }
    }
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_lines_survive_a_kill_and_since_recovers_across_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let config = config(dir.path());
    let server = ServerProcess::start(&["--plaintext", "--config", config.to_str().unwrap()]);
    let banner = std::iter::from_fn(|| server.stderr.recv_timeout(WAIT).ok())
        .find(|l| l.contains("chat engine:"))
        .expect("serve names its chat engine");
    assert!(banner.contains("chat engine: on disk in"), "{banner}");
    let (mut alice, mut alice_rx, _) = member(&server, &home, "alice").await;
    let (_bob, mut bob_rx, _) = member(&server, &home, "bob").await;
    common::say_acked(&mut alice, &mut alice_rx, "before the crash").await;
    let seen = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(Message::ChatMessage(m)) = bob_rx.next().await.unwrap() {
                return m;
            }
        }
    })
    .await
    .expect("bob hears alice");
    let offset = seen.offset.expect("a live line carries its offset");
    drop((alice, alice_rx, bob_rx));

    let server = server.restart();
    let lines = history(&server, &home).await;
    assert_eq!(
        lines,
        vec![(
            "alice".to_string(),
            "before the crash".to_string(),
            offset.clone()
        )],
        "the acknowledged line is kept, at the position it had"
    );
    // Lines said while bob was away reach him when he comes back with his offset, and only
    // those: the positions go on from where they were.
    let (mut carol, mut carol_rx, _) = member(&server, &home, "carol").await;
    common::say_acked(&mut carol, &mut carol_rx, "while bob was away").await;
    let client = Client::connect(&options(&server, &home)).await.unwrap();
    let (_bob, mut bob_rx, joined) = join_since(client.into_connection(), "kept", "bob", &offset)
        .await
        .unwrap();
    assert_eq!(joined.recovered, Some(true), "{joined:?}");
    let caught = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(Message::ChatMessage(m)) = bob_rx.next().await.unwrap() {
                return m;
            }
        }
    })
    .await
    .expect("bob catches up");
    assert_eq!(caught.text, "while bob was away");
    assert!(caught.history);
}

/// What one kill round saw: ids sent with their texts, ids acknowledged.
#[derive(Default)]
struct Round {
    sent: HashMap<u64, String>,
    acked: Vec<u64>,
}

/// Says up to `max` lines `NICK-SEQ` (SEQ from `*next`) as fast as the server takes them, until
/// the connection breaks; records what was sent and acknowledged.
async fn chatter(
    mut tx: ChatSender,
    mut rx: ChatReceiver,
    nick: String,
    next: u64,
    max: u64,
    round: Arc<Mutex<Round>>,
) -> u64 {
    let acks = {
        let round = Arc::clone(&round);
        tokio::spawn(async move {
            while let Ok(Some(message)) = rx.next().await {
                if let Message::ChatAck(ChatAck { id }) = message {
                    round.lock().unwrap().acked.push(id);
                }
            }
        })
    };
    let mut seq = next;
    while seq < next + max {
        let text = format!("{nick}-{seq}");
        // The text is recorded before it leaves: an ack can only follow.
        let Ok(id) = tx.say(&text).await else { break };
        round.lock().unwrap().sent.insert(id, text);
        seq += 1;
        tokio::task::yield_now().await;
    }
    let _ = tokio::time::timeout(WAIT, acks).await;
    seq
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_kills_while_members_chat_lose_no_acknowledged_line_and_repeat_none() {
    const KILLS: usize = 50;
    const MEMBERS: usize = 3;
    const LINES_PER_ROUND: u64 = 40;
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let config = config(dir.path());
    let mut server = ServerProcess::start(&["--plaintext", "--config", config.to_str().unwrap()]);
    let mut next = [0u64; MEMBERS];
    let mut acked_texts: Vec<String> = Vec::new();
    // A fixed seed: the kill points differ round to round, the same each run.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    for _ in 0..KILLS {
        // Request ids are per connection: one record per member.
        let rounds: Vec<Arc<Mutex<Round>>> = (0..MEMBERS).map(|_| Arc::default()).collect();
        let mut tasks = Vec::new();
        for (m, from) in next.iter().enumerate() {
            let nick = format!("m{m}");
            let (tx, rx, _) = member(&server, &home, &nick).await;
            tasks.push(tokio::spawn(chatter(
                tx,
                rx,
                nick,
                *from,
                LINES_PER_ROUND,
                Arc::clone(&rounds[m]),
            )));
        }
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        // Killed somewhere between before the first line and after the last.
        tokio::time::sleep(Duration::from_micros(state % 20_000)).await;
        server.kill();
        for (m, task) in tasks.into_iter().enumerate() {
            next[m] = task.await.unwrap();
        }
        for round in &rounds {
            let round = round.lock().unwrap();
            acked_texts.extend(round.acked.iter().map(|id| round.sent[id].clone()));
        }
        server = server.restart();
    }
    let lines = history(&server, &home).await;
    let texts: Vec<&str> = lines.iter().map(|(_, t, _)| t.as_str()).collect();
    // Every acknowledged line is there exactly once.
    for text in &acked_texts {
        let n = texts.iter().filter(|t| *t == text).count();
        assert_eq!(n, 1, "acknowledged line '{text}' is in history {n} times");
    }
    // No line is there twice, acknowledged or not.
    let mut unique = texts.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), texts.len(), "a line is in history twice");
    // Each member's lines in the order said, and positions strictly increasing.
    for m in 0..MEMBERS {
        let seqs: Vec<u64> = texts
            .iter()
            .filter_map(|t| t.strip_prefix(&format!("m{m}-")))
            .map(|s| s.parse().unwrap())
            .collect();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "m{m}'s lines out of order: {seqs:?}"
        );
    }
    let positions: Vec<ferry::services::chat::offset::Offset> = lines
        .iter()
        .map(|(_, _, o)| ferry::services::chat::offset::Offset::parse(o).unwrap())
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0].id < w[1].id),
        "positions strictly increase"
    );
    assert!(
        acked_texts.len() >= KILLS,
        "the rounds acknowledged lines at all ({} acknowledged)",
        acked_texts.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_message_kept_for_someone_signed_out_survives_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let config = config(dir.path());
    let token = ferry::config::add_user(
        &config,
        "bob",
        ferry::protocol::Permissions::parse_list("chat").unwrap(),
    )
    .unwrap();
    let server = ServerProcess::start(&["--plaintext", "--config", config.to_str().unwrap()]);
    let (mut alice, mut alice_rx, _) = member(&server, &home, "alice").await;
    let id = alice.direct("bob", "kept through a crash").await.unwrap();
    tokio::time::timeout(WAIT, async {
        loop {
            if let Some(Message::ChatAck(ChatAck { id: got })) = alice_rx.next().await.unwrap()
                && got == id
            {
                return;
            }
        }
    })
    .await
    .expect("alice's message is acknowledged (kept)");
    let server = server.restart();
    let mut options = options(&server, &home);
    options.token = Some(token);
    let client = Client::connect(&options).await.unwrap();
    let (_bob, mut bob_rx, _) = join(
        client.into_connection(),
        ChatTarget::Room("kept".into()),
        "bob",
        false,
    )
    .await
    .unwrap();
    let got = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(Message::ChatMessage(m)) = bob_rx.next().await.unwrap()
                && m.to.is_some()
            {
                return m;
            }
        }
    })
    .await
    .expect("bob gets what was kept for him");
    assert_eq!(
        (got.from.as_str(), got.text.as_str()),
        ("alice", "kept through a crash")
    );
}

/// Fills the disk `dir` is on with a file `filler` until it takes no more.
fn fill(dir: &std::path::Path) {
    use std::io::Write;
    let mut filler = std::fs::File::create(dir.join("filler")).unwrap();
    let block = vec![0x5a; 64 << 10];
    loop {
        match filler.write(&block) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(28) => break,
            Err(e) => panic!("filling the disk: {e}"),
        }
    }
    // What is left is smaller than a page; a flush takes it.
    let _ = filler.write(&block[..4096]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_lines_clearly_loses_none_acknowledged_and_chat_resumes_with_space() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let config = config(dir.path());
    let server = ServerProcess::start_with_chat_store_on_tmpfs(
        "16m",
        &["--plaintext", "--config", config.to_str().unwrap()],
    );
    let store = server.chat_store_seen_from_here();
    let (mut alice, mut alice_rx, _) = member(&server, &home, "alice").await;
    let (_bob, mut bob_rx, _) = member(&server, &home, "bob").await;
    let mut acked = vec!["before the disk filled".to_string()];
    common::say_answered(&mut alice, &mut alice_rx, &acked[0])
        .await
        .unwrap();

    fill(&store);
    // A line may still fit in a page the store's files had begun; within a few, one is refused.
    let refusal = loop {
        let text = format!("while full {}", acked.len());
        match common::say_answered(&mut alice, &mut alice_rx, &text).await {
            Ok(()) => acked.push(text),
            Err(refusal) => break refusal,
        }
        assert!(acked.len() < 1000, "a full disk took 1,000 lines");
    };
    assert_eq!(refusal.code, ErrorCode::Unavailable, "{refusal:?}");
    assert!(
        refusal.message.contains("the disk is full"),
        "{}",
        refusal.message
    );
    assert!(
        refusal.message.contains("could not keep the line") && refusal.message.contains("not sent"),
        "{}",
        refusal.message
    );
    // Still refused while the disk stays full: nothing is acknowledged that is not kept.
    let again = common::say_answered(&mut alice, &mut alice_rx, "still full").await;
    assert!(again.is_err(), "a line was acknowledged on a full disk");
    // A topic is refused as clearly, and the room keeps the topic it had.
    let id = alice.topic(Some("set on a full disk")).await.unwrap();
    let refused = common::answered(&mut alice_rx, id)
        .await
        .expect_err("a topic was acknowledged on a full disk");
    assert!(
        refused.message.contains("could not keep the topic") && refused.message.contains("not set"),
        "{}",
        refused.message
    );

    std::fs::remove_file(store.join("filler")).unwrap();
    // With space back, chat resumes: the next line is kept and acknowledged.
    acked.push("space is back".to_string());
    common::say_answered(&mut alice, &mut alice_rx, "space is back")
        .await
        .expect("chat resumes when space is back");

    // Bob heard every acknowledged line once, in order, and no refused one, nor the topic.
    let mut heard = Vec::new();
    while heard.last() != Some(&"space is back".to_string()) {
        let message = tokio::time::timeout(WAIT, bob_rx.next())
            .await
            .expect("bob hears the room")
            .unwrap()
            .expect("the server stays");
        match message {
            Message::ChatMessage(m) => heard.push(m.text),
            Message::ChatNotice(n) => assert!(!n.text.contains("full disk"), "{}", n.text),
            _ => {}
        }
    }
    assert_eq!(heard, acked, "what bob heard");
    let id = alice.topic(None).await.unwrap();
    let rooms = loop {
        let message = tokio::time::timeout(WAIT, alice_rx.next())
            .await
            .expect("alice's topic is answered")
            .unwrap()
            .expect("the server stays");
        if let Message::ChatRooms(rooms) = message
            && rooms.id == id
        {
            break rooms.rooms;
        }
    };
    assert_eq!(rooms.len(), 1, "{rooms:?}");
    assert_eq!(rooms[0].topic, None, "the refused topic was taken back");
    // And the store holds exactly them, in order.
    let kept: Vec<String> = history(&server, &home)
        .await
        .into_iter()
        .map(|(_, text, _)| text)
        .collect();
    assert_eq!(kept, acked, "what the store kept");
}

/// Says `n` lines of about 100 bytes in `room`, each acknowledged; returns their texts.
async fn say_lines(
    server: &ServerProcess,
    home: &std::path::Path,
    room: &str,
    from: usize,
    n: usize,
) -> Vec<String> {
    let (mut tx, mut rx, _) = member_of(server, home, room, &format!("{room}-talker")).await;
    let mut said = Vec::new();
    for i in from..from + n {
        let text = format!("{room}-{i:04} {}", "x".repeat(90));
        common::say_acked(&mut tx, &mut rx, &text).await;
        said.push(text);
    }
    said
}

fn texts(lines: Vec<(String, String, String)>) -> Vec<String> {
    lines.into_iter().map(|(_, text, _)| text).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_byte_bound_the_oldest_lines_of_all_rooms_go_first_across_a_restart() {
    const BOUND: usize = 40_000;
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let config = dir.path().join("chat.toml");
    std::fs::write(
        &config,
        format!(
            "[chat]\nhistory_messages = 10000\nflood_burst = 100000\nflood_per_second = 1000000.0\nstore_bytes = {BOUND}\n"
        ),
    )
    .unwrap();
    let server = ServerProcess::start(&["--plaintext", "--config", config.to_str().unwrap()]);
    // About 26 kB in room a, then as much in room b: together past the bound.
    let a = say_lines(&server, &home, "a", 0, 200).await;
    let b = say_lines(&server, &home, "b", 0, 200).await;
    let kept_a = texts(history_of(&server, &home, "a").await);
    let kept_b = texts(history_of(&server, &home, "b").await);
    assert_eq!(kept_b, b, "room b, the newer, is whole");
    assert!(
        !kept_a.is_empty() && kept_a.len() < a.len() && a.ends_with(&kept_a),
        "room a keeps its newest lines only: {} of {}",
        kept_a.len(),
        a.len()
    );
    let bytes = |lines: &[String]| lines.iter().map(String::len).sum::<usize>();
    assert!(bytes(&kept_a) + bytes(&kept_b) <= BOUND);

    // After a restart the store still knows what each room holds: room b speaking again
    // first deletes what is left of room a, the oldest.
    let server = server.restart();
    let more_b = say_lines(&server, &home, "b", 200, 200).await;
    let kept_a = texts(history_of(&server, &home, "a").await);
    let kept_b = texts(history_of(&server, &home, "b").await);
    assert!(
        kept_a.is_empty(),
        "room a's lines were the oldest: {} left",
        kept_a.len()
    );
    let all_b: Vec<String> = b.into_iter().chain(more_b).collect();
    assert!(
        !kept_b.is_empty() && all_b.ends_with(&kept_b),
        "room b keeps its newest lines"
    );
    assert!(bytes(&kept_b) <= BOUND);
    assert!(
        bytes(&kept_b) >= BOUND / 2,
        "no more is deleted than the bound needs: {} bytes kept",
        bytes(&kept_b)
    );
}
