//! The least time a delta of a large file can take on this machine, step by step: the
//! derivation behind the limit `bench/delta.sh` prints beside its ratios to rsync.
//!
//! A delta of a file whose base the receiver has not signed before (bench/delta.sh's case: a
//! base just copied into place) must, whatever the tool: read the base and cut and hash it
//! (the signature), read the new version and cut and hash it (to find what the base holds)
//! and hash it whole (to prove the result), then write the new version (copied from the
//! base) and hash what was written, and make it durable before it takes its name. Each step
//! is measured alone here, in CPU seconds per GiB of file, three times (the median kept), with
//! ferry's own chunker; the durable write is measured as the wall time of writing the file and
//! syncing it. The limit on `cores` cores: all the CPU spread over every core, never less than
//! the durable write and never less than the longest step on one thread.
//!
//! Usage: cargo run --release --example delta_costs [MIB] [--json]

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use ferry::protocol::ChunkHashing;
use ferry::transfer::delta::average_for;
use ferry::transfer::delta::chunker::{Sizes, chunk_file};
use ferry::transfer::delta::signature::chunk_hash;
use rustix::time::{ClockId, clock_gettime};

const CHUNK: usize = 1 << 20;
const GIB: f64 = (1u64 << 30) as f64;

/// CPU time this process has used.
fn cpu() -> Duration {
    let t = clock_gettime(ClockId::ProcessCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// CPU seconds per GiB that `step` costs over `bytes`.
fn per_gib(bytes: u64, step: impl FnOnce()) -> f64 {
    let before = cpu();
    step();
    (cpu() - before).as_secs_f64() * GIB / bytes as f64
}

fn median_of_three(mut f: impl FnMut() -> f64) -> f64 {
    let mut runs = [f(), f(), f()];
    runs.sort_by(f64::total_cmp);
    runs[1]
}

/// A file of `bytes` bytes that no compression or chunking shortcut favours.
fn noise_file(path: &std::path::Path, bytes: u64) {
    let mut out = File::create(path).unwrap();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut block = vec![0u8; CHUNK];
    for _ in 0..bytes / CHUNK as u64 {
        for word in block.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            word.copy_from_slice(&x.to_le_bytes());
        }
        out.write_all(&block).unwrap();
    }
}

fn read_all(file: &File, bytes: u64) {
    let mut block = vec![0u8; CHUNK];
    let mut at = 0;
    while at < bytes {
        file.read_exact_at(&mut block, at).unwrap();
        at += CHUNK as u64;
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let mib: u64 = args.iter().find_map(|a| a.parse().ok()).unwrap_or(1024);
    let bytes = mib << 20;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("base.bin");
    noise_file(&path, bytes);
    let file = File::open(&path).unwrap();
    let sizes = Sizes::new(average_for(bytes));

    let read = median_of_three(|| per_gib(bytes, || read_all(&file, bytes)));
    // Cutting alone (the chunker reads the file itself: its read is subtracted).
    let cut_and_read = median_of_three(|| {
        per_gib(bytes, || {
            chunk_file(&file, bytes, sizes, |_, _| Ok(())).unwrap();
        })
    });
    let cut = (cut_and_read - read).max(0.0);
    let chunk_hashes = median_of_three(|| {
        per_gib(bytes, || {
            chunk_file(&file, bytes, sizes, |_, chunk| {
                std::hint::black_box(chunk_hash(ChunkHashing::Xxh3, chunk));
                Ok(())
            })
            .unwrap();
        })
    }) - cut_and_read;
    let block = vec![7u8; CHUNK];
    let whole_hash = median_of_three(|| {
        per_gib(bytes, || {
            let mut hasher = blake3::Hasher::new();
            for _ in 0..bytes / CHUNK as u64 {
                hasher.update(&block);
            }
            std::hint::black_box(hasher.finalize());
        })
    });
    // Copying the base into a new file (into the page cache), as a receiver builds.
    let copy_path = dir.path().join("built.bin");
    let copy = median_of_three(|| {
        let mut out = File::create(&copy_path).unwrap();
        let mut buffer = vec![0u8; CHUNK];
        per_gib(bytes, || {
            let mut at = 0;
            while at < bytes {
                file.read_exact_at(&mut buffer, at).unwrap();
                out.write_all(&buffer).unwrap();
                at += CHUNK as u64;
            }
        })
    });
    // The durable write: the new version written and synced, in wall seconds.
    let durable = median_of_three(|| {
        let started = Instant::now();
        let mut out = File::create(&copy_path).unwrap();
        for _ in 0..bytes / CHUNK as u64 {
            out.write_all(&block).unwrap();
        }
        out.sync_all().unwrap();
        started.elapsed().as_secs_f64() * GIB / bytes as f64
    });

    let sign = read + cut + chunk_hashes.max(0.0);
    let sender = sign + whole_hash;
    let build = copy + whole_hash;
    let total = sign + sender + build;
    let longest = sign.max(sender).max(build);
    let limit = (total / cores as f64).max(durable).max(longest);
    let per_file = |per_gib: f64| per_gib * bytes as f64 / GIB;
    if json {
        println!(
            "{{\"sign\":{:.3},\"sender\":{:.3},\"build\":{:.3},\"durable\":{:.3},\"cpu\":{:.3},\"limit\":{:.3}}}",
            per_file(sign),
            per_file(sender),
            per_file(build),
            per_file(durable),
            per_file(total),
            per_file(limit)
        );
        return;
    }
    println!("CPU seconds per GiB, each step alone, median of three ({cores} cores):");
    println!("  read from the page cache  {read:.3}");
    println!("  cut (FastCDC)             {cut:.3}");
    println!("  chunk hashes (XXH3)       {:.3}", chunk_hashes.max(0.0));
    println!("  whole-file BLAKE3         {whole_hash:.3}");
    println!("  copy base -> new file     {copy:.3}");
    println!("  durable write (wall)      {durable:.3}");
    println!(
        "a delta of {mib} MiB: sign {:.2} s + sender {:.2} s + build {:.2} s = {:.2} CPU s; \
         at best {:.2} s on {cores} cores (durable write {:.2} s)",
        per_file(sign),
        per_file(sender),
        per_file(build),
        per_file(total),
        per_file(limit),
        per_file(durable)
    );
}
