#!/usr/bin/env bash
# rsync's job, side by side with rsync itself (over ssh), in one run per network:
#   edits of one large file, each sent by ferry (TLS, deltas on), ferry --whole-file and
#   `rsync -a` over ssh: bytes on the wire (the client's device counters: TCP, TLS and ssh
#   included) and seconds, with the ratios; on loopback also a 10,100-file tree mirrored with
#   --delete by both, and `ferry sync --watch` timed from the last write to the last arrival.
# Each network is its own pair of namespaces: loopback is one namespace's own `lo` (so the
# counters see only this run), the links are bench/emulated_link.sh's.
# Each edit is sent ROUNDS times by each tool, the tools taking turns; the medians are printed.
# Usage: bench/delta.sh [loopback|100mbit|wan|all] [SIZE_MIB] [ROUNDS]   (default: all 1024 3)
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/emulated_link.sh"
net=${1:-all}
size_mib=${2:-1024}
rounds=${3:-3}
if [ "$net" = all ]; then
  for n in loopback 100mbit wan; do "$0" "$n" "$size_mib" "$rounds"; done
  exit 0
fi
need rsync rsync
need ip iproute2
need sshd openssh-server
case $net in
  loopback) one_namespace || exit 0; ip=127.0.0.1 dev=lo server_ns=in_a ;;
  100mbit) emulated_link 100 10 0 || exit 0; ip=10.77.0.2 dev=$dev_a server_ns=in_b ;;
  wan) emulated_link 1000 50 0.1 || exit 0; ip=10.77.0.2 dev=$dev_a server_ns=in_b ;;
  *) echo "unknown network '$net' (loopback, 100mbit, wan or all)"; exit 2 ;;
esac
machine
echo "network: $net ($how); file: $size_mib MiB"

root=$work/root
mkdir -p "$root" "$work/local"
config=$work/ferry.toml
export FERRY_TOKEN=$("$ferry" user add bench --allow read,write --config "$config" 2>/dev/null)
$server_ns "$ferry" serve --listen "$ip:7410" --root "$root" --state "$work/state" --config "$config" \
  >/dev/null 2>"$work/serve.log" </dev/null &
ssh-keygen -q -t ed25519 -N '' -f "$work/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$work/client_key"
mkdir -p "$work/ssh" /run/sshd && cp "$work/client_key.pub" "$work/ssh/authorized_keys"
$server_ns /usr/sbin/sshd -D -p 7411 -o ListenAddress="$ip" -h "$work/host_key" \
  -o AuthorizedKeysFile="$work/ssh/authorized_keys" -o PasswordAuthentication=no \
  -o StrictModes=no -o UsePAM=no -o PidFile="$work/sshd.pid" 2>"$work/sshd.log" &
ssh_opts="-i $work/client_key -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o GSSAPIAuthentication=no -q"
for _ in $(seq 100); do grep -q 'listening on' "$work/serve.log" 2>/dev/null && in_a ssh -p 7411 $ssh_opts "$ip" true 2>/dev/null && break; sleep 0.1; done
in_a "$ferry" ls --server "$ip:7410" >/dev/null 2>&1 # pin the identity

# The base and its edits, with fixed times so no tool takes a changed file for the same one.
python3 - "$work" "$size_mib" <<'PY'
import os, sys
work, mib = sys.argv[1], int(sys.argv[2])
size = mib << 20
old = os.path.join(work, "old.bin")
with open(old, "wb") as f:
    left = size
    while left:
        n = min(left, 64 << 20)
        f.write(os.urandom(n))
        left -= n
def edit(name, fn):
    path = os.path.join(work, f"new-{name}.bin")
    os.system(f"cp --reflink=auto '{old}' '{path}'")
    with open(path, "r+b") as f:
        fn(f)
    os.utime(path, (1_700_000_000, 1_700_000_000))
def middle(f):
    f.seek(size // 2); f.write(b"0123456789")
def scattered(f):
    for i in range(100):
        f.seek(i * (size // 100) + 4096); f.write(os.urandom(10486))
def insert(f):
    rest = f.read(); f.seek(0); f.write(os.urandom(4096) + rest)
def append(f):
    f.seek(0, 2); f.write(os.urandom(64 << 20))
def cut(f):
    f.truncate(size - (64 << 20))
for name, fn in [("10B-middle", middle), ("1MiB-in-100", scattered), ("4KiB-front", insert),
                 ("64MiB-append", append), ("64MiB-cut", cut)]:
    edit(name, fn)
# The next sync of a file that keeps changing: 10 more bytes changed in the 10B-middle version.
again = os.path.join(work, "new-10B-again.bin")
os.system(f"cp --reflink=auto '{work}/new-10B-middle.bin' '{again}'")
with open(again, "r+b") as f:
    f.seek(size * 3 // 4); f.write(b"9876543210")
os.utime(again, (1_700_000_100, 1_700_000_100))
os.utime(old, (1_600_000_000, 1_600_000_000))
PY

counter() { in_a cat "/sys/class/net/$dev/statistics/rx_bytes" "/sys/class/net/$dev/statistics/tx_bytes" | paste -sd+ | bc; }
results=$work/results
: >"$results"
# run EDIT TOOL COMMAND...: the server's copy back to the base, then one timed run.
run() {
  local edit=$1 tool=$2
  shift 2
  cp -p --reflink=auto "$work/old.bin" "$root/target.bin"
  # 10B-again starts from the 10B-middle version as each tool would have left it: ferry's
  # from its own delta (it kept that version's signature as it built it), rsync's a copy (it
  # keeps nothing between runs).
  if [ "$edit" = 10B-again ]; then
    case $tool in
      rsync) cp -p --reflink=auto "$work/new-10B-middle.bin" "$root/target.bin" ;;
      *) in_a "$ferry" put --server "$ip:7410" "$work/new-10B-middle.bin" target.bin >/dev/null 2>&1 ;;
    esac
  fi
  sync
  local before after started ended
  before=$(counter)
  started=$(date +%s.%N)
  in_a "$@" >/dev/null 2>"$work/err.log" || { echo "$tool failed: $(tail -1 "$work/err.log")"; return; }
  ended=$(date +%s.%N)
  after=$(counter)
  cmp -s "$work/new-$edit.bin" "$root/target.bin" || { echo "$tool: $edit: the result differs"; exit 1; }
  # On loopback the device counts each byte twice (sent and received on lo).
  local bytes=$((after - before))
  [ "$dev" = lo ] && bytes=$((bytes / 2))
  echo "$edit $tool $(python3 -c "print(f'{$ended - $started:.2f}')") $bytes" | tee -a "$results"
}
for _ in $(seq "$rounds"); do
  for edit in 10B-middle 1MiB-in-100 4KiB-front 64MiB-append 64MiB-cut 10B-again; do
    new=$work/new-$edit.bin
    run "$edit" ferry "$ferry" put --server "$ip:7410" "$new" target.bin
    run "$edit" ferry-W "$ferry" put --server "$ip:7410" --whole-file "$new" target.bin
    run "$edit" rsync rsync -a -e "ssh -p 7411 $ssh_opts" "$new" "$ip:$root/target.bin"
  done
done
python3 - "$results" "$net" "$size_mib" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    edit, tool, secs, wire = line.split()
    runs.setdefault(edit, {}).setdefault(tool, []).append((float(secs), int(wire)))
rows = {edit: {tool: (statistics.median(s for s, _ in r), int(statistics.median(w for _, w in r)))
               for tool, r in tools.items()} for edit, tools in runs.items()}
net = sys.argv[2]
print(f"\nmedians of {min(len(r) for t in runs.values() for r in t.values())} runs")
print(f"\n{'edit':14s} {'ferry s':>8s} {'rsync s':>8s} {'-W s':>7s} {'ferry bytes':>12s} {'rsync bytes':>12s} {'-W bytes':>12s}  bytes/rsync  s/rsync  s/-W")
with open(sys.argv[1] + ".bars", "w") as bars:
    for edit, r in rows.items():
        if not all(t in r for t in ("ferry", "rsync", "ferry-W")):
            continue
        (fs, fb), (rs, rb), (ws, wb) = r["ferry"], r["rsync"], r["ferry-W"]
        print(f"{edit:14s} {fs:8.2f} {rs:8.2f} {ws:7.2f} {fb:12,d} {rb:12,d} {wb:12,d}  {fb / rb:10.2f}x {fs / rs:7.2f}x {fs / ws:5.2f}x")
        print(f"{edit} ferry={fs:.2f}", file=bars)
        print(f"{edit} rsync={rs:.2f}", file=bars)
        print(f"{edit} ferry -W={ws:.2f}", file=bars)
print("targets: bytes within 1.5x rsync's; seconds at most 0.5x rsync's" +
      ("; the 10-byte edit under 5% of a whole resend (s/-W)" if net == "100mbit" else ""))
PY
chart "delta-$net" "${size_mib} MiB file edits sent again, $net: seconds" s "" "$results.bars"

# The least any tool that reads, hashes, builds and syncs as ferry does could take here, each
# step measured alone (examples/delta_costs.rs), beside half of rsync's median.
TMPDIR=$work/local cargo run --release --quiet --example delta_costs -- "$size_mib" --json >"$work/limit.json"
python3 - "$work/limit.json" "$results" <<'PY'
import json, statistics, sys
limit = json.load(open(sys.argv[1]))
rsync = [float(l.split()[2]) for l in open(sys.argv[2]) if l.split()[:2] == ["10B-middle", "rsync"]]
half = statistics.median(rsync) / 2
print(f"the least a delta of a base not signed before can take here (CPU {limit['cpu']:.2f} s on every core, "
      f"durable write {limit['durable']:.2f} s): {limit['limit']:.2f} s; half of rsync's 10B-middle: {half:.2f} s")
PY

[ "$net" = loopback ] || exit 0

# A tree of 10,100 files (100 directories of 101), 10 changed by a few bytes and 10 deleted,
# mirrored with --delete by each tool onto its own copy of the old tree.
python3 - "$work" <<'PY'
import os, random, sys
work = sys.argv[1]
rng = random.Random(7)
old = os.path.join(work, "tree-old")
for d in range(100):
    os.makedirs(os.path.join(old, f"d{d:03d}"))
    for f in range(101):
        path = os.path.join(old, f"d{d:03d}", f"f{f:03d}")
        with open(path, "wb") as out:
            out.write(os.urandom(rng.randint(1000, 8000)))
        os.utime(path, (1_600_000_000, 1_600_000_000))
PY
cp -a "$work/tree-old" "$work/tree-new"
python3 - "$work/tree-new" <<'PY'
import os, sys
root = sys.argv[1]
for i in range(10):
    path = os.path.join(root, f"d{i * 10:03d}", "f050")
    with open(path, "r+b") as f:
        f.seek(100); f.write(b"changed!")
    os.utime(path, (1_700_000_000, 1_700_000_000))
    os.remove(os.path.join(root, f"d{i * 10 + 5:03d}", "f020"))
PY
: >"$work/tree.rates"
tree_run() {
  local tool=$1 target=$2
  shift 2
  rm -rf "$root/$target" && cp -a "$work/tree-old" "$root/$target" && sync
  local started ended
  started=$(date +%s.%N)
  in_a "$@" >/dev/null 2>"$work/err.log" || { echo "$tool failed: $(tail -1 "$work/err.log")"; return; }
  ended=$(date +%s.%N)
  diff -r "$work/tree-new" "$root/$target" >/dev/null || { echo "$tool: the mirrored tree differs"; exit 1; }
  python3 -c "print(f'{\"$tool\":12s} {$ended - $started:6.2f} s')" | tee -a "$work/tree.rates"
}
echo
echo "tree: 10,100 files, 10 changed by a few bytes, 10 deleted, mirrored with --delete"
for _ in 1 2 3; do
  tree_run ferry tree-ferry "$ferry" put -r --delete --force --server "$ip:7410" "$work/tree-new/" tree-ferry
  tree_run rsync tree-rsync rsync -a --delete -e "ssh -p 7411 $ssh_opts" "$work/tree-new/" "$ip:$root/tree-rsync/"
done
python3 - "$work/tree.rates" <<'PY'
import statistics, sys
times = {}
for line in open(sys.argv[1]):
    tool, secs = line.split()[0], float(line.split()[1])
    times.setdefault(tool, []).append(secs)
f, r = statistics.median(times["ferry"]), statistics.median(times["rsync"])
print(f"medians: ferry {f:.2f} s, rsync {r:.2f} s: ferry {r / f:.2f}x faster (target: 2x)")
PY

# Watch: `ferry sync --watch` running; 1,000 files written at once, then one file changed:
# from the last write until the server holds every byte of it.
mkdir -p "$work/watched"
in_a "$ferry" sync --watch --server "$ip:7410" "$work/watched" watched >/dev/null 2>"$work/watch.log" &
for _ in $(seq 200); do grep -q watching "$work/watch.log" && break; sleep 0.05; done
echo
python3 - "$work/watched" "$root/watched" <<'PY'
import os, statistics, sys, time
local, remote = sys.argv[1], sys.argv[2]
def arrived(names, text):
    for name in names:
        try:
            with open(os.path.join(remote, name)) as f:
                if f.read() != text:
                    return False
        except OSError:
            return False
    return True
def wait(names, text):
    while not arrived(names, text):
        time.sleep(0.005)
    return time.monotonic()
bursts, singles = [], []
for round in range(3):
    names = [f"b{round}-{i:04d}" for i in range(1000)]
    for name in names:
        with open(os.path.join(local, name), "w") as f:
            f.write(f"round {round}")
    last = time.monotonic()
    bursts.append(wait(names, f"round {round}") - last)
    with open(os.path.join(local, names[0]), "w") as f:
        f.write("changed once")
    last = time.monotonic()
    singles.append(wait([names[0]], "changed once") - last)
print(f"watch: 1,000 files at once arrived {statistics.median(bursts):.2f} s after the last write (median of 3; target 2 s)")
print(f"watch: one file changed arrived {statistics.median(singles):.2f} s after its write (median of 3; target 1 s)")
PY
