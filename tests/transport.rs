//! Transport mismatches and server identity: each gets a clear error, never a hang.

mod common;

use common::{TestServer, WAIT, output, read_to_close};
use ferry::client::{Client, ClientError};
use ferry::config::ServerConfig;
use ferry::protocol::{ErrorCode, Refusal};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_client_to_tls_server_is_told_to_drop_plaintext() {
    let server = TestServer::start(ServerConfig::default()).await;
    let mut options = server.options(None);
    options.plaintext = true;
    let err = Client::connect(&options).await.err().expect("refused");
    assert!(
        matches!(
            err,
            ClientError::Refused {
                refusal: Refusal {
                    code: ErrorCode::TlsRequired,
                    ..
                },
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("connect without --plaintext"),
        "{err}"
    );

    let out = output({
        let mut cmd = server.ferry("ping");
        cmd.args(["--plaintext", "-c", "1"]);
        cmd
    })
    .await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("requires TLS"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_client_to_plaintext_server_is_told_to_use_plaintext() {
    let server = TestServer::start_plaintext(ServerConfig::default()).await;
    let mut options = server.options(None);
    options.plaintext = false;
    let err = Client::connect(&options).await.err().expect("refused");
    assert!(
        matches!(
            err,
            ClientError::Refused {
                refusal: Refusal {
                    code: ErrorCode::PlaintextOnly,
                    ..
                },
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("--plaintext"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_server_identity_is_refused_until_forgotten() {
    let server = TestServer::start(ServerConfig::default()).await;
    let old_pin = format!("sha256:{}", "ab".repeat(32));
    std::fs::create_dir_all(server.home()).unwrap();
    std::fs::write(
        server.home().join("known_servers"),
        format!("{} {old_pin}\n", server.addr),
    )
    .unwrap();

    let out = output({
        let mut cmd = server.ferry("ping");
        cmd.args(["-c", "1"]);
        cmd
    })
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("SERVER IDENTITY CHANGED"), "{stderr}");
    assert!(stderr.contains(&old_pin), "{stderr}");
    assert!(
        stderr.contains(server.fingerprint.as_deref().unwrap()),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("ferry forget {}", server.addr)),
        "{stderr}"
    );

    let mut forget = common::ferry_bin(&server.home());
    forget.args(["forget", &server.addr.to_string()]);
    assert!(output(forget).await.status.success());

    let out = output({
        let mut cmd = server.ferry("ping");
        cmd.args(["-c", "1"]);
        cmd
    })
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pins = std::fs::read_to_string(server.home().join("known_servers")).unwrap();
    assert!(pins.contains(server.fingerprint.as_deref().unwrap()));
    assert!(!pins.contains(&old_pin));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_ferry_server_is_named_as_such() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let fake = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        tcp.write_all(b"SSH-2.0-OpenSSH_9.2\r\n").await.unwrap();
        read_to_close(&mut tcp).await;
    });
    let home = tempfile::tempdir().unwrap();
    let options = ferry::client::ClientOptions {
        server: addr.to_string(),
        token: None,
        plaintext: false,
        home: home.path().to_path_buf(),
        connect_timeout: WAIT,
        accept_new: true,
        keys: None,
    };
    let err = Client::connect(&options).await.err().expect("not ferry");
    assert!(matches!(err, ClientError::NotFerry { .. }), "{err}");
    fake.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_of_another_protocol_version_is_told_the_versions() {
    let server = TestServer::start(ServerConfig::default()).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"FERRY\x09T\x00").await.unwrap();
    let reply = read_to_close(&mut tcp).await;
    assert_eq!(&reply[..8], b"FERRY\x01E\x00");
    let text = String::from_utf8_lossy(&reply[8..]);
    assert!(text.contains("unsupported_version"), "{text}");
    assert!(
        text.contains("version 9") && text.contains("version 1"),
        "{text}"
    );
}

/// The client's TLS hello goes right behind its preamble, before the server has answered (one
/// round trip less), and an answer that refuses is still read and named.
#[tokio::test]
async fn the_tls_hello_follows_the_preamble_without_waiting_for_the_answer() {
    use ferry::connection::FrameWriter;
    use ferry::protocol::{Message, Mode, Preamble};
    use tokio::io::AsyncReadExt;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let home = tempfile::tempdir().unwrap();
    let options = ferry::client::ClientOptions {
        server: addr.to_string(),
        token: None,
        plaintext: false,
        home: home.path().to_path_buf(),
        connect_timeout: WAIT,
        accept_new: true,
        keys: None,
    };
    let client = tokio::spawn(async move { Client::connect(&options).await.err() });
    let (mut tcp, _) = listener.accept().await.unwrap();
    // Nothing answered yet: the preamble, then a TLS handshake record.
    let mut first = [0u8; 9];
    tokio::time::timeout(WAIT, tcp.read_exact(&mut first))
        .await
        .expect("the TLS hello waited for the preamble's answer")
        .unwrap();
    assert_eq!(first[..8], Preamble::new(Mode::Tls).encode()[..]);
    assert_eq!(
        first[8], 0x16,
        "a TLS handshake record follows the preamble"
    );
    // Refused now (as a server at its connection limit does): the client reads why.
    tcp.write_all(&Preamble::new(Mode::Refused).encode())
        .await
        .unwrap();
    let mut frames = FrameWriter::new(&mut tcp, ferry::protocol::frame::MIN_MAX_FRAME);
    frames
        .write_message(&Message::Error(Refusal::new(
            ErrorCode::ServerBusy,
            "too many connections",
        )))
        .await
        .unwrap();
    frames.flush().await.unwrap();
    tcp.shutdown().await.unwrap();
    read_to_close(&mut tcp).await;
    let err = client.await.unwrap().expect("refused");
    assert!(
        matches!(
            err,
            ClientError::Refused {
                refusal: Refusal {
                    code: ErrorCode::ServerBusy,
                    ..
                },
                ..
            }
        ),
        "{err}"
    );
}
