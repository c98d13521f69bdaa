#!/usr/bin/env bash
# `ferry exec -- true` against `ssh localhost true`, on loopback, whole commands, side by side.
# Starts a loopback sshd of its own (key auth, temporary keys). Usage: bench/exec.sh [RUNS]
source "$(dirname "$0")/lib.sh"
runs=${1:-200}
need hyperfine hyperfine
need sshd openssh-server
need ssh openssh-client

config=$work/ferry.toml
token=$("$ferry" user add bench --allow exec --config "$config" 2>/dev/null)
start_ferry tls --config "$config"
start_ferry plain --config "$config" --plaintext
export FERRY_TOKEN=$token
"$ferry" exec --server "$tls" -- true 2>/dev/null # pin

# A private sshd on a free loopback port.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ssh-keygen -q -t ed25519 -N '' -f "$work/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$work/client_key"
mkdir -p "$work/ssh" && cp "$work/client_key.pub" "$work/ssh/authorized_keys"
chmod 700 "$work/ssh" && chmod 600 "$work/ssh/authorized_keys"
mkdir -p /run/sshd
/usr/sbin/sshd -D -p "$port" -o ListenAddress=127.0.0.1 -h "$work/host_key" \
  -o AuthorizedKeysFile="$work/ssh/authorized_keys" -o PasswordAuthentication=no \
  -o StrictModes=no -o PidFile="$work/sshd.pid" -o UsePAM=no 2>"$work/sshd.log" &
bench_pids+=($!)
ssh_cmd="ssh -q -p $port -i $work/client_key -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o GSSAPIAuthentication=no 127.0.0.1 true"
for _ in $(seq 100); do $ssh_cmd 2>/dev/null && break; sleep 0.1; done

machine
hyperfine -N --warmup 10 --runs "$runs" --export-json "$work/exec.json" \
  "$ferry exec --server $tls -- true" \
  "$ferry exec --server $plain --plaintext -- true" \
  "$ssh_cmd" >/dev/null
medians "$work/exec.json"
python3 - "$work/exec.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
print(f"ratio: ssh localhost true / ferry exec -- true (TLS) = {r[2]['median'] / r[0]['median']:.1f}x")
with open(sys.argv[1] + ".bars", "w") as bars:
    for label, run in zip(("ssh localhost true", "ferry exec -- true (TLS)", "ferry exec -- true --plaintext"), (r[2], r[0], r[1])):
        print(f"{label}={run['median'] * 1000:.2f}", file=bars)
PY
chart exec "A whole remote 'true', from start to exit (lower is better)" ms "ssh localhost true" "$work/exec.json.bars"
