#!/usr/bin/env bash
# Port forwarding side by side, in one run on loopback:
#   1 GiB through one stream of `ferry forward -L` (TLS) into a local sink, beside ferry's own
#   `get` of 1 GiB (TLS, to /dev/null), `ssh -L` carrying the same stream, and iperf3 (the
#   ceiling of this loopback); each the median of 3, with the ratios;
#   100 streams of 10 MiB at once through one `-L`: every one completes, and the slowest is
#   compared with the median;
#   sign-in cost: `ferry exec -- true` signed in with a token, an Ed25519 key file and through
#   ssh-agent (hyperfine, whole process).
# Usage: bench/forward.sh [SIZE_MIB]   (default 1024)
source "$(dirname "$0")/lib.sh"
size_mib=${1:-1024}
need sshd openssh-server
need iperf3 iperf3
need hyperfine hyperfine
machine
echo "loopback; one stream of $size_mib MiB"

config=$work/ferry.toml
token=$("$ferry" user add bench --allow read,exec,forward --config "$config" 2>/dev/null)
ssh-keygen -q -t ed25519 -N '' -C bench@forward -f "$work/user_key"
"$ferry" user key add bench --key-file "$work/user_key.pub" --config "$config" 2>/dev/null
cat >>"$config" <<EOF
[forward]
connect = ["127.0.0.1:*"]
EOF
head -c $((size_mib << 20)) /dev/zero >"$work/big.bin"
start_ferry srv --config "$config"
export FERRY_TOKEN=$token
"$ferry" ls --server "$srv" >/dev/null # pin the identity

# A sink that reads each connection to its end (and says how long each took).
cat >"$work/sink.py" <<'PY'
import socket, sys, threading, time
port_file = sys.argv[1]
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0)); s.listen(256)
open(port_file, "w").write(str(s.getsockname()[1]))
def drain(c):
    while c.recv(1 << 20):
        pass
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=drain, args=(c,), daemon=True).start()
PY
python3 "$work/sink.py" "$work/sink.port" & bench_pids+=($!)
for _ in $(seq 100); do [ -s "$work/sink.port" ] && break; sleep 0.05; done
sink=$(cat "$work/sink.port")

# One `ferry forward -L` to the sink; its local port from its first line.
"$ferry" forward --server "$srv" -L "0:127.0.0.1:$sink" 2>"$work/forward.log" & bench_pids+=($!)
for _ in $(seq 100); do grep -q -- '->' "$work/forward.log" 2>/dev/null && break; sleep 0.05; done
lport=$(grep -o -- '127.0.0.1:[0-9]* ->' "$work/forward.log" | head -1 | cut -d: -f2 | cut -d' ' -f1)

# ssh -L to the same sink.
ssh-keygen -q -t ed25519 -N '' -f "$work/host_key"
mkdir -p /run/sshd && cp "$work/user_key.pub" "$work/authorized_keys"
/usr/sbin/sshd -D -p 7421 -o ListenAddress=127.0.0.1 -h "$work/host_key" \
  -o AuthorizedKeysFile="$work/authorized_keys" -o PasswordAuthentication=no \
  -o StrictModes=no -o UsePAM=no -o PidFile="$work/sshd.pid" 2>"$work/sshd.log" & bench_pids+=($!)
ssh_opts="-i $work/user_key -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o GSSAPIAuthentication=no"
for _ in $(seq 100); do ssh -p 7421 $ssh_opts -q 127.0.0.1 true 2>/dev/null && break; sleep 0.1; done
sport=7422
ssh -p 7421 $ssh_opts -q -N -L "$sport:127.0.0.1:$sink" 127.0.0.1 & bench_pids+=($!)
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$sport) 2>/dev/null && break; sleep 0.1; done

iperf3 -s -1 -p 7423 -D --logfile "$work/iperf.log" 2>/dev/null || true

# send PORT: 1 GiB into PORT, the seconds it took until the far end had it all.
send() {
  python3 - "$1" "$work/big.bin" <<'PY'
import socket, sys, time
port, path = int(sys.argv[1]), sys.argv[2]
s = socket.create_connection(("127.0.0.1", port))
t = time.perf_counter()
with open(path, "rb") as f:
    s.sendfile(f)
s.shutdown(socket.SHUT_WR)
s.recv(1)  # the far end closes once it has read everything
print(f"{time.perf_counter() - t:.3f}")
PY
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mbps() { awk -v s="$1" -v m="$size_mib" 'BEGIN {printf "%.0f", m * 1.048576 / s}'; }

for tool in forward get ssh; do
  for _ in 1 2 3; do
    case $tool in
      forward) send "$lport" ;;
      ssh) send "$sport" ;;
      get) /usr/bin/time -f %e "$ferry" get --server "$srv" big.bin - 2>&1 >/dev/null | tail -1 ;;
    esac
  done | median >"$work/$tool.s"
done
iperf3 -c 127.0.0.1 -p 7423 -n "${size_mib}M" -J 2>/dev/null \
  | python3 -c 'import json,sys; print("%.0f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 8e6))' \
  >"$work/iperf.mbps" || echo 0 >"$work/iperf.mbps"

f=$(cat "$work/forward.s") g=$(cat "$work/get.s") s=$(cat "$work/ssh.s")
printf '%-24s %8s %8s\n' "one stream" seconds MB/s
printf '%-24s %8s %8s\n' "ferry forward -L" "$f" "$(mbps "$f")"
printf '%-24s %8s %8s\n' "ferry get" "$g" "$(mbps "$g")"
printf '%-24s %8s %8s\n' "ssh -L" "$s" "$(mbps "$s")"
printf '%-24s %8s %8s\n' "iperf3 (ceiling)" "" "$(cat "$work/iperf.mbps")"
awk -v f="$f" -v g="$g" -v s="$s" 'BEGIN {
  printf "forward / get: %.2fx (target at least 0.8x); forward / ssh -L: %.2fx (target at least 2x)\n", g / f, s / f }'
{
  echo "ferry forward -L=$(mbps "$f")"
  echo "ferry get=$(mbps "$g")"
  echo "ssh -L=$(mbps "$s")"
  echo "limit:iperf3=$(cat "$work/iperf.mbps")"
} >"$work/one.bars"
chart forward "one stream of $size_mib MiB through a forward, loopback: MB/s" MB/s "ferry get" "$work/one.bars"

# 100 streams of 10 MiB at once through the one -L.
python3 - "$lport" <<'PY'
import socket, statistics, sys, threading, time
port = int(sys.argv[1])
block = b"\0" * (1 << 20)
times = [None] * 100
def stream(i):
    t = time.perf_counter()
    s = socket.create_connection(("127.0.0.1", port))
    for _ in range(10):
        s.sendall(block)
    s.shutdown(socket.SHUT_WR)
    s.recv(1)
    times[i] = time.perf_counter() - t
threads = [threading.Thread(target=stream, args=(i,)) for i in range(100)]
t = time.perf_counter()
for th in threads: th.start()
for th in threads: th.join()
done = [x for x in times if x is not None]
med = statistics.median(done)
print(f"100 streams of 10 MiB: {len(done)} completed in {time.perf_counter() - t:.2f} s; "
      f"median {med:.2f} s, slowest {max(done):.2f} s ({max(done) / med:.2f}x the median; target within 3x)")
PY

# Sign-in cost, whole process: token, key file, agent.
eval "$(ssh-agent -s -a "$work/agent.sock")" >/dev/null
bench_pids+=($SSH_AGENT_PID)
ssh-add -q "$work/user_key"
hyperfine -N -w 5 -r 40 --export-json "$work/signin.json" \
  -n token "env FERRY_TOKEN=$token $ferry exec --server $srv -- true" \
  -n key-file "env -u FERRY_TOKEN -u SSH_AUTH_SOCK $ferry exec --server $srv --user bench --identity $work/user_key -- true" \
  -n agent "env -u FERRY_TOKEN SSH_AUTH_SOCK=$SSH_AUTH_SOCK $ferry exec --server $srv --user bench -- true" \
  >/dev/null
python3 - "$work/signin.json" <<'PY'
import json, sys
r = {x["command"]: x["median"] * 1000 for x in json.load(open(sys.argv[1]))["results"]}
t = r["token"]
for name in ("token", "key-file", "agent"):
    print(f"sign-in {name:9} {r[name]:6.2f} ms  ({r[name] / t:.2f}x the token's; target within 1.2x, under 10 ms)")
PY
