#!/usr/bin/env bash
# A long fat link: 1 GiB get over an emulated 50 ms RTT, 1 Gbit/s, 0.1% loss path between two
# network namespaces — ferry (TLS and plaintext) beside iperf3 on the same link (the ceiling
# there), scp and rsync. With `tc netem` the kernel shapes the link; where the kernel has no
# netem (sch_netem not built), bench/link_emulator.py does the same in user space over two tun
# devices (one real TCP connection end to end; it costs CPU, and on two cores may cap the
# rate: the iperf3 figure shows what the link gave that run). Skipped with a clear line where
# namespaces cannot be made. Usage: bench/link.sh [SIZE_MIB] [RTT_MS] [RATE_MBIT] [LOSS_PCT]
source "$(dirname "$0")/lib.sh"
size_mib=${1:-1024}
rtt_ms=${2:-50}
rate_mbit=${3:-1000}
loss_pct=${4:-0.1}
need iperf3 iperf3
need rsync rsync
need ip iproute2

a=ferrya$$ b=ferryb$$
if ! ip netns add "$a" 2>/dev/null || ! ip netns add "$b" 2>/dev/null; then
  echo "link: skipped: network namespaces cannot be made here (ip netns add failed; needs root or CAP_SYS_ADMIN)"
  exit 0
fi
link_cleanup() {
  ip netns pids "$a" 2>/dev/null | xargs -r kill 2>/dev/null || true
  ip netns pids "$b" 2>/dev/null | xargs -r kill 2>/dev/null || true
  ip netns del "$a" 2>/dev/null || true
  ip netns del "$b" 2>/dev/null || true
  bench_cleanup
}
trap link_cleanup EXIT
in_a() { ip netns exec "$a" "$@"; }
in_b() { ip netns exec "$b" "$@"; }
loss=$(python3 -c "print($loss_pct / 100)")
one_way_ms=$(python3 -c "print($rtt_ms / 2)")

if ip link add va$$ type veth peer name vb$$ 2>/dev/null && ip link set va$$ netns "$a" && ip link set vb$$ netns "$b" \
  && in_a tc qdisc add dev va$$ root netem delay "${one_way_ms}ms" rate "${rate_mbit}mbit" loss "${loss_pct}%" limit 100000 2>/dev/null \
  && in_b tc qdisc add dev vb$$ root netem delay "${one_way_ms}ms" rate "${rate_mbit}mbit" loss "${loss_pct}%" limit 100000 2>/dev/null; then
  how="tc netem on a veth pair"
  dev_a=va$$ dev_b=vb$$ mtu=1500
else
  ip link del va$$ 2>/dev/null || true
  how="bench/link_emulator.py (this kernel has no tc netem) over tun devices"
  dev_a=ta$$ dev_b=tb$$ mtu=9000
  python3 "$(dirname "$0")/link_emulator.py" "$dev_a" "$dev_b" "$((rate_mbit * 1000000))" "$one_way_ms" "$loss" 200 >"$work/emulator.out" 2>&1 &
  bench_pids+=($!)
  for _ in $(seq 100); do grep -qs ready "$work/emulator.out" && break; sleep 0.05; done
  ip link set "$dev_a" netns "$a" && ip link set "$dev_b" netns "$b"
fi
in_a ip addr add 10.77.0.1/24 dev "$dev_a"
in_b ip addr add 10.77.0.2/24 dev "$dev_b"
in_a ip link set "$dev_a" up mtu "$mtu"
in_b ip link set "$dev_b" up mtu "$mtu"
in_a ip link set lo up
in_b ip link set lo up

mkdir -p "$work/root" "$work/local"
head -c "$((size_mib * 1024 * 1024))" /dev/urandom >"$work/root/in.bin"
config=$work/ferry.toml
export FERRY_TOKEN=$("$ferry" user add bench --allow read --config "$config" 2>/dev/null)
in_b "$ferry" serve --listen 10.77.0.2:7400 --root "$work/root" --state "$work/tls" --config "$config" >/dev/null 2>"$work/tls.log" </dev/null &
in_b "$ferry" serve --listen 10.77.0.2:7401 --root "$work/root" --state "$work/plain" --config "$config" --plaintext >/dev/null 2>"$work/plain.log" </dev/null &
in_b iperf3 -s -B 10.77.0.2 -p 7402 >/dev/null 2>&1 &
ssh-keygen -q -t ed25519 -N '' -f "$work/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$work/client_key"
mkdir -p "$work/ssh" /run/sshd && cp "$work/client_key.pub" "$work/ssh/authorized_keys"
in_b /usr/sbin/sshd -D -p 7403 -o ListenAddress=10.77.0.2 -h "$work/host_key" \
  -o AuthorizedKeysFile="$work/ssh/authorized_keys" -o PasswordAuthentication=no \
  -o StrictModes=no -o UsePAM=no -o PidFile="$work/sshd.pid" 2>"$work/sshd.log" &
ssh_opts="-i $work/client_key -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o GSSAPIAuthentication=no -q"
for _ in $(seq 100); do grep -q 'listening on' "$work/tls.log" "$work/plain.log" 2>/dev/null && in_a ssh -p 7403 $ssh_opts 10.77.0.2 true 2>/dev/null && break; sleep 0.1; done
in_a "$ferry" ls --server 10.77.0.2:7400 >/dev/null 2>&1 # pin

machine
# One TCP connect is one round trip (SYN, SYN-ACK): the median of five.
rtt=$(in_a python3 -c '
import socket, statistics, time
times = []
for _ in range(5):
    s = socket.socket(); t = time.monotonic(); s.connect(("10.77.0.2", 7403)); times.append(time.monotonic() - t); s.close()
print(f"{statistics.median(times) * 1000:.0f}")' 2>/dev/null || true)
echo "link: ${rtt_ms} ms RTT (measured ${rtt:-?} ms), ${rate_mbit} Mbit/s, ${loss_pct}% loss, by $how; file ${size_mib} MiB"
timed() { # NAME COMMAND...: one run, its seconds and MB/s
  local name=$1
  shift
  rm -f "$work/local/out.bin" "$work/local/.out.bin.ferry-part"
  local started ended
  started=$(date +%s.%N)
  in_a "$@" >/dev/null 2>"$work/err.log" || { echo "$name failed: $(tail -1 "$work/err.log")"; return; }
  ended=$(date +%s.%N)
  python3 -c "t = $ended - $started; print(f'{\"$name\":24s} {t:7.1f} s  {$size_mib * 1048576 / t / 1e6:7.1f} MB/s')" | tee -a "$work/rates"
}
timed "iperf3 (link ceiling)" iperf3 -c 10.77.0.2 -p 7402 -n "${size_mib}M"
timed "ferry get (TLS)" "$ferry" get --server 10.77.0.2:7400 in.bin "$work/local/out.bin"
timed "ferry get --plaintext" "$ferry" get --server 10.77.0.2:7401 --plaintext in.bin "$work/local/out.bin"
timed "scp get" scp $ssh_opts -P 7403 10.77.0.2:"$work/root/in.bin" "$work/local/out.bin"
timed "rsync get" rsync --whole-file -e "ssh -p 7403 $ssh_opts" 10.77.0.2:"$work/root/in.bin" "$work/local/out.bin"
python3 - "$work/rates" <<'PY'
import re, sys
rates = {}
for line in open(sys.argv[1]):
    name, rate = line[:24].strip(), float(line.split()[-2])
    rates[name] = rate
ceiling = rates.get("iperf3 (link ceiling)")
for name, rate in rates.items():
    if ceiling and not name.startswith("iperf3"):
        print(f"{name}: {rate / ceiling:.2f}x iperf3 on the same link")
with open(sys.argv[1] + ".bars", "w") as bars:
    for name, rate in rates.items():
        print(f"{name}={rate:.1f}", file=bars)
PY
chart link "Get of ${size_mib} MiB over ${rtt_ms} ms RTT, ${rate_mbit} Mbit/s, ${loss_pct}% loss" MB/s "iperf3 (link ceiling)" "$work/rates.bars"
