#!/usr/bin/env bash
# Round-trip and whole-command latency of `ferry ping` on loopback, TLS and plaintext.
# Usage: bench/ping.sh [ROUNDS]   (builds the release binary; prints medians)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-200}
cargo build --release --quiet
bin=$PWD/target/release/ferry
work=$(mktemp -d)
export FERRY_HOME=$work/home
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
pids=()
trap cleanup EXIT

start() { # start NAME ARGS... -> prints the bound address
  "$bin" serve --listen 127.0.0.1:0 --root "$work" --state "$work/$1" "${@:2}" 2>"$work/$1.log" &
  pids+=($!)
  for _ in $(seq 100); do
    addr=$(grep -o 'listening on [0-9.:]*' "$work/$1.log" | cut -d' ' -f3) && [ -n "$addr" ] && break
    sleep 0.05
  done
  echo "$addr"
}
tls=$(start tls)
plain=$(start plain --plaintext)

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
for mode in tls plain; do
  if [ $mode = tls ]; then args=(--server "$tls"); else args=(--server "$plain" --plaintext); fi
  echo "== $mode: round trips on one session (3 runs of 2000 pings)"
  for _ in 1 2 3; do "$bin" ping "${args[@]}" -c 2000 -i 0 | tail -1; done
  echo "== $mode: whole 'ferry ping -c 1' (start, connect, handshake, 1 round trip, exit), $rounds runs"
  python3 - "$bin" "$rounds" "${args[@]}" <<'PY'
import statistics, subprocess, sys, time
binary, rounds, args = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
times = []
for _ in range(rounds):
    start = time.perf_counter()
    subprocess.run([binary, "ping", *args, "-c", "1", "-i", "0"], stdout=subprocess.DEVNULL, check=True)
    times.append((time.perf_counter() - start) * 1000)
times.sort()
print(f"median {statistics.median(times):.2f} ms, p90 {times[int(len(times) * 0.9)]:.2f} ms")
PY
done
