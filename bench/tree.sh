#!/usr/bin/env bash
# A tree of many small files and some large ones (default 10,000 of 4 KiB in 100 directories
# plus 100 of 1 MiB), get and put: ferry (TLS, verified, every file durable) side by side with
# rsync -a and scp -r over a loopback sshd, tar | nc (no verification, no durability: the
# floor) and sendme (BLAKE3-verified). Every run writes into a newly made file system
# (lib.sh's fresh_fs), so no tool inherits another's deleted inodes. Prints files/s, MB/s and
# ratios. Usage: bench/tree.sh [SMALL_FILES] [LARGE_FILES] [RUNS]
source "$(dirname "$0")/lib.sh"
small=${1:-10000}
large=${2:-100}
runs=${3:-3}
need hyperfine hyperfine
need nc netcat-openbsd
need rsync rsync

python3 - "$work/src/tree" "$small" "$large" <<'PY'
import os, sys
base, small, large = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
dirs = max(1, small // 100)
for i in range(small):
    d = f"{base}/d{i % dirs:03}"
    os.makedirs(d, exist_ok=True)
    with open(f"{d}/f{i:05}", "wb") as f:
        f.write(os.urandom(4096))
os.makedirs(f"{base}/large", exist_ok=True)
for i in range(large):
    with open(f"{base}/large/l{i:03}", "wb") as f:
        f.write(os.urandom(1 << 20))
PY
bytes=$(du -sb "$work/src/tree" | cut -f1)
count=$((small + large))
find "$work/src/tree" -type f -exec cat {} + >/dev/null # page cache

config=$work/ferry.toml
export FERRY_TOKEN=$("$ferry" user add bench --allow read,write --config "$config" 2>/dev/null)
start_ferry tls --config "$config"
"$ferry" ls --server "$tls" >/dev/null 2>&1 # pin
start_sshd
ssh="ssh -p $ssh_port $ssh_opts"

nc_port=$(free_port)
(while true; do nc -l 127.0.0.1 "$nc_port" | tar -x -C "$work/dest"; done) >/dev/null 2>&1 &
bench_pids+=($!)
listening="grep -qi ':$(printf %04X "$nc_port") 00000000:0000 0A' /proc/net/tcp"

sendme_cmd=""
if command -v sendme >/dev/null 2>&1 || cargo install sendme --locked --quiet >/dev/null 2>&1; then
  started=$(date +%s.%N)
  # `exec`: no shell is left waiting on sendme to print "Terminated" when the clean-up ends it.
  (cd "$work" && exec sendme send --relay disabled --ticket-type addresses --no-progress "$work/src/tree" >"$work/sendme.out" 2>&1) &
  bench_pids+=($!)
  for _ in $(seq 1200); do grep -q 'sendme receive' "$work/sendme.out" 2>/dev/null && break; sleep 0.05; done
  sendme_import=$(python3 -c "import time; print(f'{time.time() - $started:.1f}')")
  ticket=$(grep -o 'blob[a-z0-9]*' "$work/sendme.out" | head -1)
  [ -n "$ticket" ] && sendme_cmd="cd $work/dest && sendme receive --relay disabled --no-progress $ticket"
fi

# Before each run, untimed: a fresh file system at the destination of both directions.
{
  echo "work=$work; bench_mounts=()"
  echo "$(declare -f fresh_fs)"
} >"$work/prepare.sh"
fresh_fs "$work/dest" # probes whether loop mounts work
echo "fresh_fs_works=$fresh_fs_works" >>"$work/prepare.sh"
prepare="source $work/prepare.sh; fresh_fs $work/dest; fresh_fs $work/pdest; until $listening; do sleep 0.01; done"
fresh_fs "$work/pdest"

machine
echo "tree: $small files of 4 KiB in $((small / 100 > 0 ? small / 100 : 1)) directories + $large of 1 MiB = $count files, $((bytes / 1000000)) MB"
hyperfine --shell=bash --warmup 1 --runs "$runs" --prepare "$prepare" --export-json "$work/tree.json" \
  -n "ferry get -r (TLS)" "$ferry get -r --server $tls src/tree $work/dest/" \
  -n "ferry put -r (TLS)" "$ferry put -r --server $tls $work/src/tree pdest" \
  -n "tar | nc (unverified)" "tar -c -C $work/src tree | nc -N 127.0.0.1 $nc_port" \
  -n "rsync get" "rsync -a -e '$ssh' 127.0.0.1:$work/src/tree $work/dest/" \
  -n "rsync put" "rsync -a -e '$ssh' $work/src/tree 127.0.0.1:$work/pdest/" \
  -n "scp -r get" "scp -r $ssh_opts -P $ssh_port 127.0.0.1:$work/src/tree $work/dest/" \
  -n "scp -r put" "scp -r $ssh_opts -P $ssh_port $work/src/tree 127.0.0.1:$work/pdest/" \
  ${sendme_cmd:+-n "sendme get" "$sendme_cmd"} \
  >"$work/hyperfine.log" 2>&1 || { cat "$work/hyperfine.log"; exit 1; }
for dest in dest pdest; do mountpoint -q "$work/$dest" && umount "$work/$dest"; done
[ -n "$sendme_cmd" ] && echo "sendme: importing (hashing) the tree before it could send took ${sendme_import} s, not counted below"
python3 - "$work/tree.json" "$count" "$bytes" "$work" <<'PY'
import json, sys
results = {r["command"]: r["median"] for r in json.load(open(sys.argv[1]))["results"]}
count, size = int(sys.argv[2]), int(sys.argv[3])
for name, t in results.items():
    print(f"{name:24s} median {t:7.3f} s  {count / t:8.0f} files/s  {size / t / 1e6:7.1f} MB/s")
def ratio(a, b):
    return f"{results[b] / results[a]:.2f}x" if a in results and b in results else "n/a"
for way in ("get", "put"):
    ours = f"ferry {way} -r (TLS)"
    print(f"{ours}: {ratio(ours, 'tar | nc (unverified)')} tar | nc's speed", end="")
    for peer in (f"rsync {way}", f"scp -r {way}", f"sendme {way}"):
        if peer in results:
            print(f", {ratio(ours, peer)} {peer}'s", end="")
    print()
    with open(f"{sys.argv[4]}/tree-{way}.bars", "w") as bars:
        for name in ("tar | nc (unverified)", ours, f"rsync {way}", f"scp -r {way}", f"sendme {way}"):
            if name in results:
                print(f"{name}={count / results[name]:.0f}", file=bars)
PY
for way in get put; do
  chart "tree-$way" "$way -r of $count files ($small x 4 KiB, $large x 1 MiB)" files/s "tar | nc (unverified)" "$work/tree-$way.bars"
done
