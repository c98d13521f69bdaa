//! Throughput: upload a file with `put`, download it with `get`, verified as always, a few
//! rounds each on fresh sessions; report MB/s per round and the median.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{median, megabytes_per_second};
use ferry::client::files::{self as files, NoProgress};
use ferry::client::{Client, ClientError, ClientOptions};
use ferry::protocol::HashAlgorithm;

/// What to move.
#[derive(Debug, Clone)]
pub struct ThroughputOptions {
    pub size: u64,
    pub rounds: u32,
    pub algorithm: HashAlgorithm,
}

/// MB/s of each round and their medians.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ThroughputReport {
    pub size_bytes: u64,
    pub algorithm: HashAlgorithm,
    pub put_mb_s: f64,
    pub get_mb_s: f64,
    pub put_rounds_mb_s: Vec<f64>,
    pub get_rounds_mb_s: Vec<f64>,
}

/// Runs the rounds. The uploaded file gets a random name in the server's root and is removed
/// at the end, as are the local files.
///
/// # Errors
/// The server refused (no `read`/`write` permission) or a transfer failed.
pub async fn run(
    options: &ClientOptions,
    bench: &ThroughputOptions,
) -> Result<ThroughputReport, ClientError> {
    let local_dir = tempfile::Builder::new()
        .prefix("ferry-bench-")
        .tempdir()
        .map_err(|source| local_error(Path::new("temporary directory"), source))?;
    let source = local_dir.path().join("source");
    let target = local_dir.path().join("downloaded");
    write_test_file(&source, bench.size).map_err(|e| local_error(&source, e))?;
    let remote = format!(
        "ferry-bench-{}.bin",
        ferry::protocol::hex::encode(&ferry::random::random_bytes::<6>())
    );

    let mut puts = Vec::new();
    let mut gets = Vec::new();
    let result = async {
        for _ in 0..bench.rounds.max(1) {
            let mut client = Client::connect(options).await?;
            let started = Instant::now();
            client
                .files()
                .put_file(
                    &source,
                    &remote,
                    bench.algorithm,
                    false,
                    false,
                    &mut NoProgress,
                )
                .await?;
            puts.push(megabytes_per_second(bench.size, started.elapsed()));
            let _ = client.close().await;

            // A fresh target each round: a leftover would be resumed, not transferred.
            let _ = std::fs::remove_file(&target);
            let mut client = Client::connect(options).await?;
            let started = Instant::now();
            client
                .files()
                .get_file(
                    &remote,
                    &target,
                    bench.algorithm,
                    false,
                    false,
                    &mut NoProgress,
                )
                .await?;
            gets.push(megabytes_per_second(bench.size, started.elapsed()));
            let _ = client.close().await;
        }
        Ok::<(), ClientError>(())
    }
    .await;
    // Clean up the server's copy whatever happened.
    if let Ok(mut client) = Client::connect(options).await {
        let _ = files::remove(client.connection(), &remote).await;
        let _ = client.close().await;
    }
    result?;
    Ok(ThroughputReport {
        size_bytes: bench.size,
        algorithm: bench.algorithm,
        put_mb_s: median(&puts).unwrap_or(0.0),
        get_mb_s: median(&gets).unwrap_or(0.0),
        put_rounds_mb_s: puts,
        get_rounds_mb_s: gets,
    })
}

fn local_error(path: &Path, source: std::io::Error) -> ClientError {
    ClientError::Local {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `size` bytes of incompressible data (a 1 MiB pseudo-random block, varied per
/// block) quickly: the figure is about the transfer, not about making the file.
fn write_test_file(path: &Path, size: u64) -> std::io::Result<()> {
    const BLOCK: usize = 1 << 20;
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut block = vec![0u8; BLOCK];
    for word in block.chunks_exact_mut(8) {
        // xorshift64: fast, and enough to defeat any compression on the way.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        word.copy_from_slice(&state.to_le_bytes());
    }
    let mut out = std::io::BufWriter::with_capacity(BLOCK, std::fs::File::create(path)?);
    let mut left = size;
    let mut index: u64 = 0;
    while left > 0 {
        block[..8].copy_from_slice(&index.to_le_bytes());
        let n = left.min(BLOCK as u64) as usize;
        out.write_all(&block[..n])?;
        left -= n as u64;
        index += 1;
    }
    out.into_inner().map_err(|e| e.into_error())?.sync_all()
}
