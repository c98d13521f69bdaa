# Shared by the bench scripts: build ferry, start servers on loopback, clean up on exit.
# Source it; it sets $ferry, $work and starts nothing by itself.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release --quiet
ferry=$PWD/target/release/ferry
work=$(mktemp -d)
export FERRY_HOME=$work/home
bench_pids=()
bench_cleanup() {
  kill "${bench_pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap bench_cleanup EXIT

# need PROGRAM DEBIAN-PACKAGE: installs the package when the program is missing.
need() {
  command -v "$1" >/dev/null 2>&1 && return
  [ -x "/usr/sbin/$1" ] && return
  echo "installing $2 (for $1)" >&2
  apt-get update -qq >/dev/null && apt-get install -y -qq "$2" >/dev/null </dev/null
}

# start_ferry VAR [serve args...]: starts a server on 127.0.0.1:0 and sets $VAR to its address.
# (Not a command substitution: the server would hold its pipe open, and its pid would be lost.)
start_ferry() {
  local name=$1
  shift
  "$ferry" serve --listen 127.0.0.1:0 --root "$work" --state "$work/$name" "$@" \
    >/dev/null 2>"$work/$name.log" </dev/null &
  bench_pids+=($!)
  local addr=""
  for _ in $(seq 200); do
    addr=$(grep -o 'listening on [0-9.:]*' "$work/$name.log" | cut -d' ' -f3 || true)
    [ -n "$addr" ] && break
    sleep 0.05
  done
  [ -n "$addr" ] || { cat "$work/$name.log" >&2; exit 1; }
  printf -v "$name" '%s' "$addr"
}

machine() {
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%Y-%m-%d)"
}

# median_ms JSON: the median of a hyperfine JSON export, in ms, per command.
medians() {
  python3 - "$1" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    print(f"{r['median'] * 1000:8.2f} ms  {r['command']}")
PY
}
