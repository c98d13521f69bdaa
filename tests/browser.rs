//! The web page in a real browser: each test runs one scenario of `tests/browser/web_page.py`,
//! which starts a real `ferry serve --web` (this build's binary), drives Debian's Chromium with
//! Playwright, and cross-checks through the real CLI. Screenshots land in
//! `target/tmp/browser-screenshots/`.
//!
//! `./test.sh` installs Chromium and Playwright; without them these tests fail and say so.

mod common;

use std::path::Path;
use std::process::Command;

const CHROMIUM: &str = "/usr/bin/chromium";

/// Chromium and Playwright are there, or the test says how to get them.
fn browser_is_installed() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "the browser tests need Chromium at {CHROMIUM}: run ./test.sh, which installs it (apt-get install chromium)"
    );
    let has_playwright = Command::new("python3")
        .args(["-c", "import playwright"])
        .output()
        .is_ok_and(|out| out.status.success());
    assert!(
        has_playwright,
        "the browser tests need Playwright for Python: run ./test.sh, which installs it (pip install playwright)"
    );
}

fn scenario(name: &str) {
    browser_is_installed();
    let out = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/browser/web_page.py"
        ))
        .arg(name)
        .env("FERRY_BIN", env!("CARGO_BIN_EXE_ferry"))
        .env(
            "FERRY_SCREENSHOTS",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-screenshots"),
        )
        .env("FERRY_CHROMIUM", CHROMIUM)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scenario {name} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The charts `ferry bench` draws, of a run against a real server and of a comparison,
/// render in Chromium (screenshots `chart-run.png` and `chart-compare.png`).
#[test]
fn bench_charts_render_in_the_browser() {
    browser_is_installed();
    let dir = tempfile::tempdir().unwrap();
    let (run, compare) = (dir.path().join("run.svg"), dir.path().join("compare.svg"));
    let server = common::ServerProcess::start(&["--plaintext"]);
    let bench = common::ferry_bin(&dir.path().join("home"))
        .args(["bench", "--plaintext", "--server", &server.addr.to_string()])
        .args(["latency", "chat", "--pings", "50", "--sessions", "5"])
        .args([
            "--clients",
            "5",
            "--messages",
            "50",
            "--rate",
            "100",
            "--chart",
        ])
        .arg(&run)
        .output()
        .unwrap();
    assert!(
        bench.status.success(),
        "{}",
        String::from_utf8_lossy(&bench.stderr)
    );
    // Two panels, the second one the chat's.
    let drawn = std::fs::read_to_string(&run).unwrap();
    assert!(drawn.contains("latency percentiles") && drawn.contains("deliveries/s (mean"));
    let chart = common::ferry_bin(&dir.path().join("home"))
        .args([
            "bench",
            "chart",
            "--title",
            "1 GiB get",
            "--unit",
            "MB/s",
            "--ceiling",
            "iperf3",
        ])
        .args(["iperf3=2574", "ferry get (TLS)=909", "scp get=241", "--out"])
        .arg(&compare)
        .output()
        .unwrap();
    assert!(
        chart.status.success(),
        "{}",
        String::from_utf8_lossy(&chart.stderr)
    );
    let out = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/browser/chart.py"
        ))
        .arg(Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-screenshots"))
        .args([&run, &compare])
        .env("FERRY_CHROMIUM", CHROMIUM)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the charts did not render:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_admin_sees_the_server_s_live_figures_and_no_one_else_does() {
    scenario("admin_figures");
}

#[test]
fn the_page_loads_without_errors_and_shows_the_identity() {
    scenario("page_loads");
}

#[test]
fn a_wrong_token_is_one_clear_line_and_nothing_is_stored() {
    scenario("wrong_token");
}

#[test]
fn chat_between_the_page_and_a_cli_member_both_ways_with_the_bot_and_markup_as_text() {
    scenario("chat_with_cli");
}

#[test]
fn files_uploaded_in_the_page_and_put_by_the_cli_arrive_byte_identical() {
    scenario("files_both_ways");
}

#[test]
fn a_read_only_user_sees_no_upload_and_is_refused_anyway() {
    scenario("read_only");
}

#[test]
fn the_terminal_runs_a_shell_with_colours_top_window_resizes_and_ctrl_c() {
    scenario("terminal");
}

#[test]
fn a_rebound_name_reads_nothing_through_the_web_door() {
    scenario("rebinding");
}

#[test]
fn newlines_and_bidi_overrides_cannot_spoof_lines_or_file_names() {
    scenario("spoofing");
}

#[test]
fn on_a_phone_every_view_fits_and_folders_are_links() {
    scenario("phone");
}

#[test]
fn remember_on_this_device_keeps_the_token_until_sign_out() {
    scenario("remember");
}
