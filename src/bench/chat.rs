//! Chat fan-out: N clients in one room; lines are sent at a fixed rate, spread over the
//! clients (so no one trips the flood limit), and every other member times its delivery.
//!
//! Latency is measured with one clock: the senders and receivers are tasks of this process,
//! so each line's send instant is looked up by its sequence number when it arrives.
//!
//! Given several servers (a cluster on one Redis), member `i` connects to server `i % n`, so
//! every line crosses servers; the servers' CPU time over the run, read from /proc when they
//! are local, gives the cost per delivery however the machine's cores are shared.

use std::net::ToSocketAddrs;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use super::{DeliveryClock, Percentiles};
use ferry::client::chat::{ChatReceiver, ChatTarget};
use ferry::client::connect_many;
use ferry::client::{ClientError, ClientOptions};
use ferry::protocol::Frame;

/// The load's shape.
#[derive(Debug, Clone)]
pub struct ChatOptions {
    pub clients: usize,
    pub messages: usize,
    /// Lines per second across the room; 0 sends as fast as the connections take them.
    pub rate: f64,
    pub room: String,
}

/// Deliveries, their rate and latency.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChatReport {
    pub clients: usize,
    pub messages: usize,
    pub rate: f64,
    /// Lines times members other than the sender.
    pub expected_deliveries: u64,
    pub deliveries: u64,
    /// Lines the server reported skipped for a member the room outran (never silently lost).
    pub skipped: u64,
    /// From the first line sent to the last delivery.
    pub seconds: f64,
    /// Servers the members were spread over.
    pub servers: usize,
    /// CPU seconds (user + system) the local servers spent during the run; `None` when any of
    /// them is not a local process.
    pub server_cpu_seconds: Option<f64>,
    /// The same per million deliveries.
    pub server_cpu_seconds_per_million: Option<f64>,
    pub deliveries_per_second: f64,
    pub latency: Percentiles,
    /// The width of one bin of `deliveries_per_bin`, in ms.
    pub bin_ms: u64,
    /// Deliveries in each bin of `bin_ms`, from the first line sent: the run over time.
    pub deliveries_per_bin: Vec<u64>,
}

/// The width of one bin of deliveries over time.
const BIN: Duration = Duration::from_millis(100);

/// Counts `at` in the bin of `bins` it falls in, counting from `origin`.
fn count_in_bin(bins: &mut Vec<u64>, origin: Instant, at: Instant) {
    let index = usize::try_from(at.saturating_duration_since(origin).as_millis() / BIN.as_millis())
        .unwrap_or(usize::MAX);
    // A run that lasts absurdly long stops being binned rather than allocating without end.
    if index < 1_000_000 {
        if bins.len() <= index {
            bins.resize(index + 1, 0);
        }
        bins[index] += 1;
    }
}

/// Lines received by a member once the run started.
struct Received {
    count: u64,
    skipped: u64,
    latencies: Vec<Duration>,
    last: Option<Instant>,
    /// Deliveries per [`BIN`] since the run's origin.
    bins: Vec<u64>,
}

/// The two fields a receiver looks at. Decoding just these, rather than a whole [`Message`]
/// (an internally tagged enum, which serde buffers before it picks the variant), halves what
/// the load generator spends per delivery — on a shared machine, CPU the server then has.
///
/// [`Message`]: ferry::protocol::Message
#[derive(serde::Deserialize)]
struct Line<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    text: Option<std::borrow::Cow<'a, str>>,
}

/// The `type` of a line said in a room.
const CHAT_MESSAGE: &str = "chat_message";
/// The `type` of a room notice.
const CHAT_NOTICE: &str = "chat_notice";

/// The line that starts the run: every member has seen every join notice before it.
const READY: &str = "ready";

/// How long the run may take beyond its planned sending time before the missing deliveries
/// are counted as lost.
const GRACE: Duration = Duration::from_secs(30);

/// Runs the load and waits for every delivery (or the grace period).
///
/// # Errors
/// Sessions could not be opened or joined, or a sender's connection broke.
pub async fn run(
    servers: &[ClientOptions],
    bench: &ChatOptions,
) -> Result<ChatReport, ClientError> {
    let clients = bench.clients.max(2);
    let n = servers.len().max(1);
    // Member `i` on server `i % n`.
    let mut per_server = Vec::with_capacity(n);
    for (s, options) in servers.iter().enumerate() {
        let count = (0..clients).filter(|i| i % n == s).count();
        let (sessions, stopped) = connect_many(options, count, 32).await;
        if let Some(e) = stopped {
            return Err(ClientError::Protocol(format!(
                "only {} of {count} sessions to {} could be opened: {e}",
                sessions.len(),
                options.server
            )));
        }
        per_server.push(sessions.into_iter());
    }
    let sessions: Vec<_> = (0..clients)
        .filter_map(|i| per_server[i % n].next())
        .collect();
    let pids: Option<Vec<u32>> = servers
        .iter()
        .map(|o| {
            o.server
                .to_socket_addrs()
                .ok()?
                .find(|a| a.ip().is_loopback())
                .and_then(super::server_process::find_listener)
        })
        .collect();

    let clock = Arc::new(DeliveryClock::new(bench.messages));
    // Receivers bin their deliveries from here; the bins before `started` are cut off below.
    let origin = Instant::now();
    let ready = Arc::new((AtomicUsize::new(0), Notify::new()));
    let mut senders = Vec::with_capacity(clients);
    let mut receivers = tokio::task::JoinSet::new();
    for (i, session) in sessions.into_iter().enumerate() {
        let (sender, receiver, _) = session
            .chat(ChatTarget::Room(bench.room.clone()), &nick(i), false)
            .await?;
        senders.push(sender);
        // Line `seq` is sent by member `seq % clients`; it hears all the others.
        let own = (0..bench.messages).filter(|s| s % clients == i).count();
        let expected = (bench.messages - own) as u64;
        let is_first = i == 0;
        receivers.spawn(receive(
            receiver,
            expected,
            is_first,
            origin,
            Arc::clone(&clock),
            Arc::clone(&ready),
        ));
    }
    senders[0].say(READY).await?;
    tokio::time::timeout(GRACE, wait_for_all(&ready, clients))
        .await
        .map_err(|_| {
            ClientError::Protocol(format!(
                "not every member saw the start line within {} s",
                GRACE.as_secs()
            ))
        })?;

    let cpu_before = pids.as_deref().and_then(cpu_seconds);
    let started = Instant::now();
    for seq in 0..bench.messages {
        if bench.rate > 0.0 {
            tokio::time::sleep_until(
                (started + Duration::from_secs_f64(seq as f64 / bench.rate)).into(),
            )
            .await;
        }
        clock.sending(seq);
        senders[seq % clients].say(&seq.to_string()).await?;
    }
    let planned = if bench.rate > 0.0 {
        Duration::from_secs_f64(bench.messages as f64 / bench.rate)
    } else {
        Duration::ZERO
    };
    let deadline = started + planned + GRACE;

    let mut deliveries = 0;
    let mut skipped = 0;
    let mut latencies = Vec::new();
    let mut last = started;
    let mut bins: Vec<u64> = Vec::new();
    loop {
        let next = tokio::time::timeout_at(deadline.into(), receivers.join_next()).await;
        match next {
            Ok(Some(Ok(received))) => {
                deliveries += received.count;
                skipped += received.skipped;
                latencies.extend(received.latencies);
                last = last.max(received.last.unwrap_or(started));
                if bins.len() < received.bins.len() {
                    bins.resize(received.bins.len(), 0);
                }
                for (total, n) in bins.iter_mut().zip(&received.bins) {
                    *total += n;
                }
            }
            Ok(Some(Err(e))) => {
                return Err(ClientError::Protocol(format!(
                    "a receiving task failed: {e}"
                )));
            }
            Ok(None) => break,
            Err(_) => {
                // Past the grace period: what has not arrived is lost.
                receivers.abort_all();
                break;
            }
        }
    }
    let cpu_after = pids.as_deref().and_then(cpu_seconds);
    for mut sender in senders {
        let _ = sender.close().await;
    }
    let seconds = (last - started).as_secs_f64();
    let before_start = (started - origin).as_millis() / BIN.as_millis();
    let deliveries_per_bin = bins
        .into_iter()
        .skip(usize::try_from(before_start).unwrap_or(usize::MAX))
        .collect();
    let server_cpu_seconds = cpu_before.zip(cpu_after).map(|(a, b)| b - a);
    Ok(ChatReport {
        clients,
        messages: bench.messages,
        rate: bench.rate,
        expected_deliveries: (bench.messages as u64) * (clients as u64 - 1),
        deliveries,
        skipped,
        seconds,
        deliveries_per_second: deliveries as f64 / seconds.max(1e-9),
        latency: Percentiles::of(&mut latencies).unwrap_or_default(),
        servers: n,
        server_cpu_seconds,
        server_cpu_seconds_per_million: server_cpu_seconds
            .map(|cpu| cpu / (deliveries.max(1) as f64 / 1e6)),
        bin_ms: BIN.as_millis() as u64,
        deliveries_per_bin,
    })
}

/// User plus system CPU seconds `pids` have spent, from /proc/PID/stat.
fn cpu_seconds(pids: &[u32]) -> Option<f64> {
    let ticks = rustix::param::clock_ticks_per_second() as f64;
    pids.iter()
        .map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // Fields after the command (which may hold spaces) start after the last ')'.
            let rest = stat.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) / ticks)
        })
        .sum()
}

/// Waits until `count` members have seen the start line.
async fn wait_for_all(ready: &(AtomicUsize, Notify), count: usize) {
    loop {
        let notified = ready.1.notified();
        if ready.0.load(Ordering::Acquire) >= count {
            return;
        }
        notified.await;
    }
}

/// One member: skips everything up to the start line, then times each numbered line until it
/// has all it expects (or its connection ends).
async fn receive(
    mut receiver: ChatReceiver,
    expected: u64,
    already_ready: bool,
    origin: Instant,
    clock: Arc<DeliveryClock>,
    ready: Arc<(AtomicUsize, Notify)>,
) -> Received {
    let mut received = Received {
        count: 0,
        skipped: 0,
        latencies: Vec::with_capacity(expected as usize),
        last: None,
        bins: Vec::new(),
    };
    let mut started = already_ready;
    if started {
        mark_ready(&ready);
    }
    while received.count + received.skipped < expected || !started {
        let Ok(Some(Frame::Message(body))) = receiver.next_frame().await else {
            break;
        };
        let Ok(line) = serde_json::from_slice::<Line>(&body) else {
            break;
        };
        let (kind, Some(text)) = (line.kind.as_ref(), line.text) else {
            continue; // acks
        };
        if kind == CHAT_NOTICE {
            // "N lines skipped: ..." when the server fell behind on this member.
            if started && let Some((n, _)) = text.split_once(" lines skipped") {
                received.skipped += n.parse::<u64>().unwrap_or(0);
            }
            continue;
        }
        if kind != CHAT_MESSAGE {
            continue;
        }
        if !started {
            if text == READY {
                started = true;
                mark_ready(&ready);
            }
            continue;
        }
        let now = Instant::now();
        if let Some(latency) = clock.arrived(&text, now) {
            received.latencies.push(latency);
            received.count += 1;
            received.last = Some(now);
            count_in_bin(&mut received.bins, origin, now);
        }
    }
    received
}

fn mark_ready(ready: &(AtomicUsize, Notify)) {
    ready.0.fetch_add(1, Ordering::AcqRel);
    ready.1.notify_waiters();
}

/// Member `i`'s nick.
pub fn nick(i: usize) -> String {
    format!("b{i}")
}
