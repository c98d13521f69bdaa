#!/usr/bin/env bash
# 1 GiB get and put on loopback, file in page cache: ferry (plaintext and TLS, verified) side by
# side with nc (no verification: the floor), scp, sftp and rsync over a loopback sshd, and iperf3
# as the ceiling, sendme (BLAKE3-verified, QUIC), and the limit derived from this machine's cost of each step a verified
# transfer must take (examples/step_costs.rs; bench/README.md). Prints medians and ratios.
# Usage: bench/files.sh [SIZE_MIB] [RUNS] [disk|memory]
# With `memory`, every file (both roots of every tool, and the derived limit's) is on a tmpfs:
# the disk is out of the path, so what is left is CPU and memory, as for iperf3.
# Then (on the disk, unless FILES_SINGLE=1) the rest of the table: a tree of small files
# (tree.sh) and a long fat link (link.sh), each of which also runs on its own.
source "$(dirname "$0")/lib.sh"
size_mib=${1:-1024}
runs=${2:-5}
files_on=${3:-disk}
need hyperfine hyperfine
need nc netcat-openbsd
need rsync rsync
need iperf3 iperf3

config=$work/ferry.toml
token=$("$ferry" user add bench --allow read,write --config "$config" 2>/dev/null)
export FERRY_TOKEN=$token
mkdir -p "$work/root" "$work/local" "$work/sm"
if [ "$files_on" = memory ]; then
  for dir in root local sm; do
    mount -t tmpfs -o size=$((size_mib * 5 + 256))m tmpfs "$work/$dir"
    bench_mounts+=("$work/$dir")
  done
fi
head -c "$((size_mib * 1024 * 1024))" /dev/urandom >"$work/root/in.bin"
cp "$work/root/in.bin" "$work/local/up.bin"
cat "$work/root/in.bin" "$work/local/up.bin" >/dev/null # page cache
sync # written back now, not while something is measured
"$ferry" serve --listen 127.0.0.1:0 --root "$work/root" --state "$work/tls" --config "$config" >/dev/null 2>"$work/tls.log" </dev/null &
tls_pid=$!
bench_pids+=($!)
"$ferry" serve --listen 127.0.0.1:0 --root "$work/root" --state "$work/plain" --config "$config" --plaintext >/dev/null 2>"$work/plain.log" </dev/null &
plain_pid=$!
bench_pids+=($!)
for _ in $(seq 100); do
  tls=$(grep -o 'listening on [0-9.:]*' "$work/tls.log" | cut -d' ' -f3 || true)
  plain=$(grep -o 'listening on [0-9.:]*' "$work/plain.log" | cut -d' ' -f3 || true)
  [ -n "$tls" ] && [ -n "$plain" ] && break
  sleep 0.05
done
"$ferry" ls --server "$tls" >/dev/null 2>&1 # pin

# nc: a receiver loop writing to a file; each run sends the file once (-N: half-close, then
# wait for the receiver to finish).
nc_port=$(free_port)
start_sshd
port=$ssh_port

iperf3 -s -B 127.0.0.1 -p "$nc_port" -1 >/dev/null 2>&1 &
sleep 0.3
ceiling=$(iperf3 -c 127.0.0.1 -p "$nc_port" -t 3 -J 2>/dev/null | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/8e6))' || echo "?")
(while true; do nc -l 127.0.0.1 "$nc_port" >"$work/local/nc.out"; done) >/dev/null 2>&1 &
bench_pids+=($!)

# The derived limit first, while nothing else runs and nothing is left to write back; its
# files where the transfers' are.
sync
TMPDIR=$work/local cargo run --release --quiet --example step_costs -- "$size_mib" --json >"$work/limit.json"

# The disk's rate for durable writes (a write then fdatasync, as ferry's receiver makes every
# file durable before it takes its name): a ceiling of its own, which iperf3 and nc never meet.
disk=$([ "$files_on" = memory ] && echo "not in the path" || for _ in 1 2 3; do
  sync
  dd if=/dev/zero of="$work/disk.probe" bs=1M count="$size_mib" conv=fdatasync 2>&1 | awk '/copied/ {print $(NF-1), $NF}'
  rm -f "$work/disk.probe"
done | python3 -c '
import statistics, sys
rates = []
for line in sys.stdin:
    value, unit = line.split()
    rates.append(float(value) * {"kB/s": 1e-3, "MB/s": 1, "GB/s": 1e3}[unit])
print(round(statistics.median(rates)))')

# sendme (iroh-blobs: BLAKE3-verified streaming over QUIC), relay disabled, on loopback. It
# imports (hashes) the file once when it starts sending; that time is reported on its own.
sendme_cmd=""
if command -v sendme >/dev/null 2>&1 || cargo install sendme --locked --quiet >/dev/null 2>&1; then
  mkdir -p "$work/sm"
  sendme_started=$(date +%s.%N)
  # `exec`: the subshell becomes sendme, so no shell is left waiting on it to print
  # "Terminated" when the clean-up ends it.
  (cd "$work" && exec sendme send --relay disabled --ticket-type addresses --no-progress "$work/root/in.bin" >"$work/sendme.out" 2>&1) &
  bench_pids+=($!)
  for _ in $(seq 600); do grep -q 'sendme receive' "$work/sendme.out" 2>/dev/null && break; sleep 0.05; done
  sendme_import=$(python3 -c "import time; print(f'{time.time() - $sendme_started:.1f}')")
  ticket=$(grep -o 'blob[a-z0-9]*' "$work/sendme.out" | head -1)
  [ -n "$ticket" ] && sendme_cmd="cd $work/sm && sendme receive --relay disabled --no-progress $ticket"
else
  echo "(sendme could not be installed: left out)"
fi

machine
if [ "$files_on" = memory ]; then
  echo "file: ${size_mib} MiB; every file on a tmpfs (no disk in the path); iperf3 loopback ceiling: ${ceiling} MB/s"
else
  echo "file: ${size_mib} MiB, in page cache; iperf3 loopback ceiling: ${ceiling} MB/s; the disk's durable writes (dd conv=fdatasync, median of 3): ${disk} MB/s"
fi
python3 - "$work/limit.json" <<'PY'
import json, sys
l = json.load(open(sys.argv[1]))
print(f"derived limit on {l['cores']} cores (bench/README.md): verified plaintext {l['verified_plaintext']['limit_mb_s']:.0f} MB/s"
      f" ({l['verified_plaintext']['cpu_s_per_gib']:.2f} CPU s/GiB), verified TLS {l['verified_tls']['limit_mb_s']:.0f} MB/s"
      f" ({l['verified_tls']['cpu_s_per_gib']:.2f} CPU s/GiB)")
print(f"the least program taking those steps, each on a thread of its own (examples/step_costs.rs): plaintext"
      f" {l['verified_plaintext']['minimal_mb_s']:.0f} MB/s ({l['verified_plaintext']['minimal_cpu_s_per_gib']:.2f} CPU s/GiB),"
      f" TLS {l['verified_tls']['minimal_mb_s']:.0f} MB/s ({l['verified_tls']['minimal_cpu_s_per_gib']:.2f});"
      f" plaintext with a sendfile sender and a known hash {l['verified_plaintext']['minimal_sendfile_mb_s']:.0f} MB/s"
      f" ({l['verified_plaintext']['minimal_sendfile_cpu_s_per_gib']:.2f})")
PY
# Untimed before each run: clean the targets, and wait until nc listens again (LISTEN = 0A).
listening="grep -qi ':$(printf %04X "$nc_port") 00000000:0000 0A' /proc/net/tcp"
rm_out="rm -rf $work/local/out.bin $work/local/.out.bin.ferry-part $work/root/up.bin $work/sm/in.bin $work/sm/.sendme-*; until $listening; do sleep 0.01; done"
sftp_get="sftp $ssh_opts -P $port -b - 127.0.0.1 <<< 'get $work/root/in.bin $work/local/out.bin'"
sftp_put="sftp $ssh_opts -P $port -b - 127.0.0.1 <<< 'put $work/local/up.bin $work/root/up.bin'"
hyperfine --shell=bash --warmup 1 --runs "$runs" --prepare "$rm_out" --export-json "$work/files.json" \
  -n "nc (send, unverified)" "nc -N 127.0.0.1 $nc_port < $work/root/in.bin" \
  -n "ferry get --plaintext" "$ferry get --server $plain --plaintext in.bin $work/local/out.bin" \
  -n "ferry put --plaintext" "$ferry put --server $plain --plaintext $work/local/up.bin up.bin" \
  -n "ferry get (TLS)" "$ferry get --server $tls in.bin $work/local/out.bin" \
  -n "ferry put (TLS)" "$ferry put --server $tls $work/local/up.bin up.bin" \
  -n "scp get" "scp $ssh_opts -P $port 127.0.0.1:$work/root/in.bin $work/local/out.bin" \
  -n "scp put" "scp $ssh_opts -P $port $work/local/up.bin 127.0.0.1:$work/root/up.bin" \
  -n "sftp get" "$sftp_get" \
  -n "sftp put" "$sftp_put" \
  -n "rsync get" "rsync -a --whole-file -e 'ssh -p $port $ssh_opts' 127.0.0.1:$work/root/in.bin $work/local/out.bin" \
  -n "rsync put" "rsync -a --whole-file -e 'ssh -p $port $ssh_opts' $work/local/up.bin 127.0.0.1:$work/root/up.bin" \
  ${sendme_cmd:+-n "sendme get" "$sendme_cmd"} \
  >"$work/hyperfine.log" 2>&1 || { cat "$work/hyperfine.log"; exit 1; }
[ -n "$sendme_cmd" ] && echo "sendme: importing (hashing) the file before it could send took ${sendme_import} s, not counted below"

# Memory and CPU of each end, one more run of each ferry transfer: the client's peak RSS and
# CPU from time(1), the server's CPU from /proc (ticks before and after) and its peak RSS
# (VmHWM) over the whole bench.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
cost() {
  local name=$1 pid=$2
  shift 2
  eval "$rm_out"
  local before after
  before=$(ticks "$pid")
  /usr/bin/time -f "%M %U %S" -o "$work/time.out" "$@" >/dev/null 2>&1
  after=$(ticks "$pid")
  read -r rss user sys <"$work/time.out"
  python3 - "$name" "$size_mib" "$user" "$sys" "$before" "$after" "$hz" "$rss" "$work" <<'PY'
import sys
name, mib, user, sys_, before, after, hz, rss = sys.argv[1:9]
gib = int(mib) / 1024
client = float(user) + float(sys_)
server = (int(after) - int(before)) / int(hz)
print(f"{name:24s} CPU s/GiB: client {client / gib:.2f}, server {server / gib:.2f}; client peak RSS {int(rss) / 1024:.1f} MiB")
with open(f"{sys.argv[9]}/cpu.txt", "a") as cpu:
    print(f"{name}|{client / gib}|{server / gib}", file=cpu)
PY
}
cost "ferry get --plaintext" "$plain_pid" "$ferry" get --server "$plain" --plaintext in.bin "$work/local/out.bin"
cost "ferry put --plaintext" "$plain_pid" "$ferry" put --server "$plain" --plaintext "$work/local/up.bin" up.bin
cost "ferry get (TLS)" "$tls_pid" "$ferry" get --server "$tls" in.bin "$work/local/out.bin"
cost "ferry put (TLS)" "$tls_pid" "$ferry" put --server "$tls" "$work/local/up.bin" up.bin
for pid in "$plain_pid" "$tls_pid"; do
  echo "server $pid peak RSS over the bench: $(awk '/VmHWM/ {printf "%.1f MiB", $2 / 1024}' "/proc/$pid/status")"
done
python3 - "$work/files.json" "$size_mib" "$work/limit.json" "$ceiling" "$disk" "$work" <<'PY'
import json, sys
results = {r["command"]: r["median"] for r in json.load(open(sys.argv[1]))["results"]}
mib = int(sys.argv[2])
limit = json.load(open(sys.argv[3]))
ceiling = float(sys.argv[4]) if sys.argv[4].replace(".", "").isdigit() else None
disk = float(sys.argv[5]) if sys.argv[5].replace(".", "").isdigit() else None
cpu = {}
for line in open(f"{sys.argv[6]}/cpu.txt"):
    name, client, server = line.rstrip("\n").split("|")
    cpu[name] = (float(client), float(server))
for name, t in results.items():
    print(f"{name:24s} median {t:7.3f} s  {mib * 1048576 / t / 1e6:8.0f} MB/s")
nc = results.get("nc (send, unverified)")
def ratio(a, b):
    return f"{results[b] / results[a]:.2f}x" if a in results and b in results else "n/a"
print(f"ferry get --plaintext vs nc: {ratio('ferry get --plaintext', 'nc (send, unverified)')} of nc's speed")
print(f"ferry put --plaintext vs nc: {ratio('ferry put --plaintext', 'nc (send, unverified)')} of nc's speed")
for peer in ("scp", "sftp", "rsync", "sendme"):
    for way in ("get", "put"):
        if f"{peer} {way}" in results:
            print(f"ferry {way} (TLS) vs {peer} {way}: {ratio(f'ferry {way} (TLS)', f'{peer} {way}')} its speed")
for name, kind in (("ferry get --plaintext", "verified_plaintext"), ("ferry put --plaintext", "verified_plaintext"),
                   ("ferry get (TLS)", "verified_tls"), ("ferry put (TLS)", "verified_tls")):
    if name in results:
        rate = mib * 1048576 / results[name] / 1e6
        beside = f", {rate / ceiling:.2f}x the iperf3 ceiling" if ceiling else ""
        beside += f", {rate / disk:.2f}x the disk's durable writes" if disk else ""
        minimal = limit[kind].get("minimal_mb_s")
        beside += f", {rate / minimal:.2f}x the least program's ({minimal:.0f} MB/s)" if minimal else ""
        print(f"{name}: {rate / limit[kind]['limit_mb_s']:.2f}x the derived limit ({limit[kind]['limit_mb_s']:.0f} MB/s){beside}")
        # Issue #17's "within 1.3x of the derived limit" as a CPU budget: on these cores, at
        # most this much CPU for both ends together, and all of it overlapped.
        budget = limit["cores"] * 1.3 * (1 << 30) / 1e6 / limit[kind]["limit_mb_s"]
        least_cpu = limit[kind].get("minimal_cpu_s_per_gib")
        spent = cpu.get(name)
        print(f"  within 1.3x of the limit: at most {budget:.2f} CPU s/GiB for both ends on {limit['cores']} cores, perfectly overlapped;"
              + (f" the least program spent {least_cpu:.2f}" if least_cpu else "")
              + (f", ferry {spent[0]:.2f} + {spent[1]:.2f} = {sum(spent):.2f} (client + server)" if spent else ""))
# The bars of each way's chart, ceilings first, then ferry, then its peers.
for way in ("get", "put"):
    with open(f"{sys.argv[6]}/{way}.bars", "w") as bars:
        if ceiling:
            print(f"iperf3 (loopback)={ceiling:.0f}", file=bars)
        if disk:
            print(f"limit:disk, durable writes={disk:.0f}", file=bars)
        for kind, label in (("verified_plaintext", "plaintext"), ("verified_tls", "TLS")):
            print(f"limit:derived limit, {label}={limit[kind]['limit_mb_s']:.0f}", file=bars)
            if limit[kind].get("minimal_mb_s"):
                print(f"limit:least program, {label}={limit[kind]['minimal_mb_s']:.0f}", file=bars)
        names = [f"ferry {way} --plaintext", f"ferry {way} (TLS)", "nc (send, unverified)"]
        names += [f"{peer} {way}" for peer in ("scp", "sftp", "rsync", "sendme")]
        for name in names:
            if name in results:
                print(f"{name}={mib * 1048576 / results[name] / 1e6:.0f}", file=bars)
PY
if [ "$files_on" = memory ]; then
  chart files-get-memory "Verified get of ${size_mib} MiB on loopback, files on tmpfs" MB/s "iperf3 (loopback)" "$work/get.bars"
  chart files-put-memory "Verified put of ${size_mib} MiB on loopback, files on tmpfs" MB/s "iperf3 (loopback)" "$work/put.bars"
else
  chart files-get "Verified get of ${size_mib} MiB on loopback" MB/s "iperf3 (loopback)" "$work/get.bars"
  chart files-put "Verified put of ${size_mib} MiB on loopback" MB/s "iperf3 (loopback)" "$work/put.bars"
fi
if [ -z "${FILES_SINGLE:-}" ] && [ "$files_on" = disk ]; then
  "$(dirname "$0")/tree.sh"
  "$(dirname "$0")/link.sh"
fi
