//! Delta transfers against a real server: every kind of edit arrives byte-identical with only
//! what changed on the wire, in both directions; an interrupted delta resumes; a base that
//! changes under a delta is caught; and a hostile peer's delta or signature is refused without
//! a panic or a byte written outside the partial.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{TestServer, WAIT, config_with_user, pattern};
use ferry::client::files::{self, NoProgress, Transfer};
use ferry::connection::{BoxedStream, Connection};
use ferry::protocol::{
    BaseSigned, ChunkHashing, DeltaBase, ErrorCode, Frame, Get, HashAlgorithm, Message, Put,
    PutStart, Refusal, Signing,
};
use ferry::transfer::chunks::{SendHash, TransferError};
use ferry::transfer::delta::cut::Cut;
use ferry::transfer::delta::receive::{Base, receive_delta};
use ferry::transfer::delta::send::send_delta;
use ferry::transfer::delta::{COPY_CHANNEL, RemoteSignature, Signature};
use ferry::transfer::hash_cache::{Fingerprint, HashCache};
use ferry::transfer::hashing::Hasher;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const BASE_SIZE: usize = 3 << 20;

async fn writer_server() -> (TestServer, String) {
    let (config, token) = config_with_user("writer", "read,write");
    (TestServer::start_plaintext(config).await, token.to_string())
}

async fn session(server: &TestServer, token: &str) -> Connection<BoxedStream> {
    server
        .client(Some(token.parse().unwrap()))
        .await
        .into_connection()
}

fn root(server: &TestServer) -> PathBuf {
    server.dir.path().join("root")
}

/// The edits a delta must find, each with the most literal bytes it may cost: about two
/// chunks (8 KiB at most each for a 3 MiB base) around every changed place, plus what is new.
type Edit = (&'static str, Box<dyn Fn(&[u8]) -> Vec<u8>>, u64);

fn edits() -> Vec<Edit> {
    const AROUND: u64 = 2 * 8192;
    vec![
        (
            "10 bytes changed in the middle",
            Box::new(|b: &[u8]| {
                let mut v = b.to_vec();
                v[BASE_SIZE / 2..BASE_SIZE / 2 + 10].copy_from_slice(b"0123456789");
                v
            }),
            AROUND + 10,
        ),
        (
            "10 bytes changed in 50 places",
            Box::new(|b: &[u8]| {
                let mut v = b.to_vec();
                for i in 0..50 {
                    let at = i * (BASE_SIZE / 50) + 777;
                    v[at..at + 10].copy_from_slice(b"abcdefghij");
                }
                v
            }),
            50 * (AROUND + 10),
        ),
        (
            "4 KiB inserted at the front",
            Box::new(|b: &[u8]| [pattern(4096, 99).as_slice(), b].concat()),
            AROUND + 4096,
        ),
        (
            "64 KiB deleted from the middle",
            Box::new(|b: &[u8]| [&b[..BASE_SIZE / 3], &b[BASE_SIZE / 3 + 65536..]].concat()),
            AROUND,
        ),
        (
            "1 MiB appended",
            Box::new(|b: &[u8]| [b, pattern(1 << 20, 98).as_slice()].concat()),
            AROUND + (1 << 20),
        ),
        (
            "the last 1 MiB cut",
            Box::new(|b: &[u8]| b[..BASE_SIZE - (1 << 20)].to_vec()),
            AROUND,
        ),
    ]
}

fn moved(t: &Transfer) -> u64 {
    t.size - t.resumed_from - t.matched
}

#[tokio::test]
async fn every_kind_of_edit_arrives_identical_with_only_the_change_sent_both_ways() {
    let (server, token) = writer_server().await;
    let work = tempfile::tempdir().unwrap();
    let hashes = HashCache::in_memory();
    let base = pattern(BASE_SIZE, 1);
    let mut conn = session(&server, &token).await;
    for (i, (name, edit, most)) in edits().into_iter().enumerate() {
        let new = edit(&base);
        // put: the server holds the base.
        let remote = format!("put-{i}.bin");
        std::fs::write(root(&server).join(&remote), &base).unwrap();
        let local = work.path().join(format!("new-{i}.bin"));
        std::fs::write(&local, &new).unwrap();
        let t = files::put_file(
            &mut conn,
            &hashes,
            &local,
            &remote,
            HashAlgorithm::Blake3,
            true,
            false,
            &mut NoProgress,
        )
        .await
        .unwrap();
        assert_eq!(
            std::fs::read(root(&server).join(&remote)).unwrap(),
            new,
            "put: {name}"
        );
        assert!(
            moved(&t) <= most && t.matched > 0,
            "put: {name}: {} literal bytes (at most {most}), {} matched",
            moved(&t),
            t.matched
        );
        // get: the client holds the base.
        std::fs::write(root(&server).join(format!("get-{i}.bin")), &new).unwrap();
        let target = work.path().join(format!("got-{i}.bin"));
        std::fs::write(&target, &base).unwrap();
        let t = files::get_file(
            &mut conn,
            &format!("get-{i}.bin"),
            &target,
            HashAlgorithm::Sha256,
            Some(Arc::new(HashCache::in_memory())),
            false,
            &mut NoProgress,
        )
        .await
        .unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), new, "get: {name}");
        assert!(
            moved(&t) <= most && t.matched > 0,
            "get: {name}: {} literal bytes (at most {most})",
            moved(&t)
        );
    }
    // --whole-file: the same change costs the whole file.
    let local = work.path().join("new-0.bin");
    std::fs::write(root(&server).join("whole.bin"), &base).unwrap();
    let t = files::put_file(
        &mut conn,
        &hashes,
        &local,
        "whole.bin",
        HashAlgorithm::Blake3,
        false,
        false,
        &mut NoProgress,
    )
    .await
    .unwrap();
    assert_eq!((t.matched, moved(&t)), (0, BASE_SIZE as u64));
}

/// A TCP relay that forwards everything from the client, up to `cut` bytes, and then closes
/// both ends: a connection lost at an exact point of the exchange.
async fn cutting_relay(server: std::net::SocketAddr, cut: usize) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (client, _) = listener.accept().await.unwrap();
        let upstream = TcpStream::connect(server).await.unwrap();
        let (mut client_read, mut client_write) = client.into_split();
        let (mut up_read, mut up_write) = upstream.into_split();
        let down = tokio::spawn(async move {
            let _ = tokio::io::copy(&mut up_read, &mut client_write).await;
        });
        let mut left = cut;
        let mut buf = vec![0u8; 64 * 1024];
        while left > 0 {
            let n = match client_read.read(&mut buf[..left.min(64 * 1024)]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if up_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
            left -= n;
        }
        let _ = up_write.shutdown().await;
        down.abort();
    });
    addr
}

#[tokio::test]
async fn a_delta_cut_off_anywhere_resumes_and_ends_identical() {
    let (server, token) = writer_server().await;
    let work = tempfile::tempdir().unwrap();
    let hashes = HashCache::in_memory();
    // Old: A + B; new: A + 3 MiB of new bytes + B, so the cut lands in copies or literals
    // (literal frames are 1 MiB: what a frame cut in half carried is sent again).
    let a = pattern(1 << 20, 2);
    let b = pattern(1 << 20, 3);
    let old = [a.as_slice(), &b].concat();
    let new = [a.as_slice(), &pattern(3 << 20, 4), &b].concat();
    let local = work.path().join("new.bin");
    std::fs::write(&local, &new).unwrap();
    // Fixed points across the exchange: before the data, in the literal, near its end.
    for (i, cut) in [2_000usize, 1_500_000, 2_600_000, 3_100_000]
        .into_iter()
        .enumerate()
    {
        let remote = format!("cut-{i}.bin");
        std::fs::write(root(&server).join(&remote), &old).unwrap();
        let mut options = server.options(Some(token.parse().unwrap()));
        options.server = cutting_relay(server.addr, cut).await.to_string();
        // The first attempt dies when the relay closes (or the handshake never completes).
        if let Ok(client) = ferry::client::Client::connect(&options).await {
            let mut conn = client.into_connection();
            let attempt = tokio::time::timeout(
                WAIT,
                files::put_file(
                    &mut conn,
                    &hashes,
                    &local,
                    &remote,
                    HashAlgorithm::Blake3,
                    true,
                    false,
                    &mut NoProgress,
                ),
            )
            .await
            .expect("a cut connection ends the attempt");
            assert!(
                attempt.is_err(),
                "cut at {cut}: the put cannot have finished"
            );
        }
        assert_eq!(
            std::fs::read(root(&server).join(&remote)).unwrap(),
            old,
            "cut at {cut}: the final name still holds the old version"
        );
        // The cut session has ended on the server (its partial written and unlocked) before
        // the put runs again: a partial still locked is not offered for resuming.
        server.wait_for_active(0).await;
        let mut conn = session(&server, &token).await;
        let t = files::put_file(
            &mut conn,
            &hashes,
            &local,
            &remote,
            HashAlgorithm::Blake3,
            true,
            false,
            &mut NoProgress,
        )
        .await
        .unwrap();
        assert_eq!(
            std::fs::read(root(&server).join(&remote)).unwrap(),
            new,
            "cut at {cut}"
        );
        if cut >= 2_600_000 {
            assert!(t.resumed_from > 2 << 20, "cut at {cut}: resumed {t:?}");
        }
        assert!(moved(&t) <= (3 << 20) + 2 * 4096, "cut at {cut}: {t:?}");
        assert_eq!(moved(&t) + t.matched + t.resumed_from, new.len() as u64);
    }
}

/// Connected ends of an in-memory connection.
fn pair() -> (
    Connection<tokio::io::DuplexStream>,
    Connection<tokio::io::DuplexStream>,
) {
    let (a, b) = tokio::io::duplex(1 << 20);
    (Connection::new(a), Connection::new(b))
}

fn file_of(path: &Path, bytes: &[u8]) -> std::fs::File {
    std::fs::write(path, bytes).unwrap();
    std::fs::File::open(path).unwrap()
}

#[tokio::test]
async fn a_base_that_changes_after_it_was_signed_is_caught() {
    let work = tempfile::tempdir().unwrap();
    let old = pattern(1 << 20, 5);
    let mut new = old.clone();
    new[1000] ^= 1;
    let base_path = work.path().join("base");
    let base = file_of(&base_path, &old);
    let fingerprint = Fingerprint::of(&base.metadata().unwrap());
    let signature = Signature::compute(&base, old.len() as u64).unwrap();
    let remote_signature = RemoteSignature::decode(&signature.base(), &signature.encode()).unwrap();
    // The base changes (same size, other bytes) before the delta is built from it.
    let mut changed = old.clone();
    changed[500_000] ^= 1;
    std::fs::write(&base_path, &changed).unwrap();
    let source = file_of(&work.path().join("new"), &new);
    let source_fp = Fingerprint::of(&source.metadata().unwrap());
    let out = std::fs::File::create(work.path().join("out")).unwrap();
    let (mut tx, mut rx) = pair();
    let mut ignore_sent = |_| {};
    let mut ignore_received = |_| {};
    let cut = Cut::start(
        &source,
        new.len() as u64,
        remote_signature.avg,
        remote_signature.hashing,
        Some(HashAlgorithm::Blake3),
    )
    .unwrap();
    let send = send_delta(
        &mut tx,
        cut,
        source,
        source_fp,
        0,
        remote_signature,
        SendHash::Compute(Hasher::new(HashAlgorithm::Blake3)),
        1 << 16,
        false,
        &mut ignore_sent,
    );
    let receive = receive_delta(
        &mut rx,
        out,
        Base::new(base, fingerprint, &signature),
        0,
        new.len() as u64,
        Hasher::new(HashAlgorithm::Blake3),
        false,
        &mut ignore_received,
    );
    let (sent, received) = tokio::join!(send, receive);
    sent.unwrap();
    assert!(
        matches!(received, Err(TransferError::FileChanged)),
        "{received:?}"
    );
}

#[tokio::test]
async fn a_hostile_delta_is_refused_and_nothing_outside_the_partial_is_written() {
    let (server, token) = writer_server().await;
    let old = pattern(1 << 20, 6);
    std::fs::write(root(&server).join("target.bin"), &old).unwrap();
    // Each hostile data frame after a put_start that asked for a delta.
    let copy = |first: u64, count: u64| [first.to_le_bytes(), count.to_le_bytes()].concat();
    // The base of 1 MiB is cut in chunks; copies name them by their place.
    let hostile: Vec<(&str, u8, Vec<u8>)> = vec![
        (
            "a copy past the base's last chunk",
            COPY_CHANNEL,
            copy(1 << 20, 1),
        ),
        ("a copy overflowing", COPY_CHANNEL, copy(u64::MAX - 1, 4)),
        ("a copy of no chunks", COPY_CHANNEL, copy(0, 0)),
        ("a copy cut short", COPY_CHANNEL, vec![0; 15]),
        ("a literal longer than the file", 0, vec![7; (1 << 20) + 1]),
        ("a channel no delta uses", 5, vec![1; 16]),
    ];
    for (what, channel, payload) in hostile {
        let mut conn = session(&server, &token).await;
        conn.write_message(&Message::Put(Put {
            path: "target.bin".into(),
            size: 1 << 20,
            mode: 0o644,
            mtime_ns: 0,
            hash: HashAlgorithm::Blake3,
            whole: false,
            delta: true,
            avg: None,
            chunk_hash: None,
            compress: false,
        }))
        .await
        .unwrap();
        let base = match conn.read_message().await.unwrap() {
            Message::PutReady(ready) => ready.base.expect("the server offers its base"),
            other => panic!("{other:?}"),
        };
        let signature = ferry::transfer::delta::wire::read_signature(&mut conn, &base)
            .await
            .unwrap();
        assert!(!signature.hashes.is_empty());
        conn.write_message(&Message::PutStart(PutStart {
            offset: 0,
            delta: true,
        }))
        .await
        .unwrap();
        conn.write_data(channel, &payload).await.unwrap();
        conn.flush().await.unwrap();
        match tokio::time::timeout(WAIT, conn.read_message())
            .await
            .unwrap()
        {
            Ok(Message::Error(Refusal { code, .. })) => {
                assert_eq!(code, ErrorCode::BadMessage, "{what}")
            }
            other => panic!("{what}: {other:?}"),
        }
        assert_eq!(
            std::fs::read(root(&server).join("target.bin")).unwrap(),
            old,
            "{what}"
        );
    }
    // Nothing but the target and partials beside it.
    for entry in std::fs::read_dir(root(&server)).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            name == "target.bin" || name.contains(".ferry-part"),
            "{name}"
        );
    }
    // A get whose signature is not as long as announced ends the session with a clear error.
    let mut conn = session(&server, &token).await;
    let base = DeltaBase {
        size: 100_000,
        avg: 1024,
        chunks: 3,
        chunk_hash: Default::default(),
    };
    conn.write_message(&Message::Get(Get {
        path: "target.bin".into(),
        hash: HashAlgorithm::Blake3,
        offset: 0,
        prefix_hash: None,
        base: Some(base),
        signing: None,
        compress: false,
    }))
    .await
    .unwrap();
    conn.write_data(0, &[0; 16]).await.unwrap();
    conn.write_message(&Message::Ping(ferry::protocol::Ping { seq: 1 }))
        .await
        .unwrap();
    conn.flush().await.unwrap();
    match tokio::time::timeout(WAIT, conn.read_message())
        .await
        .unwrap()
    {
        Ok(Message::Error(Refusal { code, message, .. })) => {
            assert_eq!(code, ErrorCode::BadMessage);
            assert!(message.contains("signature"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // A signature announced larger than its size can hold is refused before it is read.
    let mut conn = session(&server, &token).await;
    conn.write_message(&Message::Get(Get {
        path: "target.bin".into(),
        hash: HashAlgorithm::Blake3,
        offset: 0,
        prefix_hash: None,
        base: Some(DeltaBase {
            size: 4096,
            avg: 1024,
            chunks: 1 << 40,
            chunk_hash: Default::default(),
        }),
        signing: None,
        compress: false,
    }))
    .await
    .unwrap();
    match tokio::time::timeout(WAIT, conn.read_frame()).await.unwrap() {
        Ok(Some(Frame::Message(body))) => {
            assert!(matches!(Message::parse(&body), Ok(Message::Error(_))))
        }
        other => panic!("{other:?}"),
    }
}

/// A TCP relay that counts the bytes the client sends.
async fn counting_relay(
    server: std::net::SocketAddr,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicU64>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = std::sync::Arc::clone(&sent);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let upstream = TcpStream::connect(server).await.unwrap();
            let (mut client_read, mut client_write) = client.into_split();
            let (mut up_read, mut up_write) = upstream.into_split();
            let counter = std::sync::Arc::clone(&counter);
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut up_read, &mut client_write).await;
            });
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = match client_read.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    counter.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                    if up_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                let _ = up_write.shutdown().await;
            });
        }
    });
    (addr, sent)
}

#[tokio::test]
async fn compressed_blocks_arrive_identical_and_cross_smaller() {
    let (server, token) = writer_server().await;
    let work = tempfile::tempdir().unwrap();
    let hashes = HashCache::in_memory();
    // Text-like bytes: zstd takes them to a fraction.
    let text: Vec<u8> = (0..6_000_000u32)
        .map(|i| {
            b"ferry carries chat, commands and files\n"[(i % 39) as usize] ^ ((i / 4001) as u8 & 1)
        })
        .collect();
    let local = work.path().join("text");
    std::fs::write(&local, &text).unwrap();
    let (relay, sent) = counting_relay(server.addr).await;
    let mut options = server.options(Some(token.parse().unwrap()));
    options.server = relay.to_string();
    let mut conn = ferry::client::Client::connect(&options)
        .await
        .unwrap()
        .into_connection();
    let t = files::put_file(
        &mut conn,
        &hashes,
        &local,
        "text",
        HashAlgorithm::Blake3,
        true,
        true,
        &mut NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(t.size, text.len() as u64);
    assert_eq!(std::fs::read(root(&server).join("text")).unwrap(), text);
    let crossed = sent.load(std::sync::atomic::Ordering::Relaxed);
    assert!(crossed < text.len() as u64 / 5, "{crossed} bytes crossed");
    // Back, compressed, and as a compressed delta after an edit.
    let back = work.path().join("back");
    files::get_file(
        &mut conn,
        "text",
        &back,
        HashAlgorithm::Blake3,
        None,
        true,
        &mut NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(std::fs::read(&back).unwrap(), text);
    let mut edited = text.clone();
    edited.splice(3_000_000..3_000_000, pattern(200_000, 9));
    std::fs::write(&local, &edited).unwrap();
    let t = files::put_file(
        &mut conn,
        &hashes,
        &local,
        "text",
        HashAlgorithm::Blake3,
        true,
        true,
        &mut NoProgress,
    )
    .await
    .unwrap();
    assert!(t.matched > 5_000_000, "{t:?}");
    assert_eq!(std::fs::read(root(&server).join("text")).unwrap(), edited);
}

#[tokio::test]
async fn a_compressed_block_that_claims_too_much_is_refused() {
    let (server, token) = writer_server().await;
    let mut conn = session(&server, &token).await;
    conn.write_message(&Message::Put(Put {
        path: "bomb".into(),
        size: 1000,
        mode: 0o644,
        mtime_ns: 0,
        hash: HashAlgorithm::Blake3,
        whole: false,
        delta: false,
        avg: None,
        chunk_hash: None,
        compress: true,
    }))
    .await
    .unwrap();
    match conn.read_message().await.unwrap() {
        Message::PutReady(ready) => assert!(ready.compress),
        other => panic!("{other:?}"),
    }
    conn.write_message(&Message::PutStart(PutStart {
        offset: 0,
        delta: false,
    }))
    .await
    .unwrap();
    // 1 MiB of zeros in a few bytes, for a put of 1,000.
    let bomb = zstd::bulk::compress(&vec![0u8; 1 << 20], 3).unwrap();
    conn.write_data(3, &bomb).await.unwrap();
    conn.flush().await.unwrap();
    match tokio::time::timeout(WAIT, conn.read_message())
        .await
        .unwrap()
    {
        Ok(Message::Error(Refusal { code, .. })) => assert_eq!(code, ErrorCode::BadMessage),
        other => panic!("{other:?}"),
    }
    assert!(!root(&server).join("bomb").exists());
}

#[tokio::test]
async fn a_delta_that_does_not_verify_is_sent_again_whole() {
    use std::os::unix::fs::MetadataExt;
    let (server, token) = writer_server().await;
    let work = tempfile::tempdir().unwrap();
    // The server holds A; the client sends B, as long as A. A stale signature kept for A
    // (as if A's chunks were B's) makes every chunk of B match: the delta builds A again.
    let a = pattern(1 << 20, 11);
    let b = pattern(1 << 20, 12);
    let target = root(&server).join("target.bin");
    std::fs::write(&target, &a).unwrap();
    let local = work.path().join("b");
    let b_file = file_of(&local, &b);
    let lying = Signature::compute(&b_file, b.len() as u64).unwrap();
    let meta = std::fs::metadata(&target).unwrap();
    let header = serde_json::json!({
        "dev": meta.dev(), "ino": meta.ino(), "size": meta.size(),
        "mtime_ns": meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        "ctime_ns": meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
        "avg": lying.avg, "chunks": lying.chunks.len(),
    });
    let kept = server.dir.path().join("state/hash-cache.signatures");
    std::fs::create_dir_all(&kept).unwrap();
    let mut text = serde_json::to_vec(&header).unwrap();
    text.push(b'\n');
    text.extend(lying.encode_kept());
    std::fs::write(
        kept.join(format!("{}-{}.sig", meta.dev(), meta.ino())),
        text,
    )
    .unwrap();
    let mut conn = session(&server, &token).await;
    let t = files::put_file(
        &mut conn,
        &HashCache::in_memory(),
        &local,
        "target.bin",
        HashAlgorithm::Blake3,
        true,
        false,
        &mut NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(
        std::fs::read(&target).unwrap(),
        b,
        "the whole resend put B in place"
    );
    assert_eq!(t.matched, 0, "{t:?}");
}

#[tokio::test]
async fn a_file_built_from_a_delta_keeps_its_signature_for_the_next_one() {
    let (server, token) = writer_server().await;
    let work = tempfile::tempdir().unwrap();
    let base = pattern(BASE_SIZE, 3);
    std::fs::write(root(&server).join("kept.bin"), &base).unwrap();
    // An edit in place, one inserted near the front and a new tail: copies and literal runs.
    let mut new = base.clone();
    new[BASE_SIZE / 2] ^= 1;
    new.splice(1000..1000, pattern(3000, 4));
    new.extend(pattern(100_000, 5));
    let local = work.path().join("new.bin");
    std::fs::write(&local, &new).unwrap();
    let mut conn = session(&server, &token).await;
    let t = files::put_file(
        &mut conn,
        &HashCache::in_memory(),
        &local,
        "kept.bin",
        HashAlgorithm::Blake3,
        true,
        false,
        &mut NoProgress,
    )
    .await
    .unwrap();
    assert!(t.matched > 0, "a delta was sent");
    // What the server kept for the file it built is what signing that file would give, at
    // the average the client asked for, under the file's fingerprint as it is now.
    let placed = std::fs::File::open(root(&server).join("kept.bin")).unwrap();
    let fingerprint = Fingerprint::of(&placed.metadata().unwrap());
    let cache = HashCache::open(&server.dir.path().join("state").join("hash-cache"));
    let kept = cache
        .signature(fingerprint)
        .expect("the built file's signature is kept");
    assert_eq!(
        kept.avg,
        ferry::transfer::delta::average_for(new.len() as u64)
    );
    assert_eq!(kept.hashing, ChunkHashing::Xxh3, "as the client asked");
    assert_eq!(
        kept,
        Signature::compute_at(&placed, new.len() as u64, kept.avg, kept.hashing).unwrap()
    );
}

#[tokio::test]
async fn the_server_signs_at_the_average_the_put_names() {
    let (server, token) = writer_server().await;
    std::fs::write(root(&server).join("avg.bin"), pattern(1 << 20, 8)).unwrap();
    for (asked, expected) in [
        (Some(4096), 4096),
        (Some(65536), 65536),
        // Not a power of two, or none named: the server's own choice for a 1 MiB base.
        (Some(5000), ferry::transfer::delta::average_for(1 << 20)),
        (None, ferry::transfer::delta::average_for(1 << 20)),
    ] {
        let mut conn = session(&server, &token).await;
        conn.write_message(&Message::Put(Put {
            path: "avg.bin".into(),
            size: 1 << 20,
            mode: 0o644,
            mtime_ns: 0,
            hash: HashAlgorithm::Blake3,
            whole: false,
            delta: true,
            avg: asked,
            chunk_hash: None,
            compress: false,
        }))
        .await
        .unwrap();
        let base = match conn.read_message().await.unwrap() {
            Message::PutReady(ready) => ready.base.expect("the server offers its base"),
            other => panic!("{other:?}"),
        };
        assert_eq!(base.avg, expected, "asked for {asked:?}");
        let signature = ferry::transfer::delta::wire::read_signature(&mut conn, &base)
            .await
            .unwrap();
        assert_eq!(signature.avg, expected);
    }
}

/// A put names how it hashes its chunks and the server signs the same way; a put that names
/// none (an older client) gets BLAKE3, as before XXH3 was named. A get's base says how it was
/// hashed and the server cuts the same way: an older client's BLAKE3 base still finds its
/// chunks.
#[tokio::test]
async fn chunks_are_hashed_as_the_peer_names_and_blake3_when_it_names_none() {
    let (server, token) = writer_server().await;
    let old = pattern(1 << 20, 12);
    std::fs::write(root(&server).join("h.bin"), &old).unwrap();
    let local = tempfile::tempdir().unwrap();
    let base_file = file_of(&local.path().join("base.bin"), &old);
    for (asked, expected) in [
        (Some(ChunkHashing::Xxh3), ChunkHashing::Xxh3),
        (Some(ChunkHashing::Blake3), ChunkHashing::Blake3),
        (None, ChunkHashing::Blake3),
    ] {
        let mut conn = session(&server, &token).await;
        conn.write_message(&Message::Put(Put {
            path: "h.bin".into(),
            size: 1 << 20,
            mode: 0o644,
            mtime_ns: 0,
            hash: HashAlgorithm::Blake3,
            whole: false,
            delta: true,
            avg: Some(4096),
            chunk_hash: asked,
            compress: false,
        }))
        .await
        .unwrap();
        let base = match conn.read_message().await.unwrap() {
            Message::PutReady(ready) => ready.base.expect("the server offers its base"),
            other => panic!("{other:?}"),
        };
        assert_eq!(base.chunk_hash, expected, "asked for {asked:?}");
        let signature = ferry::transfer::delta::wire::read_signature(&mut conn, &base)
            .await
            .unwrap();
        let ours = Signature::compute_at(&base_file, 1 << 20, 4096, expected).unwrap();
        let entries: Vec<_> = ours.chunks.iter().map(|(_, hash)| *hash).collect();
        assert_eq!(signature.hashes, entries, "asked for {asked:?}");
    }
    // A get against a base signed with each: the file comes back as a delta that copies.
    let mut new = old.clone();
    new[500_000] ^= 1;
    std::fs::write(root(&server).join("h.bin"), &new).unwrap();
    for hashing in [ChunkHashing::Blake3, ChunkHashing::Xxh3] {
        let signature = Signature::compute_at(&base_file, 1 << 20, 4096, hashing).unwrap();
        let mut conn = session(&server, &token).await;
        conn.write_message(&Message::Get(Get {
            path: "h.bin".into(),
            hash: HashAlgorithm::Blake3,
            offset: 0,
            prefix_hash: None,
            base: Some(signature.base()),
            signing: None,
            compress: false,
        }))
        .await
        .unwrap();
        ferry::transfer::delta::wire::write_signature(&mut conn, &signature)
            .await
            .unwrap();
        conn.flush().await.unwrap();
        let (delta, literal, copied) = read_get_answer(&mut conn).await;
        assert!(delta, "{hashing:?}");
        assert!(
            copied > 200 && literal < 64 * 1024,
            "{hashing:?}: {copied} chunks copied, {literal} literal bytes"
        );
    }
}

/// Reads a get's answer: whether it is a delta, its literal bytes and the chunks it copies.
async fn read_get_answer(conn: &mut Connection<BoxedStream>) -> (bool, usize, u64) {
    let delta = match tokio::time::timeout(WAIT, conn.read_message())
        .await
        .unwrap()
        .unwrap()
    {
        Message::GetReady(ready) => ready.delta,
        other => panic!("{other:?}"),
    };
    let (mut literal, mut copied) = (0usize, 0u64);
    loop {
        match conn.read_frame().await.unwrap().unwrap() {
            Frame::Data {
                channel: 0,
                payload,
            } => literal += payload.len(),
            Frame::Data {
                channel: COPY_CHANNEL,
                payload,
            } => {
                for copy in payload.chunks_exact(16) {
                    copied += u64::from_le_bytes(copy[8..].try_into().unwrap());
                }
            }
            Frame::Message(body) => match Message::parse(&body).unwrap() {
                Message::GetEnd(_) => break,
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }
    (delta, literal, copied)
}

/// Sends a get that names its base before it is signed (`signing`), then `base_signed` with
/// `signature` (or none).
async fn get_signing_first(
    conn: &mut Connection<BoxedStream>,
    path: &str,
    signing: Signing,
    signature: Option<&Signature>,
) {
    conn.write_message(&Message::Get(Get {
        path: path.into(),
        hash: HashAlgorithm::Blake3,
        offset: 0,
        prefix_hash: None,
        base: None,
        signing: Some(signing),
        compress: false,
    }))
    .await
    .unwrap();
    conn.write_message(&Message::BaseSigned(BaseSigned {
        base: signature.map(Signature::base),
    }))
    .await
    .unwrap();
    if let Some(signature) = signature {
        ferry::transfer::delta::wire::write_signature(conn, signature)
            .await
            .unwrap();
    }
    conn.flush().await.unwrap();
}

/// A get may name its base before the client has signed it, so that the server cuts its file
/// while the client signs: the signature then comes with `base_signed`, signed as announced or
/// otherwise (the server cuts again), or not at all (the file comes whole). A refused get still
/// reads past it, and anything else in its place ends the session.
#[tokio::test]
async fn a_get_can_name_its_base_before_it_is_signed() {
    let (server, token) = writer_server().await;
    let old = pattern(1 << 20, 13);
    let mut new = old.clone();
    new[700_000] ^= 1;
    std::fs::write(root(&server).join("s.bin"), &new).unwrap();
    let local = tempfile::tempdir().unwrap();
    let base_file = file_of(&local.path().join("base.bin"), &old);
    let signing = Signing {
        size: 1 << 20,
        avg: 4096,
        chunk_hash: ChunkHashing::Xxh3,
    };
    for (avg, hashing) in [(4096, ChunkHashing::Xxh3), (8192, ChunkHashing::Blake3)] {
        let signature = Signature::compute_at(&base_file, 1 << 20, avg, hashing).unwrap();
        let mut conn = session(&server, &token).await;
        get_signing_first(&mut conn, "s.bin", signing, Some(&signature)).await;
        let (delta, literal, copied) = read_get_answer(&mut conn).await;
        assert!(delta, "signed at {avg} with {hashing:?}");
        assert!(
            copied > 100 && literal < 64 * 1024,
            "signed at {avg} with {hashing:?}: {copied} chunks copied, {literal} literal bytes"
        );
    }
    // Not signed after all: the whole file.
    let mut conn = session(&server, &token).await;
    get_signing_first(&mut conn, "s.bin", signing, None).await;
    assert_eq!(read_get_answer(&mut conn).await, (false, 1 << 20, 0));
    // A refused get reads past what follows it: the next request is answered in step.
    get_signing_first(&mut conn, "missing.bin", signing, None).await;
    conn.write_message(&Message::Ping(ferry::protocol::Ping { seq: 7 }))
        .await
        .unwrap();
    conn.flush().await.unwrap();
    match conn.read_message().await.unwrap() {
        Message::Error(Refusal { code, .. }) => assert_eq!(code, ErrorCode::NotFound),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        conn.read_message().await.unwrap(),
        Message::Pong(ferry::protocol::Pong { seq: 7, .. })
    ));
    // Anything but `base_signed` where it is due, or both ways of naming a base at once:
    // a clear error, and the session ends.
    let mut conn = session(&server, &token).await;
    conn.write_message(&Message::Get(Get {
        path: "s.bin".into(),
        hash: HashAlgorithm::Blake3,
        offset: 0,
        prefix_hash: None,
        base: None,
        signing: Some(signing),
        compress: false,
    }))
    .await
    .unwrap();
    conn.write_message(&Message::Ping(ferry::protocol::Ping { seq: 1 }))
        .await
        .unwrap();
    conn.flush().await.unwrap();
    match conn.read_message().await.unwrap() {
        Message::Error(Refusal { code, message, .. }) => {
            assert_eq!(code, ErrorCode::UnexpectedMessage);
            assert!(message.contains("base_signed"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let signature = Signature::compute_at(&base_file, 1 << 20, 4096, ChunkHashing::Xxh3).unwrap();
    let mut conn = session(&server, &token).await;
    conn.write_message(&Message::Get(Get {
        path: "s.bin".into(),
        hash: HashAlgorithm::Blake3,
        offset: 0,
        prefix_hash: None,
        base: Some(signature.base()),
        signing: Some(signing),
        compress: false,
    }))
    .await
    .unwrap();
    conn.flush().await.unwrap();
    match conn.read_message().await.unwrap() {
        Message::Error(Refusal { code, message, .. }) => {
            assert_eq!(code, ErrorCode::BadMessage);
            assert!(message.contains("signing"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

/// A tree fetched with `get -r` keeps, for each file it built from a delta, the signature
/// derived while building it, under the file's fingerprint once it is in place (as a single
/// get does): the next delta against that file does not read it to sign it.
#[tokio::test]
async fn a_tree_get_keeps_the_signatures_of_the_files_it_built_from_deltas() {
    let (server, token) = writer_server().await;
    let old = pattern(2 << 20, 21);
    let mut new = old.clone();
    new[1 << 20] ^= 1;
    std::fs::create_dir_all(root(&server).join("t")).unwrap();
    std::fs::write(root(&server).join("t/big.bin"), &new).unwrap();
    std::fs::write(root(&server).join("t/small.txt"), b"small").unwrap();
    let work = tempfile::tempdir().unwrap();
    let local = work.path().join("t");
    std::fs::create_dir_all(&local).unwrap();
    std::fs::write(local.join("big.bin"), &old).unwrap();
    let hashes = Arc::new(HashCache::open(&work.path().join("hash-cache")));
    let mut conn = session(&server, &token).await;
    let options = ferry::client::tree::TreeOptions::new(
        HashAlgorithm::Blake3,
        ferry::client::files::Check::Never,
    );
    let report =
        ferry::client::tree::get_tree(&mut conn, &hashes, "t", &local, &options, &mut NoProgress)
            .await
            .unwrap();
    let (_, big) = report
        .files
        .iter()
        .find(|(rel, _)| rel == "big.bin")
        .expect("big.bin was fetched");
    assert!(big.matched > 0, "big.bin came as a delta");
    assert_eq!(std::fs::read(local.join("big.bin")).unwrap(), new);
    let placed = std::fs::File::open(local.join("big.bin")).unwrap();
    let kept = hashes
        .signature(Fingerprint::of(&placed.metadata().unwrap()))
        .expect("the built file's signature is kept");
    assert_eq!(
        kept,
        Signature::compute_at(&placed, new.len() as u64, kept.avg, kept.hashing).unwrap()
    );
}

/// Polls `held` until it holds or [`WAIT`] passes (no event says a file reached a size).
async fn eventually(held: impl Fn() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        if held() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    held()
}

/// While a put's base is signed and the client works out its delta, the server copies the
/// base into the partial, so the disk starts before the delta names anything. A delta that
/// then breaks off leaves the partial holding only what it named (a resume is offered nothing
/// else), and the put resumes from there.
#[tokio::test]
async fn a_put_fills_its_partial_from_the_base_ahead_of_the_delta() {
    let (server, token) = writer_server().await;
    let old = pattern(BASE_SIZE, 21);
    std::fs::write(root(&server).join("ahead.bin"), &old).unwrap();
    let partial = root(&server).join(".ahead.bin.ferry-part");
    let mut conn = session(&server, &token).await;
    let avg = 16384;
    conn.write_message(&Message::Put(Put {
        path: "ahead.bin".into(),
        size: old.len() as u64,
        mode: 0o644,
        mtime_ns: 0,
        hash: HashAlgorithm::Blake3,
        whole: false,
        delta: true,
        avg: Some(avg),
        chunk_hash: Some(ChunkHashing::Xxh3),
        compress: false,
    }))
    .await
    .unwrap();
    let base = match conn.read_message().await.unwrap() {
        Message::PutReady(ready) => ready.base.expect("the server offers its base"),
        other => panic!("{other:?}"),
    };
    let signature = ferry::transfer::delta::wire::read_signature(&mut conn, &base)
        .await
        .unwrap();
    assert_eq!(signature.avg, avg);
    // Nothing of the delta has been sent: the partial comes to hold the base all the same.
    assert!(
        eventually(|| std::fs::read(&partial).is_ok_and(|held| held == old)).await,
        "the partial never held the base ahead of the delta"
    );
    // The delta names the base's first chunks in place, then the session breaks off.
    let work = tempfile::tempdir().unwrap();
    let ours = Signature::compute_at(
        &file_of(&work.path().join("old.bin"), &old),
        old.len() as u64,
        avg,
        ChunkHashing::Xxh3,
    )
    .unwrap();
    let named = 10;
    let covered: u64 = ours.chunks[..named]
        .iter()
        .map(|(len, _)| u64::from(*len))
        .sum();
    conn.write_message(&Message::PutStart(PutStart {
        offset: 0,
        delta: true,
    }))
    .await
    .unwrap();
    let copy = [0u64.to_le_bytes(), (named as u64).to_le_bytes()].concat();
    conn.write_data(COPY_CHANNEL, &copy).await.unwrap();
    conn.flush().await.unwrap();
    drop(conn);
    server.wait_for_active(0).await;
    let held = std::fs::read(&partial).unwrap();
    assert_eq!(
        held.len() as u64,
        covered,
        "the partial keeps what the delta named, and nothing filled beyond it"
    );
    assert!(held == old[..covered as usize]);
    // The put resumes from what was named and ends identical.
    let mut new = old.clone();
    new[BASE_SIZE / 2..BASE_SIZE / 2 + 10].copy_from_slice(b"0123456789");
    let local = work.path().join("new.bin");
    std::fs::write(&local, &new).unwrap();
    let mut conn = session(&server, &token).await;
    let t = files::put_file(
        &mut conn,
        &HashCache::in_memory(),
        &local,
        "ahead.bin",
        HashAlgorithm::Blake3,
        true,
        false,
        &mut NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(t.resumed_from, covered);
    assert!(std::fs::read(root(&server).join("ahead.bin")).unwrap() == new);
    assert!(!partial.exists());
}

/// A get copies its base into the partial while it signs it and the server cuts, so the
/// delta finds it written; a base longer than the new file is cut back to the new size.
#[tokio::test]
async fn a_get_fills_its_partial_from_the_base_ahead_of_the_delta() {
    let (server, token) = writer_server().await;
    let work = tempfile::tempdir().unwrap();
    let old = pattern(BASE_SIZE, 22);
    // The server's version: 10 bytes changed, the last 64 KiB cut.
    let mut new = old[..BASE_SIZE - 65536].to_vec();
    new[1000..1010].copy_from_slice(b"0123456789");
    std::fs::write(root(&server).join("ahead.bin"), &new).unwrap();
    let target = work.path().join("ahead.bin");
    std::fs::write(&target, &old).unwrap();
    let partial = ferry::transfer::partial::partial_path(&target);
    let mut conn = session(&server, &token).await;
    let asked = files::ask_get(
        &mut conn,
        "ahead.bin",
        &target,
        HashAlgorithm::Blake3,
        Some(Arc::new(HashCache::in_memory())),
        false,
    )
    .await
    .unwrap();
    assert!(asked.is_delta());
    // The answer is not read yet: the partial comes to hold the base all the same.
    assert!(
        eventually(|| std::fs::read(&partial).is_ok_and(|held| held == old)).await,
        "the partial never held the base ahead of the delta"
    );
    let (t, verified) = files::receive_get(&mut conn, asked, &mut NoProgress)
        .await
        .unwrap();
    assert!(t.matched > 0 && t.size == new.len() as u64, "{t:?}");
    assert!(std::fs::read(&partial).unwrap() == new);
    verified
        .partial
        .finish("ahead.bin", Some(verified.mode), Some(verified.mtime_ns))
        .unwrap();
    assert!(std::fs::read(&target).unwrap() == new);
}
