# Sourced after lib.sh: emulated_link RATE_MBIT RTT_MS LOSS_PCT makes two network namespaces
# joined by a link of that rate, round trip and loss — `tc netem` on a veth pair where the
# kernel has netem, else bench/link_emulator.py over tun devices in user space — and defines
# in_a / in_b (run a command in either namespace), with 10.77.0.1 in a and 10.77.0.2 in b, and
# $how (which emulation). Returns 1, saying why, where namespaces cannot be made.
# one_namespace: just one namespace (`in_a`) with its own loopback, for runs whose counters
# must see nothing else.
one_namespace() {
  a=ferrya$$
  if ! ip netns add "$a" 2>/dev/null; then
    echo "link: skipped: network namespaces cannot be made here (ip netns add failed; needs root or CAP_SYS_ADMIN)"
    return 1
  fi
  link_cleanup() {
    ip netns pids "$a" 2>/dev/null | xargs -r kill 2>/dev/null || true
    ip netns del "$a" 2>/dev/null || true
    bench_cleanup
  }
  trap link_cleanup EXIT
  in_a() { ip netns exec "$a" "$@"; }
  in_a ip link set lo up
  how="one namespace's own loopback"
}

emulated_link() {
  local rate_mbit=$1 rtt_ms=$2 loss_pct=$3
  a=ferrya$$ b=ferryb$$
  if ! ip netns add "$a" 2>/dev/null || ! ip netns add "$b" 2>/dev/null; then
    echo "link: skipped: network namespaces cannot be made here (ip netns add failed; needs root or CAP_SYS_ADMIN)"
    return 1
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
  return 0
}
