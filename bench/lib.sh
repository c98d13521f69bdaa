# Shared by the bench scripts: build ferry, start servers on loopback, clean up on exit.
# Source it; it sets $ferry, $work and starts nothing by itself.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo build --release --quiet
ferry=$PWD/target/release/ferry
work=$(mktemp -d)
export FERRY_HOME=$work/home
bench_pids=()
bench_mounts=()
bench_cleanup() {
  # Their children too (an `nc -l` in a listening loop would outlive it, holding its files).
  local children
  children=$(for pid in "${bench_pids[@]}"; do pgrep -P "$pid" || true; done)
  # Parents first: a shell loop still alive when its child is killed prints "Terminated".
  kill "${bench_pids[@]}" 2>/dev/null || true
  kill $children 2>/dev/null || true
  wait 2>/dev/null || true
  for m in "${bench_mounts[@]}"; do umount "$m" 2>/dev/null || true; done
  rm -rf "$work"
}
trap bench_cleanup EXIT

# need PROGRAM DEBIAN-PACKAGE: installs the package when the program is missing.
need() {
  command -v "$1" >/dev/null 2>&1 && return
  [ -x "/usr/sbin/$1" ] && return
  echo "installing $2 (for $1)" >&2
  apt-get update -qq >/dev/null && apt-get install -y -qq "$2" >/dev/null </dev/null
}

# start_ferry VAR [serve args...]: starts a server on 127.0.0.1:0 and sets $VAR to its address.
# (Not a command substitution: the server would hold its pipe open, and its pid would be lost.)
start_ferry() {
  local name=$1
  shift
  "$ferry" serve --listen 127.0.0.1:0 --root "$work" --state "$work/$name" "$@" \
    >/dev/null 2>"$work/$name.log" </dev/null &
  bench_pids+=($!)
  local addr=""
  for _ in $(seq 200); do
    addr=$(grep -o 'listening on [0-9.:]*' "$work/$name.log" | cut -d' ' -f3 || true)
    [ -n "$addr" ] && break
    sleep 0.05
  done
  [ -n "$addr" ] || { cat "$work/$name.log" >&2; exit 1; }
  printf -v "$name" '%s' "$addr"
}

# The SVGs the scripts draw, which README shows; FERRY_BENCH_CHARTS puts them elsewhere.
charts=${FERRY_BENCH_CHARTS:-$PWD/bench/charts}
mkdir -p "$charts"

# chart NAME TITLE UNIT REFERENCE BARS_FILE: draws the bars of BARS_FILE (one NAME=VALUE per
# line, top to bottom; `limit:NAME=VALUE` for another limit of the machine) into
# $charts/NAME.svg with `ferry bench chart`; the REFERENCE bar ("" for none) is grey and every
# other bar is labelled with its ratio to it.
chart() {
  local name=$1 title=$2 unit=$3 reference=$4 file=$5 line bars=() limits=()
  while IFS= read -r line; do
    if [[ $line == limit:* ]]; then
      line=${line#limit:}
      limits+=(--limit "${line%=*}")
    fi
    bars+=("$line")
  done <"$file"
  [ ${#bars[@]} -gt 0 ] || return 0
  "$ferry" bench chart --title "$title ($(nproc) cores, $(date -u +%Y-%m-%d))" --unit "$unit" \
    ${reference:+--ceiling "$reference"} "${limits[@]}" --out "$charts/$name.svg" -- "${bars[@]}" 2>/dev/null
  echo "chart: $charts/$name.svg"
}

machine() {
  echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(date -u +%Y-%m-%d)"
}

# median_ms JSON: the median of a hyperfine JSON export, in ms, per command.
medians() {
  python3 - "$1" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    print(f"{r['median'] * 1000:8.2f} ms  {r['command']}")
PY
}

# free_port: a free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_sshd: a private sshd on loopback for scp, sftp and rsync; sets $ssh_port and $ssh_opts.
start_sshd() {
  need sshd openssh-server
  ssh_port=$(free_port)
  ssh-keygen -q -t ed25519 -N '' -f "$work/host_key"
  ssh-keygen -q -t ed25519 -N '' -f "$work/client_key"
  mkdir -p "$work/ssh" /run/sshd && cp "$work/client_key.pub" "$work/ssh/authorized_keys"
  /usr/sbin/sshd -D -p "$ssh_port" -o ListenAddress=127.0.0.1 -h "$work/host_key" \
    -o AuthorizedKeysFile="$work/ssh/authorized_keys" -o PasswordAuthentication=no \
    -o StrictModes=no -o UsePAM=no -o PidFile="$work/sshd.pid" 2>"$work/sshd.log" &
  bench_pids+=($!)
  ssh_opts="-i $work/client_key -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o GSSAPIAuthentication=no -q"
  for _ in $(seq 100); do ssh -p "$ssh_port" $ssh_opts 127.0.0.1 true 2>/dev/null && break; sleep 0.1; done
}

# fresh_fs DIR: DIR becomes an empty, newly made ext4 file system (a loop-mounted image), so
# every tool writes a tree into the same state of a file system: ext4 grows slow at creating
# files after many deletes (its search for an inode skips recently deleted ones), which would
# otherwise punish whichever tool runs after a big `rm -rf`. Where loop mounts are not allowed,
# DIR is only emptied, and the script says so once.
fresh_fs() {
  local dir=$1 image="$work/$(basename "$1").img"
  if [ -z "${fresh_fs_works:-}" ]; then
    mkdir -p "$work/probe" && truncate -s 64M "$work/probe.img" && mkfs.ext4 -q -F "$work/probe.img" \
      && mount -o loop "$work/probe.img" "$work/probe" 2>/dev/null && umount "$work/probe" \
      && fresh_fs_works=yes || { fresh_fs_works=no; echo "(loop mounts not allowed here: targets are plain directories, emptied between runs)" >&2; }
    rm -f "$work/probe.img"
  fi
  if [ "$fresh_fs_works" = yes ]; then
    mountpoint -q "$dir" && umount "$dir"
    mkdir -p "$dir"
    truncate -s 4G "$image" && mkfs.ext4 -q -F "$image" && mount -o loop "$image" "$dir"
    bench_mounts+=("$dir")
  else
    rm -rf "$dir" && mkdir -p "$dir"
  fi
}
