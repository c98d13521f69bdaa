#!/usr/bin/env bash
# Chat fan-out: ferry (plaintext and TLS) against ngircd (IRC, plaintext) with the same load
# shape and the same load generator design (examples/irc_fanout.rs mirrors `ferry bench chat`),
# and ferry's IRC door (plaintext and TLS) against ngircd with the very same IRC generator:
# CLIENTS members of one room, MESSAGES lines spread over them, paced at RATE lines/s, and a
# burst (all lines at once). Each figure is the median of RUNS runs.
# ngircd runs with penalties off (MaxPenaltyTime = 0) and no per-IP limits, as ferry's flood
# limit is never reached by this shape either. CPU seconds of the IRC generator and of the server
# are printed side by side for the IRC rows, so a generator at its limit would show.
# ferry's own servers keep lines on disk (the default engine: every line synced before it is
# acknowledged); one more plaintext server keeps them in memory, to show what durability costs.
# The burst has every member say one line (BURST lines, default CLIENTS); the paced load sends
# MESSAGES lines at RATE per second.
# Usage: bench/chat.sh [CLIENTS] [MESSAGES] [RATE] [RUNS] [BURST]
source "$(dirname "$0")/lib.sh"
clients=${1:-1000}
messages=${2:-2000}
rate=${3:-500}
runs=${4:-3}
burst=${5:-$clients}
need ngircd ngircd
cargo build --release --quiet --example irc_fanout
irc_fanout=$PWD/target/release/examples/irc_fanout

start_ferry tls --irc 127.0.0.1:0
start_ferry plain --plaintext --irc 127.0.0.1:0
printf '[chat]\nstore = "memory"\n' >"$work/memory.toml"
start_ferry memory --plaintext --config "$work/memory.toml"
irc_of() { grep -o 'IRC door on [0-9.:]*' "$work/$1.log" | cut -d' ' -f4; }
tls_irc=tls://$(irc_of tls)
plain_irc=$(irc_of plain)
# CPU seconds (user + system) a process has used so far.
cpu() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat"; }
irc_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/ngircd.conf" <<CONF
[Global]
Name = bench.local
Info = ferry bench
Listen = 127.0.0.1
Ports = $irc_port
MotdPhrase = "bench"
[Limits]
MaxConnections = 0
MaxConnectionsIP = 0
MaxJoins = 0
MaxNickLength = 9
PingTimeout = 600
PongTimeout = 600
MaxPenaltyTime = 0
[Options]
DNS = no
Ident = no
PAM = no
CONF
ngircd -n -f "$work/ngircd.conf" >"$work/ngircd.log" 2>&1 </dev/null &
bench_pids+=($!)
for _ in $(seq 100); do grep -q "ready" "$work/ngircd.log" && break; sleep 0.05; done
"$ferry" ping --server "$tls" -c 1 -i 0 >/dev/null 2>&1 # pin

ngircd_pid=$(pgrep -f "ngircd -n -f $work/ngircd.conf")
plain_pid=$(pgrep -f -- "--state $work/plain --plaintext")
tls_pid=$(pgrep -f -- "--state $work/tls --irc")
# irc_run NAME ADDR SERVER_PID SHAPE: one run of the IRC generator; its result gains the CPU
# seconds the generator and the server used during it.
irc_run() {
  local before gen
  before=$(cpu "$3")
  gen=$( { TIMEFORMAT='%U %S'; time "$irc_fanout" "$2" "$clients" "$n" "$4" >"$work/run.json"; } 2>&1 | awk '{print $1 + $2}')
  python3 - "$work/run.json" "$gen" "$before" "$(cpu "$3")" <<'PY' >>"$work/$1-$4.jsonl"
import json, sys
r = json.load(open(sys.argv[1]))
r["generator_cpu_s"] = float(sys.argv[2]); r["server_cpu_s"] = float(sys.argv[4]) - float(sys.argv[3])
print(json.dumps(r))
PY
}

machine
echo "load: $clients members in one room; $messages lines paced at $rate/s, and $burst lines all at once"
for shape in "$rate" 0; do
  if [ "$shape" = 0 ]; then n=$burst; else n=$messages; fi
  for run in $(seq "$runs"); do
    "$ferry" bench --server "$plain" --plaintext --json chat --clients "$clients" --messages "$n" --rate "$shape" \
      | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["results"]["chat"]))' >>"$work/ferry-plain-$shape.jsonl"
    "$ferry" bench --server "$memory" --plaintext --json chat --clients "$clients" --messages "$n" --rate "$shape" \
      | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["results"]["chat"]))' >>"$work/ferry-memory-$shape.jsonl"
    "$ferry" bench --server "$tls" --json chat --clients "$clients" --messages "$n" --rate "$shape" \
      | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["results"]["chat"]))' >>"$work/ferry-tls-$shape.jsonl"
    irc_run ngircd "127.0.0.1:$irc_port" "$ngircd_pid" "$shape"
    irc_run ferry-irc-plain "$plain_irc" "$plain_pid" "$shape"
    irc_run ferry-irc-tls "$tls_irc" "$tls_pid" "$shape"
  done
done
python3 - "$work" "$rate" <<'PY'
import json, statistics, sys
work, rate = sys.argv[1], sys.argv[2]
def load(name, shape):
    return [json.loads(l) for l in open(f"{work}/{name}-{shape}.jsonl")]
for shape in (rate, "0"):
    label = f"paced at {rate} lines/s" if shape != "0" else "all lines at once (burst)"
    print(f"== {label}")
    rows = {}
    for name in ("ferry-plain", "ferry-memory", "ferry-tls", "ngircd", "ferry-irc-plain", "ferry-irc-tls"):
        runs = load(name, shape)
        med = lambda f: statistics.median(f(r) for r in runs)
        rows[name] = (med(lambda r: r["deliveries_per_second"]), med(lambda r: r["latency"]["p50_ms"]),
                      med(lambda r: r["latency"]["p99_ms"]), min(r["deliveries"] / r["expected_deliveries"] for r in runs))
        d, p50, p99, got = rows[name]
        cpu = ""
        if "generator_cpu_s" in runs[0]:
            cpu = f"  cpu: generator {med(lambda r: r['generator_cpu_s']):.1f} s, server {med(lambda r: r['server_cpu_s']):.1f} s"
        print(f"{name:16s} {d:10.0f} deliveries/s  p50 {p50:8.2f} ms  p99 {p99:8.2f} ms  delivered {got:.1%} (worst run){cpu}")
    print(f"ferry-plain (on disk) vs ferry-memory: {rows['ferry-plain'][0] / rows['ferry-memory'][0]:.2f}x deliveries/s, p99 {rows['ferry-plain'][2] / rows['ferry-memory'][2]:.2f}x")
    for name in ("ferry-plain", "ferry-tls", "ferry-irc-plain", "ferry-irc-tls"):
        print(f"{name} vs ngircd: {rows[name][0] / rows['ngircd'][0]:.2f}x deliveries/s, p99 {rows[name][2] / rows['ngircd'][2]:.2f}x of ngircd's")
    with open(f"{work}/chat-{'burst' if shape == '0' else 'paced'}.bars", "w") as bars:
        for name in ("ngircd", "ferry-plain", "ferry-memory", "ferry-tls", "ferry-irc-plain", "ferry-irc-tls"):
            print(f"{name.replace('-', ' ')}={rows[name][0]:.0f}", file=bars)
PY
chart chat-paced "Chat deliveries, lines paced at $rate/s" deliveries/s ngircd "$work/chat-paced.bars"
chart chat-burst "Chat deliveries, all lines at once" deliveries/s ngircd "$work/chat-burst.bars"
