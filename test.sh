#!/bin/sh
# The whole test suite in one command, on a machine with only a Rust toolchain: installs what
# the tests need when it is missing (cargo-nextest, the runner that bounds every test's time;
# python3, tmux and irssi, which some tests drive; rsync, the oracle the mirror tests compare
# with; ssh-keygen and ssh-agent (openssh-client), the oracles of key sign-in; redis-server,
# which the cluster tests start on
# ports of their own; Chromium and Playwright, which drive the web page), then runs them, with every
# in-process test server on the default chat engine (on disk). Without arguments the suite runs a
# second time on the cluster engine (FERRY_TEST_CLUSTER=1, each server with a Redis of its own)
# and the chat suites a third time on the memory engine (FERRY_TEST_ENGINE=memory): the
# single-server suite must pass on all three. Arguments go to `cargo nextest run` (one pass).
set -eu
cd "$(dirname "$0")"

need_apt=""
command -v python3 >/dev/null 2>&1 || need_apt="$need_apt python3"
command -v tmux >/dev/null 2>&1 || need_apt="$need_apt tmux"
command -v irssi >/dev/null 2>&1 || need_apt="$need_apt irssi"
command -v rsync >/dev/null 2>&1 || need_apt="$need_apt rsync"
command -v ssh-agent >/dev/null 2>&1 || need_apt="$need_apt openssh-client"
command -v redis-server >/dev/null 2>&1 || need_apt="$need_apt redis-server"
# The browser tests launch Debian's Chromium by its path (Playwright cannot download its own).
[ -x /usr/bin/chromium ] || need_apt="$need_apt chromium"
if ! python3 -c 'import playwright' >/dev/null 2>&1 && ! python3 -m pip --version >/dev/null 2>&1; then
  need_apt="$need_apt python3-pip"
fi
if [ -n "$need_apt" ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "--- installing$need_apt"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need_apt </dev/null
  else
    echo "ferry's tests need$need_apt; install them (e.g. sudo apt-get install$need_apt) and run again" >&2
    exit 1
  fi
fi
if ! python3 -c 'import playwright' >/dev/null 2>&1; then
  echo "--- installing Playwright for Python (drives Chromium in the browser tests)"
  # A distribution's own Python refuses pip installs unless told (PEP 668).
  python3 -m pip install --quiet playwright </dev/null ||
    python3 -m pip install --quiet --break-system-packages playwright </dev/null
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "--- installing cargo-nextest (once; a few minutes on a small machine)"
  cargo install --locked cargo-nextest
fi
if [ "$#" -gt 0 ]; then
  exec cargo nextest run "$@"
fi
cargo nextest run
echo "--- the suite again, every in-process test server on the cluster engine (a Redis of its own)"
FERRY_TEST_CLUSTER=1 cargo nextest run
echo "--- the chat suites a third time, every in-process test server keeping lines in memory"
FERRY_TEST_ENGINE=memory cargo nextest run \
  -E 'binary(chat) | binary(irc) | binary(starvation) | binary(web) | binary(browser) | binary(cli_terminal) | binary(load)'

