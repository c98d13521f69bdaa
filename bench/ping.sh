#!/usr/bin/env bash
# Round trips on one session, and whole `ferry ping -c 1` commands, on loopback, TLS and
# plaintext. Usage: bench/ping.sh [RUNS]
source "$(dirname "$0")/lib.sh"
runs=${1:-200}
need hyperfine hyperfine
start_ferry tls
start_ferry plain --plaintext
"$ferry" ping --server "$tls" -c 1 -i 0 >/dev/null 2>&1 # pin

machine
for mode in tls plain; do
  if [ $mode = tls ]; then args=(--server "$tls"); else args=(--server "$plain" --plaintext); fi
  echo "== $mode: round trips on one session (3 runs of 2000 pings)"
  for _ in 1 2 3; do "$ferry" ping "${args[@]}" -c 2000 -i 0 | tail -1; done
done
echo "== whole 'ferry ping -c 1' (start, connect, handshake, one round trip, exit)"
hyperfine -N --warmup 10 --runs "$runs" --export-json "$work/ping.json" \
  "$ferry ping --server $tls -c 1 -i 0" \
  "$ferry ping --server $plain --plaintext -c 1 -i 0" >/dev/null
medians "$work/ping.json"
