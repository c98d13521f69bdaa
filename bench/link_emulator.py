#!/usr/bin/env python3
"""A long fat link in user space, for bench/link.sh where the kernel has no `tc netem`.

It opens two tun devices (the script moves each into its own network namespace) and forwards
IP packets between them as a link would: each direction serialises packets at RATE bits/s
behind a drop-tail queue of QUEUE_MS, delivers each DELAY_MS after it left, and loses LOSS of
them at random. Both ends see one real TCP connection over it (unlike a proxy, which would end
TCP at itself), so congestion control, loss recovery and window growth behave as on such a link.

Usage: link_emulator.py TUN_A TUN_B RATE_BITS DELAY_MS LOSS QUEUE_MS
Prints "ready" once both devices exist; runs until killed.
"""
import collections
import fcntl
import os
import random
import select
import struct
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000


def open_tun(name):
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def main():
    name_a, name_b = sys.argv[1], sys.argv[2]
    rate = float(sys.argv[3])
    delay = float(sys.argv[4]) / 1000
    loss = float(sys.argv[5])
    queue = float(sys.argv[6]) / 1000
    a, b = open_tun(name_a), open_tun(name_b)
    print("ready", flush=True)
    # Per direction: when the sender side of the link is next free, and the packets in flight
    # (delivery time, bytes), in order.
    busy = {a: 0.0, b: 0.0}
    flight = {a: collections.deque(), b: collections.deque()}
    peer = {a: b, b: a}
    while True:
        now = time.monotonic()
        due = [q[0][0] for q in flight.values() if q]
        timeout = max(0.0, min(due) - now) if due else 1.0
        readable, _, _ = select.select([a, b], [], [], timeout)
        now = time.monotonic()
        for fd in readable:
            for _ in range(64):
                try:
                    packet = os.read(fd, 65536)
                except BlockingIOError:
                    break
                if random.random() < loss:
                    continue
                start = max(now, busy[fd])
                if start - now > queue:
                    continue  # the queue is full: dropped at its tail
                busy[fd] = start + len(packet) * 8 / rate
                flight[fd].append((busy[fd] + delay, packet))
        for fd, q in flight.items():
            while q and q[0][0] <= now:
                _, packet = q.popleft()
                try:
                    os.write(peer[fd], packet)
                except BlockingIOError:
                    pass  # the far side's queue is full: lost, as on a wire


if __name__ == "__main__":
    main()
