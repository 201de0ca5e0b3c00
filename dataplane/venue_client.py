"""A scripted OUCH 5.0 client of the venue simulator, in process: it frames
Enter and Cancel orders for the simulator's session layer, reads its
answers and keeps, per order, the shares filled and when.  Used by the
simulated-session generator (pcaps/make_sim_sessions.py) and the hidden
behaviour tests; the appliance itself talks to the simulator over the
wire instead."""
from __future__ import annotations

import struct
from dataclasses import dataclass

from dataplane.venue_sim import HEADER_LEN, VenueSim

_ENTER = struct.Struct(">cIcI8sQccccc14sH")
_REPLACE = struct.Struct(">cIIIQccc14sH")
_CANCEL = struct.Struct(">cII")
_HEADER = struct.Struct(">10sQH")


@dataclass
class ClientOrder:
    ref: int
    symbol: str
    side: str
    qty: int
    price: int
    tif: str
    sent_ns: int
    accepted: bool = False
    accepted_ns: int = -1  # ns since midnight: when the venue's matching engine took it
    rejected: bool = False
    filled: int = 0
    first_fill_ns: int = -1  # ns since midnight, from the Executed message
    done: bool = False  # filled, canceled or rejected


class SimClient:
    def __init__(self, sim: VenueSim) -> None:
        self.sim = sim
        self.session = sim.session
        self._seq = 1
        self._ref = 0
        self.orders: dict[int, ClientOrder] = {}

    def _send(self, msg: bytes, now_ns: int) -> None:
        pkt = _HEADER.pack(self.session, self._seq, 1) + struct.pack(">H", len(msg)) + msg
        self._seq += 1
        self._read(self.sim.handle_datagram(pkt, now_ns), now_ns)

    def enter(self, now_ns: int, side: str, qty: int, symbol: str, price: int,
              tif: str = "0") -> ClientOrder:
        self._ref += 1
        o = ClientOrder(self._ref, symbol, side, qty, price, tif, now_ns)
        self.orders[o.ref] = o
        self._send(_ENTER.pack(b"O", o.ref, side.encode(), qty, symbol.encode().ljust(8, b" "),
                               price, tif.encode(), b"Y", b"A", b"N", b"N",
                               f"C{o.ref}".encode().ljust(14, b" "), 0), now_ns)
        return o

    def replace(self, now_ns: int, ref: int, qty: int, price: int) -> None:
        """Replace Order: the order is known by its new UserRefNum once the
        venue has answered Order Replaced."""
        o = self.orders[ref]
        self._ref += 1
        self._send(_REPLACE.pack(b"U", ref, self._ref, qty, price, o.tif.encode(), b"Y", b"N",
                                 f"C{self._ref}".encode().ljust(14, b" "), 0), now_ns)

    def cancel(self, now_ns: int, ref: int) -> None:
        self._send(_CANCEL.pack(b"X", ref, 0), now_ns)

    def tick(self, now_ns: int) -> None:
        self._read(self.sim.tick_datagrams(now_ns), now_ns)

    def _read(self, out: list[tuple[str, bytes]], now_ns: int) -> None:
        for kind, p in out:
            if kind != "data" or len(p) < HEADER_LEN:
                continue
            (count,) = struct.unpack_from(">H", p, 18)
            off = HEADER_LEN
            for _ in range(count if count != 0xFFFF else 0):
                (n,) = struct.unpack_from(">H", p, off)
                self._message(p[off + 2:off + 2 + n], now_ns)
                off += 2 + n

    def _message(self, m: bytes, now_ns: int) -> None:
        kind = m[:1]
        if kind == b"U":  # Order Replaced: OrigUserRefNum 9, UserRefNum 13, Quantity 18
            orig, new = struct.unpack_from(">II", m, 9)
            o = self.orders.pop(orig, None)
            if o is not None:
                o.ref, o.qty = new, o.filled + struct.unpack_from(">I", m, 18)[0]
                o.price = struct.unpack_from(">Q", m, 30)[0]
                self.orders[new] = o
            return
        if kind not in (b"A", b"E", b"C", b"J"):
            return
        (ref,) = struct.unpack_from(">I", m, 9)
        o = self.orders.get(ref)
        if o is None:
            return
        if kind == b"A":
            o.accepted = True
            o.accepted_ns = int.from_bytes(m[1:9], "big")
        elif kind == b"J":
            o.rejected = o.done = True
        elif kind == b"E":
            (q,) = struct.unpack_from(">I", m, 13)
            o.filled += q
            if o.first_fill_ns < 0:  # the venue's own time of the execution
                o.first_fill_ns = int.from_bytes(m[1:9], "big")
            o.done = o.filled >= o.qty
        else:
            o.done = True
