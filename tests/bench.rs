//! `ferry bench` against a real `ferry serve` process: every test runs, its figures add up
//! (deliveries counted one by one, samples as many as asked), and it cleans up after itself.

mod common;

use common::{ServerProcess, ferry_bin, output};
use ferry::config::add_user;
use ferry::protocol::Permissions;
use serde_json::Value;

/// A server process whose config has one user with `allow` and `extra_config` appended;
/// returns it, the token, and the config's directory (kept alive with it).
fn server_with_user(allow: &str, extra_config: &str) -> (ServerProcess, String, tempfile::TempDir) {
    let config_dir = tempfile::tempdir().unwrap();
    let path = config_dir.path().join("server.toml");
    let token = add_user(&path, "bencher", Permissions::parse_list(allow).unwrap()).unwrap();
    if !extra_config.is_empty() {
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str(extra_config);
        std::fs::write(&path, text).unwrap();
    }
    let server = ServerProcess::start(&["--config", path.to_str().unwrap()]);
    (server, token.to_string(), config_dir)
}

fn bench(server: &ServerProcess, token: Option<&str>, args: &[&str]) -> std::process::Command {
    let mut cmd = ferry_bin(&server.dir.path().join("client-home"));
    cmd.arg("bench")
        .arg("--server")
        .arg(server.addr.to_string())
        .arg("--json");
    if let Some(token) = token {
        cmd.env("FERRY_TOKEN", token);
    }
    cmd.args(args);
    cmd
}

fn parse(stdout: &[u8]) -> Value {
    serde_json::from_slice(stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(stdout)))
}

/// The texts of an SVG, which must be well-formed XML with `<svg>` at its root.
fn svg_texts(svg: &str) -> Vec<String> {
    let doc = roxmltree::Document::parse(svg).expect("the chart is well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .map(|t| t.trim().to_string())
        .collect()
}

/// The line series an SVG holds: ferry draws them 2 px wide (axes and ticks are 1 px), each
/// once in its panel and once as its legend's sample.
fn svg_lines(svg: &str) -> usize {
    let doc = roxmltree::Document::parse(svg).unwrap();
    let wide = doc
        .descendants()
        .filter(|n| n.has_tag_name("polyline") && n.attribute("stroke-width") == Some("2"))
        .count();
    assert_eq!(wide % 2, 0, "every series has its legend sample");
    wide / 2
}

#[test]
fn a_comparison_is_drawn_with_each_bar_and_its_ratio_to_the_ceiling() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("get.svg");
    let out = ferry_bin(dir.path())
        .args([
            "bench",
            "chart",
            "--title",
            "1 GiB get",
            "--unit",
            "MB/s",
            "--ceiling",
            "iperf3",
            "--limit",
            "disk",
            "iperf3=2000",
            "disk=1500",
            "ferry get (TLS)=900",
            "scp get=250",
            "--out",
        ])
        .arg(&svg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let drawn = std::fs::read_to_string(&svg).unwrap();
    let texts = svg_texts(&drawn);
    // One bar of each kind: the ceiling grey, the limit light grey, ferry blue, the peer orange.
    for fill in ["#969696", "#C8C8C8", "#1F77B4", "#FF7F0E"] {
        assert_eq!(
            drawn.matches(&format!("fill=\"{fill}\"")).count(),
            1,
            "{fill} in {drawn}"
        );
    }
    for label in [
        "1 GiB get",
        "iperf3: 2000 MB/s",
        "disk: 1500 MB/s (0.75x iperf3)",
        "ferry get (TLS): 900 MB/s (0.45x iperf3)",
        "scp get: 250 MB/s (0.12x iperf3)",
    ] {
        assert!(
            texts.iter().any(|t| t == label),
            "no '{label}' in {texts:?}"
        );
    }
    // A ceiling that is not a bar, and a bar that is not NAME=VALUE: one clear line each.
    let out = ferry_bin(dir.path())
        .args([
            "bench",
            "chart",
            "--title",
            "t",
            "--unit",
            "u",
            "--ceiling",
            "nc",
            "a=1",
            "--out",
        ])
        .arg(&svg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--ceiling 'nc' is not one of the bars"));
    let out = ferry_bin(dir.path())
        .args([
            "bench", "chart", "--title", "t", "--unit", "u", "fast", "--out",
        ])
        .arg(&svg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("'fast' is not NAME=VALUE"));
}

fn ordered(p: &Value) -> bool {
    let f = |k: &str| p[k].as_f64().unwrap();
    f("min_ms") <= f("p50_ms")
        && f("p50_ms") <= f("p90_ms")
        && f("p90_ms") <= f("p99_ms")
        && f("p99_ms") <= f("max_ms")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_test_runs_and_its_figures_add_up() {
    let (server, token, _config) = server_with_user("chat,read,write,exec", "");
    let chart = server.dir.path().join("run.svg");
    let out = output(bench(
        &server,
        Some(&token),
        &[
            "--size",
            "3MiB",
            "--rounds",
            "2",
            "--pings",
            "25",
            "--sessions",
            "4",
            "--clients",
            "12",
            "--messages",
            "60",
            "--rate",
            "0",
            "--connections",
            "40",
            "--chart",
            chart.to_str().unwrap(),
        ],
    ))
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = parse(&out.stdout);
    assert_eq!(report["transport"], "TLS");
    assert_eq!(report["user"], "bencher");
    let results = &report["results"];

    let throughput = &results["throughput"];
    assert_eq!(throughput["size_bytes"], 3 << 20);
    for key in ["put_rounds_mb_s", "get_rounds_mb_s"] {
        let rounds = throughput[key].as_array().unwrap();
        assert_eq!(rounds.len(), 2, "{key}");
        assert!(rounds.iter().all(|r| r.as_f64().unwrap() > 0.0), "{key}");
    }
    let leftovers: Vec<_> = std::fs::read_dir(server.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("ferry-bench"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "the bench file was left: {leftovers:?}"
    );

    let latency = &results["latency"];
    assert_eq!(latency["ping"]["samples"], 25);
    assert_eq!(latency["session"]["samples"], 4);
    assert_eq!(latency["exec"]["samples"], 4);
    assert!(ordered(&latency["ping"]) && ordered(&latency["exec"]));

    let chat = &results["chat"];
    assert_eq!(chat["expected_deliveries"], 60 * 11);
    assert_eq!(
        chat["deliveries"],
        60 * 11,
        "every line reached every other member"
    );
    assert_eq!(chat["skipped"], 0);
    assert_eq!(chat["latency"]["samples"], 60 * 11);
    assert!(ordered(&chat["latency"]));
    let over_time: u64 = chat["deliveries_per_bin"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(over_time, 60 * 11, "every delivery is in one bin over time");

    // The picture of the run: well-formed SVG with a series for each figure.
    let svg = std::fs::read_to_string(&chart).unwrap();
    let texts = svg_texts(&svg);
    for series in [
        "put (median",
        "get (median",
        "latency percentiles",
        "ping (p50",
        "session set-up (p50",
        "exec -- true (p50",
        "chat: 12 members, 60 lines; 660 of 660 deliveries",
        "deliveries/s (mean",
    ] {
        assert!(
            texts.iter().any(|t| t.starts_with(series)),
            "no '{series}' in the chart: {texts:?}"
        );
    }
    // put, get; ping, session, exec; deliveries over time.
    assert_eq!(svg_lines(&svg), 6);

    let connections = &results["connections"];
    assert_eq!(connections["opened"], 40);
    assert_eq!(connections["server_pid"], server.pid());
    assert!(connections["server_kib_per_connection"].as_f64().is_some());
    assert_eq!(connections["ping_while_open"]["samples"], 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_permission_a_test_fails_clearly_and_the_rest_still_run() {
    let (server, _token, _config) = server_with_user("chat", "");
    let out = output(bench(
        &server,
        None,
        &[
            "throughput",
            "latency",
            "--size",
            "1MiB",
            "--rounds",
            "1",
            "--pings",
            "5",
            "--sessions",
            "2",
        ],
    ))
    .await;
    assert_eq!(out.status.code(), Some(1), "a failed test fails the run");
    let results = &parse(&out.stdout)["results"];
    let error = results["throughput"]["error"].as_str().unwrap();
    assert!(error.contains("write"), "{error}");
    assert_eq!(results["latency"]["ping"]["samples"], 5);
    assert!(results["latency"]["exec"].is_null());
    let why = results["latency"]["exec_skipped"].as_str().unwrap();
    assert!(why.contains("exec"), "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_report_where_the_server_limit_stopped_them() {
    let (server, token, _config) = server_with_user("chat", "\n[limits]\nmax_connections = 10\n");
    let out = output(bench(
        &server,
        Some(&token),
        &["connections", "--connections", "50"],
    ))
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let connections = &parse(&out.stdout)["results"]["connections"];
    // The pinging session holds one of the ten (and the first probe's may not be free yet).
    let opened = connections["opened"].as_u64().unwrap();
    assert!((8..=9).contains(&opened), "opened {opened}");
    let why = connections["stopped_by"].as_str().unwrap();
    assert!(why.contains("connection limit"), "{why}");
    assert!(connections["server_kib_per_connection"].is_null());
}

#[test]
fn a_table_is_printed_for_people() {
    let (server, token, _config) = server_with_user("chat,read", "");
    let mut cmd = ferry_bin(&server.dir.path().join("client-home"));
    cmd.args([
        "bench",
        "--server",
        &server.addr.to_string(),
        "latency",
        "--pings",
        "3",
        "--sessions",
        "1",
    ])
    .env("FERRY_TOKEN", &token);
    let out = cmd.output().unwrap();
    assert!(out.status.success());
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.starts_with(&format!("ferry bench: {} (TLS, user bencher)", server.addr)),
        "{table}"
    );
    assert!(
        table.contains("ping on a session") && table.contains("p99"),
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_chat_spreads_its_members_over_a_clusters_servers() {
    let redis = common::redis::RedisServer::start();
    let url = redis.url();
    let servers: Vec<ServerProcess> = (0..2)
        .map(|_| ServerProcess::start(&["--plaintext", "--cluster", &url]))
        .collect();
    let home = tempfile::tempdir().unwrap();
    let mut cmd = ferry_bin(home.path());
    cmd.arg("bench");
    for server in &servers {
        cmd.arg("--server").arg(server.addr.to_string());
    }
    cmd.args([
        "--plaintext",
        "--json",
        "chat",
        "--clients",
        "6",
        "--messages",
        "12",
        "--rate",
        "0",
    ]);
    let out = output(cmd).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let chat = &parse(&out.stdout)["results"]["chat"];
    assert_eq!(chat["servers"], 2);
    // Every line reached the five members that did not send it, across the two servers.
    assert_eq!(chat["expected_deliveries"], 12 * 5);
    assert_eq!(chat["deliveries"], 12 * 5);
    assert!(chat["server_cpu_seconds"].as_f64().is_some(), "{chat}");

    // Any other verb refuses several servers in one clear line.
    let mut ping = ferry_bin(home.path());
    ping.args(["ping", "--plaintext", "-c", "1"]);
    for server in &servers {
        ping.arg("--server").arg(server.addr.to_string());
    }
    let out = output(ping).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "--server is given 2 times; only 'ferry bench chat' spreads over several servers"
        ),
        "{stderr}"
    );
}
