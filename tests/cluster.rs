//! Many servers as one: ferry servers (real processes) sharing a Redis of the test's own,
//! driven through the real client and protocol. Rooms, order, direct messages, nicks and the
//! bot across servers; a server killed; Redis killed, stopped and restarted; a member catching
//! up on another server.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::chat::{acked, expect, notice, said};
use common::redis::RedisServer;
use common::{ServerProcess, WAIT};
use ferry::client::chat::{ChatReceiver, ChatSender, ChatTarget};
use ferry::client::{Client, ClientOptions};
use ferry::protocol::{ChatAck, ChatJoined, ChatMembers, ChatMessage, ErrorCode, Message, Refusal};
use tempfile::TempDir;

/// Servers on one Redis, with chat limits that let a test send fast.
struct Cluster {
    redis: RedisServer,
    servers: Vec<ServerProcess>,
    config: TempDir,
    home: TempDir,
}

impl Cluster {
    fn start(n: usize) -> Cluster {
        Cluster::start_with(n, "", "")
    }

    /// `n` servers whose config adds `chat` to its `[chat]` table and `cluster` as `[cluster]`.
    fn start_with(n: usize, chat: &str, cluster: &str) -> Cluster {
        let redis = RedisServer::start();
        let config = tempfile::tempdir().unwrap();
        std::fs::write(
            config.path().join("config.toml"),
            format!(
                "[chat]\nflood_burst = 100000\nflood_per_second = 100000.0\n{chat}\n[cluster]\n{cluster}\n"
            ),
        )
        .unwrap();
        let mut cluster = Cluster {
            redis,
            servers: Vec::new(),
            config,
            home: tempfile::tempdir().unwrap(),
        };
        for _ in 0..n {
            cluster.add_server();
        }
        cluster
    }

    fn add_server(&mut self) {
        let url = self.redis.url();
        self.add_server_on(&url);
    }

    /// Another server, reaching Redis at `url` (through a proxy, say).
    fn add_server_on(&mut self, url: &str) {
        let config = self.config.path().join("config.toml");
        let url = url.to_string();
        let server = ServerProcess::start(&[
            "--plaintext",
            "--config",
            config.to_str().unwrap(),
            "--cluster",
            &url,
        ]);
        self.servers.push(server);
    }

    fn addr(&self, i: usize) -> SocketAddr {
        self.servers[i].addr
    }

    /// The server whose node id is `id` (Redis keeps each node's name, which ends with its
    /// port).
    fn server_of_node(&self, id: &str) -> Option<usize> {
        let name = redis_get(&self.redis, &format!("ferry:node:{id}"));
        (0..self.servers.len()).find(|&i| name.ends_with(&format!(":{}", self.addr(i).port())))
    }

    async fn client(&self, i: usize) -> Client {
        client(self.addr(i), self.home.path()).await
    }

    async fn member(
        &self,
        i: usize,
        room: &str,
        nick: &str,
    ) -> (ChatSender, ChatReceiver, ChatJoined) {
        self.client(i)
            .await
            .chat(ChatTarget::Room(room.into()), nick, true)
            .await
            .unwrap()
    }
}

async fn client(addr: SocketAddr, home: &std::path::Path) -> Client {
    Client::connect(&ClientOptions {
        server: addr.to_string(),
        token: None,
        plaintext: true,
        home: home.to_path_buf(),
        connect_timeout: WAIT,
        accept_new: true,
        keys: None,
    })
    .await
    .unwrap()
}

/// Reads until every one of `wants` has been seen (in any order), handing every message to
/// `each` on the way; fails after WAIT.
async fn until_all(
    rx: &mut ChatReceiver,
    what: &str,
    wants: &[&dyn Fn(&Message) -> bool],
    mut each: impl FnMut(&Message),
) {
    let mut seen = vec![false; wants.len()];
    tokio::time::timeout(WAIT, async {
        while seen.contains(&false) {
            let message = rx.next().await.unwrap().expect("connection open");
            for (i, want) in wants.iter().enumerate() {
                seen[i] |= want(&message);
            }
            each(&message);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("never received {what}"));
}

async fn say_acked(tx: &mut ChatSender, rx: &mut ChatReceiver, text: &str) -> Message {
    let id = tx.say(text).await.unwrap();
    expect(rx, "the ack", |m| {
        matches!(m, Message::ChatAck(ChatAck { id: got }) if *got == id)
            || matches!(m, Message::Error(Refusal { id: Some(got), .. }) if *got == id)
    })
    .await
}

async fn who(tx: &mut ChatSender, rx: &mut ChatReceiver) -> Vec<String> {
    let id = tx.who().await.unwrap();
    match expect(
        rx,
        "the member list",
        |m| matches!(m, Message::ChatMembers(ChatMembers { id: got, .. }) if *got == id),
    )
    .await
    {
        Message::ChatMembers(ChatMembers { nicks, .. }) => nicks,
        _ => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_servers_are_one_room_with_one_order_and_each_senders_order() {
    const LINES: usize = 1000;
    let cluster = Cluster::start(3);
    // A listener on each server, then a sender on each.
    let mut listeners = Vec::new();
    for i in 0..3 {
        let (_, rx, _) = cluster.member(i, "hall", &format!("listener{i}")).await;
        listeners.push(rx);
    }
    let mut senders = Vec::new();
    for i in 0..3 {
        senders.push(cluster.member(i, "hall", &format!("sender{i}")).await);
    }
    let (_, rx, joined) = cluster.member(1, "hall", "late").await;
    drop(rx);
    assert_eq!(
        joined.members.len(),
        7,
        "every server's members: {:?}",
        joined.members
    );

    let sending: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(i, (mut tx, mut rx, _))| {
            tokio::spawn(async move {
                let mut last = 0;
                for n in 0..LINES {
                    last = tx.say(&format!("{i}:{n}")).await.unwrap();
                }
                expect(&mut rx, "the last ack", acked(last)).await;
                (tx, rx)
            })
        })
        .collect();
    let hearing: Vec<_> = listeners
        .into_iter()
        .map(|mut rx| {
            tokio::spawn(async move {
                let mut heard = Vec::new();
                let mut offsets = Vec::new();
                while heard.len() < 3 * LINES {
                    let message = tokio::time::timeout(WAIT, rx.next())
                        .await
                        .expect("the lines keep coming")
                        .unwrap()
                        .expect("connection open");
                    if let Message::ChatMessage(ChatMessage {
                        from, text, offset, ..
                    }) = message
                        && from.starts_with("sender")
                    {
                        heard.push(text);
                        offsets.push(offset.expect("a cluster's line has an offset"));
                    }
                }
                (heard, offsets)
            })
        })
        .collect();
    for s in sending {
        s.await.unwrap();
    }
    let mut orders = Vec::new();
    for h in hearing {
        let (heard, offsets) = h.await.unwrap();
        // Each sender's lines in the order it sent them.
        let mut next = BTreeMap::new();
        for line in &heard {
            let (sender, n) = line.split_once(':').unwrap();
            let expected = next.entry(sender.to_string()).or_insert(0usize);
            assert_eq!(
                n.parse::<usize>().unwrap(),
                *expected,
                "sender {sender} out of order"
            );
            *expected += 1;
        }
        // Offsets only grow: the stream's order.
        let ids: Vec<(u64, u64)> = offsets
            .iter()
            .map(|o| {
                let id = o.rsplit(':').next().unwrap();
                let (ms, seq) = id.split_once('-').unwrap();
                (ms.parse().unwrap(), seq.parse().unwrap())
            })
            .collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "offsets grow");
        orders.push(heard);
    }
    assert_eq!(orders[0], orders[1], "servers 0 and 1 delivered one order");
    assert_eq!(orders[1], orders[2], "servers 1 and 2 delivered one order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_messages_nicks_who_and_the_bot_span_the_servers() {
    let cluster = Cluster::start(3);
    let (mut alice, mut alice_rx, _) = cluster.member(0, "hall", "alice").await;
    let (mut bob, mut bob_rx, _) = cluster.member(1, "hall", "bob").await;
    expect(&mut alice_rx, "bob's join", notice("bob joined")).await;

    // A direct message to another server, acked once taken there; and back.
    let id = alice.direct("bob", "psst").await.unwrap();
    expect(&mut bob_rx, "alice's direct message", |m| {
        matches!(m, Message::ChatMessage(ChatMessage { from, text, room: None, .. }) if from == "alice" && text == "psst")
    })
    .await;
    expect(&mut alice_rx, "the direct message's ack", acked(id)).await;
    let id = bob.direct("alice", "psst back").await.unwrap();
    expect(&mut alice_rx, "bob's answer", said("bob", "psst back")).await;
    expect(&mut bob_rx, "its ack", acked(id)).await;
    // No one anywhere: not_found.
    let id = bob.direct("nobody", "hello?").await.unwrap();
    let refused = expect(
        &mut bob_rx,
        "the refusal",
        |m| matches!(m, Message::Error(Refusal { id: Some(got), .. }) if *got == id),
    )
    .await;
    assert!(
        matches!(
            refused,
            Message::Error(Refusal {
                code: ErrorCode::NotFound,
                ..
            })
        ),
        "{refused:?}"
    );

    // /who on every server lists every server's members.
    assert_eq!(who(&mut alice, &mut alice_rx).await, vec!["alice", "bob"]);
    assert_eq!(who(&mut bob, &mut bob_rx).await, vec!["alice", "bob"]);

    // Nicks are unique across servers, look-alikes included.
    for nick in ["alice", "ALICE"] {
        let taken = cluster
            .client(2)
            .await
            .chat(ChatTarget::Room("elsewhere".into()), nick, false)
            .await
            .err()
            .expect("a nick held on another server is refused");
        assert_eq!(
            common::refusal_code(&taken),
            Some(ErrorCode::NickInUse),
            "{nick}: {taken}"
        );
    }
    // A rename on one server is seen on the others, and frees the old nick everywhere.
    let id = bob.nick("robert").await.unwrap();
    expect(&mut bob_rx, "the rename's ack", acked(id)).await;
    expect(
        &mut alice_rx,
        "the rename",
        notice("bob is now known as robert"),
    )
    .await;
    let (_, _, joined) = cluster.member(2, "hall", "bob").await;
    assert_eq!(joined.members, vec!["alice", "bob", "robert"]);

    // The bot runs on one server and answers each line once, from any server.
    let (mut carol, mut carol_rx, joined) = cluster
        .client(2)
        .await
        .chat(ChatTarget::With("babyshen".into()), "carol", false)
        .await
        .unwrap();
    assert_eq!(joined.with.as_deref(), Some("babyshen"));
    expect(
        &mut carol_rx,
        "the greeting",
        said("babyshen", "欢迎致电babyshen"),
    )
    .await;
    for line in ["你", "我"] {
        let id = carol.say(line).await.unwrap();
        let mut replies = 0;
        tokio::time::timeout(WAIT, async {
            loop {
                match carol_rx.next().await.unwrap().expect("open") {
                    Message::ChatAck(ChatAck { id: got }) if got == id => break,
                    Message::ChatMessage(ChatMessage { from, text, .. }) if from == "babyshen" => {
                        assert_eq!(text, format!("{line}好"));
                        replies += 1;
                    }
                    _ => {}
                }
            }
        })
        .await
        .expect("the line is acked");
        assert_eq!(
            replies, 1,
            "one answer to '{line}' however many servers run"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_loses_no_acknowledged_line_its_members_leave_and_the_bot_moves() {
    let mut cluster = Cluster::start(3);
    // The server holding the bot is the one killed.
    let holder = redis_get(&cluster.redis, "ferry:bot");
    let doomed = cluster
        .server_of_node(&holder)
        .unwrap_or_else(|| panic!("the bot's holder {holder} is one of the servers"));
    let others: Vec<usize> = (0..3).filter(|&i| i != doomed).collect();
    let (mut bob, mut bob_rx, _) = cluster.member(others[0], "hall", "bob").await;
    let (_carol, mut carol_rx, _) = cluster.member(others[1], "hall", "carol").await;
    let (mut alice, mut alice_rx, _) = cluster.member(doomed, "hall", "alice").await;
    expect(&mut bob_rx, "alice's join", notice("alice joined")).await;
    let marker = match say_acked(&mut bob, &mut bob_rx, "marker").await {
        Message::ChatAck(_) => expect(&mut carol_rx, "the marker", said("bob", "marker")).await,
        other => panic!("{other:?}"),
    };
    let Message::ChatMessage(ChatMessage {
        offset: Some(marker),
        ..
    }) = marker
    else {
        panic!("the marker has an offset: {marker:?}");
    };

    // Alice sends without waiting; the acks that came back before the kill are the lines
    // that must survive it.
    let sending = tokio::spawn(async move {
        let mut acked = HashSet::new();
        let mut ids = BTreeMap::new();
        for n in 0..300 {
            let id = alice.say(&format!("line {n}")).await.unwrap();
            ids.insert(id, n);
            while let Ok(Ok(Some(message))) =
                tokio::time::timeout(Duration::from_millis(1), alice_rx.next()).await
            {
                if let Message::ChatAck(ChatAck { id }) = message {
                    acked.insert(ids[&id]);
                }
            }
        }
        // Wait for most of the acks, then stop listening: the kill comes while some lines
        // may still be in flight.
        while acked.len() < 200 {
            match tokio::time::timeout(WAIT, alice_rx.next()).await {
                Ok(Ok(Some(Message::ChatAck(ChatAck { id })))) => {
                    acked.insert(ids[&id]);
                }
                Ok(Ok(Some(_))) => {}
                _ => break,
            }
        }
        (acked, alice, alice_rx)
    });
    let (taken, alice, alice_rx) = sending.await.unwrap();
    assert!(taken.len() >= 200);
    cluster.servers[doomed].kill();
    let killed_at = Instant::now();
    drop((alice, alice_rx));

    // Alice leaves everyone's room, with a notice, within 10 s; bob heard every acked line.
    let mut heard = HashSet::new();
    let mut hear = |m: &Message| {
        if let Message::ChatMessage(ChatMessage { from, text, .. }) = m
            && from == "alice"
        {
            heard.insert(text.trim_start_matches("line ").parse::<usize>().unwrap());
        }
    };
    until_all(
        &mut bob_rx,
        "alice's leaving",
        &[&notice("alice left: their server stopped answering")],
        &mut hear,
    )
    .await;
    assert!(
        killed_at.elapsed() < Duration::from_secs(10),
        "took {:?}",
        killed_at.elapsed()
    );
    let missing: Vec<_> = taken.difference(&heard).collect();
    assert!(
        missing.is_empty(),
        "acked lines bob never heard: {missing:?}"
    );
    assert_eq!(who(&mut bob, &mut bob_rx).await, vec!["bob", "carol"]);

    // Every acked line reached the others, and is in the room's stream for whoever catches up.
    let (_, mut dave_rx, joined) = ferry::client::chat::join_since(
        cluster.client(others[1]).await.into_connection(),
        "hall",
        "dave",
        &marker,
    )
    .await
    .unwrap();
    assert_eq!(joined.recovered, Some(true));
    let mut replayed = HashSet::new();
    while let Ok(Ok(Some(Message::ChatMessage(ChatMessage {
        from,
        text,
        history: true,
        ..
    })))) = tokio::time::timeout(Duration::from_secs(2), dave_rx.next()).await
    {
        if from == "alice" {
            replayed.insert(text.trim_start_matches("line ").parse::<usize>().unwrap());
        }
    }
    let missing: Vec<_> = taken.difference(&replayed).collect();
    assert!(
        missing.is_empty(),
        "acked lines missing from the stream: {missing:?}"
    );
    // The bot moves to a live server.
    let deadline = Instant::now() + WAIT;
    let (mut erin, mut erin_rx) = loop {
        match cluster
            .client(others[0])
            .await
            .chat(ChatTarget::With("babyshen".into()), "erin", false)
            .await
        {
            Ok((tx, rx, _)) => break (tx, rx),
            Err(e) if Instant::now() < deadline => {
                assert_eq!(common::refusal_code(&e), Some(ErrorCode::NotFound), "{e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("the bot never came back: {e}"),
        }
    };
    let id = erin.say("在吗").await.unwrap();
    expect(&mut erin_rx, "the bot's answer", said("babyshen", "在吗好")).await;
    expect(&mut erin_rx, "the ack", acked(id)).await;
    assert_ne!(redis_get(&cluster.redis, "ferry:bot"), holder);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_are_refused_while_redis_is_away_and_chat_resumes_without_loss_or_duplicates() {
    let mut cluster = Cluster::start(2);
    let (mut alice, mut alice_rx, _) = cluster.member(0, "hall", "alice").await;
    let (_bob, mut bob_rx, _) = cluster.member(1, "hall", "bob").await;
    expect(&mut alice_rx, "bob's join", notice("bob joined")).await;
    assert!(matches!(
        say_acked(&mut alice, &mut alice_rx, "before").await,
        Message::ChatAck(_)
    ));

    cluster.redis.kill();
    let away = "the chat engine (Redis) is unreachable: lines are refused until it is back";
    expect(&mut bob_rx, "the outage notice", notice(away)).await;
    expect(&mut alice_rx, "the outage notice", notice(away)).await;
    match say_acked(&mut alice, &mut alice_rx, "during").await {
        Message::Error(Refusal {
            code: ErrorCode::Unavailable,
            message,
            ..
        }) => {
            assert!(message.contains("unreachable"), "{message}");
        }
        other => panic!("a line while Redis is away is refused, not {other:?}"),
    }

    cluster.redis.restart();
    let back = "the chat engine (Redis) is back: chat goes on";
    expect(&mut bob_rx, "the notice that chat is back", notice(back)).await;
    expect(&mut alice_rx, "the notice that chat is back", notice(back)).await;
    assert!(matches!(
        say_acked(&mut alice, &mut alice_rx, "after").await,
        Message::ChatAck(_)
    ));
    // Bob heard "before" (earlier) and now "after", nothing twice, "during" never.
    let mut heard = vec!["before".to_string()];
    loop {
        let m = expect(
            &mut bob_rx,
            "alice's line after the outage",
            |m| matches!(m, Message::ChatMessage(ChatMessage { from, .. }) if from == "alice"),
        )
        .await;
        let Message::ChatMessage(ChatMessage { text, .. }) = m else {
            unreachable!()
        };
        heard.push(text.clone());
        if text == "after" {
            break;
        }
    }
    assert_eq!(heard, vec!["before", "after"]);
    // And the stream holds them once each, in order.
    let (_, mut carol_rx, _) = cluster.member(1, "hall", "carol").await;
    let mut history = Vec::new();
    while let Ok(Ok(Some(Message::ChatMessage(ChatMessage {
        text,
        history: true,
        ..
    })))) = tokio::time::timeout(Duration::from_secs(1), carol_rx.next()).await
    {
        history.push(text);
    }
    assert_eq!(history, vec!["before", "after"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_redis_stalls_neither_the_servers_other_services_nor_a_member_for_long() {
    let cluster = Cluster::start(1);
    let (mut alice, mut alice_rx, _) = cluster.member(0, "hall", "alice").await;
    std::fs::write(cluster.servers[0].root.join("f.txt"), b"hello").unwrap();
    let pid = redis_pid(&cluster.redis);
    common::send_signal(pid, rustix::process::Signal::STOP);
    let stopped = Instant::now();
    // A line gets a clear refusal within the request timeout, never an ack; the room is told.
    let id = alice.say("into the void").await.unwrap();
    let away = "the chat engine (Redis) is unreachable: lines are refused until it is back";
    let refused = |m: &Message| matches!(m, Message::Error(Refusal { code: ErrorCode::Unavailable, id: Some(got), .. }) if *got == id);
    until_all(
        &mut alice_rx,
        "the refusal and the outage notice",
        &[&refused, &notice(away)],
        |m| {
            assert!(!matches!(m, Message::ChatAck(_)), "nothing is acked: {m:?}");
        },
    )
    .await;
    assert!(
        stopped.elapsed() < Duration::from_secs(10),
        "{:?}",
        stopped.elapsed()
    );
    // Ping and files answer while Redis answers nothing.
    let mut c = cluster.client(0).await;
    tokio::time::timeout(WAIT, c.ping(1))
        .await
        .expect("ping answers")
        .unwrap();
    let mut lister = cluster.client(0).await;
    let listed = tokio::time::timeout(WAIT, lister.files().list("", false))
        .await
        .expect("ls answers")
        .unwrap();
    assert!(listed.iter().any(|e| e.path == "f.txt"));
    common::send_signal(pid, rustix::process::Signal::CONT);
    expect(
        &mut alice_rx,
        "the notice that chat is back",
        notice("the chat engine (Redis) is back: chat goes on"),
    )
    .await;
    assert!(matches!(
        say_acked(&mut alice, &mut alice_rx, "back").await,
        Message::ChatAck(_)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_reconnecting_to_another_server_gets_what_it_missed() {
    let cluster = Cluster::start(3);
    let (mut alice, mut alice_rx, _) = cluster.member(0, "hall", "alice").await;
    let (bob, mut bob_rx, _) = cluster.member(1, "hall", "bob").await;
    expect(&mut alice_rx, "bob's join", notice("bob joined")).await;
    say_acked(&mut alice, &mut alice_rx, "one").await;
    let Message::ChatMessage(ChatMessage {
        offset: Some(seen), ..
    }) = expect(&mut bob_rx, "line one", said("alice", "one")).await
    else {
        panic!("line one has an offset");
    };
    drop((bob, bob_rx));
    // Once the room is told bob left, his nick is free on every server.
    expect(&mut alice_rx, "bob's leave", notice("bob left")).await;
    for text in ["two", "three"] {
        say_acked(&mut alice, &mut alice_rx, text).await;
    }
    // Bob comes back on server 2 and asks for what followed "one".
    let (_bob, mut bob_rx, joined) = ferry::client::chat::join_since(
        cluster.client(2).await.into_connection(),
        "hall",
        "bob",
        &seen,
    )
    .await
    .unwrap();
    assert_eq!(joined.recovered, Some(true));
    for text in ["two", "three"] {
        let m = expect(&mut bob_rx, text, said("alice", text)).await;
        assert!(matches!(
            m,
            Message::ChatMessage(ChatMessage { history: true, .. })
        ));
    }
    // An offset from other data (another epoch) is not recovered: the recent history instead.
    let (_, mut eve_rx, joined) = ferry::client::chat::join_since(
        cluster.client(2).await.into_connection(),
        "hall",
        "eve",
        "0badc0ffee00:1-0",
    )
    .await
    .unwrap();
    assert_eq!(joined.recovered, Some(false));
    expect(&mut eve_rx, "the recent history", said("alice", "one")).await;
}

#[tokio::test]
async fn redis_unreachable_at_start_is_one_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let out = common::output({
        let mut cmd = common::ferry_bin(dir.path());
        cmd.args(["serve", "--plaintext", "--listen", "127.0.0.1:0", "--state"])
            .arg(dir.path().join("state"))
            .arg("--root")
            .arg(dir.path())
            .args(["--cluster", &format!("redis://127.0.0.1:{port}")]);
        cmd
    })
    .await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "cannot reach the chat engine's Redis at redis://127.0.0.1:{port}"
        )),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
}

fn redis_get(redis: &RedisServer, key: &str) -> String {
    let reply = redis.command(&format!("GET {key}"));
    // "$LEN\r\nVALUE\r\n"
    reply.lines().nth(1).unwrap_or_default().to_string()
}

fn redis_pid(redis: &RedisServer) -> u32 {
    let info = redis.command("INFO server");
    info.lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .and_then(|p| p.trim().parse().ok())
        .expect("INFO gives the process id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_stopping_cleanly_takes_its_members_out_of_the_rooms_at_once() {
    let mut cluster = Cluster::start(2);
    let (_alice, mut alice_rx, _) = cluster.member(0, "hall", "alice").await;
    let (mut bob, mut bob_rx, _) = cluster.member(1, "hall", "bob").await;
    expect(&mut alice_rx, "bob's join", notice("bob joined")).await;
    common::send_signal(cluster.servers[1].pid(), rustix::process::Signal::TERM);
    // Told as a leave, not as a server that stopped answering (that would take the timeout).
    expect(&mut alice_rx, "bob's leave", notice("bob left")).await;
    assert!(cluster.servers[1].child.wait().unwrap().success());
    drop((bob.leave().await, bob_rx.next().await));
    // bob's nick is free at once on the other server.
    let (_, _, joined) = cluster.member(0, "hall", "bob").await;
    assert_eq!(joined.members, vec!["alice", "bob"]);
}

/// Split brain: a server paused past the timeout is reaped and its member's nick freed; someone
/// on another server takes it. When the paused server comes back it learns it was reaped before
/// it records anything (fencing): its member never speaks as the nick again, its session ends
/// with a goodbye saying why, and the room holds one member of that name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_back_from_a_pause_never_speaks_for_a_nick_taken_meanwhile() {
    let cluster = Cluster::start_with(2, "", "node_timeout_ms = 1500\nrequest_timeout_ms = 1000");
    let (mut vic, mut vic_rx, _) = cluster.member(0, "hall", "vic").await;
    let (mut watcher, mut watcher_rx, _) = cluster.member(1, "hall", "watcher").await;
    expect(&mut vic_rx, "the watcher's join", notice("watcher joined")).await;

    common::send_signal(cluster.servers[0].pid(), rustix::process::Signal::STOP);
    expect(
        &mut watcher_rx,
        "vic reaped",
        notice("vic left: their server stopped answering"),
    )
    .await;
    let (mut impostor, mut impostor_rx, _) = cluster.member(1, "hall", "vic").await;
    common::send_signal(cluster.servers[0].pid(), rustix::process::Signal::CONT);

    // The real vic speaks at once; it must not reach the room as vic.
    let _ = vic.say("I am the real vic").await;
    let goodbye = expect(&mut vic_rx, "the goodbye", |m| {
        matches!(m, Message::Goodbye(_))
    })
    .await;
    let Message::Goodbye(goodbye) = goodbye else {
        unreachable!()
    };
    assert!(goodbye.reason.contains("took your nick"), "{goodbye:?}");

    // The room goes on with one vic, the one who holds the nick now.
    say_acked(&mut impostor, &mut impostor_rx, "the vic of now").await;
    let mut heard_real = false;
    until_all(
        &mut watcher_rx,
        "the vic of now",
        &[&said("vic", "the vic of now")],
        |m| {
            heard_real |= matches!(m, Message::ChatMessage(ChatMessage { text, .. }) if text == "I am the real vic");
        },
    )
    .await;
    assert!(!heard_real, "the paused server's member spoke as vic");
    let nicks = who(&mut watcher, &mut watcher_rx).await;
    assert_eq!(nicks.iter().filter(|n| *n == "vic").count(), 1, "{nicks:?}");
    // A direct message to vic reaches the one who holds the nick now.
    watcher.direct("vic", "psst").await.unwrap();
    expect(&mut impostor_rx, "the direct message", |m| {
        matches!(m, Message::ChatMessage(ChatMessage { text, to: Some(_), .. }) if text == "psst")
    })
    .await;
}

/// Redis holds a bounded amount of chat, as a single server does: each room's stream at most
/// `room_bytes` of lines, all together at most `memory_bytes` — and so it stays once everyone
/// has left (a room's past outlives its members, bounded).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_holds_a_bounded_amount_of_chat() {
    let cluster = Cluster::start_with(
        2,
        "room_bytes = 65536\nmemory_bytes = 131072\n",
        "history_entries = 100000",
    );
    let line = "x".repeat(1000);
    let mut members = Vec::new();
    for (i, room) in ["one", "two", "three"].iter().enumerate() {
        let (mut tx, mut rx, _) = cluster.member(i % 2, room, &format!("m{i}")).await;
        for n in 0..300 {
            tx.say(&format!("{n} {line}")).await.unwrap();
        }
        say_acked(&mut tx, &mut rx, "last").await;
        members.push((tx, rx));
    }
    let bytes = |key: &str| -> i64 { redis_get(&cluster.redis, key).parse().unwrap_or(0) };
    let stream_bytes = |room: &str| -> usize {
        // What the stream really holds: every entry's line.
        let reply = cluster.redis.command(&format!(
            "EVAL \"local s = 0 for _, e in ipairs(redis.call('XRANGE', KEYS[1], '-', '+')) do s = s + #e[2][2] end return s\" 1 ferry:room:{room}:log"
        ));
        reply
            .trim()
            .trim_start_matches(':')
            .parse()
            .unwrap_or_else(|_| panic!("{reply}"))
    };
    let total = bytes("ferry:bytes");
    assert!(total <= 131_072, "{total} bytes of chat in Redis");
    assert!(total > 65_536, "the lines were recorded: {total}");
    let mut held = 0;
    for room in ["one", "two", "three"] {
        let kept = stream_bytes(room);
        assert!(kept <= 65_536, "{room} keeps {kept} bytes");
        held += kept;
    }
    assert_eq!(held as i64, total, "the count is what the streams hold");
    drop(members);
    assert!(bytes("ferry:bytes") <= 131_072);
}

/// A TCP proxy the test controls between a server and Redis: `cut` closes every connection and
/// refuses new ones until `restore`.
struct Proxy {
    addr: SocketAddr,
    open: std::sync::Arc<std::sync::atomic::AtomicBool>,
    links: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let open = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let links = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (accept_open, accept_links) = (open.clone(), links.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !accept_open.load(std::sync::atomic::Ordering::SeqCst) {
                    continue; // dropped: refused while cut
                }
                let link = tokio::spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
                accept_links.lock().unwrap().push(link.abort_handle());
            }
        });
        Proxy {
            addr,
            open,
            links,
            accept,
        }
    }

    fn cut(&self) {
        self.open.store(false, std::sync::atomic::Ordering::SeqCst);
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    fn restore(&self) {
        self.open.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// Split brain by a cut link: a server cut from Redis past the timeout is reaped; when the link
/// is back it rejoins, and its member whose nick was taken meanwhile is signed off — never two
/// members under one nick.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_cut_from_redis_rejoins_without_a_second_member_of_a_taken_nick() {
    let mut cluster =
        Cluster::start_with(1, "", "node_timeout_ms = 1500\nrequest_timeout_ms = 1000");
    let redis_addr: SocketAddr = cluster
        .redis
        .url()
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let proxy = Proxy::start(redis_addr).await;
    cluster.add_server_on(&format!("redis://{}", proxy.addr));
    let (_vic, mut vic_rx, _) = cluster.member(1, "hall", "vic").await;
    let (mut watcher, mut watcher_rx, _) = cluster.member(0, "hall", "watcher").await;
    expect(&mut vic_rx, "the watcher's join", notice("watcher joined")).await;

    proxy.cut();
    expect(
        &mut watcher_rx,
        "vic reaped",
        notice("vic left: their server stopped answering"),
    )
    .await;
    let (mut impostor, mut impostor_rx, _) = cluster.member(0, "hall", "vic").await;
    proxy.restore();

    let goodbye = expect(&mut vic_rx, "the goodbye", |m| {
        matches!(m, Message::Goodbye(_))
    })
    .await;
    let Message::Goodbye(goodbye) = goodbye else {
        unreachable!()
    };
    assert!(goodbye.reason.contains("took your nick"), "{goodbye:?}");
    say_acked(&mut impostor, &mut impostor_rx, "still here").await;
    expect(&mut watcher_rx, "the line", said("vic", "still here")).await;
    let nicks = who(&mut watcher, &mut watcher_rx).await;
    assert_eq!(nicks.iter().filter(|n| *n == "vic").count(), 1, "{nicks:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_message_kept_on_one_server_is_handed_over_by_another() {
    let mut cluster = Cluster::start_with(0, "", "");
    let token = ferry::config::add_user(
        &cluster.config.path().join("config.toml"),
        "erin",
        ferry::protocol::Permissions::parse_list("chat").unwrap(),
    )
    .unwrap();
    cluster.add_server();
    cluster.add_server();
    let (mut alice, mut alice_rx, _) = cluster.member(0, "hall", "alice").await;
    let id = alice.direct("erin", "kept in redis").await.unwrap();
    expect(&mut alice_rx, "told it was kept", |m| {
        matches!(m, Message::ChatNotice(n) if n.text.starts_with("erin is not signed in: your message is kept"))
    })
    .await;
    expect(&mut alice_rx, "the ack", acked(id)).await;
    let erin = Client::connect(&ClientOptions {
        server: cluster.addr(1).to_string(),
        token: Some(token),
        plaintext: true,
        home: cluster.home.path().to_path_buf(),
        connect_timeout: WAIT,
        accept_new: true,
        keys: None,
    })
    .await
    .unwrap();
    let (_tx, mut erin_rx, _) = erin
        .chat(ChatTarget::Room("hall".into()), "erin", false)
        .await
        .unwrap();
    let kept = expect(&mut erin_rx, "what was kept for erin", |m| {
        matches!(m, Message::ChatMessage(ChatMessage { to: Some(_), .. }))
    })
    .await;
    let Message::ChatMessage(kept) = kept else {
        unreachable!()
    };
    assert_eq!(
        (kept.from.as_str(), kept.text.as_str()),
        ("alice", "kept in redis")
    );
    assert!(kept.history && kept.at.is_some(), "{kept:?}");
    assert_eq!(
        cluster.redis.command("EXISTS ferry:kept:erin").trim(),
        ":0",
        "handed over once: nothing kept any more"
    );
}
