"""Timestamps of the frames entering a bridge from given ports, for the
failover test: run in the switch namespace, one AF_PACKET socket per port,
kernel receive timestamps (SO_TIMESTAMPNS, CLOCK_REALTIME: the clock the
test reads just before its kill).  Writes, at SIGTERM or --duration,
{port: [[ts_ns, ethertype], ...]} to --out.

    python tests/bridge_capture.py --ports P1,P2,... --out F [--ready R]"""
from __future__ import annotations

import argparse
import json
import select
import signal
import socket
import struct
import time
from pathlib import Path

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SO_TIMESTAMPNS = 35


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ports", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--ready", default=None)
    ap.add_argument("--duration", type=float, default=300)
    args = ap.parse_args()
    socks = {}
    for port in args.ports.split(","):
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        s.bind((port, 0))
        s.setblocking(False)
        socks[s.fileno()] = (port, s)
    seen: dict[str, list] = {p: [] for p, _ in socks.values()}
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    if args.ready:
        Path(args.ready).write_text("ready")
    end = time.monotonic() + args.duration
    while not stop["now"] and time.monotonic() < end:
        try:
            r, _, _ = select.select(list(socks), [], [], 0.05)
        except InterruptedError:
            continue
        for fd in r:
            port, s = socks[fd]
            for _ in range(256):
                try:
                    data, anc, _, addr = s.recvmsg(64, socket.CMSG_SPACE(16))
                except BlockingIOError:
                    break
                if addr[2] == PACKET_OUTGOING or len(data) < 14:
                    continue  # the bridge sending to the appliance
                ts = 0
                for level, kind, val in anc:
                    if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                        sec, nsec = struct.unpack("qq", val[:16])
                        ts = sec * 1_000_000_000 + nsec
                seen[port].append([ts, struct.unpack_from(">H", data, 12)[0]])
    Path(args.out).write_text(json.dumps(seen))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
