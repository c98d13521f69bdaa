//! The chat fan-out load of `ferry bench chat`, in IRC, for the side-by-side comparison with
//! ngircd in `bench/chat.sh`: N clients in one channel, lines sent at a fixed rate spread over
//! them, every other member timing each delivery with the same clock, reported as the same
//! JSON. Same runtime, same shape, same measurement — only the server and protocol differ.
//!
//! Usage: `cargo run --release --example irc_fanout -- [tls://]HOST:PORT CLIENTS MESSAGES RATE`
//! (`tls://`: IRC over TLS, any certificate, as ferry's IRC door presents its own identity).
//! `bench/chat.sh` times its CPU beside the server's, to show it is not the bottleneck.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

// The same clock and percentiles as `ferry bench chat`, compiled in from the binary's bench
// module (the benchmark is part of the binary, not of the library).
#[path = "../src/bench/delivery_clock.rs"]
mod delivery_clock;
#[path = "../src/bench/percentiles.rs"]
mod percentiles;

use delivery_clock::DeliveryClock;
use ferry::connection::BoxedStream;
use percentiles::Percentiles;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

type OwnedWriteHalf = WriteHalf<BoxedStream>;

const CHANNEL: &str = "#bench";
/// What precedes a line's text in a delivery (the channel is `CHANNEL`).
const DELIVERED: &str = " PRIVMSG #bench :";
const GRACE: Duration = Duration::from_secs(30);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, addr, clients, messages, rate] = &args[..] else {
        return Err("usage: irc_fanout HOST:PORT CLIENTS MESSAGES RATE".into());
    };
    let (clients, messages, rate): (usize, usize, f64) =
        (clients.parse()?, messages.parse()?, rate.parse()?);
    ferry::fd_limit::raise_to_hard_limit();

    let clock = Arc::new(DeliveryClock::new(messages));
    let ready = Arc::new((AtomicUsize::new(0), Notify::new()));
    let mut writers = Vec::with_capacity(clients);
    let mut receivers = tokio::task::JoinSet::new();
    // Registered 16 at a time: ngircd's listen backlog is short, and a burst of connects
    // beyond it is reset.
    let mut registering = tokio::task::JoinSet::new();
    let mut registered = Vec::with_capacity(clients);
    let mut next = 0;
    while registered.len() < clients {
        while next < clients && registering.len() < 16 {
            let (addr, i) = (addr.clone(), next);
            registering
                .spawn(async move { (i, register(&addr, i).await.map_err(|e| e.to_string())) });
            next += 1;
        }
        let Some(done) = registering.join_next().await else {
            break;
        };
        let (i, result) = done?;
        registered.push((i, result?));
    }
    registered.sort_by_key(|(i, _)| *i);
    for (i, (mut lines, writer)) in registered {
        writers.push(writer);
        let own = (0..messages).filter(|s| s % clients == i).count();
        let expected = (messages - own) as u64;
        let (clock, ready) = (Arc::clone(&clock), Arc::clone(&ready));
        let mut started = i == 0;
        if started {
            mark(&ready);
        }
        receivers.spawn(async move {
            let (mut count, mut latencies, mut last) = (0u64, Vec::new(), None);
            while count < expected || !started {
                let Ok(Some(line)) = lines.next_line().await else {
                    break;
                };
                let Some(text) = line.split_once(DELIVERED).map(|(_, text)| text.to_string())
                else {
                    continue;
                };
                if !started {
                    if text == "ready" {
                        started = true;
                        mark(&ready);
                    }
                    continue;
                }
                let now = Instant::now();
                if let Some(latency) = clock.arrived(&text, now) {
                    latencies.push(latency);
                    count += 1;
                    last = Some(now);
                }
            }
            (count, latencies, last)
        });
    }
    say(&mut writers[0], "ready").await?;
    tokio::time::timeout(GRACE, async {
        loop {
            let notified = ready.1.notified();
            if ready.0.load(Ordering::Acquire) >= clients {
                return;
            }
            notified.await;
        }
    })
    .await
    .map_err(|_| "not every member saw the start line")?;

    let started = Instant::now();
    for seq in 0..messages {
        if rate > 0.0 {
            tokio::time::sleep_until((started + Duration::from_secs_f64(seq as f64 / rate)).into())
                .await;
        }
        clock.sending(seq);
        say(&mut writers[seq % clients], &seq.to_string()).await?;
    }
    let planned = if rate > 0.0 {
        messages as f64 / rate
    } else {
        0.0
    };
    let deadline = started + Duration::from_secs_f64(planned) + GRACE;
    let (mut deliveries, mut latencies, mut last) = (0u64, Vec::new(), started);
    loop {
        match tokio::time::timeout_at(deadline.into(), receivers.join_next()).await {
            Ok(Some(Ok((count, lat, at)))) => {
                deliveries += count;
                latencies.extend(lat);
                last = last.max(at.unwrap_or(started));
            }
            Ok(Some(Err(e))) => return Err(e.into()),
            Ok(None) => break,
            Err(_) => {
                receivers.abort_all();
                break;
            }
        }
    }
    let seconds = (last - started).as_secs_f64();
    let report = serde_json::json!({
        "clients": clients,
        "messages": messages,
        "rate": rate,
        "expected_deliveries": messages as u64 * (clients as u64 - 1),
        "deliveries": deliveries,
        "seconds": seconds,
        "deliveries_per_second": deliveries as f64 / seconds.max(1e-9),
        "latency": Percentiles::of(&mut latencies).unwrap_or_default(),
    });
    println!("{report}");
    Ok(())
}

type Lines = tokio::io::Lines<BufReader<ReadHalf<BoxedStream>>>;

/// TCP, or TLS over it for a `tls://` address.
async fn connect(addr: &str) -> Result<BoxedStream, Box<dyn std::error::Error>> {
    let (tls, addr) = match addr.strip_prefix("tls://") {
        Some(rest) => (true, rest),
        None => (false, addr),
    };
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    if !tls {
        return Ok(Box::new(stream));
    }
    let connector = tokio_rustls::TlsConnector::from(ferry::tls::rustls_config::client_config());
    let name = rustls_pki_types::ServerName::try_from("ferry")?;
    Ok(Box::new(connector.connect(name, stream).await?))
}

/// Connects, registers as `b{i}` and joins the channel; returns once the join's name list
/// ended (answering PINGs meanwhile).
async fn register(
    addr: &str,
    i: usize,
) -> Result<(Lines, OwnedWriteHalf), Box<dyn std::error::Error>> {
    let (read, mut write) = tokio::io::split(connect(addr).await?);
    let mut lines = BufReader::new(read).lines();
    write
        .write_all(format!("NICK b{i}\r\nUSER b{i} 0 * :bench\r\n").as_bytes())
        .await?;
    let mut joined = false;
    while let Some(line) = lines.next_line().await? {
        let numeric = line.split(' ').nth(1).unwrap_or("");
        if let Some(token) = line.strip_prefix("PING ") {
            write
                .write_all(format!("PONG {token}\r\n").as_bytes())
                .await?;
        } else if numeric == "001" && !joined {
            write
                .write_all(format!("JOIN {CHANNEL}\r\n").as_bytes())
                .await?;
            joined = true;
        } else if numeric == "366" {
            return Ok((lines, write));
        } else if line.starts_with("ERROR") || numeric.starts_with('4') {
            return Err(format!("client {i}: {line}").into());
        }
    }
    Err(format!("client {i}: the server closed during registration").into())
}

async fn say(writer: &mut OwnedWriteHalf, text: &str) -> std::io::Result<()> {
    writer
        .write_all(format!("PRIVMSG {CHANNEL} :{text}\r\n").as_bytes())
        .await?;
    // TLS holds what the socket did not take until the next write or a flush.
    writer.flush().await
}

fn mark(ready: &(AtomicUsize, Notify)) {
    ready.0.fetch_add(1, Ordering::AcqRel);
    ready.1.notify_waiters();
}
