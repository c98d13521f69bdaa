#!/usr/bin/env bash
# A single server's chat history on disk, restarted: ROOMS rooms of LINES lines each are said
# through the real protocol (`ferry bench chat --room`), the server is killed (SIGKILL: no
# clean close), and the time from starting it again to a member's first join answered with its
# history is measured, RUNS times; then the time to a first new line acknowledged (the writer
# first reads what every room holds, in one pass). The issue's target: 1,000,000 lines across
# 100 rooms, first join within 2 s.
# Usage: bench/chat_restart.sh [ROOMS] [LINES] [RUNS]
source "$(dirname "$0")/lib.sh"
rooms=${1:-100}
lines=${2:-10000}
runs=${3:-3}
cat >"$work/chat.toml" <<CONF
[chat]
flood_burst = 1000000
flood_per_second = 1000000.0
[cluster]
history_entries = $lines
CONF
start_ferry durable --plaintext --config "$work/chat.toml"
machine
echo "filling: $rooms rooms x $lines lines"
start=$(date +%s.%N)
for r in $(seq "$rooms"); do
  "$ferry" bench --server "$durable" --plaintext --json chat --clients 10 --messages "$lines" --rate 0 --room "room-$r" >/dev/null
done
echo "filled in $(echo "$(date +%s.%N) - $start" | bc) s; store: $(du -sh "$work/durable/chat" | cut -f1)"
for run in $(seq "$runs"); do
  kill -9 "${bench_pids[-1]}"
  wait "${bench_pids[-1]}" 2>/dev/null || true
  start=$(date +%s.%N)
  start_ferry durable --plaintext --config "$work/chat.toml"
  out=$(printf 'q\n' | "$ferry" chat --server "$durable" --plaintext --room room-1 --nick back 2>&1)
  took=$(echo "$(date +%s.%N) - $start" | bc)
  got=$(printf '%s\n' "$out" | grep -c '^\[room-1\] (' || true)
  start=$(date +%s.%N)
  printf 'after restart %s\nq\n' "$run" | "$ferry" chat --server "$durable" --plaintext --room room-2 --nick again >/dev/null 2>&1
  said=$(echo "$(date +%s.%N) - $start" | bc)
  echo "run $run: started and answered the first join (with $got history lines) in $took s; then a first line said and acknowledged in $said s"
done
