#!/usr/bin/env bash
# Many servers as one: `ferry bench chat` with the same members and rate on one server without
# Redis (the in-memory hub), and on 1, 2 and 3 servers sharing one Redis (a Redis of the
# script's own on a free loopback port, append-only file fsynced every second). Members are
# spread over the servers (member i on server i % n), so most deliveries cross servers.
# For each: deliveries/s, p50/p99, the servers' CPU per million deliveries (from /proc), what
# Redis carried per line said (commands, bytes in and out; a one-line run's join and leave
# traffic subtracted) and its CPU for the lines: it must grow with servers x lines, not members
# x lines; and how busy the machine's cores were while the lines flowed (servers, generator and
# Redis). Each figure is the median of RUNS runs.
# On a 2-core machine the servers, Redis and the load generator share the cores: compare the
# cost per delivery and the Redis traffic, and p99 against the single server in the same run.
# CLUSTER_THREADS=N gives each cluster server N tokio worker threads (TOKIO_WORKER_THREADS;
# default one per core), as an operator would where three servers share two cores; the lone
# in-memory server and the load generator keep one per core.
# Usage: [CLUSTER_THREADS=N] bench/cluster.sh [CLIENTS] [MESSAGES] [RATE] [RUNS]
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
if [ -n "${CLUSTER_THREADS:-}" ]; then
  echo "each cluster server runs $CLUSTER_THREADS tokio worker thread(s); the lone server one per core"
  export TOKIO_WORKER_THREADS=$CLUSTER_THREADS
fi
start_ferry c1 --plaintext --config "$work/config.toml" --cluster "$redis"
start_ferry c2 --plaintext --config "$work/config.toml" --cluster "$redis"
start_ferry c3 --plaintext --config "$work/config.toml" --cluster "$redis"
# The load generator keeps one worker per core.
unset TOKIO_WORKER_THREADS

# redis_stat: commands processed, bytes in, bytes out, CPU seconds, so far.
redis_stat() {
  redis-cli -p "$redis_port" info all | tr -d '\r' | awk -F: '
    /^total_commands_processed:/ {c=$2} /^total_net_input_bytes:/ {i=$2}
    /^total_net_output_bytes:/ {o=$2} /^used_cpu_sys:/ {s=$2} /^used_cpu_user:/ {u=$2}
    END {printf "%s %s %s %.3f\n", c, i, o, s + u}'
}
# run NAME LINES SERVER...: one run of LINES lines; its JSON gains what Redis did meanwhile,
# the generator's CPU seconds and the wall time.
run() {
  local name=$1 lines=$2 before args=() gen start
  shift 2
  for s in "$@"; do args+=(--server "$s"); done
  before=$(redis_stat)
  start=$(date +%s.%N)
  gen=$( { TIMEFORMAT='%U %S'; time "$ferry" bench "${args[@]}" --plaintext --json chat --clients "$clients" \
    --messages "$lines" --rate "$rate" >"$work/out.json"; } 2>&1 | awk '{print $1 + $2}')
  python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["results"]["chat"]))' "$work/out.json" >"$work/run.json"
  python3 - "$work/run.json" "$before" "$(redis_stat)" "$gen" "$start" "$(date +%s.%N)" >>"$work/$name.jsonl" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
b, a = [list(map(float, s.split())) for s in sys.argv[2:4]]
r["redis"] = {"commands": a[0] - b[0], "in": a[1] - b[1], "out": a[2] - b[2], "cpu_s": a[3] - b[3]}
r["generator_cpu_s"] = float(sys.argv[4])
r["wall_s"] = float(sys.argv[6]) - float(sys.argv[5])
print(json.dumps(r))
PY
}

machine
echo "load: $clients members in one room, $messages lines at $rate/s, spread over the servers"
configs=(memory cluster-1 cluster-2 cluster-3)
servers_of() {
  case $1 in
    memory) echo "$memory" ;; cluster-1) echo "$c1" ;; cluster-2) echo "$c1 $c2" ;; cluster-3) echo "$c1 $c2 $c3" ;;
  esac
}
# What joining and leaving 1,000 members costs Redis: a run of one line, subtracted below so
# the Redis columns are per line said.
for name in "${configs[@]}"; do
  # shellcheck disable=SC2046
  run "$name-fixed" 1 $(servers_of "$name")
done
for _ in $(seq "$runs"); do
  for name in "${configs[@]}"; do
    # shellcheck disable=SC2046
    run "$name" "$messages" $(servers_of "$name")
  done
done
python3 - "$work" "$messages" "$(nproc)" <<'PY'
import json, statistics, sys
work, lines, cores = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rows = {}
print(f"{'':10s} {'deliv/s':>8s} {'p50 ms':>7s} {'p99 ms':>7s} {'got':>6s} {'srv s/M':>7s}"
      f" {'R cmd/line':>10s} {'R B/line':>8s} {'R CPU':>6s} {'busy':>5s}")
for name in ("memory", "cluster-1", "cluster-2", "cluster-3"):
    runs = [json.loads(l) for l in open(f"{work}/{name}.jsonl")]
    fixed = json.loads(open(f"{work}/{name}-fixed.jsonl").readline())
    med = lambda f: statistics.median(f(r) for r in runs)
    d, p50, p99 = med(lambda r: r["deliveries_per_second"]), med(lambda r: r["latency"]["p50_ms"]), med(lambda r: r["latency"]["p99_ms"])
    got = min(r["deliveries"] / r["expected_deliveries"] for r in runs)
    cpu = med(lambda r: r["server_cpu_seconds_per_million"] or 0)
    per_line = lambda f: (med(f) - f(fixed)) / (lines - 1)
    cmds = per_line(lambda r: r["redis"]["commands"])
    byts = per_line(lambda r: r["redis"]["in"] + r["redis"]["out"])
    rcpu = per_line(lambda r: r["redis"]["cpu_s"]) * (lines - 1)
    # The machine's busy share while lines flowed: the servers' CPU then, and the generator's
    # and Redis's beyond a one-line run, over the time the lines took, of all cores.
    busy = med(lambda r: ((r["server_cpu_seconds"] or 0) + r["generator_cpu_s"] - fixed["generator_cpu_s"]
                          + r["redis"]["cpu_s"] - fixed["redis"]["cpu_s"]) / (r["seconds"] * cores))
    rows[name] = p99
    print(f"{name:10s} {d:8.0f} {p50:7.2f} {p99:7.2f} {got:6.1%} {cpu:7.2f} {cmds:10.2f} {byts:8.0f} {rcpu:6.2f} {busy:5.0%}")
for name in ("cluster-1", "cluster-2", "cluster-3"):
    print(f"{name} p99 vs one server in memory: {rows[name] / rows['memory']:.2f}x (goal for cluster-3: < 2x)")
PY
