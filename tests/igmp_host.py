"""The appliance's IGMPv3 host (cdefs/igmp.c) on a real interface, for
tests/test_igmp_live.py: run inside a namespace as

    python tests/igmp_host.py IFACE IP

It reads commands on stdin, one a line, and answers each with one JSON
line: "join GROUP [SOURCE]", "leave GROUP [SOURCE]", "answer on|off"
(whether received queries reach the host), "stats", "quit".  Meanwhile it
sends what the host has due (time: CLOCK_MONOTONIC) through an AF_PACKET
socket and hands received IGMP frames to it.  Exits when stdin closes."""
from __future__ import annotations

import json
import os
import select
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from dataplane.feed import Igmp  # noqa: E402

PACKET_OUTGOING = 4


def main() -> int:
    iface, ip = sys.argv[1], sys.argv[2]
    with open(f"/sys/class/net/{iface}/address") as f:
        mac = f.read().strip()
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    s.bind((iface, 0))
    g = Igmp(mac=mac, ip=ip, robustness=2, unsolicited_ns=200_000_000, seed=1)
    answering, seen_queries = True, 0
    while True:
        now = time.monotonic_ns()
        for frame in g.poll(now):
            s.send(frame)
        due = g.next_deadline()
        wait = 0.2 if due == 2**64 - 1 else max(0.0, min(0.2, (due - now) / 1e9))
        ready, _, _ = select.select([sys.stdin, s], [], [], wait)
        if s in ready:
            frame, addr = s.recvfrom(2048)
            if addr[2] != PACKET_OUTGOING and frame[12:14] == b"\x08\x00" and frame[23] == 2:
                seen_queries += frame[14 + (frame[14] & 15) * 4] == 0x11
                if answering:
                    g.rx(frame, time.monotonic_ns())
        if sys.stdin in ready:
            line = sys.stdin.readline()
            if not line or line.strip() == "quit":
                return 0
            cmd, *args = line.split()
            out: dict = {"ok": True}
            if cmd in ("join", "leave"):
                src = args[1] if len(args) > 1 else None
                out["rc"] = getattr(g, cmd)(args[0], src, time.monotonic_ns())
            elif cmd == "answer":
                answering = args[0] == "on"
            elif cmd == "stats":
                out = {"ok": True, "counters": g.counters(), "queries_seen": seen_queries}
            else:
                out = {"ok": False, "error": f"unknown command {cmd}"}
            print(json.dumps(out), flush=True)


if __name__ == "__main__":
    sys.exit(main())
