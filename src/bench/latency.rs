//! Latency: round trips that a user waits for. `ping` on one open session (the protocol and
//! the server's dispatch), a whole session set-up (TCP, preamble, TLS, auth), and a whole
//! `exec -- true` (set-up, spawn, exit status back) — the last comparable to `ssh host true`.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::Percentiles;
use ferry::client::exec::{self as exec, ExecOutcome};
use ferry::client::{Client, ClientError, ClientOptions};
use ferry::protocol::{ErrorCode, Exec};

/// How many of each.
#[derive(Debug, Clone)]
pub struct LatencyOptions {
    pub pings: usize,
    pub sessions: usize,
    pub execs: usize,
}

/// Percentiles of each kind of round trip; exec is absent (with the reason) when the token may
/// not run commands.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LatencyReport {
    pub ping: Percentiles,
    pub session: Percentiles,
    pub exec: Option<Percentiles>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exec_skipped: Option<String>,
}

/// Runs the three measurements one after another.
///
/// # Errors
/// The server is unreachable or refuses the session, or `true` did not succeed remotely.
pub async fn run(
    options: &ClientOptions,
    bench: &LatencyOptions,
) -> Result<LatencyReport, ClientError> {
    let mut client = Client::connect(options).await?;
    let mut pings = Vec::with_capacity(bench.pings);
    for seq in 1..=bench.pings.max(1) as u64 {
        pings.push(client.ping(seq).await?);
    }
    let _ = client.close().await;

    let mut sessions = Vec::with_capacity(bench.sessions);
    for _ in 0..bench.sessions.max(1) {
        let started = Instant::now();
        let client = Client::connect(options).await?;
        sessions.push(started.elapsed());
        let _ = client.close().await;
    }

    let (exec, exec_skipped) = match exec_round_trips(options, bench.execs.max(1)).await {
        Ok(mut samples) => (Percentiles::of(&mut samples), None),
        Err(ClientError::Server(refusal)) if refusal.code == ErrorCode::PermissionDenied => {
            (None, Some(refusal.message))
        }
        Err(e) => return Err(e),
    };
    Ok(LatencyReport {
        ping: Percentiles::of(&mut pings).unwrap_or_default(),
        session: Percentiles::of(&mut sessions).unwrap_or_default(),
        exec,
        exec_skipped,
    })
}

/// Whole `exec -- true` runs, each on a fresh session as the CLI does.
async fn exec_round_trips(
    options: &ClientOptions,
    count: usize,
) -> Result<Vec<Duration>, ClientError> {
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let started = Instant::now();
        let client = Client::connect(options).await?;
        let (events, no_events) = tokio::sync::mpsc::channel(1);
        drop(events); // nothing to resize or signal
        let spec = Exec {
            argv: vec!["true".into()],
            shell: false,
            tty: None,
            timeout_ms: Some(exec::timeout_ms(Duration::from_secs(30))),
        };
        let outcome = client
            .exec(
                spec,
                tokio::io::empty(),
                tokio::io::sink(),
                tokio::io::sink(),
                no_events,
            )
            .await?;
        samples.push(started.elapsed());
        if outcome != ExecOutcome::Exited(0) {
            return Err(ClientError::Protocol(format!(
                "'true' did not succeed on the server: {outcome:?}"
            )));
        }
    }
    Ok(samples)
}
