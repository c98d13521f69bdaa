//! The IRC door against real clients: the `irc` crate (an IRC client library) and raw lines
//! for what a library would never send, with ferry's CLI and library members in the same
//! rooms. A real server on 127.0.0.1:0 per test.

mod common;

use common::{TestServer, WAIT, config_with_user};
use ferry::client::chat::{ChatTarget, join};
use ferry::config::ServerConfig;
use ferry::protocol::{ChatMessage, ChatNotice, Message};
use futures_util::StreamExt;
use irc::client::ClientStream;
use irc::client::prelude::{Capability, Client as IrcClient, Command, Config, Response};
use irc::proto::Message as IrcMessage;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

async fn irc_server(config: ServerConfig) -> TestServer {
    TestServer::start_with_irc(config, true).await
}

/// An `irc` crate client, registered (with `password` as PASS when given).
async fn irc_client(
    server: &TestServer,
    nick: &str,
    password: Option<String>,
) -> (IrcClient, Incoming) {
    let config = Config {
        nickname: Some(nick.to_string()),
        server: Some("127.0.0.1".to_string()),
        port: Some(server.irc_addr.unwrap().port()),
        password,
        ..Config::default()
    };
    let mut client = IrcClient::from_config(config).await.unwrap();
    client.identify().unwrap();
    let stream = drive(client.stream().unwrap());
    (client, stream)
}

/// The client's messages, read by a task of their own: the `irc` crate writes what the client
/// sends only while its stream is polled, so it must be polled all the time.
fn drive(mut stream: ClientStream) -> Incoming {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(message) = stream.next().await {
            if tx
                .send(message.expect("a well-formed IRC message"))
                .is_err()
            {
                break;
            }
        }
    });
    rx
}

type Incoming = tokio::sync::mpsc::UnboundedReceiver<IrcMessage>;

/// The next message that `pick` accepts (others are skipped); panics after WAIT.
async fn wait_for<T>(
    stream: &mut Incoming,
    what: &str,
    mut pick: impl FnMut(&IrcMessage) -> Option<T>,
) -> T {
    let mut seen = Vec::new();
    let found = tokio::time::timeout(WAIT, async {
        while let Some(message) = stream.recv().await {
            if let Some(found) = pick(&message) {
                return Some(found);
            }
            seen.push(message.to_string());
        }
        None
    })
    .await;
    match found {
        Ok(Some(found)) => found,
        _ => panic!("never saw {what}; saw {seen:?}"),
    }
}

fn response(message: &IrcMessage, code: Response) -> Option<Vec<String>> {
    match &message.command {
        Command::Response(got, args) if *got == code => Some(args.clone()),
        _ => None,
    }
}

fn privmsg(message: &IrcMessage) -> Option<(String, String, String)> {
    match &message.command {
        Command::PRIVMSG(target, text) => Some((
            message.source_nickname()?.to_string(),
            target.clone(),
            text.clone(),
        )),
        _ => None,
    }
}

/// Raw lines over TCP, for what a library would never send.
struct Raw {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl Raw {
    async fn connect(server: &TestServer) -> Raw {
        let (read, writer) = TcpStream::connect(server.irc_addr.unwrap())
            .await
            .unwrap()
            .into_split();
        Raw {
            reader: BufReader::new(read),
            writer,
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.unwrap();
    }

    /// Lines until one contains `needle`; `None` when the server closed first.
    async fn until(&mut self, needle: &str) -> Option<String> {
        tokio::time::timeout(WAIT, async {
            let mut line = String::new();
            loop {
                line.clear();
                if self.reader.read_line(&mut line).await.ok()? == 0 {
                    return None;
                }
                if line.contains(needle) {
                    return Some(line.trim_end().to_string());
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("neither {needle:?} nor a close in time"))
    }

    async fn register(server: &TestServer, nick: &str) -> Raw {
        let mut raw = Raw::connect(server).await;
        raw.send(format!("NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\n").as_bytes())
            .await;
        raw.until(" 376 ").await.expect("registered");
        raw
    }
}

/// A native member of `room` through the library client (the CLI's own peer).
async fn native(
    server: &TestServer,
    room: &str,
    nick: &str,
) -> (
    ferry::client::chat::ChatSender,
    ferry::client::chat::ChatReceiver,
) {
    let client = server.client(None).await;
    let (tx, rx, _) = join(
        client.into_connection(),
        ChatTarget::Room(room.into()),
        nick,
        false,
    )
    .await
    .unwrap();
    (tx, rx)
}

async fn next_line(
    rx: &mut ferry::client::chat::ChatReceiver,
    mut pick: impl FnMut(&Message) -> bool,
) -> Message {
    tokio::time::timeout(WAIT, async {
        loop {
            let message = rx.next().await.unwrap().expect("the member stays");
            if pick(&message) {
                return message;
            }
        }
    })
    .await
    .expect("the native member got it")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_irc_client_registers_and_is_told_the_limits() {
    let server = irc_server(ServerConfig::default()).await;
    let (_client, mut stream) = irc_client(&server, "ircy", None).await;
    let welcome = wait_for(&mut stream, "001", |m| response(m, Response::RPL_WELCOME)).await;
    assert_eq!(welcome[0], "ircy");
    let isupport = wait_for(&mut stream, "005", |m| response(m, Response::RPL_ISUPPORT)).await;
    for token in [
        "CHANTYPES=#",
        "NICKLEN=32",
        "CHANNELLEN=65",
        "LINELEN=512",
        "UTF8ONLY",
    ] {
        assert!(
            isupport.iter().any(|t| t == token),
            "{token} in {isupport:?}"
        );
    }
    wait_for(&mut stream, "end of MOTD", |m| {
        response(m, Response::RPL_ENDOFMOTD)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_and_direct_messages_go_both_ways_between_irc_and_native_members() {
    let server = irc_server(ServerConfig::default()).await;
    let (mut tx, mut rx) = native(&server, "harbour", "deckhand").await;
    let (client, mut stream) = irc_client(&server, "ircy", None).await;
    wait_for(&mut stream, "end of MOTD", |m| {
        response(m, Response::RPL_ENDOFMOTD)
    })
    .await;
    client.send_join("#harbour").unwrap();
    let names = wait_for(&mut stream, "353", |m| response(m, Response::RPL_NAMREPLY)).await;
    assert!(
        names.last().unwrap().contains("deckhand") && names.last().unwrap().contains("ircy"),
        "{names:?}"
    );
    next_line(
        &mut rx,
        |m| matches!(m, Message::ChatNotice(ChatNotice { text, .. }) if text == "ircy joined"),
    )
    .await;

    client.send_privmsg("#harbour", "hello from irc").unwrap();
    let got = next_line(&mut rx, |m| matches!(m, Message::ChatMessage(_))).await;
    assert!(
        matches!(&got, Message::ChatMessage(ChatMessage { from, text, room: Some(room), .. })
        if from == "ircy" && text == "hello from irc" && room == "harbour"),
        "{got:?}"
    );

    common::say_acked(&mut tx, &mut rx, "hello from ferry").await;
    let (from, target, text) = wait_for(&mut stream, "the native line", privmsg).await;
    assert_eq!(
        (from.as_str(), target.as_str(), text.as_str()),
        ("deckhand", "#harbour", "hello from ferry")
    );

    // A ferry line longer than an IRC line arrives whole, in pieces.
    let long = "λ".repeat(1500);
    common::say_acked(&mut tx, &mut rx, &long).await;
    let mut rebuilt = String::new();
    while rebuilt.len() < long.len() {
        let (_, _, piece) = wait_for(&mut stream, "a piece of the long line", privmsg).await;
        rebuilt.push_str(&piece);
    }
    assert_eq!(rebuilt, long);

    // Direct messages, both ways.
    tx.direct("ircy", "psst").await.unwrap();
    let (from, target, text) = wait_for(&mut stream, "the direct message", privmsg).await;
    assert_eq!(
        (from.as_str(), target.as_str(), text.as_str()),
        ("deckhand", "ircy", "psst")
    );
    client.send_privmsg("deckhand", "psst back").unwrap();
    let got = next_line(&mut rx, |m| {
        matches!(m, Message::ChatMessage(ChatMessage { to: Some(_), .. }))
    })
    .await;
    assert!(
        matches!(&got, Message::ChatMessage(ChatMessage { from, text, .. }) if from == "ircy" && text == "psst back"),
        "{got:?}"
    );

    // PART is a leave the room sees.
    client.send(Command::PART("#harbour".into(), None)).unwrap();
    next_line(
        &mut rx,
        |m| matches!(m, Message::ChatNotice(ChatNotice { text, .. }) if text == "ircy left"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bot_answers_over_irc_and_is_a_user() {
    let server = irc_server(ServerConfig::default()).await;
    let (client, mut stream) = irc_client(&server, "ircy", None).await;
    wait_for(&mut stream, "end of MOTD", |m| {
        response(m, Response::RPL_ENDOFMOTD)
    })
    .await;
    client.send_privmsg("babyshen", "我").unwrap();
    let (from, _, text) = wait_for(&mut stream, "the bot's answer", privmsg).await;
    assert_eq!((from.as_str(), text.as_str()), ("babyshen", "我好"));
    client
        .send(Command::WHOIS(None, "babyshen".into()))
        .unwrap();
    wait_for(&mut stream, "311", |m| response(m, Response::RPL_WHOISUSER)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_plain_signs_in_and_a_wrong_secret_is_904() {
    let (config, token) = config_with_user("alice", "chat");
    let server = irc_server(config).await;
    for (secret, ok) in [
        (token.secret().to_string(), true),
        ("wrong".to_string(), false),
    ] {
        let config = Config {
            nickname: Some("alice".to_string()),
            server: Some("127.0.0.1".to_string()),
            port: Some(server.irc_addr.unwrap().port()),
            ..Config::default()
        };
        let mut client = IrcClient::from_config(config).await.unwrap();
        let mut stream = drive(client.stream().unwrap());
        client.send_cap_req(&[Capability::Sasl]).unwrap();
        client.send_sasl_plain().unwrap();
        wait_for(&mut stream, "AUTHENTICATE +", |m| {
            matches!(&m.command, Command::AUTHENTICATE(p) if p == "+").then_some(())
        })
        .await;
        use base64::Engine;
        let payload =
            base64::engine::general_purpose::STANDARD.encode(format!("\0alice\0{secret}"));
        client.send_sasl(payload).unwrap();
        if ok {
            let logged =
                wait_for(&mut stream, "900", |m| response(m, Response::RPL_LOGGEDIN)).await;
            assert_eq!(logged[2], "alice");
            wait_for(&mut stream, "903", |m| {
                response(m, Response::RPL_SASLSUCCESS)
            })
            .await;
            client.identify().unwrap();
            // The user's own name is its nick: reserved for it, and it is alice.
            wait_for(&mut stream, "001", |m| response(m, Response::RPL_WELCOME)).await;
        } else {
            wait_for(&mut stream, "904", |m| response(m, Response::ERR_SASLFAIL)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_pass_is_464_and_a_close_and_the_right_one_signs_in() {
    let (config, token) = config_with_user("alice", "chat");
    let server = irc_server(common::fast_failures(config)).await;
    let (_client, mut stream) = irc_client(&server, "alice", Some("alice:wrong".into())).await;
    wait_for(&mut stream, "464", |m| {
        response(m, Response::ERR_PASSWDMISMATCH)
    })
    .await;
    wait_for(&mut stream, "ERROR", |m| {
        matches!(m.command, Command::ERROR(_)).then_some(())
    })
    .await;

    let (_client, mut stream) = irc_client(&server, "alice", Some(token.to_string())).await;
    wait_for(&mut stream, "001", |m| response(m, Response::RPL_WELCOME)).await;
    // A nick that is a configured user's name is that user's only: an anonymous client
    // cannot take it.
    let mut raw = Raw::connect(&server).await;
    raw.send(b"NICK alice\r\nUSER x 0 * :x\r\n").await;
    assert!(
        raw.until(" 433 ").await.is_some(),
        "433 for a taken or reserved nick"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_the_reference_s_errors_and_the_client_goes_on() {
    let server = irc_server(ServerConfig::default()).await;
    let mut raw = Raw::connect(&server).await;
    // Before registering: 451, and the connection stays.
    raw.send(b"PRIVMSG #x :hi\r\n").await;
    assert!(raw.until(" 451 ").await.is_some());
    raw.send(b"NICK raw\r\nUSER raw 0 * :raw\r\n").await;
    raw.until(" 376 ").await.unwrap();
    // A line over the limit: 417, skipped whole.
    let mut long = b"PRIVMSG #x :".to_vec();
    long.extend(std::iter::repeat_n(b'x', 9000));
    long.extend_from_slice(b"\r\n");
    raw.send(&long).await;
    assert!(raw.until(" 417 ").await.is_some());
    // Not UTF-8: refused, never replaced.
    raw.send(b"PRIVMSG #x :\xff\xfe\r\n").await;
    assert!(raw.until("INVALID_UTF8").await.is_some());
    // An unknown command: 421, never a disconnect.
    raw.send(b"FROBNICATE now\r\n").await;
    assert!(raw.until(" 421 ").await.unwrap().contains("FROBNICATE"));
    raw.send(b"PING still-here\r\n").await;
    assert!(raw.until("PONG").await.unwrap().contains("still-here"));
    // Sending to a channel it is not in.
    raw.send(b"PRIVMSG #nowhere :hi\r\n").await;
    assert!(raw.until(" 404 ").await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_registers_is_closed_at_the_handshake_timeout() {
    let mut config = ServerConfig::default();
    config.limits.handshake_timeout_ms = 300;
    let server = irc_server(config).await;
    let mut raw = Raw::connect(&server).await;
    raw.send(b"NICK slow\r\n").await;
    let error = raw.until("ERROR").await;
    assert!(error.unwrap().contains("registration timed out"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_comes_as_a_batch_with_times_and_echo_message_echoes() {
    let server = irc_server(ServerConfig::default()).await;
    let (mut tx, mut rx) = native(&server, "log", "scribe").await;
    common::say_acked(&mut tx, &mut rx, "first").await;
    common::say_acked(&mut tx, &mut rx, "second").await;
    let mut raw = Raw::connect(&server).await;
    raw.send(b"CAP LS 302\r\n").await;
    assert!(raw.until("CAP * LS").await.unwrap().contains("batch"));
    raw.send(
        b"CAP REQ :batch server-time echo-message\r\nNICK hist\r\nUSER h 0 * :h\r\nCAP END\r\n",
    )
    .await;
    raw.until(" 376 ").await.unwrap();
    raw.send(b"JOIN #log\r\n").await;
    let open = raw.until("BATCH +").await.unwrap();
    let id = open
        .split_whitespace()
        .nth(2)
        .unwrap()
        .trim_start_matches('+')
        .to_string();
    let first = raw.until("first").await.unwrap();
    assert!(first.starts_with(&format!("@batch={id};time=")), "{first}");
    raw.until("second").await.unwrap();
    assert!(
        raw.until("BATCH")
            .await
            .unwrap()
            .contains(&format!("-{id}"))
    );
    raw.send(b"PRIVMSG #log :echoed\r\n").await;
    assert!(
        raw.until("PRIVMSG #log :echoed")
            .await
            .unwrap()
            .starts_with("@time=")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_dropped_and_the_room_goes_on() {
    let mut config = ServerConfig::default();
    config.chat.send_timeout_ms = 300;
    config.chat.flood_burst = 100_000;
    config.chat.flood_per_second = 100_000.0;
    let server = irc_server(config).await;
    let (mut tx, mut rx) = native(&server, "busy", "talker").await;
    let mut stuck = Raw::register(&server, "stuck").await;
    stuck.send(b"JOIN #busy\r\n").await;
    stuck.until(" 366 ").await.unwrap();
    // `stuck` reads no more; the room fills its socket until a write waits too long.
    let stop = tokio_util::sync::CancellationToken::new();
    let sending = tokio::spawn({
        let stop = stop.clone();
        async move {
            let line = "z".repeat(4000);
            while !stop.is_cancelled() {
                tx.say(&line).await.unwrap();
            }
            tx
        }
    });
    next_line(&mut rx, |m| {
        matches!(m, Message::ChatNotice(ChatNotice { text, .. }) if text == "stuck was dropped: not reading")
    })
    .await;
    stop.cancel();
    let mut tx = sending.await.unwrap();
    // The room and its other members go on.
    common::say_acked(&mut tx, &mut rx, "still here").await;
    drop(stuck);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn irc_over_tls_presents_the_identity_ferry_clients_pin() {
    let server = TestServer::start_with_irc(ServerConfig::default(), false).await;
    let tcp = TcpStream::connect(server.irc_addr.unwrap()).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(ferry::tls::rustls_config::client_config());
    let name = rustls_pki_types::ServerName::try_from("ferry").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    let presented = ferry::tls::fingerprint(&tls.get_ref().1.peer_certificates().unwrap()[0]);
    assert_eq!(Some(presented.as_str()), server.fingerprint.as_deref());
    let (read, mut write) = tokio::io::split(tls);
    write
        .write_all(b"NICK tls\r\nUSER t 0 * :t\r\n")
        .await
        .unwrap();
    let mut lines = BufReader::new(read).lines();
    let welcome = tokio::time::timeout(WAIT, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains(" 001 ") {
                return line;
            }
        }
        panic!("closed before 001")
    })
    .await
    .unwrap();
    assert!(welcome.contains("Welcome to ferry"));
}

#[tokio::test]
async fn a_plaintext_irc_door_opens_only_on_loopback() {
    let bound = common::bind_plaintext_doors(None, Some("0.0.0.0:0")).await;
    let Err(e) = bound else {
        panic!("a plaintext IRC door beyond loopback must be refused");
    };
    assert!(e.to_string().contains("only listen on loopback"), "{e}");
}

/// `ferry chat` as a process, its stdout read line by line.
struct CliMember {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl CliMember {
    fn start(server: &common::ServerProcess, room: &str, nick: &str) -> CliMember {
        use std::io::BufRead;
        let mut child = common::ferry_bin(&server.dir.path().join("home"))
            .args(["chat", "--server", &server.addr.to_string(), "--plaintext"])
            .args(["--room", room, "--nick", nick])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Lines (stdout) and status (stderr, where "in room" is said) in one stream.
        let (tx, lines) = std::sync::mpsc::channel();
        let outputs: [Box<dyn std::io::Read + Send>; 2] = [
            Box::new(child.stdout.take().unwrap()),
            Box::new(child.stderr.take().unwrap()),
        ];
        for output in outputs {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(output)
                    .lines()
                    .map_while(Result::ok)
                {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        CliMember { child, lines }
    }

    fn say(&mut self, text: &str) {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{text}").unwrap();
        stdin.flush().unwrap();
    }

    fn wait_for(&self, text: &str) -> String {
        let deadline = std::time::Instant::now() + WAIT;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(text) => return line,
                Ok(line) => seen.push(line),
                Err(_) => break,
            }
        }
        panic!("the CLI member never printed {text:?}; it printed {seen:?}")
    }
}

impl Drop for CliMember {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// irssi is there, or the test says how to get it (`./test.sh` installs it): a test of what
/// irssi shows never passes without irssi.
fn irssi_is_installed() {
    let found = std::process::Command::new("irssi")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    assert!(
        found,
        "the irssi tests need irssi: run ./test.sh, which installs it (apt-get install irssi)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn irssi_in_a_terminal_chats_with_a_cli_member() {
    irssi_is_installed();
    let server = common::ServerProcess::start(&["--plaintext", "--irc", "127.0.0.1:0"]);
    let irc = server
        .startup
        .iter()
        .find_map(|line| line.split("IRC door on ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the server prints its IRC door")
        .to_string();
    let (host, port) = irc.rsplit_once(':').unwrap();
    let mut cli = CliMember::start(&server, "harbour", "cli");
    cli.wait_for("in room harbour");
    let home = tempfile::tempdir().unwrap();
    let tmux = common::tmux::Tmux::start(&format!(
        "irssi --home='{}' -c {host} -p {port} -n irssiuser",
        home.path().display()
    ));
    tmux.wait_for("End of /MOTD").await;
    tmux.type_line("/join #harbour");
    tmux.wait_for("#harbour").await;
    cli.wait_for("irssiuser joined");
    tmux.type_line("hello from irssi");
    let line = cli.wait_for("hello from irssi");
    assert!(line.contains("irssiuser"), "{line}");
    cli.say("hello from the cli");
    let screen = tmux.wait_for("hello from the cli").await;
    assert!(screen.contains("cli"), "{screen}");
    tmux.type_line("/quit");
    cli.wait_for("irssiuser left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_irc_guesses_are_stopped_by_the_failure_limit() {
    let (mut config, _) = config_with_user("alice", "chat");
    config.limits.auth_max_failures = 3;
    config.limits.auth_failure_delay_ms = 1;
    let server = irc_server(config).await;
    let mut guesses = Vec::new();
    for i in 0..60 {
        let mut raw = Raw::connect(&server).await;
        guesses.push(tokio::spawn(async move {
            raw.send(format!("PASS alice:wrong{i}\r\nNICK g{i}\r\nUSER g 0 * :g\r\n").as_bytes())
                .await;
            raw.until(" 464 ").await.expect("a 464")
        }));
    }
    let (mut checked, mut limited) = (0, 0);
    for guess in guesses {
        let reply = guess.await.unwrap();
        if reply.contains("too many failed logins") {
            limited += 1;
        } else {
            assert!(reply.contains("wrong token or unknown user"), "{reply}");
            checked += 1;
        }
    }
    let most = 3 + server.state.limits.max_handshakes_per_address;
    assert!(
        checked <= most,
        "{checked} guesses were checked; at most {most} may be"
    );
    assert_eq!(checked + limited, 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_limits_hold_for_irc_lines_paced_not_lost_and_too_long_refused() {
    let mut config = ServerConfig::default();
    config.chat.flood_burst = 4;
    config.chat.flood_per_second = 400.0;
    config.chat.max_message_bytes = 100;
    let server = irc_server(config).await;
    let (_tx, mut rx) = native(&server, "paced", "listener").await;
    let mut raw = Raw::register(&server, "chatty").await;
    raw.send(b"JOIN #paced\r\n").await;
    raw.until(" 366 ").await.unwrap();
    // Over the chat's message limit: 417, and nothing reaches the room.
    raw.send(format!("PRIVMSG #paced :{}\r\n", "y".repeat(150)).as_bytes())
        .await;
    assert!(
        raw.until(" 417 ")
            .await
            .unwrap()
            .contains("the limit is 100 bytes")
    );
    // Past the flood burst the lines are read later, never dropped, and stay in order.
    let burst: String = (0..40)
        .map(|i| format!("PRIVMSG #paced :line {i}\r\n"))
        .collect();
    raw.send(burst.as_bytes()).await;
    for i in 0..40 {
        let got = next_line(&mut rx, |m| matches!(m, Message::ChatMessage(_))).await;
        assert!(
            matches!(&got, Message::ChatMessage(ChatMessage { text, .. }) if *text == format!("line {i}")),
            "line {i}: {got:?}"
        );
    }
}

/// No member takes the server's name or a service's, on any door; what an IRC user types to
/// NickServ by habit is answered by the server and reaches no one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_s_and_services_names_are_reserved_and_nickserv_reaches_no_one() {
    let server = irc_server(ServerConfig::default()).await;
    for nick in ["ferry", "NickServ", "chanserv", "ＦＥＲＲＹ"] {
        let client = server.client(None).await;
        let refused = join(
            client.into_connection(),
            ChatTarget::Room("harbour".into()),
            nick,
            false,
        )
        .await;
        match refused {
            Err(e) => assert_eq!(
                common::refusal_code(&e),
                Some(ferry::protocol::ErrorCode::NickInUse),
                "{nick}: {e}"
            ),
            Ok(_) => panic!("a native member took the nick {nick}"),
        }
        let mut raw = Raw::connect(&server).await;
        raw.send(format!("NICK {nick}\r\nUSER u 0 * :u\r\n").as_bytes())
            .await;
        let answer = raw.until(" 433 ").await.expect("nick in use");
        assert!(answer.contains("reserved"), "{answer}");
    }

    let mut ircy = Raw::register(&server, "ircy").await;
    ircy.send(b"PRIVMSG NickServ :IDENTIFY alice:secret-token\r\n")
        .await;
    let answer = ircy.until("NOTICE ircy").await.expect("an answer");
    assert!(
        answer.starts_with(":NickServ!") && answer.contains("reached no one"),
        "{answer}"
    );
}

/// CTCP inside a native member's line reaches IRC clients inert (a DCC offer is text);
/// `/me` still arrives as an ACTION.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctcp_from_other_doors_reaches_irc_clients_inert() {
    let server = irc_server(ServerConfig::default()).await;
    let (mut tx, mut rx) = native(&server, "harbour", "deckhand").await;
    let mut ircy = Raw::register(&server, "ircy").await;
    ircy.send(b"JOIN #harbour\r\n").await;
    ircy.until(" 366 ").await.expect("joined");
    common::say_acked(
        &mut tx,
        &mut rx,
        "\u{1}DCC SEND evil.exe 2130706433 4444 99\u{1}",
    )
    .await;
    let line = ircy.until("PRIVMSG #harbour").await.expect("the line");
    assert!(!line.contains('\u{1}'), "{line:?}");
    assert!(line.contains("\u{2401}DCC SEND evil.exe"), "{line:?}");
    tx.act("waves").await.unwrap();
    let line = ircy.until("PRIVMSG #harbour").await.expect("the action");
    assert!(line.ends_with(":\u{1}ACTION waves\u{1}"), "{line:?}");
}

/// `ISON` (irssi's notify list polls it) names who of a list is online through any door,
/// spelled as they chose, in one 303; `USERHOST` gives `nick=+nick@host`, `-` for an away self.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ison_and_userhost_answer_who_is_online() {
    let server = irc_server(ServerConfig::default()).await;
    let (client, mut stream) = irc_client(&server, "ircy", None).await;
    wait_for(&mut stream, "end of MOTD", |m| {
        response(m, Response::RPL_ENDOFMOTD)
    })
    .await;
    // A member through the CLI's protocol, online by a nick the IRC side spells otherwise.
    let cli = native(&server, "harbour", "Rosa").await;
    client
        .send(Command::ISON(vec![
            "ROSA".into(),
            "nobody".into(),
            "babyshen".into(),
            "ircy".into(),
        ]))
        .unwrap();
    let online = wait_for(&mut stream, "303", |m| response(m, Response::RPL_ISON)).await;
    assert_eq!(online, vec!["ircy", "Rosa babyshen ircy"]);
    client.send(Command::ISON(vec!["nobody".into()])).unwrap();
    let online = wait_for(&mut stream, "303", |m| response(m, Response::RPL_ISON)).await;
    assert_eq!(online, vec!["ircy", ""]);

    client.send(Command::AWAY(Some("lunch".into()))).unwrap();
    client
        .send(Command::USERHOST(vec![
            "ircy".into(),
            "nobody".into(),
            "rosa".into(),
        ]))
        .unwrap();
    let hosts = wait_for(&mut stream, "302", |m| response(m, Response::RPL_USERHOST)).await;
    assert_eq!(hosts, vec!["ircy", "ircy=-ircy@ferry Rosa=+Rosa@ferry"]);
    drop(cli);
}

/// A config with chat users `names` (their tokens, in order), `kept_directs` set.
fn config_with_users(names: &[&str], kept_directs: usize) -> (ServerConfig, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let tokens = names
        .iter()
        .map(|name| {
            ferry::config::add_user(
                &path,
                name,
                ferry::protocol::Permissions::parse_list("chat").unwrap(),
            )
            .unwrap()
            .to_string()
        })
        .collect();
    let mut config = ServerConfig::load(&path, true).unwrap();
    config.chat.kept_directs = kept_directs;
    (config, tokens)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_message_to_someone_signed_out_is_kept_and_reaches_them_on_any_door() {
    let (config, tokens) = config_with_users(&["bob", "dave"], 2);
    let server = irc_server(config).await;

    // From IRC to bob, who is signed out: kept, and the sender is told so (not 401).
    let mut alice = Raw::register(&server, "alice").await;
    alice
        .send(b"PRIVMSG bob :while you were out\r\nPRIVMSG bob :/second\r\n")
        .await;
    let told = alice.until("NOTICE alice").await.expect("alice is told");
    assert!(
        told.contains("bob is not signed in: your message is kept"),
        "{told}"
    );
    // The bound: a third is refused, clearly.
    alice.send(b"PRIVMSG bob :one too many\r\n").await;
    let refused = alice.until("FAIL PRIVMSG").await.expect("refused");
    assert!(
        refused.contains("already has 2 messages waiting"),
        "{refused}"
    );

    // bob joins from the CLI's library client: both, in order, with their times, as history.
    let bob_token: ferry::auth::token::Token = tokens[0].parse().unwrap();
    let client = server.client(Some(bob_token)).await;
    let (bob, mut bob_rx, _) = join(
        client.into_connection(),
        ChatTarget::Room("lobby".into()),
        "bob",
        false,
    )
    .await
    .unwrap();
    let before = std::time::SystemTime::now();
    let mut got = Vec::new();
    while got.len() < 2 {
        if let Message::ChatMessage(m) = next_line(&mut bob_rx, |m| {
            matches!(m, Message::ChatMessage(ChatMessage { to: Some(_), .. }))
        })
        .await
        {
            got.push(m);
        }
    }
    assert_eq!(
        got.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(),
        ["while you were out", "/second"]
    );
    for m in &got {
        assert_eq!((m.from.as_str(), m.history), ("alice", true), "{m:?}");
        let at = humantime::parse_rfc3339(m.at.as_deref().expect("its time")).unwrap();
        assert!(at <= before, "sent before bob joined: {m:?}");
    }

    // From the CLI's library client to dave, signed out; dave signs in over IRC with
    // server-time and gets it with its time.
    let (mut carol, mut carol_rx) = native(&server, "lobby", "carol").await;
    let id = carol.direct("dave", "see you on irc").await.unwrap();
    let notice = next_line(&mut carol_rx, |m| matches!(m, Message::ChatNotice(_))).await;
    assert!(
        matches!(&notice, Message::ChatNotice(ChatNotice { text, .. }) if text.starts_with("dave is not signed in")),
        "{notice:?}"
    );
    next_line(
        &mut carol_rx,
        |m| matches!(m, Message::ChatAck(ferry::protocol::ChatAck { id: got }) if *got == id),
    )
    .await;
    let mut dave = Raw::connect(&server).await;
    dave.send(
        format!(
            "CAP REQ :server-time\r\nPASS {}\r\nNICK dave\r\nUSER dave 0 * :dave\r\nCAP END\r\n",
            tokens[1]
        )
        .as_bytes(),
    )
    .await;
    let line = dave.until("PRIVMSG dave").await.expect("dave gets it");
    assert!(
        line.starts_with("@time=") && line.ends_with(":see you on irc") && line.contains(":carol!"),
        "{line}"
    );
    // Handed over once: a second sign-in gets nothing more (bob again, under a free nick,
    // with a line to mark the end).
    drop((bob, bob_rx));
    let client = server.client(Some(tokens[0].parse().unwrap())).await;
    let (mut bob, mut bob_rx, _) = ferry::client::chat::join_picking_nick(
        client.into_connection(),
        ChatTarget::Room("lobby".into()),
        "bob",
        false,
    )
    .await
    .unwrap();
    let mark = bob.say("mark").await.unwrap();
    let first = next_line(&mut bob_rx, |m| {
        matches!(m, Message::ChatMessage(_) | Message::ChatAck(_))
    })
    .await;
    assert!(
        matches!(first, Message::ChatAck(ferry::protocol::ChatAck { id }) if id == mark),
        "nothing kept is delivered twice: {first:?}"
    );
}

impl Raw {
    /// Every line up to and including the first that contains `needle`.
    async fn lines_until(&mut self, needle: &str) -> Vec<String> {
        self.lines_until_one(needle, |l| l.contains(needle)).await
    }

    /// Every line up to and including the first that `last` accepts (`what` names it).
    async fn lines_until_one(&mut self, what: &str, last: impl Fn(&str) -> bool) -> Vec<String> {
        let needle = what;
        let mut lines = Vec::new();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let mut line = String::new();
            match tokio::time::timeout_at(deadline, self.reader.read_line(&mut line)).await {
                Ok(Ok(0)) | Ok(Err(_)) => panic!("closed before {needle:?}: {lines:?}"),
                Ok(Ok(_)) => {}
                Err(_) => panic!("no {needle:?} in time: {lines:?}"),
            }
            let line = line.trim_end().to_string();
            let done = last(&line);
            lines.push(line);
            if done {
                return lines;
            }
        }
    }

    /// The texts of the PRIVMSGs of the next `chathistory` batch, checking its frame: opened
    /// and closed with the same id, every line in it tagged with it and with its time. (The
    /// last parameter may come as a trailing one, `BATCH :-ID`: the same to an IRC parser.)
    async fn history_page(&mut self) -> Vec<String> {
        let lines = self
            .lines_until_one("the batch's end", |l| {
                l.contains(" BATCH -") || l.contains(" BATCH :-")
            })
            .await;
        let open = lines
            .iter()
            .position(|l| l.contains(" BATCH +"))
            .unwrap_or_else(|| panic!("a batch: {lines:?}"));
        let id = lines[open].split(" BATCH +").nth(1).unwrap();
        let id = id.split(' ').next().unwrap().to_string();
        assert!(
            lines[open].ends_with(" chathistory #scroll")
                || lines[open].ends_with(" chathistory :#scroll"),
            "{}",
            lines[open]
        );
        let end = lines.last().unwrap();
        assert!(
            end.ends_with(&format!("BATCH -{id}")) || end.ends_with(&format!("BATCH :-{id}")),
            "{end}"
        );
        lines[open + 1..lines.len() - 1]
            .iter()
            .map(|l| {
                assert!(
                    l.starts_with(&format!("@batch={id};time=")),
                    "tagged with the batch and its time: {l}"
                );
                l.rsplit(" :").next().unwrap().to_string()
            })
            .collect()
    }
}

/// Waits (without sleeping) until the clock is past the millisecond of `since`: lines said
/// after it get a later time.
fn next_millisecond(since: std::time::SystemTime) {
    let ms =
        |t: std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
    while ms(std::time::SystemTime::now()) <= ms(since) {
        std::hint::spin_loop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chathistory_pages_back_as_the_spec_s_examples_do() {
    let server = irc_server(ServerConfig::default()).await;
    let (mut nat, mut nat_rx) = native(&server, "scroll", "nat").await;
    for text in ["one", "two", "three", "four", "five"] {
        next_millisecond(std::time::SystemTime::now());
        common::say_acked(&mut nat, &mut nat_rx, text).await;
    }
    let mut irc = Raw::connect(&server).await;
    irc.send(
        b"CAP REQ :server-time batch draft/chathistory\r\nNICK reader\r\nUSER r 0 * :r\r\nCAP END\r\n",
    )
    .await;
    let welcome = irc.lines_until(" 376 ").await;
    assert!(
        welcome
            .iter()
            .any(|l| l.contains(" 005 ") && l.contains("CHATHISTORY=100")),
        "ISUPPORT says the page size: {welcome:?}"
    );
    // The join replays the history in a batch; each line's time is its reference.
    irc.send(b"JOIN #scroll\r\n").await;
    let joined = irc.history_page().await;
    assert_eq!(joined, ["one", "two", "three", "four", "five"]);
    irc.send(b"CHATHISTORY LATEST #scroll * 5\r\n").await;
    let lines = irc
        .lines_until_one("the batch's end", |l| l.contains(" BATCH :-"))
        .await;
    let time_of = |text: &str| {
        let line = lines
            .iter()
            .find(|l| l.ends_with(&format!(" :{text}")))
            .unwrap();
        line.split("time=")
            .nth(1)
            .unwrap()
            .split([' ', ';'])
            .next()
            .unwrap()
            .to_string()
    };
    let (one, three, five) = (time_of("one"), time_of("three"), time_of("five"));

    let page = async |irc: &mut Raw, command: String| {
        irc.send(format!("{command}\r\n").as_bytes()).await;
        irc.history_page().await
    };
    assert_eq!(
        page(&mut irc, "CHATHISTORY LATEST #scroll * 2".into()).await,
        ["four", "five"]
    );
    assert_eq!(
        page(
            &mut irc,
            format!("CHATHISTORY BEFORE #scroll timestamp={three} 2")
        )
        .await,
        ["one", "two"]
    );
    assert_eq!(
        page(
            &mut irc,
            format!("CHATHISTORY AFTER #scroll timestamp={three} 10")
        )
        .await,
        ["four", "five"]
    );
    assert_eq!(
        page(
            &mut irc,
            format!("CHATHISTORY AROUND #scroll timestamp={three} 2")
        )
        .await,
        ["two", "three"]
    );
    assert_eq!(
        page(
            &mut irc,
            format!("CHATHISTORY BETWEEN #scroll timestamp={one} timestamp={five} 10")
        )
        .await,
        ["two", "three", "four"]
    );
    assert_eq!(
        page(
            &mut irc,
            format!("CHATHISTORY BETWEEN #scroll timestamp={five} timestamp={one} 2")
        )
        .await,
        ["three", "four"],
        "from the later side: the lines just before it"
    );
    assert_eq!(
        page(
            &mut irc,
            format!("CHATHISTORY LATEST #scroll timestamp={three} 10")
        )
        .await,
        ["four", "five"]
    );
    let empty: [&str; 0] = [];
    assert_eq!(
        page(
            &mut irc,
            format!("CHATHISTORY BEFORE #scroll timestamp={one} 5")
        )
        .await,
        empty,
        "nothing before the first: an empty batch"
    );
    // Errors, as the spec names them.
    irc.send(b"CHATHISTORY BEFORE #scroll msgid=abc 5\r\n")
        .await;
    irc.until("FAIL CHATHISTORY INVALID_PARAMS BEFORE #scroll")
        .await
        .unwrap();
    irc.send(b"CHATHISTORY LATEST #elsewhere * 5\r\n").await;
    irc.until("FAIL CHATHISTORY INVALID_TARGET LATEST #elsewhere")
        .await
        .unwrap();
    irc.send(b"CHATHISTORY TARGETS x y 5\r\n").await;
    irc.until("FAIL CHATHISTORY UNKNOWN_COMMAND TARGETS")
        .await
        .unwrap();

    // A client that took none of the caps gets plain lines: no tags, no batch.
    let mut plain = Raw::register(&server, "plain").await;
    plain.send(b"JOIN #scroll\r\n").await;
    plain.until(" 366 ").await.unwrap();
    // The join's own replay, as plain lines.
    plain.until(" PRIVMSG #scroll :five").await.unwrap();
    plain
        .send(b"CHATHISTORY LATEST #scroll * 1\r\nPING :end\r\n")
        .await;
    let lines = plain.lines_until("PONG").await;
    let said: Vec<&String> = lines.iter().filter(|l| l.contains(" PRIVMSG ")).collect();
    assert!(
        said.len() == 1 && said[0].starts_with(":nat!") && said[0].ends_with(" :five"),
        "{lines:?}"
    );
    assert!(!lines.iter().any(|l| l.contains("BATCH")), "{lines:?}");
}

/// What a person sees in irssi: a room's history replayed on join, each line at the time it
/// was said (irssi's `show_server_time`, seconds shown), not at the time it arrived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn irssi_shows_a_room_s_history_at_the_times_it_was_said() {
    irssi_is_installed();
    let server = irc_server(ServerConfig::default()).await;
    let (mut tx, mut rx) = native(&server, "log", "scribe").await;
    common::say_acked(&mut tx, &mut rx, "said before irssi came").await;
    // When the server says it was said, as a native joiner is told.
    let client = server.client(None).await;
    let (_reader, mut reader_rx, _) = join(
        client.into_connection(),
        ChatTarget::Room("log".into()),
        "reader",
        true,
    )
    .await
    .unwrap();
    let Message::ChatMessage(line) = next_line(
        &mut reader_rx,
        |m| matches!(m, Message::ChatMessage(m) if m.history),
    )
    .await
    else {
        unreachable!()
    };
    let at = line.at.expect("a history line has its time");
    let said = &at[11..19];
    // irssi joins in a later second than the line was said: its own join line shows that one.
    let second =
        |t: std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let after = second(std::time::SystemTime::now());
    while second(std::time::SystemTime::now()) == after {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join("startup"),
        "/set timestamp_format %H:%M:%S\n/set show_server_time on\n",
    )
    .unwrap();
    let port = server.irc_addr.unwrap().port();
    let tmux = common::tmux::Tmux::start(&format!(
        "TZ=UTC irssi --home='{}' -c 127.0.0.1 -p {port} -n irssiuser",
        home.path().display()
    ));
    tmux.wait_for("End of /MOTD").await;
    tmux.type_line("/join #log");
    let screen = tmux.wait_for("said before irssi came").await;
    let shown = |text: &str| {
        screen
            .lines()
            .find(|l| l.contains(text))
            .unwrap_or_else(|| panic!("no line with {text:?}:\n{screen}"))
            .to_string()
    };
    let history = shown("said before irssi came");
    assert!(
        history.starts_with(&format!("{said} < scribe> said before irssi came")),
        "the history line shows when it was said ({said}):\n{screen}"
    );
    let joined = shown("has joined #log");
    assert!(
        !joined.starts_with(said),
        "the join happened in a later second than the line:\n{screen}"
    );
    tmux.type_line("/quit");
}
