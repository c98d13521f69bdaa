#!/bin/sh
# The whole test suite in one command, on a machine with only a Rust toolchain: installs what
# the tests need when it is missing (cargo-nextest, the runner that bounds every test's time;
# python3 and tmux, which some tests drive), then runs them. Arguments go to `cargo nextest run`.
set -eu
cd "$(dirname "$0")"

need_apt=""
command -v python3 >/dev/null 2>&1 || need_apt="$need_apt python3"
command -v tmux >/dev/null 2>&1 || need_apt="$need_apt tmux"
if [ -n "$need_apt" ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "--- installing$need_apt"
    apt-get update -qq && apt-get install -y -qq $need_apt </dev/null
  else
    echo "ferry's tests need$need_apt; install them (e.g. sudo apt-get install$need_apt) and run again" >&2
    exit 1
  fi
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "--- installing cargo-nextest (once; a few minutes on a small machine)"
  cargo install --locked cargo-nextest
fi
exec cargo nextest run "$@"
