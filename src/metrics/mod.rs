//! The server's figures, in Prometheus' text format: sessions by transport, sign-ins,
//! requests, bytes per service, chat, exec and transfers. Each server has its own registry
//! (not a process-wide one), so two servers in one process, as in the tests, count apart.
//!
//! Counters are incremented where things happen; figures that are states rather than events
//! (rooms, members, whether Redis is reachable) are read from their owner when scraped
//! (`Snapshot`).

mod metered_stream;

use std::collections::BTreeMap;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

pub use metered_stream::{MeteredStream, ServiceCell};

use crate::protocol::Sample;
use crate::transport::Transport;

/// The service a byte was carried for.
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// The handshake and anything between requests.
    Session,
    Chat,
    Exec,
    Files,
    Echo,
    Forward,
}

impl Service {
    /// Every service, for figures shown even at zero.
    pub const ALL: [Service; 6] = [
        Service::Session,
        Service::Chat,
        Service::Exec,
        Service::Files,
        Service::Echo,
        Service::Forward,
    ];

    fn index(self) -> usize {
        self as usize
    }

    fn from_index(index: usize) -> Service {
        Service::ALL.get(index).copied().unwrap_or(Service::Session)
    }
}

/// Which way bytes went, seen from the server.
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    In,
    Out,
}

/// Which way a file went, seen from the client.
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransferKind {
    Get,
    Put,
}

/// How a sign-in ended.
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignInOutcome {
    /// As a user, with a valid proof.
    Ok,
    /// Without a token.
    Anonymous,
    /// Refused: wrong token, unknown user, or too many failures.
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TransportLabel {
    transport: Transport,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: SignInOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    kind: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct BytesLabels {
    service: Service,
    direction: Direction,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TransferLabel {
    direction: TransferKind,
}

/// Label values in lower case, as Prometheus labels are by custom.
macro_rules! label_values {
    ($($kind:ty { $($variant:ident => $name:literal),* $(,)? })*) => {$(
        impl EncodeLabelValue for $kind {
            fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
                let name = match self {
                    $(<$kind>::$variant => $name,)*
                };
                EncodeLabelValue::encode(&name, encoder)
            }
        }
    )*};
}

label_values! {
    Transport { Tcp => "tcp", Websocket => "websocket", Irc => "irc" }
    Service {
        Session => "session",
        Chat => "chat",
        Exec => "exec",
        Files => "files",
        Echo => "echo",
        Forward => "forward",
    }
    Direction { In => "in", Out => "out" }
    TransferKind { Get => "get", Put => "put" }
    SignInOutcome { Ok => "ok", Anonymous => "anonymous", Failed => "failed" }
}

/// Chat's event counters, held by the hub so that members count as they deliver.
#[derive(Debug, Clone, Default)]
pub struct ChatCounters {
    /// Lines and notices written to members (one per member reached).
    pub deliveries: Counter,
    /// Lines members missed because their room outran their connection.
    pub lines_skipped: Counter,
    /// Members dropped for not reading.
    pub members_dropped: Counter,
}

/// Figures read from their owners when scraped.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Chat rooms that exist now.
    pub chat_rooms: i64,
    /// Members of those rooms.
    pub chat_members: i64,
    /// `Some(up)` when clustered: whether Redis is reachable.
    pub cluster_up: Option<bool>,
    /// Audit entries lost so far.
    pub audit_dropped: u64,
    /// Rotated audit files kept beyond `[audit] keep` (too young to remove).
    pub audit_kept_over_budget: u64,
    /// Bytes hashed to check resume offers so far.
    pub resume_hashed_bytes: u64,
}

/// Every figure of one server.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    sessions_open: Family<TransportLabel, Gauge>,
    sign_ins: Family<OutcomeLabel, Counter>,
    requests: Family<RequestLabels, Counter>,
    bytes: Family<BytesLabels, Counter>,
    /// Chat's counters (the hub holds a clone).
    pub chat: ChatCounters,
    chat_rooms: Gauge,
    chat_members: Gauge,
    exec_running: Gauge,
    transfer_seconds: Family<TransferLabel, Histogram, fn() -> Histogram>,
    cluster_up: Gauge,
    audit_dropped: Counter,
    audit_kept_over_budget: Gauge,
    resume_hashed: Counter,
}

/// Transfer durations from 1 ms to about 9 minutes, doubling.
fn transfer_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 20))
}

impl Metrics {
    /// A new registry with every figure at zero; chat's counters are the hub's.
    pub fn new(chat: ChatCounters) -> Metrics {
        let mut registry = Registry::with_prefix("ferry");
        let metrics = Metrics {
            sessions_open: Family::default(),
            sign_ins: Family::default(),
            requests: Family::default(),
            bytes: Family::default(),
            chat,
            chat_rooms: Gauge::default(),
            chat_members: Gauge::default(),
            exec_running: Gauge::default(),
            transfer_seconds: Family::new_with_constructor(transfer_histogram),
            cluster_up: Gauge::default(),
            audit_dropped: Counter::default(),
            audit_kept_over_budget: Gauge::default(),
            resume_hashed: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "sessions_open",
            "Sessions open now, by the door they came through",
            metrics.sessions_open.clone(),
        );
        registry.register(
            "sign_ins",
            "Handshakes that ended: signed in as a user, anonymously, or refused",
            metrics.sign_ins.clone(),
        );
        registry.register(
            "requests",
            "Requests served, by kind and outcome (ok, or the error code answered)",
            metrics.requests.clone(),
        );
        registry.register(
            "bytes",
            "Protocol bytes carried, by service and direction (in: from clients)",
            metrics.bytes.clone(),
        );
        registry.register(
            "chat_deliveries",
            "Chat lines and notices written to members",
            metrics.chat.deliveries.clone(),
        );
        registry.register(
            "chat_lines_skipped",
            "Chat lines members missed because their room outran their connection",
            metrics.chat.lines_skipped.clone(),
        );
        registry.register(
            "chat_members_dropped",
            "Chat members dropped for not reading",
            metrics.chat.members_dropped.clone(),
        );
        registry.register(
            "chat_rooms",
            "Chat rooms that exist now",
            metrics.chat_rooms.clone(),
        );
        registry.register(
            "chat_members",
            "Members of chat rooms now (a member of two rooms counts twice)",
            metrics.chat_members.clone(),
        );
        registry.register(
            "exec_running",
            "Remote commands running now",
            metrics.exec_running.clone(),
        );
        registry.register(
            "transfer_duration_seconds",
            "Verified file transfers, from request to answer, by direction",
            metrics.transfer_seconds.clone(),
        );
        registry.register(
            "audit_dropped",
            "Audit entries lost because the log fell behind or the disk refused them",
            metrics.audit_dropped.clone(),
        );
        registry.register(
            "audit_kept_over_budget",
            "Rotated audit files kept beyond [audit] keep because their entries are younger than keep_days",
            metrics.audit_kept_over_budget.clone(),
        );
        registry.register(
            "resume_hashed_bytes",
            "Bytes hashed to check the offers of resumed gets (bounded per address and in all)",
            metrics.resume_hashed.clone(),
        );
        for transport in Transport::ALL {
            drop(
                metrics
                    .sessions_open
                    .get_or_create(&TransportLabel { transport }),
            );
        }
        for outcome in [
            SignInOutcome::Ok,
            SignInOutcome::Anonymous,
            SignInOutcome::Failed,
        ] {
            drop(metrics.sign_ins.get_or_create(&OutcomeLabel { outcome }));
        }
        for service in Service::ALL {
            for direction in [Direction::In, Direction::Out] {
                drop(
                    metrics
                        .bytes
                        .get_or_create(&BytesLabels { service, direction }),
                );
            }
        }
        Metrics {
            registry,
            ..metrics
        }
    }

    /// Registers the cluster figure; only a clustered server shows it.
    pub fn clustered(&mut self) {
        self.registry.register(
            "cluster_up",
            "1 while the chat engine's Redis is reachable, else 0",
            self.cluster_up.clone(),
        );
    }

    /// A session opened through `transport`; it counts as open until the guard drops.
    pub fn session_opened(&self, transport: Transport) -> OpenSession {
        let gauge = self
            .sessions_open
            .get_or_create_owned(&TransportLabel { transport });
        gauge.inc();
        OpenSession(gauge)
    }

    /// A handshake ended.
    pub fn signed_in(&self, outcome: SignInOutcome) {
        self.sign_ins.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    /// A request of `kind` was answered with `outcome` (`ok` or an error code).
    pub fn request(&self, kind: &'static str, outcome: &'static str) {
        self.requests
            .get_or_create(&RequestLabels { kind, outcome })
            .inc();
    }

    /// The byte counter of one service and direction (for [`MeteredStream`]).
    pub fn bytes_counter(&self, service: Service, direction: Direction) -> Counter {
        self.bytes
            .get_or_create_owned(&BytesLabels { service, direction })
    }

    /// A command started; it counts as running until the guard drops.
    pub fn exec_started(&self) -> RunningExec {
        self.exec_running.inc();
        RunningExec(self.exec_running.clone())
    }

    /// A verified transfer took `took`.
    pub fn transfer(&self, direction: TransferKind, took: Duration) {
        self.transfer_seconds
            .get_or_create(&TransferLabel { direction })
            .observe(took.as_secs_f64());
    }

    /// The whole text to serve at `/metrics`, with the state figures as of `now`.
    pub fn render(&self, now: &Snapshot) -> String {
        self.chat_rooms.set(now.chat_rooms);
        self.chat_members.set(now.chat_members);
        self.cluster_up
            .set(i64::from(now.cluster_up.unwrap_or(false)));
        self.audit_kept_over_budget
            .set(i64::try_from(now.audit_kept_over_budget).unwrap_or(i64::MAX));
        let hashed = self.resume_hashed.get();
        if now.resume_hashed_bytes > hashed {
            self.resume_hashed.inc_by(now.resume_hashed_bytes - hashed);
        }
        let seen = self.audit_dropped.get();
        if now.audit_dropped > seen {
            self.audit_dropped.inc_by(now.audit_dropped - seen);
        }
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// Counts a session as open until dropped, on every exit path.
#[derive(Debug)]
pub struct OpenSession(Gauge);

impl Drop for OpenSession {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Counts a command as running until dropped.
#[derive(Debug)]
pub struct RunningExec(Gauge);

impl Drop for RunningExec {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Every sample of the text format, in order: `name{labels} value` lines (comments skipped).
pub fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(parse_sample)
        .collect()
}

/// One `name{k="v",...} value` line. Label values are the encoder's: quotes and backslashes
/// escaped with a backslash.
fn parse_sample(line: &str) -> Option<Sample> {
    let (series, value) = line.rsplit_once(' ')?;
    let value: f64 = value.parse().ok()?;
    let (name, labels) = match series.split_once('{') {
        None => (series, BTreeMap::new()),
        Some((name, rest)) => (name, parse_labels(rest.strip_suffix('}')?)?),
    };
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

fn parse_labels(mut rest: &str) -> Option<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (_, '\\') => value.push(chars.next()?.1),
                (i, '"') => break i,
                (_, c) => value.push(c),
            }
        };
        labels.insert(key.trim_start_matches(',').to_string(), value);
        rest = &after[end + 1..];
    }
    Some(labels)
}

/// Reads one figure out of the text format, for tests and `ferry bench`: the value of the
/// sample whose name and labels are exactly `series` (e.g. `ferry_sign_ins_total{outcome="ok"}`).
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok())?
        })
}

#[cfg(test)]
mod tests;
