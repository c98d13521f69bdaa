//! Connections: open N idle sessions (full handshake each) and hold them; report how long
//! that took, the server's memory per connection when the server runs on this machine, and
//! ping round trips on one more session while they are all open.

use std::net::ToSocketAddrs;
use std::time::Instant;

use serde::Serialize;

use super::{Percentiles, server_process};
use ferry::client::connect_many;
use ferry::client::{Client, ClientError, ClientOptions};

/// How many, and whose memory to read.
#[derive(Debug, Clone)]
pub struct ConnectionsOptions {
    pub count: usize,
    /// The server's pid; found from its listening socket when absent and it is local.
    pub server_pid: Option<u32>,
}

/// What holding the sessions cost.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionsReport {
    pub requested: usize,
    pub opened: usize,
    /// Why fewer than requested were opened (e.g. the server's connection limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_by: Option<String>,
    pub open_seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_rss_before_kib: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_rss_after_kib: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_kib_per_connection: Option<f64>,
    /// Round trips on one more session while all are open.
    pub ping_while_open: Percentiles,
}

/// Pings taken while the sessions are held.
const PINGS: u64 = 200;

/// `HOST:PORT` of a server address, a web door's (`wss://HOST:PORT/ws`) included.
fn host_port(server: &str) -> &str {
    let rest = server.split_once("://").map_or(server, |(_, rest)| rest);
    rest.split('/').next().unwrap_or(rest)
}

/// Opens, measures, closes.
///
/// # Errors
/// Not even the first session or the pinging one could be opened.
pub async fn run(
    options: &ClientOptions,
    bench: &ConnectionsOptions,
) -> Result<ConnectionsReport, ClientError> {
    ferry::fd_limit::raise_to_hard_limit();
    let server_pid = bench.server_pid.or_else(|| {
        host_port(&options.server)
            .to_socket_addrs()
            .ok()?
            .find(|a| a.ip().is_loopback())
            .and_then(server_process::find_listener)
    });
    // The pinging session first: it also settles the pin and the server's lazy state, so the
    // baseline is read from a warm server.
    let mut pinger = Client::connect(options).await?;
    pinger.ping(0).await?;
    let before = server_pid.and_then(server_process::resident_kib);

    let started = Instant::now();
    let (sessions, stopped_by) = connect_many(options, bench.count, 64).await;
    let open_seconds = started.elapsed().as_secs_f64();
    let opened = sessions.len();
    if let (0, Some(e)) = (opened, stopped_by.as_ref()) {
        return Err(ClientError::Protocol(format!(
            "no session could be opened: {e}"
        )));
    }
    let after = server_pid.and_then(server_process::resident_kib);

    let mut pings = Vec::with_capacity(PINGS as usize);
    for seq in 1..=PINGS {
        pings.push(pinger.ping(seq).await?);
    }
    drop(sessions);
    let _ = pinger.close().await;

    let per_connection = match (before, after, stopped_by.is_none() && opened > 0) {
        (Some(b), Some(a), true) => Some(a.saturating_sub(b) as f64 / opened as f64),
        _ => None,
    };
    Ok(ConnectionsReport {
        requested: bench.count,
        opened,
        stopped_by: stopped_by.map(|e| e.to_string()),
        open_seconds,
        server_pid,
        server_rss_before_kib: before,
        server_rss_after_kib: after,
        server_kib_per_connection: per_connection,
        ping_while_open: Percentiles::of(&mut pings).unwrap_or_default(),
    })
}
