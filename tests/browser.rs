//! The web page in a real browser: each test runs one scenario of `tests/browser/web_page.py`,
//! which starts a real `ferry serve --web` (this build's binary), drives Debian's Chromium with
//! Playwright, and cross-checks through the real CLI. Screenshots land in
//! `target/tmp/browser-screenshots/`.
//!
//! `./test.sh` installs Chromium and Playwright; without them these tests fail and say so.

use std::path::Path;
use std::process::Command;

const CHROMIUM: &str = "/usr/bin/chromium";

fn scenario(name: &str) {
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
fn remember_on_this_device_keeps_the_token_until_sign_out() {
    scenario("remember");
}
