//! Both ends of the chunked transfer over an in-memory pipe: the hash each end computes, a
//! file that shrinks while it is sent, a sender that sends too much, and one that gives up.

use std::fs::File;
use std::io::{Read, Seek, Write};

use tokio::io::{DuplexStream, duplex};

use super::{SendHash, TransferError, receive_file, send_file};
use crate::connection::Connection;
use crate::protocol::{ErrorCode, HashAlgorithm, Message, Refusal};
use crate::transfer::hash_cache::Fingerprint;
use crate::transfer::hashing::Hasher;

fn pipe() -> (Connection<DuplexStream>, Connection<DuplexStream>) {
    let (a, b) = duplex(1 << 20);
    (Connection::new(a), Connection::new(b))
}

fn file_with(bytes: &[u8]) -> File {
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(bytes).unwrap();
    file.rewind().unwrap();
    file
}

/// A file holding `bytes` and its fingerprint.
fn opened(bytes: &[u8]) -> (File, Fingerprint) {
    let file = file_with(bytes);
    let fingerprint = Fingerprint::of(&file.metadata().unwrap());
    (file, fingerprint)
}

fn contents(mut file: File) -> Vec<u8> {
    file.rewind().unwrap();
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).unwrap();
    bytes
}

#[tokio::test]
async fn what_arrives_is_what_was_sent_and_both_ends_agree_on_its_hash() {
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let (mut sender, mut receiver) = pipe();
    let target = tempfile::tempfile().unwrap();
    let writer = target.try_clone().unwrap();
    let algorithm = HashAlgorithm::Sha256;
    let (source, opened) = opened(&data);
    let len = data.len() as u64;
    let (mut sent_bytes, mut got_bytes) = (0, 0);
    let mut count_sent = |n| sent_bytes += n;
    let mut count_got = |n| got_bytes += n;
    let (sent, got) = tokio::join!(
        send_file(
            &mut sender,
            source,
            opened,
            0,
            len,
            SendHash::Compute(Hasher::new(algorithm)),
            64 * 1024,
            false,
            &mut count_sent
        ),
        receive_file(
            &mut receiver,
            writer,
            len,
            Hasher::new(algorithm),
            false,
            &mut count_got
        ),
    );
    let (sent, got) = (sent.unwrap(), got.unwrap());
    assert_eq!(sent, got);
    let mut whole = Hasher::new(algorithm);
    whole.update(&data);
    assert_eq!(sent, whole.finish_hex());
    assert_eq!((sent_bytes, got_bytes), (len, len));
    assert_eq!(contents(target), data);
}

#[tokio::test]
async fn a_file_shorter_than_announced_is_reported_as_changed() {
    let (mut sender, _receiver) = pipe();
    let (source, opened) = opened(b"short");
    let sent = send_file(
        &mut sender,
        source,
        opened,
        0,
        100,
        SendHash::Compute(Hasher::new(HashAlgorithm::Blake3)),
        16,
        false,
        &mut |_| {},
    )
    .await;
    assert!(matches!(sent, Err(TransferError::FileChanged)), "{sent:?}");
}

#[tokio::test]
async fn a_file_whose_fingerprint_moved_during_the_send_is_reported_as_changed() {
    let data = vec![7u8; 100_000];
    let (mut sender, mut receiver) = pipe();
    let (source, opened) = opened(&data);
    // As if a write landed while the bytes went out: same size, a later ctime.
    let before = Fingerprint {
        ctime_ns: opened.ctime_ns - 1,
        ..opened
    };
    let len = data.len() as u64;
    let (mut ignore_sent, mut ignore_got) = (|_| {}, |_| {});
    let (sent, _) = tokio::join!(
        send_file(
            &mut sender,
            source,
            before,
            0,
            len,
            SendHash::Compute(Hasher::new(HashAlgorithm::Blake3)),
            16 * 1024,
            false,
            &mut ignore_sent
        ),
        receive_file(
            &mut receiver,
            tempfile::tempfile().unwrap(),
            len,
            Hasher::new(HashAlgorithm::Blake3),
            false,
            &mut ignore_got
        ),
    );
    assert!(matches!(sent, Err(TransferError::FileChanged)), "{sent:?}");
}

#[tokio::test]
async fn a_known_hash_is_announced_without_hashing_the_bytes() {
    let data = vec![9u8; 200_000];
    let (mut sender, mut receiver) = pipe();
    let (source, opened) = opened(&data);
    let len = data.len() as u64;
    let (mut ignore_sent, mut ignore_got) = (|_| {}, |_| {});
    let (sent, got) = tokio::join!(
        send_file(
            &mut sender,
            source,
            opened,
            0,
            len,
            SendHash::Known("what the cache said".into()),
            64 * 1024,
            false,
            &mut ignore_sent
        ),
        receive_file(
            &mut receiver,
            tempfile::tempfile().unwrap(),
            len,
            Hasher::new(HashAlgorithm::Blake3),
            false,
            &mut ignore_got
        ),
    );
    // The receiver still hashes what it got: a wrong claim shows there, never passes.
    assert_eq!(sent.unwrap(), "what the cache said");
    let mut whole = Hasher::new(HashAlgorithm::Blake3);
    whole.update(&data);
    assert_eq!(got.unwrap(), whole.finish_hex());
}

#[tokio::test]
async fn more_data_than_announced_or_a_refusal_mid_data_ends_the_receive() {
    // More bytes than announced: out of step.
    let (mut sender, mut receiver) = pipe();
    sender.write_data(0, b"0123456789").await.unwrap();
    sender.flush().await.unwrap();
    let got = receive_file(
        &mut receiver,
        tempfile::tempfile().unwrap(),
        4,
        Hasher::new(HashAlgorithm::Blake3),
        false,
        &mut |_| {},
    )
    .await;
    assert!(matches!(got, Err(TransferError::Protocol(_))), "{got:?}");

    // The sender gave up with an error of its own: the receiver hands it back.
    let (mut sender, mut receiver) = pipe();
    sender.write_data(0, b"01").await.unwrap();
    let refusal = Refusal::new(ErrorCode::Io, "the disk went away");
    sender
        .write_message(&Message::Error(refusal.clone()))
        .await
        .unwrap();
    let got = receive_file(
        &mut receiver,
        tempfile::tempfile().unwrap(),
        4,
        Hasher::new(HashAlgorithm::Blake3),
        false,
        &mut |_| {},
    )
    .await;
    assert!(
        matches!(got, Err(TransferError::Peer(ref r)) if *r == refusal),
        "{got:?}"
    );
}
