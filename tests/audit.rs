//! The audit log, through the real binary: every kind of entry appears with its fields after
//! the real action, no secret ever appears, `ferry audit` reads it back; a log whose disk
//! stops taking writes drops and counts entries without stalling a session; rotation keeps a
//! bounded number of files.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Instant;

use common::{ServerProcess, TestServer, WAIT, ferry_bin, ferry_user, output};
use ferry::config::ServerConfig;
use serde_json::Value;

/// The entries of `log` once `until` holds for them (the writer runs on its own thread).
fn entries_when(log: &Path, until: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let entries: Vec<Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).expect("every line is one JSON object"))
            .collect();
        if until(&entries) {
            return entries;
        }
        assert!(
            Instant::now() < deadline,
            "the audit log never held what was expected; it holds:\n{text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn of_kind<'a>(entries: &'a [Value], kind: &str) -> Vec<&'a Value> {
    entries.iter().filter(|e| e["kind"] == kind).collect()
}

/// The address a `--legacy` listener printed.
fn legacy_addr(server: &ServerProcess, name: &str) -> SocketAddr {
    loop {
        let line = server
            .stderr
            .recv_timeout(WAIT)
            .expect("legacy listener line");
        if line.contains(&format!("legacy {name}=")) {
            let rest = line.split("listening on ").nth(1).unwrap();
            return rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    }
}

/// One command through the seed's toy SSH: command, size header, ack, output.
fn legacy_shell(addr: SocketAddr, command: &str) -> Vec<u8> {
    let mut tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    tcp.write_all(command.as_bytes()).unwrap();
    let mut header = [0u8; 1024];
    let n = tcp.read(&mut header).unwrap();
    let size: usize = String::from_utf8_lossy(&header[..n])
        .trim()
        .parse()
        .unwrap();
    tcp.write_all(b"ok").unwrap();
    let mut output = vec![0u8; size];
    tcp.read_exact(&mut output).unwrap();
    output
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_entry_follows_the_real_action_and_no_secret_appears() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let token = ferry_user(
        &config,
        &["add", "alice", "--allow", "chat,read,write,exec"],
    )
    .trim()
    .to_string();
    let server = ServerProcess::start(&[
        "--plaintext",
        "--config",
        config.to_str().unwrap(),
        "--legacy",
        "shell=127.0.0.1:0",
    ]);
    let log = server.dir.path().join("state/audit.log");
    let shell = legacy_addr(&server, "shell");
    let home = server.dir.path().join("client");
    let ferry = |verb: &str, token: Option<&str>, args: &[&str]| {
        let mut cmd = ferry_bin(&home);
        cmd.arg(verb)
            .arg("--server")
            .arg(server.addr.to_string())
            .arg("--plaintext");
        if let Some(token) = token {
            cmd.arg("--token").arg(token);
        }
        cmd.args(args);
        cmd
    };
    let succeeds = |out: std::process::Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };

    // Sign-ins: one with the token, one anonymous, one with a wrong secret.
    let mut wrong = token.clone();
    let last = wrong.pop().unwrap();
    wrong.push(if last == 'A' { 'B' } else { 'A' });
    succeeds(output(ferry("ping", Some(&token), &["-c", "1"])).await);
    succeeds(output(ferry("ping", None, &["-c", "1"])).await);
    let refused = output(ferry("ping", Some(&wrong), &["-c", "1"])).await;
    assert!(!refused.status.success());
    // A command, and the changes to files.
    let exec = output(ferry("exec", Some(&token), &["--", "sh", "-c", "exit 3"])).await;
    assert_eq!(exec.status.code(), Some(3));
    let local = dir.path().join("hello.txt");
    std::fs::write(&local, b"hello, audit\n").unwrap();
    succeeds(output(ferry("mkdir", Some(&token), &["docs"])).await);
    let mut put = ferry("put", Some(&token), &[]);
    put.arg(&local).arg("docs/hello.txt");
    succeeds(output(put).await);
    succeeds(
        output(ferry(
            "mv",
            Some(&token),
            &["docs/hello.txt", "docs/hi.txt"],
        ))
        .await,
    );
    succeeds(output(ferry("rm", Some(&token), &["docs/hi.txt"])).await);
    // The legacy shell (no auth there).
    assert_eq!(legacy_shell(shell, "echo legacy"), b"legacy\n");
    // User administration, picked up by the running server.
    let bob = ferry_user(&config, &["add", "bob", "--allow", "chat"])
        .trim()
        .to_string();
    let entries = entries_when(&log, |e| !of_kind(e, "user_added").is_empty());
    assert_eq!(of_kind(&entries, "user_added").len(), 1);
    let rotated = ferry_user(&config, &["rotate", "alice"]).trim().to_string();
    entries_when(&log, |e| !of_kind(e, "user_rotated").is_empty());
    ferry_user(&config, &["remove", "bob"]);
    let entries = entries_when(&log, |e| !of_kind(e, "user_removed").is_empty());

    let start = of_kind(&entries, "server_start");
    assert_eq!(start.len(), 1);
    assert_eq!(start[0]["listen"], server.addr.to_string());
    let sign_ins = of_kind(&entries, "sign_in");
    let by = |user: Option<&str>, ok: bool| {
        sign_ins
            .iter()
            .filter(|e| e["user"].as_str() == user && e["ok"] == ok)
            .count()
    };
    // alice: ping, exec, mkdir, put, mv, rm.
    assert_eq!(by(Some("alice"), true), 6, "{sign_ins:#?}");
    assert_eq!(by(None, true), 1, "{sign_ins:#?}");
    assert_eq!(by(Some("alice"), false), 1, "{sign_ins:#?}");
    for e in &sign_ins {
        assert_eq!(e["address"], "127.0.0.1");
        assert_eq!(e["transport"], "tcp");
    }
    let failed = sign_ins.iter().find(|e| e["ok"] == false).unwrap();
    assert!(failed["reason"].as_str().unwrap().contains("wrong token"));

    let exec = of_kind(&entries, "exec");
    assert_eq!(exec.len(), 1);
    assert_eq!(exec[0]["user"], "alice");
    assert_eq!(exec[0]["argv"], serde_json::json!(["sh", "-c", "exit 3"]));
    assert_eq!(exec[0]["exit_code"], 3);
    assert_eq!(exec[0]["pty"], false);
    assert!(exec[0]["duration_ms"].is_u64());

    let mkdir = of_kind(&entries, "mkdir");
    assert_eq!((mkdir.len(), &mkdir[0]["path"]), (1, &Value::from("docs")));
    let write = of_kind(&entries, "file_write");
    assert_eq!(write.len(), 1);
    assert_eq!(write[0]["path"], "docs/hello.txt");
    assert_eq!(write[0]["size"], 13);
    let hash = write[0]["hash"].as_str().unwrap();
    assert!(
        hash.ends_with(&blake3::hash(b"hello, audit\n").to_hex().to_string()),
        "{hash}"
    );
    let moved = of_kind(&entries, "move");
    assert_eq!(
        (&moved[0]["from"], &moved[0]["to"]),
        (&Value::from("docs/hello.txt"), &Value::from("docs/hi.txt"))
    );
    let removed = of_kind(&entries, "remove");
    assert_eq!(removed[0]["path"], "docs/hi.txt");
    for e in mkdir.iter().chain(&write).chain(&moved).chain(&removed) {
        assert_eq!(
            (&e["user"], &e["address"]),
            (&Value::from("alice"), &Value::from("127.0.0.1"))
        );
    }

    let legacy = of_kind(&entries, "legacy");
    assert!(
        legacy
            .iter()
            .any(|e| e["listener"] == "shell" && e["action"] == "connect")
    );
    assert!(
        legacy
            .iter()
            .any(|e| e["action"] == "command" && e["detail"] == "echo legacy")
    );

    let added = of_kind(&entries, "user_added");
    assert_eq!(
        (&added[0]["user"], &added[0]["permissions"]),
        (&Value::from("bob"), &serde_json::json!(["chat"]))
    );
    assert_eq!(of_kind(&entries, "user_rotated")[0]["user"], "alice");
    assert_eq!(of_kind(&entries, "user_removed")[0]["user"], "bob");
    let reloads = of_kind(&entries, "config_reload");
    assert!(
        reloads
            .iter()
            .all(|e| e["ok"] == true && e["path"] == config.to_str().unwrap())
    );

    // No token, old or new, and no wrong guess, appears anywhere in the log.
    let text = std::fs::read_to_string(&log).unwrap();
    for secret in [&token, &wrong, &bob, &rotated] {
        let (_, secret) = secret.split_once(':').unwrap();
        assert!(!text.contains(secret), "a secret reached the audit log");
    }

    // `ferry audit` reads it back: one user's entries, readably.
    let mut audit = ferry_bin(&home);
    audit
        .args(["audit", "--user", "alice", "--state"])
        .arg(server.dir.path().join("state"));
    audit.arg("--config").arg(&config);
    let shown = output(audit).await;
    assert!(
        shown.status.success(),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    let shown = String::from_utf8(shown.stdout).unwrap();
    assert!(
        shown.contains("exec") && shown.contains("sh -c exit 3 -> exit 3"),
        "{shown}"
    );
    assert!(shown.contains("alice@127.0.0.1"), "{shown}");
    assert!(shown.contains("docs/hello.txt -> docs/hi.txt"), "{shown}");
    assert!(
        !shown.contains("anonymous@") && !shown.contains("legacy"),
        "{shown}"
    );
    // --since in the future shows nothing; --json shows the stored lines.
    let mut later = ferry_bin(&home);
    later
        .args([
            "audit",
            "--json",
            "--since",
            "2999-01-01T00:00:00Z",
            "--file",
        ])
        .arg(&log);
    let later = output(later).await;
    assert!(later.status.success() && later.stdout.is_empty());
    let mut json = ferry_bin(&home);
    json.args(["audit", "--json", "--file"]).arg(&log);
    let json = output(json).await;
    let lines = String::from_utf8(json.stdout).unwrap();
    assert!(lines.lines().count() >= entries.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_prints_new_entries_as_they_are_written() {
    let (config, token) = common::config_with_user("carol", "write");
    let server = TestServer::start_plaintext(config).await;
    let log = server.dir.path().join("state/audit.log");
    let mut follow = ferry_bin(&server.home())
        .args(["audit", "--follow", "--json", "--file"])
        .arg(&log)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = follow.stdout.take().unwrap();
    let (lines, seen) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut client = server.client(Some(token)).await;
    client.files().mkdir("followed", None, None).await.unwrap();
    let found = tokio::task::spawn_blocking(move || {
        loop {
            let line = seen
                .recv_timeout(WAIT)
                .expect("--follow printed the new entry");
            if line.contains("\"kind\":\"mkdir\"") {
                return line;
            }
        }
    })
    .await
    .unwrap();
    assert!(found.contains("\"path\":\"followed\""), "{found}");
    let _ = follow.kill();
    let _ = follow.wait();
    server.stop().await;
}

/// A FIFO stands in for a disk that stops taking writes: nobody reads it until the test
/// says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_that_falls_behind_drops_and_counts_and_never_stalls_a_session() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("audit.fifo");
    common::mkfifo(&fifo);
    // The reader: opens (which waits for the server's writer), shrinks the pipe to one page,
    // then reads nothing until told to, and then everything until the `dropped` entry.
    let (go, wait_for_go) = std::sync::mpsc::channel::<()>();
    let reader_path = fifo.clone();
    let reader = std::thread::spawn(move || {
        let mut pipe = std::fs::File::open(&reader_path).unwrap();
        rustix::pipe::fcntl_setpipe_size(&pipe, 4096).unwrap();
        wait_for_go.recv().unwrap();
        let mut text = String::new();
        let mut buf = [0u8; 4096];
        while !text.contains("\"kind\":\"dropped\"") {
            let n = pipe.read(&mut buf).unwrap();
            assert!(
                n > 0,
                "the server closed the log before it reported the drops"
            );
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        // Whole lines only, up to the report.
        let end = text.rfind('\n').unwrap_or(0);
        text.truncate(end);
        (pipe, text)
    });
    let mut config = ServerConfig::default();
    config.audit.path = Some(fifo.clone());
    config.audit.queue = 4;
    let server = TestServer::start_plaintext(config).await;

    // Far more sign-ins than a page of pipe and four queued entries hold: every one is served.
    let sessions = 80;
    for n in 0..sessions {
        let client =
            tokio::time::timeout(WAIT, ferry::client::Client::connect(&server.options(None)))
                .await
                .unwrap_or_else(|_| panic!("session {n} stalled behind the audit log"))
                .unwrap();
        drop(client);
    }
    let dropped = server.state.audit.dropped();
    assert!(dropped > 0, "nothing was dropped: the pipe never filled");
    let figures = server.state.metrics_text();
    assert_eq!(
        ferry::metrics::sample(&figures, "ferry_audit_dropped_total"),
        Some(dropped as f64)
    );

    // Once the disk takes writes again, the log says how many it lost.
    go.send(()).unwrap();
    let (pipe, text) = tokio::task::spawn_blocking(move || reader.join().unwrap())
        .await
        .unwrap();
    let entries: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let reported: u64 = of_kind(&entries, "dropped")
        .iter()
        .map(|e| e["count"].as_u64().unwrap())
        .sum();
    assert!(reported > 0);
    let signed_in = of_kind(&entries, "sign_in").len() as u64;
    // What reached the log and what was counted as dropped account for every sign-in so far
    // (later ones may still be queued behind the report).
    assert!(signed_in + reported <= sessions, "{signed_in} + {reported}");
    assert!(reported <= server.state.audit.dropped());
    // The server stops cleanly with its reader still there.
    let drain = std::thread::spawn(move || {
        let mut pipe = pipe;
        let mut rest = Vec::new();
        let _ = pipe.read_to_end(&mut rest);
    });
    assert!(server.stop().await);
    drain.join().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_keeps_a_bounded_number_of_files_each_within_the_size() {
    let mut config = ServerConfig::default();
    config.audit.rotate_bytes = 4096;
    config.audit.keep = 2;
    // Files are removed by count alone (`keep_days` protects young ones by default).
    config.audit.keep_days = 0;
    let server = TestServer::start_plaintext(config).await;
    // Each anonymous sign-in is one entry of about 115 bytes: 300 are eight files' worth (the
    // first 200 one by one, the rest counted in one entry).
    for _ in 0..300 {
        drop(server.client(None).await);
    }
    assert!(server.state.audit.flush(WAIT).await);
    let log: PathBuf = server.dir.path().join("state/audit.log");
    let files = ferry::audit::log_files(&log);
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["audit.log.2", "audit.log.1", "audit.log"]);
    assert!(!server.dir.path().join("state/audit.log.3").exists());
    let mut times = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(
            text.len() <= 4096,
            "{} holds {} bytes",
            file.display(),
            text.len()
        );
        for line in text.lines() {
            let entry: Value = serde_json::from_str(line).unwrap();
            times.push(entry["time"].as_str().unwrap().to_string());
        }
    }
    // Oldest first, across the files; the oldest entries (server_start) were rotated away.
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    let all: String = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    assert!(!all.contains("server_start"));
    server.stop().await;
}

/// The web page's WebSocket and the IRC door are doors like the TCP port: their sign-ins are
/// recorded with the door they came through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ins_through_the_web_and_irc_doors_name_their_door() {
    let web = TestServer::start_with_web(ServerConfig::default(), true).await;
    let options = ferry::client::ClientOptions {
        server: format!("ws://{}/ws", web.web_addr.unwrap()),
        ..web.options(None)
    };
    drop(ferry::client::Client::connect(&options).await.unwrap());
    let entries = entries_when(&web.dir.path().join("state/audit.log"), |e| {
        !of_kind(e, "sign_in").is_empty()
    });
    let signed = of_kind(&entries, "sign_in");
    assert_eq!(
        (
            &signed[0]["transport"],
            &signed[0]["ok"],
            &signed[0]["user"]
        ),
        (&Value::from("websocket"), &Value::from(true), &Value::Null)
    );
    web.stop().await;

    let (config, _token) = common::config_with_user("ivy", "chat");
    let irc = TestServer::start_with_irc(config, true).await;
    let addr = irc.irc_addr.unwrap();
    // A wrong password, then an anonymous registration: each is one sign-in.
    tokio::task::spawn_blocking(move || {
        for hello in [
            "PASS ivy:wrong\r\nNICK ivy1\r\nUSER i 0 * :i\r\n",
            "NICK guest1\r\nUSER g 0 * :g\r\n",
        ] {
            let mut tcp = TcpStream::connect(addr).unwrap();
            tcp.set_read_timeout(Some(WAIT)).unwrap();
            tcp.write_all(hello.as_bytes()).unwrap();
            let mut seen = String::new();
            let mut buf = [0u8; 4096];
            // Until the door answered the sign-in: a welcome (001) or a refusal (464).
            while !seen.contains(" 001 ") && !seen.contains(" 464 ") {
                let n = tcp.read(&mut buf).unwrap();
                assert!(n > 0, "the IRC door closed without answering: {seen}");
                seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }
    })
    .await
    .unwrap();
    let entries = entries_when(&irc.dir.path().join("state/audit.log"), |e| {
        of_kind(e, "sign_in").len() >= 2
    });
    let signed = of_kind(&entries, "sign_in");
    assert!(signed.iter().all(|e| e["transport"] == "irc"), "{signed:?}");
    assert!(
        signed
            .iter()
            .any(|e| e["user"] == "ivy" && e["ok"] == false),
        "{signed:?}"
    );
    assert!(
        signed
            .iter()
            .any(|e| e["user"].is_null() && e["ok"] == true),
        "{signed:?}"
    );
    irc.stop().await;
}

/// A failed sign-in keeps only the start of the name the client claimed: an unauthenticated
/// client cannot fill the log (or its queue) with names as long as its frames.
#[tokio::test]
async fn a_long_claimed_name_is_kept_short() {
    use ferry::protocol::{Hello, Message, Proof};
    let server = TestServer::start_plaintext(ServerConfig::default()).await;
    let mut conn = common::raw_plaintext(server.addr).await;
    let claimed = "x".repeat(10_000);
    conn.write_message(&Message::Hello(Hello {
        client: "test".into(),
        user: Some(claimed.clone()),
        nonce: Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into()),
        keys: Vec::new(),
    }))
    .await
    .unwrap();
    assert!(matches!(
        conn.read_message().await.unwrap(),
        Message::Challenge(_)
    ));
    conn.write_message(&Message::Proof(Proof {
        proof: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into(),
    }))
    .await
    .unwrap();
    assert!(matches!(
        conn.read_message().await.unwrap(),
        Message::Error(_)
    ));
    let entries = entries_when(&server.dir.path().join("state/audit.log"), |e| {
        !of_kind(e, "sign_in").is_empty()
    });
    let failed = of_kind(&entries, "sign_in")[0];
    assert_eq!(failed["ok"], false);
    assert_eq!(
        failed["user"].as_str().unwrap(),
        &claimed[..ferry::audit::CLAIMED_NAME_CHARS]
    );
    server.stop().await;
}

/// A refused request is in the log, not only sign-ins: who, what, why — a read-only user's
/// put, mkdir, rm and mv, and an exec without the permission.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_requests_are_recorded_with_who_what_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let token = ferry_user(&config, &["add", "reader", "--allow", "chat,read"])
        .trim()
        .to_string();
    let server = ServerProcess::start(&["--plaintext", "--config", config.to_str().unwrap()]);
    std::fs::write(server.root.join("there.txt"), "x").unwrap();
    let log = server.dir.path().join("state/audit.log");
    let home = server.dir.path().join("client");
    let ferry = |args: &[&str]| {
        let mut cmd = ferry_bin(&home);
        cmd.arg(args[0])
            .args([
                "--server",
                &server.addr.to_string(),
                "--plaintext",
                "--token",
                &token,
            ])
            .args(&args[1..]);
        cmd
    };
    let local = dir.path().join("up.txt");
    std::fs::write(&local, "up").unwrap();
    let attempts: [&[&str]; 5] = [
        &["put", local.to_str().unwrap(), "up.txt"],
        &["mkdir", "docs"],
        &["rm", "there.txt"],
        &["mv", "there.txt", "moved.txt"],
        &["exec", "--", "true"],
    ];
    for args in attempts {
        let out = output(ferry(args)).await;
        assert!(!out.status.success(), "{args:?} was refused");
    }
    let entries = entries_when(&log, |e| of_kind(e, "refused").len() >= 5);
    let refused = of_kind(&entries, "refused");
    for (request, target) in [
        ("put", "up.txt"),
        ("mkdir", "docs"),
        ("remove", "there.txt"),
        ("rename", "there.txt -> moved.txt"),
        ("exec", "true"),
    ] {
        let entry = refused
            .iter()
            .find(|e| e["request"] == request)
            .unwrap_or_else(|| panic!("no refused {request} in {refused:?}"));
        assert_eq!(entry["user"], "reader");
        assert_eq!(entry["address"], "127.0.0.1");
        assert_eq!(entry["target"], target, "{entry}");
        assert_eq!(entry["code"], "permission_denied", "{entry}");
        assert!(
            entry["reason"].as_str().unwrap().contains("permission"),
            "{entry}"
        );
    }
    let mut read = ferry_bin(&home);
    read.args(["audit", "--file"]).arg(&log);
    let out = output(read).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines().any(|l| l.contains("reader@127.0.0.1")
            && l.contains("mkdir docs refused (permission_denied)")),
        "{text}"
    );
}

/// Every line of every log file, parsed (a flood's log is read whole).
fn all_entries(log: &Path) -> Vec<Value> {
    ferry::audit::log_files(log)
        .iter()
        .flat_map(|file| {
            std::fs::read_to_string(file)
                .unwrap()
                .lines()
                .filter(|l| !l.is_empty())
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// No actor can flush the record of what it did out of the log: a user with exec running
/// commands with huge argvs, a write-only user pipelining thousands of renames, and anonymous
/// sign-ins from one address — after all three, the entries from before are still there; what
/// went beyond each actor's share is counted, and what was too long is cut with its length and
/// hash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_any_kind_of_user_cannot_erase_earlier_entries() {
    let (mut config, runner) = common::config_with_user("runner", "exec");
    let (with_mover, mover) = common::config_with_user("mover", "write");
    config.users.extend(with_mover.users);
    // A small disk budget, so a flood would rotate everything away if it could.
    config.audit.rotate_bytes = 64 * 1024;
    config.audit.keep = 2;
    let server = TestServer::start_plaintext(config).await;
    let log = server.dir.path().join("state/audit.log");
    std::fs::write(server.dir.path().join("root/a"), "a").unwrap();

    // Before the flood: one entry of each actor.
    let exec = |argv: Vec<String>| {
        let server = &server;
        let runner = runner.clone();
        async move {
            let mut conn = server.client(Some(runner)).await.into_connection();
            conn.write_message(&ferry::protocol::Message::Exec(ferry::protocol::Exec {
                argv,
                shell: false,
                tty: None,
                timeout_ms: None,
            }))
            .await
            .unwrap();
            loop {
                let Some(ferry::protocol::Frame::Message(body)) = conn.read_frame().await.unwrap()
                else {
                    continue; // the command's output
                };
                match ferry::protocol::Message::parse(&body).unwrap() {
                    ferry::protocol::Message::ExecExit(_) => break,
                    ferry::protocol::Message::Error(e) => panic!("{e:?}"),
                    _ => {}
                }
            }
        }
    };
    exec(vec!["echo".into(), "before-the-flood".into()]).await;
    let mut moves = server.client(Some(mover.clone())).await.into_connection();
    moves
        .write_message(&ferry::protocol::Message::Mkdir(ferry::protocol::Mkdir {
            path: "marker-dir".into(),
            mode: None,
            mtime_ns: None,
        }))
        .await
        .unwrap();
    moves.read_message().await.unwrap();
    entries_when(&log, |e| {
        of_kind(e, "exec").len() == 1 && of_kind(e, "mkdir").len() == 1
    });

    // The flood. Commands with a 100 KiB argument each (Linux takes 128 KiB at most).
    for _ in 0..100 {
        exec(vec!["true".into(), "x".repeat(100 * 1024)]).await;
    }
    // Renames, pipelined.
    const RENAMES: usize = 5000;
    for i in 0..RENAMES {
        let (from, to) = if i % 2 == 0 { ("a", "b") } else { ("b", "a") };
        moves
            .write_message(&ferry::protocol::Message::Rename(ferry::protocol::Rename {
                from: from.into(),
                to: to.into(),
            }))
            .await
            .unwrap();
    }
    for _ in 0..RENAMES {
        moves.read_message().await.unwrap();
    }
    // Anonymous sign-ins from one address.
    for _ in 0..500 {
        drop(server.client(None).await);
    }
    assert!(server.state.audit.flush(WAIT).await);
    // The counts of what went beyond each share are written within a second of it.
    let entries = {
        let deadline = Instant::now() + WAIT;
        loop {
            let entries = all_entries(&log);
            let repeated: Vec<&str> = of_kind(&entries, "repeated")
                .iter()
                .filter_map(|e| e["of"].as_str())
                .collect();
            if ["move", "sign_in"].iter().all(|k| repeated.contains(k)) {
                break entries;
            }
            assert!(
                Instant::now() < deadline,
                "no repeated entries: {repeated:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };

    // Everything from before is still there.
    let before = of_kind(&entries, "exec");
    assert!(
        before
            .iter()
            .any(|e| e["argv"] == serde_json::json!(["echo", "before-the-flood"])),
        "the first command's entry was pushed out"
    );
    assert!(
        of_kind(&entries, "mkdir")
            .iter()
            .any(|e| e["path"] == "marker-dir"),
        "the mkdir before the flood was pushed out"
    );
    // Each flood is counted, not lost: one by one up to a share, then in counts.
    let counted = |kind: &str| -> u64 {
        of_kind(&entries, "repeated")
            .iter()
            .filter(|e| e["of"] == kind)
            .map(|e| e["count"].as_u64().unwrap())
            .sum()
    };
    let moved = of_kind(&entries, "move").len() as u64;
    assert_eq!(moved + counted("move"), RENAMES as u64);
    assert!(moved < 1000, "{moved} renames written one by one");
    // The huge argvs are cut, with their length and hash.
    let huge = before
        .iter()
        .find(|e| e["argv"][0] == "true")
        .expect("a flooding command is recorded");
    let cut = &huge["cut"][0];
    assert_eq!(cut["field"], "argv");
    assert_eq!(cut["bytes"], 5 + 100 * 1024 + 1);
    assert_eq!(
        cut["blake3"].as_str().unwrap(),
        blake3::hash(format!("true\0{}\0", "x".repeat(100 * 1024)).as_bytes())
            .to_hex()
            .as_str()
    );
    let bytes: u64 = ferry::audit::log_files(&log)
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    assert!(
        bytes < 4 << 20,
        "the log holds {bytes} bytes after the flood"
    );
    server.stop().await;
}

/// A damaged log hides nothing: after a line cut short (a kill, a full disk) the next entry
/// starts on a fresh line, and the reader skips what it cannot parse (a line cut inside a
/// UTF-8 character included), says how many, and shows every later entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_log_is_read_past_and_the_next_entry_starts_a_fresh_line() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!("[audit]\npath = {:?}\n", log.to_str().unwrap()),
    )
    .unwrap();
    let good = r#"{"time":"2026-12-01T10:00:00.000Z","kind":"mkdir","user":"alice","address":"127.0.0.1","path":"first"}"#;
    let mut damaged = Vec::new();
    damaged.extend_from_slice(good.as_bytes());
    damaged.push(b'\n');
    // A line cut inside a character, then one cut short with no newline at all.
    damaged.extend_from_slice(
        b"{\"time\":\"2026-12-01T10:00:01.000Z\",\"kind\":\"mkdir\",\"path\":\"\xe4\xb8\n",
    );
    damaged.extend_from_slice(br#"{"time":"2026-12-01T10:00:02.000Z","kind":"mk"#);
    std::fs::write(&log, &damaged).unwrap();
    let server = ServerProcess::start(&["--plaintext", "--config", config.to_str().unwrap()]);
    let entries_text = |log: &Path| std::fs::read(log).unwrap();
    let deadline = Instant::now() + WAIT;
    while !String::from_utf8_lossy(&entries_text(&log)).contains("server_start") {
        assert!(
            Instant::now() < deadline,
            "the server never wrote its start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    drop(server);
    let mut read = ferry_bin(dir.path());
    read.args(["audit", "--file"]).arg(&log);
    let out = output(read).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("first"), "{shown}");
    assert!(
        shown.contains("server_start"),
        "the entry after the damage is hidden: {shown}"
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("skipped 2 lines"), "{said}");
    let mut json = ferry_bin(dir.path());
    json.args(["audit", "--json", "--file"]).arg(&log);
    let out = output(json).await;
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("server_start"));
}
