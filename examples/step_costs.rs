//! The least CPU a verified 1 GiB transfer can cost on this machine, step by step: the
//! derivation behind the "limit" column of `bench/files.sh` (bench/README.md explains it).
//!
//! Each step every verified transfer must take is measured alone, in CPU seconds per GiB
//! (process CPU time, so a step that uses two threads counts both): a loopback socket copy
//! (send and receive), reading the file from the page cache, writing it into the page cache,
//! BLAKE3 and SHA-256 on one core, and AES-256-GCM and ChaCha20-Poly1305 sealing and opening in
//! TLS-sized records. From them: the CPU a verified transfer needs in all (both ends on one
//! machine), and the fastest it can go on `cores` cores — the CPU spread over every core, and
//! never faster than its longest step that runs on one thread.
//!
//! Usage: cargo run --release --example step_costs [MIB] [--json]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use ring::aead::{AES_256_GCM, Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use rustix::time::{ClockId, clock_gettime};

/// Bytes moved per call, as ferry's transfers do.
const CHUNK: usize = 1 << 20;
/// A TLS record's plaintext at most.
const RECORD: usize = 16 * 1024;
const GIB: f64 = (1u64 << 30) as f64;

/// CPU time this process has used.
fn cpu() -> Duration {
    let t = clock_gettime(ClockId::ProcessCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// CPU seconds per GiB that `step` costs moving `bytes`.
fn per_gib(bytes: usize, step: impl FnOnce()) -> f64 {
    let before = cpu();
    step();
    (cpu() - before).as_secs_f64() * GIB / bytes as f64
}

fn socket(bytes: usize) -> f64 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    per_gib(bytes, || {
        let sender = std::thread::spawn(move || {
            let mut out = TcpStream::connect(addr).unwrap();
            let buf = vec![7u8; CHUNK];
            let mut left = bytes;
            while left > 0 {
                let n = left.min(CHUNK);
                out.write_all(&buf[..n]).unwrap();
                left -= n;
            }
        });
        let (mut input, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; CHUNK];
        let mut got = 0;
        while got < bytes {
            let n = input.read(&mut buf).unwrap();
            assert!(n > 0, "the sender stopped early");
            got += n;
        }
        sender.join().unwrap();
    })
}

fn file_write(path: &std::path::Path, bytes: usize) -> f64 {
    per_gib(bytes, || {
        let mut file = std::fs::File::create(path).unwrap();
        let buf = vec![3u8; CHUNK];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(CHUNK);
            file.write_all(&buf[..n]).unwrap();
            left -= n;
        }
    })
}

fn file_read(path: &std::path::Path, bytes: usize) -> f64 {
    // Once untimed, so the file is in the page cache as in the benchmark.
    std::io::copy(
        &mut std::fs::File::open(path).unwrap(),
        &mut std::io::sink(),
    )
    .unwrap();
    per_gib(bytes, || {
        let mut file = std::fs::File::open(path).unwrap();
        let mut buf = vec![0u8; CHUNK];
        while file.read(&mut buf).unwrap() > 0 {}
    })
}

fn blake3_one_core(data: &[u8], bytes: usize) -> f64 {
    per_gib(bytes, || {
        let mut hasher = blake3::Hasher::new();
        let mut left = bytes;
        while left > 0 {
            let n = left.min(data.len());
            hasher.update(&data[..n]);
            left -= n;
        }
        std::hint::black_box(hasher.finalize());
    })
}

fn sha256(data: &[u8], bytes: usize) -> f64 {
    per_gib(bytes, || {
        let mut context = ring::digest::Context::new(&ring::digest::SHA256);
        let mut left = bytes;
        while left > 0 {
            let n = left.min(data.len());
            context.update(&data[..n]);
            left -= n;
        }
        std::hint::black_box(context.finish());
    })
}

/// Sealing then opening every record: (seal, open) CPU seconds per GiB.
fn aead(algorithm: &'static ring::aead::Algorithm, bytes: usize) -> (f64, f64) {
    let key = LessSafeKey::new(UnboundKey::new(algorithm, &[9u8; 32]).unwrap());
    let records = bytes / RECORD;
    let mut sealed: Vec<(Vec<u8>, ring::aead::Tag)> = Vec::with_capacity(64);
    let plain = vec![5u8; RECORD];
    let mut seal_cpu = 0.0;
    let mut open_cpu = 0.0;
    let mut n = 0u64;
    // In batches, so the sealed records stay in cache-sized memory.
    for _ in 0..records.div_ceil(64) {
        sealed.clear();
        seal_cpu += per_gib(bytes, || {
            for _ in 0..64 {
                n += 1;
                let mut record = plain.clone();
                let nonce = nonce(n);
                let tag = key
                    .seal_in_place_separate_tag(nonce, Aad::empty(), &mut record)
                    .unwrap();
                sealed.push((record, tag));
            }
        });
        let first = n - 63;
        open_cpu += per_gib(bytes, || {
            for (i, (record, tag)) in sealed.iter_mut().enumerate() {
                let mut with_tag = std::mem::take(record);
                with_tag.extend_from_slice(tag.as_ref());
                let opened = key
                    .open_in_place(nonce(first + i as u64), Aad::empty(), &mut with_tag)
                    .unwrap();
                std::hint::black_box(opened);
            }
        });
    }
    (seal_cpu, open_cpu)
}

/// The least program that takes a verified transfer's steps, each on a thread of its own so
/// that they overlap as much as two cores let them: the sender reads the file and hashes it
/// (BLAKE3) beside sending it; the receiver receives it and hashes it beside writing it into
/// a new file next to the source; with `tls`, the sender seals and the receiver opens every
/// 16 KiB record (AES-256-GCM) on the socket threads, as rustls does. No framing, no protocol,
/// no durability: what any implementation of these steps can reach here. Gives its rate in MB/s
/// and the CPU seconds per GiB it spent, both ends together (each the median of three): the
/// first says how well the steps overlap on this machine, the second what they cost when they
/// run side by side (more than the sum of each alone: they share caches and memory).
///
/// With `Sender::Sendfile` (plaintext only) the sender neither reads nor hashes: it hands the
/// file to the socket with `sendfile`, as a sender whose hash is cached could; the receiver is
/// unchanged.
fn minimal_transfer(src: &std::path::Path, bytes: usize, tls: bool, sender: Sender) -> Least {
    use std::sync::Arc;
    use std::sync::mpsc::sync_channel;
    // The hash a zero-copy sender knows beforehand (from a cache, in ferry), untimed.
    let known = (sender == Sender::Sendfile).then(|| {
        let mut hasher = blake3::Hasher::new();
        hasher.update(&std::fs::read(src).unwrap()[..bytes]);
        hasher.finalize()
    });
    let runs: Vec<(f64, f64)> = (0..3)
        .map(|_| {
            let cpu_before = cpu();
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let key = || LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[9u8; 32]).unwrap());
            let started = Instant::now();
            let source = src.to_path_buf();
            let sender = std::thread::spawn(move || {
                if let Some(known) = known {
                    let out = TcpStream::connect(addr).unwrap();
                    let file = std::fs::File::open(source).unwrap();
                    let mut offset = 0u64;
                    while (offset as usize) < bytes {
                        let want = CHUNK.min(bytes - offset as usize);
                        let sent = rustix::fs::sendfile(&out, &file, Some(&mut offset), want);
                        assert!(sent.unwrap() > 0, "the file ended early");
                    }
                    return known;
                }
                let (to_hash, hashed) = sync_channel::<Arc<Vec<u8>>>(2);
                let (to_send, sendable) = sync_channel::<Arc<Vec<u8>>>(2);
                let (done, recycled) = std::sync::mpsc::channel::<Arc<Vec<u8>>>();
                let mut pool = BufferPool::new(recycled);
                let hasher = hashing_thread(hashed, done.clone());
                let socket = std::thread::spawn(move || {
                    let mut out = TcpStream::connect(addr).unwrap();
                    let key = key();
                    let mut n = 0u64;
                    let mut sealed = Vec::with_capacity(CHUNK + CHUNK / RECORD * 16);
                    for chunk in sendable {
                        if tls {
                            // Every record of the chunk sealed into one buffer, sent in one write.
                            sealed.clear();
                            for record in chunk.chunks(RECORD) {
                                n += 1;
                                let at = sealed.len();
                                sealed.extend_from_slice(record);
                                let tag = key
                                    .seal_in_place_separate_tag(
                                        nonce(n),
                                        Aad::empty(),
                                        &mut sealed[at..],
                                    )
                                    .unwrap();
                                sealed.extend_from_slice(tag.as_ref());
                            }
                            out.write_all(&sealed).unwrap();
                        } else {
                            out.write_all(&chunk).unwrap();
                        }
                        let _ = done.send(chunk);
                    }
                });
                let file = std::fs::File::open(source).unwrap();
                let mut pos = 0;
                while pos < bytes {
                    let mut chunk = pool.take(CHUNK.min(bytes - pos));
                    std::os::unix::fs::FileExt::read_exact_at(&file, &mut chunk, pos as u64)
                        .unwrap();
                    pos += chunk.len();
                    let chunk = Arc::new(chunk);
                    to_hash.send(Arc::clone(&chunk)).unwrap();
                    to_send.send(chunk).unwrap();
                }
                drop((to_hash, to_send));
                socket.join().unwrap();
                hasher.join().unwrap()
            });
            let (mut input, _) = listener.accept().unwrap();
            let (to_hash, hashed) = sync_channel::<Arc<Vec<u8>>>(2);
            let (to_write, writable) = sync_channel::<Arc<Vec<u8>>>(2);
            let (done, recycled) = std::sync::mpsc::channel::<Arc<Vec<u8>>>();
            let mut pool = BufferPool::new(recycled);
            let hasher = hashing_thread(hashed, done.clone());
            let out_path = dst_path(src);
            let writer = std::thread::spawn(move || {
                let mut file = std::fs::File::create(out_path).unwrap();
                for chunk in writable {
                    file.write_all(&chunk).unwrap();
                    let _ = done.send(chunk);
                }
            });
            let key = key();
            let mut n = 0u64;
            let mut got = 0;
            let mut sealed = Vec::new();
            while got < bytes {
                let want = CHUNK.min(bytes - got);
                let mut chunk = pool.take(want);
                if tls {
                    // The chunk's records read in one go, each opened in place and its
                    // plaintext copied out, as rustls hands a reader its bytes.
                    let records = want.div_ceil(RECORD);
                    sealed.resize(want + records * 16, 0);
                    input.read_exact(&mut sealed).unwrap();
                    for (piece, record) in
                        chunk.chunks_mut(RECORD).zip(sealed.chunks_mut(RECORD + 16))
                    {
                        n += 1;
                        let opened = key.open_in_place(nonce(n), Aad::empty(), record).unwrap();
                        piece.copy_from_slice(opened);
                    }
                } else {
                    input.read_exact(&mut chunk).unwrap();
                }
                got += want;
                let chunk = Arc::new(chunk);
                to_hash.send(Arc::clone(&chunk)).unwrap();
                to_write.send(chunk).unwrap();
            }
            drop((to_hash, to_write));
            writer.join().unwrap();
            let received = hasher.join().unwrap();
            let sent = sender.join().unwrap();
            assert_eq!(sent, received, "the minimal transfer is verified too");
            let rate = bytes as f64 / started.elapsed().as_secs_f64() / 1e6;
            let cpu = (cpu() - cpu_before).as_secs_f64() * GIB / bytes as f64;
            let _ = std::fs::remove_file(dst_path(src));
            (rate, cpu)
        })
        .collect();
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[1]
    };
    Least {
        mb_s: median(runs.iter().map(|r| r.0).collect()),
        cpu_s_per_gib: median(runs.iter().map(|r| r.1).collect()),
    }
}

/// What the least program reached: MB/s, and CPU seconds per GiB (both ends).
#[derive(Clone, Copy)]
struct Least {
    mb_s: f64,
    cpu_s_per_gib: f64,
}

/// A thread that hashes every chunk it is given and hands each back to be recycled; its
/// result is the digest of them all.
fn hashing_thread(
    chunks: std::sync::mpsc::Receiver<std::sync::Arc<Vec<u8>>>,
    done: std::sync::mpsc::Sender<std::sync::Arc<Vec<u8>>>,
) -> std::thread::JoinHandle<blake3::Hash> {
    std::thread::spawn(move || {
        let mut hasher = blake3::Hasher::new();
        for chunk in chunks {
            hasher.update(&chunk);
            let _ = done.send(chunk);
        }
        hasher.finalize()
    })
}

/// How the least program's sender moves the file.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sender {
    /// Reads each chunk and hashes it beside sending it.
    ReadAndHash,
    /// `sendfile`, the hash known beforehand.
    Sendfile,
}

/// The median of three measurements of `step`.
fn median_of_three(mut step: impl FnMut() -> f64) -> f64 {
    let mut runs = [step(), step(), step()];
    runs.sort_by(f64::total_cmp);
    runs[1]
}

/// Chunk buffers used again once both threads that read one have given it back, as ferry's
/// transfers recycle theirs (a fresh zeroed megabyte per chunk would add a copy's worth of
/// work no transfer needs).
struct BufferPool {
    recycled: std::sync::mpsc::Receiver<std::sync::Arc<Vec<u8>>>,
    free: Vec<Vec<u8>>,
}

impl BufferPool {
    fn new(recycled: std::sync::mpsc::Receiver<std::sync::Arc<Vec<u8>>>) -> Self {
        BufferPool {
            recycled,
            free: Vec::new(),
        }
    }

    /// A buffer of `len` bytes: a returned one when one is free, else a new one.
    fn take(&mut self, len: usize) -> Vec<u8> {
        // Each chunk comes back twice (once per reader); the second return makes it ours.
        while let Ok(shared) = self.recycled.try_recv() {
            if let Ok(buf) = std::sync::Arc::try_unwrap(shared) {
                self.free.push(buf);
            }
        }
        let mut buf = self.free.pop().unwrap_or_default();
        buf.resize(len, 0);
        buf
    }
}

/// Where [`minimal_transfer`] writes: beside its source.
fn dst_path(src: &std::path::Path) -> std::path::PathBuf {
    src.with_extension("received")
}

fn nonce(n: u64) -> Nonce {
    let mut bytes = [0u8; 12];
    bytes[4..].copy_from_slice(&n.to_be_bytes());
    Nonce::assume_unique_for_key(bytes)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let mib: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(1024);
    let bytes = mib << 20;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("step.bin");
    let data = vec![1u8; CHUNK];

    let started = Instant::now();
    // Each step measured three times and its median kept: on a shared machine one run of a
    // step now and then takes several times its cost (a page-cache write throttled while the
    // disk catches up), and one such run would make the whole limit a fraction of itself.
    let socket = median_of_three(|| socket(bytes));
    let write = median_of_three(|| file_write(&path, bytes));
    let read = median_of_three(|| file_read(&path, bytes));
    let blake3 = median_of_three(|| blake3_one_core(&data, bytes));
    let sha256 = median_of_three(|| sha256(&data, bytes));
    let (aes_seal, aes_open) = aead(&AES_256_GCM, bytes);
    let (chacha_seal, chacha_open) = aead(&CHACHA20_POLY1305, bytes);

    // A verified transfer, both ends on this machine: the sender reads and hashes the file and
    // sends it; the receiver receives, hashes and writes it. TLS adds a seal and an open (AES-GCM,
    // which rustls picks where the CPU has AES instructions).
    let plain_steps = [read, blake3, socket, blake3, write];
    let plain_cpu: f64 = plain_steps.iter().sum();
    let tls_cpu = plain_cpu + aes_seal + aes_open;
    let longest_plain = plain_steps.iter().copied().fold(0.0, f64::max);
    let longest_tls = longest_plain.max(aes_seal).max(aes_open);
    let seconds = |cpu: f64, longest: f64| (cpu / cores as f64).max(longest);
    let mbps = |secs: f64| GIB / secs / 1e6;
    let plain_limit = mbps(seconds(plain_cpu, longest_plain));
    let tls_limit = mbps(seconds(tls_cpu, longest_tls));
    let minimal_plain = minimal_transfer(&path, bytes, false, Sender::ReadAndHash);
    let minimal_sendfile = minimal_transfer(&path, bytes, false, Sender::Sendfile);
    let minimal_tls = minimal_transfer(&path, bytes, true, Sender::ReadAndHash);
    if json {
        println!(
            "{}",
            serde_json::json!({
                "cores": cores,
                "cpu_s_per_gib": {
                    "socket_send_and_receive": socket, "file_read": read, "file_write": write,
                    "blake3_one_core": blake3, "sha256_one_core": sha256,
                    "aes_256_gcm_seal": aes_seal, "aes_256_gcm_open": aes_open,
                    "chacha20_poly1305_seal": chacha_seal, "chacha20_poly1305_open": chacha_open,
                },
                "verified_plaintext": {
                    "cpu_s_per_gib": plain_cpu, "limit_mb_s": plain_limit,
                    "minimal_mb_s": minimal_plain.mb_s, "minimal_cpu_s_per_gib": minimal_plain.cpu_s_per_gib,
                    "minimal_sendfile_mb_s": minimal_sendfile.mb_s,
                    "minimal_sendfile_cpu_s_per_gib": minimal_sendfile.cpu_s_per_gib,
                },
                "verified_tls": {
                    "cpu_s_per_gib": tls_cpu, "limit_mb_s": tls_limit,
                    "minimal_mb_s": minimal_tls.mb_s, "minimal_cpu_s_per_gib": minimal_tls.cpu_s_per_gib,
                },
            })
        );
        return;
    }
    println!("CPU seconds per GiB on this machine ({cores} cores, {mib} MiB per step):");
    for (name, cost) in [
        ("loopback socket, send + receive", socket),
        ("file read (page cache)", read),
        ("file write (page cache)", write),
        ("BLAKE3, one core", blake3),
        ("SHA-256, one core", sha256),
        ("AES-256-GCM seal (16 KiB records)", aes_seal),
        ("AES-256-GCM open", aes_open),
        ("ChaCha20-Poly1305 seal", chacha_seal),
        ("ChaCha20-Poly1305 open", chacha_open),
    ] {
        println!(
            "  {name:36} {cost:6.3} s  ({:6.0} MB/s on one core)",
            mbps(cost)
        );
    }
    println!(
        "verified plaintext transfer: {plain_cpu:.3} CPU s/GiB in all -> at best {plain_limit:.0} MB/s on {cores} cores"
    );
    println!(
        "verified TLS transfer:       {tls_cpu:.3} CPU s/GiB in all -> at best {tls_limit:.0} MB/s on {cores} cores"
    );
    println!(
        "the least program taking those steps on threads of their own (median of 3): plaintext {:.0} MB/s spending {:.2} CPU s/GiB, TLS {:.0} MB/s spending {:.2}",
        minimal_plain.mb_s,
        minimal_plain.cpu_s_per_gib,
        minimal_tls.mb_s,
        minimal_tls.cpu_s_per_gib
    );
    println!(
        "  the same, plaintext, its sender using sendfile and a known hash: {:.0} MB/s spending {:.2}",
        minimal_sendfile.mb_s, minimal_sendfile.cpu_s_per_gib
    );
    eprintln!("(measured in {:.1} s)", started.elapsed().as_secs_f64());
}
