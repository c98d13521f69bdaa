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

source "$(dirname "$0")/emulated_link.sh"
emulated_link "$rate_mbit" "$rtt_ms" "$loss_pct" || exit 0

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
