#!/usr/bin/env bash
# The web path against the native one on the same server: `ferry bench throughput` (put then
# get, verified, SIZE each) once through the TCP port and once through the web door's WebSocket
# (`--server wss://…`, the transport the page uses), TLS and plaintext; prints medians and the
# web/native ratio. Usage: bench/web.sh [SIZE] [ROUNDS]   (default 256MiB, 5 rounds)
source "$(dirname "$0")/lib.sh"
size=${1:-256MiB}
rounds=${2:-5}
config=$work/ferry.toml
export FERRY_TOKEN=$("$ferry" user add bench --allow read,write --config "$config" 2>/dev/null)
start_ferry tls --config "$config" --web 127.0.0.1:0
start_ferry plain --config "$config" --web 127.0.0.1:0 --plaintext
web_of() { grep -o 'web page at https\?://[0-9.:]*' "$work/$1.log" | sed 's|.*://||'; }
tls_web=wss://$(web_of tls)
plain_web=ws://$(web_of plain)

machine
echo "== throughput: $size per transfer, median of $rounds rounds each (MB/s)"
run() { "$ferry" bench --server "$1" "${@:2}" --accept-new throughput --size "$size" --rounds "$rounds" --json 2>/dev/null; }
python3 - "$(run "$tls")" "$(run "$tls_web")" "$(run "$plain" --plaintext)" "$(run "$plain_web" --plaintext)" <<'PY'
import json, sys
tls, tls_web, plain, plain_web = (json.loads(a)["results"]["throughput"] for a in sys.argv[1:])
for name, native, web in (("TLS", tls, tls_web), ("plaintext", plain, plain_web)):
    for op in ("put", "get"):
        n, w = native[f"{op}_mb_s"], web[f"{op}_mb_s"]
        print(f"{name:9} {op}: native {n:7.0f}   web (WebSocket) {w:7.0f}   web/native {w / n:4.2f}x")
PY
