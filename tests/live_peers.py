"""The appliance's peers for live tests, each run inside its own network
namespace over ordinary kernel UDP sockets:

    python tests/live_peers.py venue --duration S --out stats.json
        [--reorder P --seed S] [--mcast GROUP:PORT [--md-request-port P]
        [--profile NAME]]
    python tests/live_peers.py listen --group G --port P --iface-ip IP
        --duration S --out packets.json [--request FIRST:COUNT --request-to IP:PORT]
    python tests/live_peers.py strategy --orders N --out result.json
        [--scenario simple|mixed|rest|fulldisk [--phase-dir D]] [--reorder P --seed S]
        [--heartbeat-ms MS]
    python tests/live_peers.py feed --group G --port P --ask PRICE --duration S
        (ITCH 5.0 over MoldUDP64 multicast: an AAPL book, then heartbeats)

``--mcast GROUP:PORT`` makes the venue publish ITCH 5.0 over MoldUDP64 for
its book to that group (from its own address, TTL 1; heartbeats when quiet)
and serve MoldUDP64 re-requests on ``--md-request-port``; ``--profile``
gives it a venue profile's hidden behaviour (dataplane/venue_profiles.py),
so that its book moves by itself.  ``listen`` joins a group on the
interface holding ``--iface-ip`` (then writes ``--ready``), records every
datagram it gets and stops ``--idle`` seconds after the last one or at
``--duration``; with ``--request`` it asks the request server once, a
second after the first packet, recording the answers apart.

``--reorder P --seed S`` turns on the driver's / the simulator's own seeded
reorder knob (dataplane/reorder.py).  A datagram the kernel refuses to send
(an nftables drop in the output hook gives EPERM) is counted in
``send_refused`` (other errors in ``send_errors``) and is simply lost, as on
a lossy network.

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

from dataplane.strategy_driver import TERMINAL as TERMINAL_STATES  # noqa: E402
from dataplane.strategy_driver import StrategyDriver  # noqa: E402
from dataplane.venue_itch import MarketDataConfig  # noqa: E402
from dataplane.venue_sim import VenueSim  # noqa: E402

APP = wire.APPLIANCE
PRICE_UNIT = 10_000  # strategy price (8 decimals) per OUCH price unit (4)


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


def _reorder(args) -> tuple[float, int] | None:
    return (args.reorder, args.seed) if args.reorder > 0 else None


class Sender:
    """sendto that survives the kernel refusing a datagram (EPERM from an
    nftables drop in the output hook, ENOBUFS): that datagram is lost."""

    def __init__(self) -> None:
        self.sent = 0
        self.refused = 0  # EPERM: a firewall rule dropped it
        self.errors = 0  # anything else (ENOBUFS, ...)

    def __call__(self, sock: socket.socket, payload: bytes, dst: tuple) -> None:
        try:
            sock.sendto(payload, dst)
            self.sent += 1
        except PermissionError:
            self.refused += 1
        except OSError:
            self.errors += 1


# --- the venue ------------------------------------------------------------------

_A = struct.Struct(">cQIcI8sQccQcccc14sH")
_U = struct.Struct(">cQIIcI8sQccQcccc14sH")
_C = struct.Struct(">cQIIc")
_E = struct.Struct(">cQIIQcQH")
_J = struct.Struct(">cQIH14s")


class VenueLedger:
    """Per order, what the venue did, read from what it sent, in sequence
    order and each sequence number once, whatever was resent: the Enter Orders it acted on
    (Accepted or Rejected), the shares it executed, canceled, replaced.
    Orders are keyed by cl_ord_id, the ClOrdID decoded from base 36; the
    UserRefNums lead to it."""

    def __init__(self) -> None:
        self.next_seq = 1  # the venue's next message to read
        self.pending: dict[int, bytes] = {}  # sent out of order (the reorder knob)
        self.by_ref: dict[int, int] = {}
        self.orders: dict[int, dict] = {}

    def _order(self, cid: int) -> dict:
        return self.orders.setdefault(cid, {"enters": 0, "accepted_qty": 0, "qty": 0,
                                            "executed": 0, "executions": 0, "canceled": 0,
                                            "replaces": 0, "enter_rejects": 0})

    def packet(self, payload: bytes) -> None:
        if len(payload) < 20:
            return
        first, count = struct.unpack_from(">QH", payload, 10)
        if count in (0, 0xFFFF):
            return
        off = 20
        for i in range(count):
            (n,) = struct.unpack_from(">H", payload, off)
            msg = payload[off + 2:off + 2 + n]
            off += 2 + n
            if first + i >= self.next_seq:
                self.pending[first + i] = msg
        while self.next_seq in self.pending:
            self.message(self.pending.pop(self.next_seq))
            self.next_seq += 1

    def message(self, m: bytes) -> None:
        kind = m[:1]
        if kind == b"A":
            f = _A.unpack_from(m)
            ref, qty, cid = f[2], f[4], int(f[14].strip(), 36)
            self.by_ref[ref] = cid
            o = self._order(cid)
            o["enters"] += 1
            o["accepted_qty"] = o["qty"] = qty
        elif kind == b"J":
            _, _, ref, _, clordid = _J.unpack_from(m)
            if ref not in self.by_ref:  # an Enter refused (else a Replace)
                cid = int(clordid.strip(), 36)
                self.by_ref[ref] = cid
                o = self._order(cid)
                o["enters"] += 1
                o["enter_rejects"] += 1
        elif kind == b"U":
            f = _U.unpack_from(m)
            ref, leaves = f[3], f[5]
            cid = self.by_ref[f[2]]
            self.by_ref[ref] = cid
            o = self._order(cid)
            o["replaces"] += 1
            o["qty"] = leaves + o["executed"]
        elif kind == b"E":
            _, _, ref, qty, _, _, _, _ = _E.unpack_from(m)
            o = self._order(self.by_ref[ref])
            o["executed"] += qty
            o["executions"] += 1
        elif kind == b"C":
            _, _, ref, dec, _ = _C.unpack_from(m)
            self._order(self.by_ref[ref])["canceled"] += dec


def venue(args) -> int:
    v = wire.VENUES[args.index]
    md_cfg = None
    if args.mcast:
        group, _, gport = args.mcast.partition(":")
        md_cfg = MarketDataConfig(group=group, port=int(gport), session=f"MD{v.session}"[:10],
                                  request_port=args.md_request_port, heartbeat_ms=200)
    sim = VenueSim(v, APP, symbols=wire.SYMBOLS, seed=1, p_passive=0.0,
                   reorder=_reorder(args), market_data=md_cfg, profile=args.profile)
    mcast = mreq = None
    if md_cfg is not None:
        mcast = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        mcast.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(v.ip))
        mcast.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
        mcast.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
        mcast.bind((v.ip, md_cfg.src_port))
        mreq = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        mreq.bind((v.ip, md_cfg.request_port))
    ledger = VenueLedger()
    data = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    data.bind((v.ip, v.port))
    req = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    req.bind((v.ip, v.retransmit_port))
    send = Sender()
    got = 0
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))

    def out(pairs: list[tuple[str, bytes]]) -> None:
        for kind, answer in pairs:
            # re-requests go to the appliance's request port, all else to
            # its venue port
            if kind == "request":
                send(req, answer, (APP.ip, APP.request_port))
            else:
                ledger.packet(answer)
                send(data, answer, (APP.ip, APP.venue_port))

    def publish() -> None:
        if mcast is not None:
            for p in sim.take_market_data():
                send(mcast, p, (md_cfg.group, md_cfg.port))

    end = time.monotonic() + args.duration
    socks = [data, req] + ([mreq] if mreq is not None else [])
    while time.monotonic() < end and not stop:
        ready, _, _ = select.select(socks, [], [], 0.005)
        for s in ready:
            payload, addr = s.recvfrom(65535)
            if s is mreq:
                for p in sim.market_data.serve_request(payload):
                    send(mreq, p, addr)
                continue
            got += 1
            out(sim.handle_datagram(payload, time.time_ns(), request_port=s is req))
        out(sim.tick_datagrams(time.time_ns()))
        publish()
    out(sim.flush_reorder())
    md = {}
    if md_cfg is not None:
        md = {"stats": sim.market_data.stats, "next_seq": sim.market_data.next_seq,
              "locates": sim.market_data.locates,
              "top": {s: sim.displayed_top(s) for s in wire.SYMBOLS}}
    Path(args.out).write_text(json.dumps({
        "received": got, "sent": send.sent, "send_refused": send.refused,
        "send_errors": send.errors, "stats": sim.stats,
        "orders": ledger.orders, "live": sim.live_orders(), "market_data": md},
        default=str))
    return 0


def listen(args) -> int:
    """Join a group on one interface; record the datagrams (hex) in order."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((args.group, args.port))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                 socket.inet_aton(args.group) + socket.inet_aton(args.iface_ip))
    req = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    req.bind((args.iface_ip, 0))
    got, answers = [], []
    asked = args.request is None
    if args.ready:
        Path(args.ready).write_text("joined")
    end = time.monotonic() + args.duration
    first_at = last_at = None
    while time.monotonic() < end:
        now = time.monotonic()
        if last_at is not None and now - last_at > args.idle:
            break  # the publisher has stopped (it sends heartbeats while it runs)
        if not asked and first_at is not None and now > first_at + 1.0:
            # a MoldUDP64 re-request (session of the feed, first, count)
            first, _, count = args.request.partition(":")
            host, _, port = args.request_to.partition(":")
            session = bytes.fromhex(got[0]["payload"])[:10]
            req.sendto(session + struct.pack(">QH", int(first), int(count)), (host, int(port)))
            asked = True
        ready, _, _ = select.select([s, req], [], [], 0.05)
        for r in ready:
            payload, addr = r.recvfrom(65535)
            (answers if r is req else got).append({"from": addr[0], "payload": payload.hex()})
            if r is s:
                last_at = time.monotonic()
                first_at = first_at or last_at
    Path(args.out).write_text(json.dumps({"packets": got, "answers": answers}))
    return 0


# --- the strategy ---------------------------------------------------------------

def simple_plan(drv: StrategyDriver, n: int, now: int, account: int = 1) -> list[bytes]:
    """Every other order crosses the venue simulator's asks and fills; the
    others rest and are canceled."""
    out: list[bytes] = []
    for i in range(n):
        price = 152_0500_0000 if i % 2 == 0 else 151_0000_0000
        out += drv.new_order(now, 1000 + i, "AAPL", price, 100, account=account)
    for i in range(1, n, 2):
        out += drv.cancel(now, 1000 + i)
    return out


class MixedPlan:
    """Orders in cycles of six, all AAPL at 152.00 (between the simulator's
    synthetic bids and asks, so that they trade only with each other) or
    far below:

      0  buy 100 day (rests; later sells take it)
      1  sell 60 day
      2  buy 100 at 150.00; once New, Modify to 150.50 x 200; once
         Replaced (or the Modify rejected), Cancel
      3  sell 50 IOC (fills against resting buys, the rest expires)
      4  buy 100 day
      5  sell 30 day

    New orders go out `per_step` at a time.  Once all are sent and none is
    PendingNew any more, every order still live is canceled (the mop-up).
    Which orders trade with which is decided by the venue in sequence order,
    so it does not depend on timing; the far orders' Modify and Cancel do."""

    def __init__(self, drv: StrategyDriver, n: int, per_step: int = 10,
                 base: int = 1000, rate: float = 0.0) -> None:
        self.drv, self.n, self.per_step, self.base = drv, n, per_step, base
        # rate > 0: new orders at that many a second (a steady load), else
        # per_step at every step
        self.gap_ns = int(1e9 / rate) if rate > 0 else 0
        self.next_at = 0
        self.next_new = 0
        self.step: dict[int, int] = {}  # cl_ord_id -> 0 new, 1 modify sent, 2 cancel sent
        self.rejects_at_modify: dict[int, int] = {}
        self.mopup = False

    @staticmethod
    def kind(i: int) -> int:
        return i % 6

    def new(self, i: int, now: int) -> list[bytes]:
        cid = self.base + i
        k = self.kind(i)
        self.step[cid] = 0
        px = 152_0000_0000
        if k in (0, 4):
            return self.drv.new_order(now, cid, "AAPL", px, 100, side=1)
        if k == 1:
            return self.drv.new_order(now, cid, "AAPL", px, 60, side=2)
        if k == 2:
            return self.drv.new_order(now, cid, "AAPL", 150_0000_0000, 100, side=1)
        if k == 3:
            return self.drv.new_order(now, cid, "AAPL", px, 50, side=2, tif=2)
        return self.drv.new_order(now, cid, "AAPL", px, 30, side=2)

    def act(self, now: int) -> list[bytes]:
        out: list[bytes] = []
        for _ in range(self.per_step):
            if self.next_new >= self.n or (self.gap_ns and now < self.next_at):
                break
            out += self.new(self.next_new, now)
            self.next_new += 1
            self.next_at = max(self.next_at + self.gap_ns, now - 10 * self.gap_ns)
        orders = {cid: self.drv.orders[cid] for cid in self.step}  # this plan's own
        if self.next_new >= self.n and not self.mopup and \
                all(o.state != "PendingNew" for o in orders.values()):
            self.mopup = True
        for cid, o in orders.items():
            step = self.step[cid]
            if o.terminal or step == 2:
                continue
            if self.kind(cid - self.base) == 2:
                if step == 0 and o.state == "New":
                    self.step[cid] = 1
                    self.rejects_at_modify[cid] = len(o.rejects)
                    out += self.drv.modify(now, cid, 150_5000_0000, 200)
                elif step == 1 and (o.state == "Replaced"
                                    or len(o.rejects) > self.rejects_at_modify[cid]):
                    self.step[cid] = 2
                    out += self.drv.cancel(now, cid)
            elif self.mopup and o.state in ("New", "PartiallyFilled", "Replaced"):
                self.step[cid] = 2
                out += self.drv.cancel(now, cid)
        return out


class SoakPlan:
    """Sustained mixed traffic: MixedPlan rounds of `n` orders each (new
    cl_ord_ids every round: modifies, cancels, fills, IOC expiries), and
    every `cod_every_s` seconds a cancel-on-disconnect: `k` day orders left
    resting, then the strategy goes silent for `silence_s` (beyond the
    session's timeout: the appliance cancels them) and logs in again.  No
    round starts after `duration_s`; done when the last one is over.  Rounds
    start at least `gap_s` apart (a steady rate, not a flood), and the
    orders of a finished round are folded into `summary` and dropped from
    the driver, so that a long soak does not grow the strategy itself."""

    def __init__(self, drv: StrategyDriver, n: int, duration_s: float,
                 cod_every_s: float = 8.0, k: int = 5, silence_s: float = 1.6,
                 gap_s: float = 0.05) -> None:
        self.drv, self.n, self.k = drv, n, k
        self.cod_every_s, self.silence_s = cod_every_s, silence_s
        self.end = time.monotonic() + duration_s
        self.next_cod = time.monotonic() + cod_every_s / 2
        self.rounds = 0
        self.next_base = 1000
        self.round: MixedPlan | None = None
        self.cod: list[int] = []  # cl_ord_ids left resting for the disconnect
        self.silent_until = 0.0
        self.relogin = False
        self.done = False
        self.cod_rounds = 0
        self.gap_s, self.next_round = gap_s, 0.0
        self.summary = {"orders": 0, "states": {}, "modified": 0, "fills": 0,
                        "system_rejects": 0, "rejects": 0}

    def _fold(self, ids) -> None:
        """A finished round's orders into the summary, out of the driver."""
        s = self.summary
        for c in ids:
            o = self.drv.orders.pop(c)
            s["orders"] += 1
            s["states"][o.state] = s["states"].get(o.state, 0) + 1
            s["modified"] += o.qty == 200
            s["fills"] += len(o.fills)
            s["rejects"] += len(o.rejects)
            s["system_rejects"] += sum(1 for r in o.rejects if r[1] >= 1000)

    def silent(self) -> bool:
        """The strategy sends, receives and times nothing now."""
        return time.monotonic() < self.silent_until

    def _ids(self, n: int) -> range:
        ids = range(self.next_base, self.next_base + n)
        self.next_base += n
        return ids

    def act(self, now: int) -> list[bytes]:
        drv, out = self.drv, []
        if self.relogin:
            self.relogin = False
            return drv.login(now)
        if self.cod:
            orders = [drv.orders[c] for c in self.cod]
            if all(o.terminal for o in orders):
                self._fold(self.cod)
                self.cod = []
            elif self.silent_until == 0.0 and all(o.state == "New" for o in orders):
                self.silent_until = time.monotonic() + self.silence_s
                self.relogin = True
                self.cod_rounds += 1
            return out
        if self.round is not None:
            out += self.round.act(now)
            if self.round.next_new < self.round.n or \
                    not all(drv.orders[c].terminal for c in self.round.step):
                return out
            self._fold(self.round.step)
            self.round = None
        if time.monotonic() >= self.end:
            self.done = True
            return out
        if time.monotonic() < self.next_round:
            return out
        self.next_round = time.monotonic() + self.gap_s
        self.rounds += 1
        if time.monotonic() >= self.next_cod:
            self.next_cod = time.monotonic() + self.cod_every_s
            self.cod = list(self._ids(self.k))
            self.silent_until = 0.0
            for c in self.cod:
                out += drv.new_order(now, c, "AAPL", 151_0000_0000, 100)
        else:
            self.round = MixedPlan(drv, self.n, base=self._ids(self.n).start)
        return out


class FullDiskPlan:
    """Phases around a full journal disk, each started by a file the test
    writes in `phase_dir` and ended by one the plan writes there:

      0  n resting buys 1000.. (151.00); once all New: writes "accepted"
      1  on "full": n new orders 2000.. (the appliance must reject them),
         Cancel of the first half of 1000.., a Modify of the last one to
         152.05, through the venue's asks (it fills); once those are
         answered, a MassCancel of the account; once every 1000.. and
         2000.. order is final: writes "answered"
      2  on "freed": n resting buys 3000..; once all New, a Cancel of each
    """

    def __init__(self, drv: StrategyDriver, n: int, phase_dir: str) -> None:
        self.drv, self.n, self.dir = drv, n, Path(phase_dir)
        self.stage = 0
        self.sent = False

    def ids(self, base: int) -> range:
        return range(base, base + self.n)

    def _all(self, base: int, pred) -> bool:
        orders = self.drv.orders
        return all(c in orders and pred(orders[c]) for c in self.ids(base))

    def _mark(self, name: str) -> None:
        (self.dir / name).write_text(str(time.time()))

    def act(self, now: int) -> list[bytes]:
        drv, out = self.drv, []
        if self.stage == 0:
            if not self.sent:
                for c in self.ids(1000):
                    out += drv.new_order(now, c, "AAPL", 151_0000_0000, 100)
                self.sent = True
            elif self._all(1000, lambda o: o.state == "New"):
                self._mark("accepted")
                self.stage, self.sent = 1, False
        elif self.stage == 1:
            if not self.sent:
                if not (self.dir / "full").exists():
                    return out
                for c in self.ids(2000):
                    out += drv.new_order(now, c, "AAPL", 151_0000_0000, 100)
                for c in self.ids(1000)[: self.n // 2]:
                    out += drv.cancel(now, c)
                out += drv.modify(now, 1000 + self.n - 1, 152_0500_0000, 100)
                self.sent = True
            elif self._all(2000, lambda o: o.terminal) and \
                    all(drv.orders[c].terminal for c in self.ids(1000)[: self.n // 2]) and \
                    drv.orders[1000 + self.n - 1].terminal:
                out += drv.mass_cancel(now, 1)
                self.stage = 2
        elif self.stage == 2:
            if self._all(1000, lambda o: o.terminal):
                self._mark("answered")
                self.stage, self.sent = 3, False
        elif self.stage == 3:
            if not self.sent:
                if not (self.dir / "freed").exists():
                    return out
                for c in self.ids(3000):
                    out += drv.new_order(now, c, "AAPL", 151_0000_0000, 100)
                self.sent = True
            elif self._all(3000, lambda o: o.state == "New"):
                for c in self.ids(3000):
                    out += drv.cancel(now, c)
                self.stage = 4
        return out


def strategy(args) -> int:
    """A strategy over kernel UDP: the project's StrategyDriver (sequencing,
    retransmission both ways, heartbeats) with the kernel doing IP and UDP."""
    t0 = time.monotonic()
    sess = wire.SESSIONS[args.index]
    drv = StrategyDriver(sess, APP, reorder=_reorder(args), heartbeat_ms=args.heartbeat_ms)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind((sess.ip, sess.port))
    s.setblocking(False)
    dst = (APP.ip, APP.strategy_port)
    send = Sender()

    def out(frames: list[bytes]) -> None:
        for f in frames:
            send(s, f[42:], dst)  # the driver's frame minus Ethernet/IP/UDP

    out(drv.login(time.time_ns()))
    plan = None
    expected = args.orders
    settled = TERMINAL_STATES
    if args.scenario == "simple":
        out(simple_plan(drv, args.orders, time.time_ns(), args.account))
    elif args.scenario == "rest":
        # simple's orders without its cancels: half fill, half stay at the
        # venue, and the strategy leaves them there
        for i in range(args.orders):
            out(drv.new_order(time.time_ns(), 1000 + i, "AAPL",
                              152_0500_0000 if i % 2 == 0 else 151_0000_0000, 100,
                              account=args.account))
        settled = frozenset(("New", "Filled"))
    elif args.scenario == "soak":
        plan = SoakPlan(drv, args.orders, args.duration)
    elif args.scenario == "fulldisk":
        plan = FullDiskPlan(drv, args.orders, args.phase_dir)
        expected = 3 * args.orders
    else:
        plan = MixedPlan(drv, args.orders, rate=args.rate)
    received: list[dict] = []
    end = time.monotonic() + args.timeout
    done_at = None
    while time.monotonic() < end:
        if isinstance(plan, SoakPlan) and plan.silent():
            time.sleep(0.01)  # gone quiet: the appliance must notice
            continue
        select.select([s], [], [], 0.005)
        for _ in range(256):
            try:
                payload, _ = s.recvfrom(65535)
            except BlockingIOError:
                break
            received.extend(decode_sp_payload(payload))
            frame = wire.udp_frame(APP.mac, sess.mac, APP.ip, sess.ip, APP.strategy_port,
                                   sess.port, payload)
            out(drv.handle_frame(frame, time.time_ns()))
        now = time.time_ns()
        if plan is not None and drv.logged_in:
            out(plan.act(now))
        out(drv.tick(now))
        orders = drv.orders.values()
        finished = (plan.done if isinstance(plan, SoakPlan) else len(orders) == expected) \
            and all(o.state in settled for o in orders) and not drv.request_outstanding
        if not finished:
            done_at = None
        elif done_at is None:
            done_at = time.monotonic()
        # linger a little once done: serve what the appliance still asks for
        if done_at is not None and time.monotonic() - done_at >= args.linger:
            break
    out(drv.flush_reorder())
    Path(args.out).write_text(json.dumps({
        "sent": send.sent, "send_refused": send.refused, "send_errors": send.errors,
        "received": received,
        "elapsed_s": time.monotonic() - t0, "stats": drv.stats,
        "soak": ({"rounds": plan.rounds, "cod_rounds": plan.cod_rounds, **plan.summary}
                 if isinstance(plan, SoakPlan) else None),
        "next_out": drv.next_out, "next_expected": drv.next_expected,
        "orders": {cid: {"state": o.state, "cum_qty": o.cum_qty, "leaves_qty": o.leaves_qty,
                         "qty": o.qty, "price": o.price, "fills": o.fills,
                         "rejects": o.rejects} for cid, o in drv.orders.items()}}))
    return 0


def feed(args) -> int:
    """A venue's market data: session start, directory, an AAPL bid and
    ask, then a heartbeat every 50 ms, to the group from the venue's
    address (TTL 1), for --duration seconds."""
    from pcaps.itch_layers import itch_message as M
    from pcaps.itch_layers import mold_packet
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF,
                    socket.inet_aton(wire.VENUES[0].ip))
    msgs = [M("S", code="O"), M("R", locate=1, stock="AAPL"),
            M("A", locate=1, ref=1, side="B", shares=5000, stock="AAPL", price=args.bid),
            M("A", locate=1, ref=2, side="S", shares=5000, stock="AAPL", price=args.ask)]
    # started once the appliance runs: it sees the session from message 1
    sock.sendto(mold_packet("ITCHSESS01", 1, msgs), (args.group, args.port))
    end = time.monotonic() + args.duration
    while time.monotonic() < end:
        time.sleep(0.05)
        sock.sendto(mold_packet("ITCHSESS01", len(msgs) + 1, [], count=0),
                    (args.group, args.port))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="role", required=True)
    v = sub.add_parser("venue")
    v.add_argument("--duration", type=float, default=10)
    v.add_argument("--out", required=True)
    v.add_argument("--mcast", default=None, help="GROUP:PORT to publish market data to")
    v.add_argument("--md-request-port", type=int, default=26401)
    v.add_argument("--profile", default=None, help="a venue profile's hidden behaviour")
    ls = sub.add_parser("listen")
    ls.add_argument("--group", required=True)
    ls.add_argument("--port", type=int, required=True)
    ls.add_argument("--iface-ip", required=True)
    ls.add_argument("--duration", type=float, default=5)
    ls.add_argument("--idle", type=float, default=1.0,
                    help="stop after this long without a packet, once one came")
    ls.add_argument("--ready", default=None, help="a file written once joined")
    ls.add_argument("--request", default=None,
                    help="FIRST:COUNT to re-request a second after the first packet")
    ls.add_argument("--request-to", default=None, help="IP:PORT of the request server")
    ls.add_argument("--out", required=True)
    st = sub.add_parser("strategy")
    st.add_argument("--orders", type=int, default=20)
    st.add_argument("--duration", type=float, default=60,
                    help="soak: start no round after this many seconds")
    st.add_argument("--scenario", choices=("simple", "mixed", "fulldisk", "rest", "soak"),
                    default="simple")
    st.add_argument("--phase-dir", default=None,
                    help="fulldisk: where the test and the plan leave phase files")
    st.add_argument("--timeout", type=float, default=10)
    st.add_argument("--linger", type=float, default=0.0,
                    help="once every order is final, keep serving this long")
    st.add_argument("--heartbeat-ms", type=int, default=None)
    st.add_argument("--rate", type=float, default=0.0,
                    help="mixed: new orders a second (0: as fast as the plan goes)")
    st.add_argument("--account", type=int, default=1)
    st.add_argument("--out", required=True)
    fd = sub.add_parser("feed")
    fd.add_argument("--group", default="239.1.1.1")
    fd.add_argument("--port", type=int, default=26400)
    fd.add_argument("--bid", default="150.40")
    fd.add_argument("--ask", default="150.50")
    fd.add_argument("--duration", type=float, default=10)
    for p in (v, st):
        p.add_argument("--index", type=int, default=0,
                       help="which of tests/wire.py's SESSIONS or VENUES to be")
        p.add_argument("--reorder", type=float, default=0.0,
                       help="probability that an outgoing datagram is held back")
        p.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if args.role == "feed":
        return feed(args)
    if args.role == "listen":
        return listen(args)
    return venue(args) if args.role == "venue" else strategy(args)


if __name__ == "__main__":
    sys.exit(main())
