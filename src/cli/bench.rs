//! `ferry bench`: runs the load generators of [`crate::bench`] against a server and prints a
//! table for people or one JSON object for scripts.

use std::process::ExitCode;

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Map, Value, json};

use super::ClientArgs;
use super::units::human_size;
use crate::bench::{self, Percentiles};
use ferry::protocol::HashAlgorithm;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    /// Draw figures already measured instead of running tests.
    #[command(subcommand)]
    pub draw: Option<BenchDraw>,
    #[command(flatten)]
    pub client: ClientArgs,
    /// Tests to run, in this order (default: all four).
    #[arg(value_enum)]
    pub tests: Vec<BenchTest>,
    /// Print one JSON object on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
    /// throughput: bytes per transfer (e.g. 1GiB, 256MiB, 10MB, 4096).
    #[arg(long, default_value = "1GiB", value_parser = parse_size, value_name = "SIZE")]
    pub size: u64,
    /// throughput: rounds of put then get (the median is reported).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: u32,
    /// throughput: prove transfers with SHA-256 instead of BLAKE3.
    #[arg(long)]
    pub sha256: bool,
    /// latency: pings on one session.
    #[arg(long, default_value_t = 1000, value_parser = at_least_one)]
    pub pings: usize,
    /// latency: whole session set-ups, and whole `exec -- true` runs.
    #[arg(long, default_value_t = 100, value_parser = at_least_one)]
    pub sessions: usize,
    /// chat: members of the room.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(2..))]
    pub clients: u64,
    /// chat: lines sent, spread over the members.
    #[arg(long, default_value_t = 2000, value_parser = at_least_one)]
    pub messages: usize,
    /// chat: lines per second (0: as fast as the connections take them).
    #[arg(long, default_value_t = 500.0, value_name = "PER_SECOND")]
    pub rate: f64,
    /// chat: the room (default: a fresh random one).
    #[arg(long)]
    pub room: Option<String>,
    /// connections: idle sessions to open and hold.
    #[arg(long, default_value_t = 10_000, value_parser = at_least_one)]
    pub connections: usize,
    /// connections: the server's pid, to read its memory (found by its port when it is local).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Also draw the run as an SVG: throughput per round, latency percentiles, chat deliveries
    /// over time.
    #[arg(long, value_name = "FILE.svg")]
    pub chart: Option<PathBuf>,
}

/// Pictures of figures measured elsewhere.
#[derive(Debug, Subcommand)]
pub enum BenchDraw {
    /// Draw bars side by side (ferry, its peers, the ceiling) into an SVG, e.g.
    /// `ferry bench chart --title "1 GiB get" --unit MB/s --ceiling iperf3 iperf3=2574
    /// "ferry get (TLS)=909" "scp get=241" --out get.svg`.
    Chart(CompareArgs),
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// What is compared.
    #[arg(long)]
    pub title: String,
    /// The unit of the values (MB/s, files/s, ms).
    #[arg(long)]
    pub unit: String,
    /// The bar every other is compared with (the machine's ceiling, or a reference such as
    /// `tar | nc`): drawn grey, and every other bar is labelled with its ratio to it.
    #[arg(long, value_name = "NAME")]
    pub ceiling: Option<String>,
    /// Another limit of the machine (a disk's rate, a derived limit): drawn light grey, with
    /// its ratio like any bar. Repeatable.
    #[arg(long, value_name = "NAME")]
    pub limit: Vec<String>,
    /// The SVG to write.
    #[arg(long, value_name = "FILE.svg")]
    pub out: PathBuf,
    /// The bars, top to bottom: NAME=VALUE (names starting with "ferry" are drawn blue).
    #[arg(required = true, value_name = "NAME=VALUE")]
    pub bars: Vec<bench::chart::Bar>,
}

/// The four measurements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchTest {
    Throughput,
    Latency,
    Chat,
    Connections,
}

impl BenchTest {
    fn name(self) -> &'static str {
        match self {
            BenchTest::Throughput => "throughput",
            BenchTest::Latency => "latency",
            BenchTest::Chat => "chat",
            BenchTest::Connections => "connections",
        }
    }
}

pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    if let Some(BenchDraw::Chart(compare)) = &args.draw {
        bench::chart::draw_comparison(
            &compare.out,
            &compare.title,
            &compare.unit,
            &compare.bars,
            compare.ceiling.as_deref(),
            &compare.limit,
        )?;
        eprintln!("ferry: wrote {}", compare.out.display());
        return Ok(ExitCode::SUCCESS);
    }
    if !(args.rate >= 0.0 && args.rate.is_finite()) {
        anyhow::bail!("--rate must be 0 or a positive number of lines per second");
    }
    ferry::fd_limit::raise_to_hard_limit();
    let servers = args.client.options_for_each()?;
    if servers.len() > 1 && args.tests != [BenchTest::Chat] {
        anyhow::bail!(
            "several --server are for 'ferry bench chat' only (members spread over a cluster)"
        );
    }
    let options = servers[0].clone();
    let mut probe_args = args.client.clone();
    probe_args.server.truncate(1);
    let probe = probe_args.connect().await?;
    let info = probe.info().clone();
    let _ = probe.close().await;
    let transport = if info.tls.is_some() {
        "TLS"
    } else {
        "plaintext"
    };
    let user = info
        .granted
        .user
        .clone()
        .unwrap_or_else(|| "anonymous".into());
    if !args.json {
        println!("ferry bench: {} ({transport}, user {user})", info.server);
    }

    let tests = if args.tests.is_empty() {
        vec![
            BenchTest::Throughput,
            BenchTest::Latency,
            BenchTest::Chat,
            BenchTest::Connections,
        ]
    } else {
        args.tests.clone()
    };
    let mut results = Map::new();
    let mut failed = false;
    for test in tests {
        let outcome = run_one(test, &args, &options, &servers).await;
        match outcome {
            Ok((value, rows)) => {
                if !args.json {
                    for (i, row) in rows.iter().enumerate() {
                        let label = if i == 0 { test.name() } else { "" };
                        println!("{label:<12} {row}");
                    }
                }
                results.insert(test.name().into(), value);
            }
            Err(e) => {
                failed = true;
                if !args.json {
                    println!("{:<12} failed: {e}", test.name());
                }
                results.insert(test.name().into(), json!({ "error": e.to_string() }));
            }
        }
    }
    if let Some(path) = &args.chart {
        draw_run(path, &info.server, transport, &results)?;
        if !args.json {
            println!("{:<12} {}", "chart", path.display());
        }
    }
    if args.json {
        let report = json!({
            "server": info.server,
            "transport": transport,
            "user": user,
            "results": results,
        });
        println!("{report}");
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Draws the reports in `results` (as their JSON) into `path`.
fn draw_run(
    path: &Path,
    server: &str,
    transport: &str,
    results: &Map<String, Value>,
) -> anyhow::Result<()> {
    fn report<T: serde::de::DeserializeOwned>(
        results: &Map<String, Value>,
        name: &str,
    ) -> Option<T> {
        results
            .get(name)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }
    let throughput: Option<bench::throughput::ThroughputReport> = report(results, "throughput");
    let latency: Option<bench::latency::LatencyReport> = report(results, "latency");
    let chat: Option<bench::chat::ChatReport> = report(results, "chat");
    let title = format!(
        "ferry bench against {server} ({transport}), {}",
        humantime::format_rfc3339_seconds(std::time::SystemTime::now())
    );
    bench::chart::draw_run(
        path,
        &title,
        &bench::chart::RunFigures {
            throughput: throughput.as_ref(),
            latency: latency.as_ref(),
            chat: chat.as_ref(),
        },
    )
}

/// Runs one test; returns its JSON and its table rows.
async fn run_one(
    test: BenchTest,
    args: &BenchArgs,
    options: &ferry::client::ClientOptions,
    servers: &[ferry::client::ClientOptions],
) -> anyhow::Result<(Value, Vec<String>)> {
    Ok(match test {
        BenchTest::Throughput => {
            let algorithm = if args.sha256 {
                HashAlgorithm::Sha256
            } else {
                HashAlgorithm::Blake3
            };
            let report = bench::throughput::run(
                options,
                &bench::throughput::ThroughputOptions {
                    size: args.size,
                    rounds: args.rounds,
                    algorithm,
                },
            )
            .await?;
            let rounds = |v: &[f64]| {
                v.iter()
                    .map(|x| format!("{x:.0}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            let rows = vec![
                format!(
                    "put {} ({}): {:.1} MB/s median (rounds: {})",
                    human_size(report.size_bytes),
                    algorithm.name(),
                    report.put_mb_s,
                    rounds(&report.put_rounds_mb_s)
                ),
                format!(
                    "get {} ({}): {:.1} MB/s median (rounds: {})",
                    human_size(report.size_bytes),
                    algorithm.name(),
                    report.get_mb_s,
                    rounds(&report.get_rounds_mb_s)
                ),
            ];
            (serde_json::to_value(report)?, rows)
        }
        BenchTest::Latency => {
            let report = bench::latency::run(
                options,
                &bench::latency::LatencyOptions {
                    pings: args.pings,
                    sessions: args.sessions,
                    execs: args.sessions,
                },
            )
            .await?;
            let mut rows = vec![
                format!("ping on a session       {}", percentiles(&report.ping)),
                format!("session set-up          {}", percentiles(&report.session)),
            ];
            rows.push(match (&report.exec, &report.exec_skipped) {
                (Some(exec), _) => format!("whole exec -- true      {}", percentiles(exec)),
                (None, why) => format!(
                    "whole exec -- true      skipped: {}",
                    why.as_deref().unwrap_or("not run")
                ),
            });
            (serde_json::to_value(report)?, rows)
        }
        BenchTest::Chat => {
            let room = args.room.clone().unwrap_or_else(|| {
                let suffix = ferry::random::random_bytes::<4>();
                format!("bench-{}", ferry::protocol::hex::encode(&suffix))
            });
            let report = bench::chat::run(
                servers,
                &bench::chat::ChatOptions {
                    clients: usize::try_from(args.clients).unwrap_or(usize::MAX),
                    messages: args.messages,
                    rate: args.rate,
                    room,
                },
            )
            .await?;
            let offered = if report.rate > 0.0 {
                format!("{} lines at {}/s", report.messages, report.rate)
            } else {
                format!("{} lines at once", report.messages)
            };
            let rows = vec![
                format!(
                    "{} members, {offered}: {} of {} deliveries in {:.2} s = {:.0}/s{}",
                    report.clients,
                    report.deliveries,
                    report.expected_deliveries,
                    report.seconds,
                    report.deliveries_per_second,
                    if report.skipped > 0 {
                        format!(" ({} skipped: the server fell behind)", report.skipped)
                    } else {
                        String::new()
                    }
                ),
                format!("delivery latency        {}", percentiles(&report.latency)),
            ];
            let mut rows = rows;
            if let Some(cpu) = report.server_cpu_seconds {
                rows.push(format!(
                    "server CPU              {cpu:.2} s over {} server(s) = {:.2} s per million deliveries",
                    report.servers,
                    report.server_cpu_seconds_per_million.unwrap_or(0.0)
                ));
            }
            (serde_json::to_value(report)?, rows)
        }
        BenchTest::Connections => {
            let report = bench::connections::run(
                options,
                &bench::connections::ConnectionsOptions {
                    count: args.connections,
                    server_pid: args.server_pid,
                },
            )
            .await?;
            let mut rows = vec![format!(
                "{} of {} idle sessions opened in {:.2} s{}",
                report.opened,
                report.requested,
                report.open_seconds,
                report
                    .stopped_by
                    .as_ref()
                    .map(|why| format!(" (stopped: {why})"))
                    .unwrap_or_default()
            )];
            rows.push(match report.server_kib_per_connection {
                Some(kib) => format!(
                    "server memory           {:.1} KiB per connection (RSS {} -> {} KiB, pid {})",
                    kib,
                    report.server_rss_before_kib.unwrap_or(0),
                    report.server_rss_after_kib.unwrap_or(0),
                    report.server_pid.unwrap_or(0)
                ),
                None if report.stopped_by.is_some() => {
                    "server memory           not measured (fewer sessions than asked)".to_string()
                }
                None => "server memory           unknown (server not local; try --server-pid)"
                    .to_string(),
            });
            rows.push(format!(
                "ping while open         {}",
                percentiles(&report.ping_while_open)
            ));
            (serde_json::to_value(report)?, rows)
        }
    })
}

fn percentiles(p: &Percentiles) -> String {
    format!(
        "p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  max {:.3} ms  ({} samples)",
        p.p50_ms, p.p90_ms, p.p99_ms, p.max_ms, p.samples
    )
}

fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("'{s}' is not a whole number of at least 1")),
    }
}

/// Parses a size: a number of bytes with an optional unit (B, KB, MB, GB decimal; KiB, MiB,
/// GiB binary; K/M/G are binary, as dd and most people mean them).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("'{s}' is not a size (e.g. 1GiB, 256MiB, 4096)"))?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit '{other}' (use KiB, MiB, GiB, KB, MB, GB)"
            ));
        }
    };
    match number.checked_mul(multiplier) {
        Some(0) | None => Err(format!("'{s}' must be between 1 byte and 16 EiB")),
        Some(n) => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_decimal_and_binary_units() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("256M"), Ok(256 << 20));
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert!(parse_size("0").is_err());
        assert!(parse_size("1XB").is_err());
        assert!(parse_size("GiB").is_err());
        assert!(parse_size("99999999999999999999G").is_err());
    }

    #[test]
    fn human_sizes_use_binary_units() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(1 << 30), "1.0 GiB");
        assert_eq!(human_size(3 << 19), "1.5 MiB");
    }
}
