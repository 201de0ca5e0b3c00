"""The appliance's peers for live tests, each run inside its own network
namespace over ordinary kernel UDP sockets:

    python tests/live_peers.py venue --duration S --out stats.json
    python tests/live_peers.py strategy --orders N --out result.json

Every loop here is bounded in time; addresses are those of tests/wire.py."""
from __future__ import annotations

import argparse
import json
import select
import signal
import socket
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import wire  # noqa: E402

from dataplane.strategy_driver import StrategyDriver  # noqa: E402
from dataplane.venue_sim import VenueSim  # noqa: E402

APP = wire.APPLIANCE


def decode_sp_payload(p: bytes) -> list[dict]:
    out = []
    while len(p) >= 24:
        length = struct.unpack_from("<H", p, 2)[0]
        msg, p = p[:length], p[length:]
        type_ = msg[1]
        if type_ in wire.SP_OUT:
            name, fmt, names = wire.SP_OUT[type_]
            vals = struct.unpack_from(fmt, msg, 24)
            d = {"type": name, "seq": struct.unpack_from("<Q", msg, 8)[0]}
            d.update({k: v for k, v in zip(names, vals, strict=False) if k != "_"})
        else:
            d = {"type": {0x02: "Logout", 0x03: "Heartbeat", 0x04: "RetransmitRequest",
                          0x84: "RetransmitReject"}.get(type_, hex(type_))}
            if type_ == 0x04:
                d["from_seq"], d["count"] = struct.unpack_from("<QI", msg, 24)
        out.append(d)
    return out


def venue(args) -> int:
    v = wire.VENUES[0]
    sim = VenueSim(v, APP, symbols=wire.SYMBOLS, seed=1, p_passive=0.0)
    data = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    data.bind((v.ip, v.port))
    req = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    req.bind((v.ip, v.retransmit_port))
    got = sent = 0
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    end = time.monotonic() + args.duration
    while time.monotonic() < end and not stop:
        ready, _, _ = select.select([data, req], [], [], 0.05)
        for s in ready:
            payload, _addr = s.recvfrom(65535)
            got += 1
            for kind, answer in sim.handle_datagram(payload, time.time_ns(),
                                                    request_port=s is req):
                # re-requests go to the appliance's request port, all else
                # to its venue port
                port = APP.request_port if kind == "request" else APP.venue_port
                (req if kind == "request" else data).sendto(answer, (APP.ip, port))
                sent += 1
        for kind, answer in sim.tick_datagrams(time.time_ns()):
            port = APP.request_port if kind == "request" else APP.venue_port
            (req if kind == "request" else data).sendto(answer, (APP.ip, port))
            sent += 1
    Path(args.out).write_text(json.dumps({"received": got, "sent": sent,
                                          "stats": sim.stats}, default=str))
    return 0


def strategy(args) -> int:
    """A strategy over kernel UDP: the project's StrategyDriver (sequencing,
    retransmission both ways, heartbeats) with the kernel doing IP and UDP."""
    sess = wire.SESSIONS[0]
    drv = StrategyDriver(sess, APP)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((sess.ip, sess.port))
    dst = (APP.ip, APP.strategy_port)
    sent = 0

    def send(frames: list[bytes]) -> None:
        nonlocal sent
        for f in frames:
            s.sendto(f[42:], dst)  # the driver's frame minus Ethernet/IP/UDP
            sent += 1

    send(drv.login(time.time_ns()))
    for i in range(args.orders):
        # every other order crosses the venue simulator's asks and fills
        price = 152_0500_0000 if i % 2 == 0 else 151_0000_0000
        send(drv.new_order(time.time_ns(), 1000 + i, "AAPL", price, 100))
    for i in range(1, args.orders, 2):
        send(drv.cancel(time.time_ns(), 1000 + i))
    received: list[dict] = []
    end = time.monotonic() + args.timeout
    while time.monotonic() < end:
        ready, _, _ = select.select([s], [], [], 0.01)
        now = time.time_ns()
        if ready:
            payload, _ = s.recvfrom(65535)
            received.extend(decode_sp_payload(payload))
            frame = wire.udp_frame(APP.mac, sess.mac, APP.ip, sess.ip, APP.strategy_port,
                                   sess.port, payload)
            send(drv.handle_frame(frame, now))
        send(drv.tick(now))
        orders = drv.orders.values()
        if len(orders) == args.orders and all(o.terminal for o in orders) \
                and not drv.request_outstanding:
            break
    Path(args.out).write_text(json.dumps({
        "sent": sent, "received": received,
        "orders": {cid: {"state": o.state, "cum_qty": o.cum_qty, "leaves_qty": o.leaves_qty,
                         "fills": o.fills} for cid, o in drv.orders.items()}}))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="role", required=True)
    v = sub.add_parser("venue")
    v.add_argument("--duration", type=float, default=10)
    v.add_argument("--out", required=True)
    st = sub.add_parser("strategy")
    st.add_argument("--orders", type=int, default=20)
    st.add_argument("--timeout", type=float, default=10)
    st.add_argument("--out", required=True)
    args = ap.parse_args()
    return venue(args) if args.role == "venue" else strategy(args)


if __name__ == "__main__":
    sys.exit(main())
