"""A venue's ITCH 5.0 feed over MoldUDP64 multicast, steered by the test
(tests/test_mcast_live.py), run in the venue's namespace:

    python tests/itch_publisher.py GROUP PORT SOURCE_IP SESSION DURATION_S

It sends a heartbeat every 50 ms from the start (the next sequence number:
1 until the book is published, so a late joiner sees no gap) and reads
commands on stdin, one a line, answering each with one JSON line:
"book BID ASK" (system event, stock directory, an AAPL bid and ask of 5000
shares), "ask PRICE" (the ask replaced at PRICE), "stats".  Stops at
DURATION_S or when stdin closes.  Sends go from SOURCE_IP with TTL 1."""
from __future__ import annotations

import json
import select
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pcaps.itch_layers import itch_message as M  # noqa: E402
from pcaps.itch_layers import mold_packet  # noqa: E402


def main() -> int:
    group, port, source, session, duration = sys.argv[1:6]
    dst, sess = (group, int(port)), session.encode().ljust(10)[:10].decode()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(source))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
    next_seq, ask_ref, packets = 1, 2, 0

    def send(msgs: list) -> None:
        nonlocal next_seq, packets
        if msgs:
            s.sendto(mold_packet(sess, next_seq, msgs), dst)
            next_seq += len(msgs)
        else:
            s.sendto(mold_packet(sess, next_seq, [], count=0), dst)
        packets += 1

    end = time.monotonic() + float(duration)
    beat = 0.0
    while time.monotonic() < end:
        now = time.monotonic()
        if now >= beat:
            send([])
            beat = now + 0.05
        ready, _, _ = select.select([sys.stdin], [], [], max(0.0, beat - time.monotonic()))
        if not ready:
            continue
        line = sys.stdin.readline()
        if not line:
            return 0
        cmd, *args = line.split()
        if cmd == "book":
            send([M("S", code="O"), M("R", locate=1, stock="AAPL"),
                  M("A", locate=1, ref=1, side="B", shares=5000, stock="AAPL", price=args[0]),
                  M("A", locate=1, ref=2, side="S", shares=5000, stock="AAPL", price=args[1])])
        elif cmd == "ask":
            send([M("U", locate=1, orig_ref=ask_ref, new_ref=ask_ref + 1, shares=5000,
                    price=args[0])])
            ask_ref += 1
        print(json.dumps({"ok": True, "next_seq": next_seq, "packets": packets}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
