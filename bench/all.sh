#!/usr/bin/env bash
# Every side-by-side benchmark in one run: ping, exec vs ssh, files vs nc/scp/sftp/rsync/sendme (iperf3
# as the ceiling), a tree of small files, a long fat link, chat vs ngircd, deltas and mirrors vs
# rsync, then `ferry bench` (latency percentiles and connections).
# Takes about 45 minutes on two cores. Usage: bench/all.sh
set -euo pipefail
here=$(dirname "$0")
"$here/ping.sh"
"$here/exec.sh"
"$here/files.sh" # then tree.sh and link.sh
FILES_SINGLE=1 "$here/files.sh" 1024 5 memory
"$here/chat.sh"
"$here/web.sh"
"$here/delta.sh" all 256
"$here/forward.sh"
source "$here/lib.sh"
config=$work/ferry.toml
export FERRY_TOKEN=$("$ferry" user add bench --allow chat,read,write,exec --config "$config" 2>/dev/null)
start_ferry tls --config "$config"
echo "== ferry bench latency connections (TLS)"
"$ferry" bench --server "$tls" latency connections 2>/dev/null
