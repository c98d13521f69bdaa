#!/usr/bin/env bash
# Many servers as one: `ferry bench chat` with the same members and rate on one server without
# Redis (the in-memory hub), and on 1, 2 and 3 servers sharing one Redis (a Redis of the
# script's own on a free loopback port, append-only file fsynced every second). Members are
# spread over the servers (member i on server i % n), so most deliveries cross servers.
# For each: deliveries/s, p50/p99, the servers' CPU per million deliveries (from /proc), and
# what Redis carried (its commands, bytes in and out, its CPU) per line: it must grow with
# servers x lines, not members x lines. Each figure is the median of RUNS runs.
# On a 2-core machine the servers, Redis and the load generator share the cores: compare the
# cost per delivery and the Redis traffic, and p99 against the single server in the same run.
# Usage: bench/cluster.sh [CLIENTS] [MESSAGES] [RATE] [RUNS]
source "$(dirname "$0")/lib.sh"
clients=${1:-1000}
messages=${2:-2000}
rate=${3:-500}
runs=${4:-3}
need redis-server redis-server

redis_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$work/redis"
redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$work/redis" --save '' \
  --appendonly yes --appendfsync everysec --loglevel warning >/dev/null 2>&1 </dev/null &
bench_pids+=($!)
for _ in $(seq 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.05; done
redis=redis://127.0.0.1:$redis_port
cat >"$work/config.toml" <<CONF
[chat]
flood_burst = 100000
flood_per_second = 100000.0
CONF

start_ferry memory --plaintext --config "$work/config.toml"
start_ferry c1 --plaintext --config "$work/config.toml" --cluster "$redis"
start_ferry c2 --plaintext --config "$work/config.toml" --cluster "$redis"
start_ferry c3 --plaintext --config "$work/config.toml" --cluster "$redis"

# redis_stat: commands processed, bytes in, bytes out, CPU seconds, so far.
redis_stat() {
  redis-cli -p "$redis_port" info all | tr -d '\r' | awk -F: '
    /^total_commands_processed:/ {c=$2} /^total_net_input_bytes:/ {i=$2}
    /^total_net_output_bytes:/ {o=$2} /^used_cpu_sys:/ {s=$2} /^used_cpu_user:/ {u=$2}
    END {printf "%s %s %s %.3f\n", c, i, o, s + u}'
}
# run NAME SERVER...: one run; its JSON gains what Redis did meanwhile.
run() {
  local name=$1 before args=()
  shift
  for s in "$@"; do args+=(--server "$s"); done
  before=$(redis_stat)
  "$ferry" bench "${args[@]}" --plaintext --json chat --clients "$clients" --messages "$messages" --rate "$rate" \
    | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["results"]["chat"]))' >"$work/run.json"
  python3 - "$work/run.json" "$before" "$(redis_stat)" >>"$work/$name.jsonl" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
b, a = [list(map(float, s.split())) for s in sys.argv[2:4]]
r["redis"] = {"commands": a[0] - b[0], "in": a[1] - b[1], "out": a[2] - b[2], "cpu_s": a[3] - b[3]}
print(json.dumps(r))
PY
}

machine
echo "load: $clients members in one room, $messages lines at $rate/s, spread over the servers"
for _ in $(seq "$runs"); do
  run memory "$memory"
  run cluster-1 "$c1"
  run cluster-2 "$c1" "$c2"
  run cluster-3 "$c1" "$c2" "$c3"
done
python3 - "$work" "$messages" <<'PY'
import json, statistics, sys
work, lines = sys.argv[1], int(sys.argv[2])
rows = {}
print(f"{'':14s} {'deliveries/s':>12s} {'p50 ms':>8s} {'p99 ms':>8s} {'delivered':>9s} {'srv CPU s/M':>11s}"
      f" {'Redis cmds/line':>15s} {'Redis KB/line':>13s} {'Redis CPU s':>11s}")
for name in ("memory", "cluster-1", "cluster-2", "cluster-3"):
    runs = [json.loads(l) for l in open(f"{work}/{name}.jsonl")]
    med = lambda f: statistics.median(f(r) for r in runs)
    d, p50, p99 = med(lambda r: r["deliveries_per_second"]), med(lambda r: r["latency"]["p50_ms"]), med(lambda r: r["latency"]["p99_ms"])
    got = min(r["deliveries"] / r["expected_deliveries"] for r in runs)
    cpu = med(lambda r: r["server_cpu_seconds_per_million"] or 0)
    cmds = med(lambda r: r["redis"]["commands"]) / lines
    kb = med(lambda r: (r["redis"]["in"] + r["redis"]["out"])) / lines / 1024
    rcpu = med(lambda r: r["redis"]["cpu_s"])
    rows[name] = p99
    print(f"{name:14s} {d:12.0f} {p50:8.2f} {p99:8.2f} {got:9.1%} {cpu:11.2f} {cmds:15.2f} {kb:13.2f} {rcpu:11.2f}")
for name in ("cluster-1", "cluster-2", "cluster-3"):
    print(f"{name} p99 vs one server in memory: {rows[name] / rows['memory']:.2f}x (goal for cluster-3: < 2x)")
PY
