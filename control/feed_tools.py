"""Testers' market-data tools (issue 6 item 7): `omsctl feed replay` runs a
capture through the same C feed handler the data plane uses and writes the
top of book after every change; `omsctl pcap build --itch` wraps a Nasdaq
binary ITCH 5.0 file into MoldUDP64 multicast packets, so that any ITCH day
can be replayed through the data plane.

A capture is either a pcap of MoldUDP64 packets (UDP payloads) or a binary
ITCH 5.0 file in the length-prefixed format of Nasdaq's published sample
days (u16 big-endian length, then the message), possibly gzipped.  The feed
is handed one message per call - a pcap's packets are split into
one-message MoldUDP64 packets with the same sequence numbers - so that the
output has one line per change even when a packet carries several."""
from __future__ import annotations

import gzip
import ipaddress
import json
import struct
from collections.abc import Iterator
from pathlib import Path

from dataplane import frames
from dataplane.core import lib
from dataplane.feed import Feed
from pcaps.builder import read_pcap_ns, write_pcap_ns
from pcaps.itch_layers import mold_packet

PCAP_MAGICS = {b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d"}
DIRECTORY = ord("R")
MOLD_HEADER = lib.MOLD_OFF_COUNT + 2


class CaptureError(ValueError):
    pass


def _open(path: str | Path):
    with open(path, "rb") as f:
        head = f.read(4)
    return gzip.open(path, "rb") if head[:2] == b"\x1f\x8b" else open(path, "rb")


def is_pcap(path: str | Path) -> bool:
    with _open(path) as f:
        return f.read(4) in PCAP_MAGICS


def itch_messages(path: str | Path) -> Iterator[bytes]:
    """The messages of a length-prefixed binary ITCH file (gzipped or not)."""
    with _open(path) as f:
        while True:
            head = f.read(2)
            if not head:
                return
            if len(head) < 2:
                raise CaptureError(f"{path}: a length cut short at the end")
            (n,) = struct.unpack("!H", head)
            msg = f.read(n)
            if n == 0 or len(msg) < n:
                raise CaptureError(f"{path}: a message of {n} bytes cut short")
            yield msg


def itch_ts(msg: bytes) -> int:
    """The message's timestamp: nanoseconds since midnight (48 bits)."""
    off = lib.ITCH_OFF_TIMESTAMP
    return int.from_bytes(msg[off:off + 6], "big") if len(msg) >= off + 6 else 0


def _udp_payload(frame: bytes) -> bytes | None:
    off = 14
    if frame[12:14] == b"\x81\x00":
        off = 18
    if len(frame) < off + 28 or frame[off - 2:off] != b"\x08\x00" or frame[off + 9] != 17:
        return None
    ihl = (frame[off] & 0x0F) * 4
    return frame[off + ihl + 8:]


def mold_units(path: str | Path, session: str = "ITCHREPLAY") -> Iterator[tuple[int, bytes]]:
    """(now_ns, one-message MoldUDP64 packet) for every message of the
    capture, in its order; heartbeats and end of session kept as they are."""
    if is_pcap(path):
        for t, frame in read_pcap_ns(path):
            p = _udp_payload(frame)
            if p is None or len(p) < MOLD_HEADER:
                continue
            sess = p[:lib.MOLD_OFF_SEQ]
            seq, count = struct.unpack_from("!QH", p, lib.MOLD_OFF_SEQ)
            if count in (0, 0xFFFF):
                yield t, p
                continue
            for i, msg in enumerate(frames.blocks(p, MOLD_HEADER, count)):
                yield t, mold_packet(sess, seq + i, [msg])
        return
    for seq, msg in enumerate(itch_messages(path), 1):
        yield itch_ts(msg), mold_packet(session, seq, [msg])


def directory_symbols(path: str | Path) -> list[str]:
    """The symbols of the capture's stock directory messages, in order."""
    out: dict[str, None] = {}
    off = lib.ITCH_DIRECTORY_OFF_STOCK
    for _, p in mold_units(path):
        if len(p) > MOLD_HEADER + 2 and p[MOLD_HEADER + 2] == DIRECTORY:
            msg = p[MOLD_HEADER + 2:]
            out[msg[off:off + 8].decode("latin-1").rstrip(" ")] = None
    return list(out)


def replay(path: str | Path, out_path: str | Path, symbols: list[str] | None = None,
           venue: int = 1) -> dict:
    """Run the capture through a C feed; one JSON line per top-of-book change."""
    syms = symbols or directory_symbols(path)
    if not syms:
        raise CaptureError(f"{path}: no symbols given and no stock directory in the capture")
    feed = Feed(venue=venue, max_symbols=max(len(syms), 1), max_orders=1 << 20,
                max_levels=1 << 14)
    for i, s in enumerate(syms):
        feed.subscribe(s, i)
    last: list[tuple | None] = [None] * len(syms)
    lines = messages = 0
    with open(out_path, "w", encoding="utf-8") as out:
        for t, packet in mold_units(path):
            feed.process_packet(packet, t)
            messages += 1
            for i, s in enumerate(syms):
                tob = feed.tob(i)
                key = (tob["bid_px"], tob["bid_qty"], tob["ask_px"], tob["ask_qty"],
                       tob["stale"], tob["halted"])
                if key == last[i]:
                    continue
                last[i] = key
                out.write(json.dumps({
                    "venue": venue, "symbol": s, "bid_px": tob["bid_px"],
                    "bid_qty": tob["bid_qty"], "ask_px": tob["ask_px"],
                    "ask_qty": tob["ask_qty"], "stale": tob["stale"], "halted": tob["halted"],
                    "timestamp": tob["itch_ts"], "seq": tob["mold_seq"]}) + "\n")
                lines += 1
    return {"messages": messages, "symbols": syms, "changes": lines,
            "drops": feed.drops(), "events": feed.events()}


def wrap_itch(path: str | Path, out: str | Path, *, group: str = "239.1.1.1",
              port: int = 26400, source: str = "10.10.2.1", src_port: int = 26401,
              src_mac: str = "02:00:00:00:02:01", session: str = "ITCHREPLAY",
              per_packet: int = 32) -> int:
    """A binary ITCH file as MoldUDP64 multicast frames (up to `per_packet`
    messages each, stamped with the first message's time)."""
    group_mac = b"\x01\x00\x5e" + (int(ipaddress.IPv4Address(group)) & 0x7FFFFF).to_bytes(3,
                                                                                          "big")
    src, dst = ipaddress.IPv4Address(source).packed, ipaddress.IPv4Address(group).packed
    out_frames: list[tuple[int, bytes]] = []
    batch: list[bytes] = []
    seq = 1

    def flush():
        nonlocal seq, batch
        if batch:
            payload = mold_packet(session, seq, batch)
            out_frames.append((itch_ts(batch[0]), frames.udp_frame(
                frames.mac(src_mac), group_mac, src, dst, src_port, port, payload)))
            seq += len(batch)
            batch = []

    size = MOLD_HEADER
    for msg in itch_messages(path):
        if len(batch) == per_packet or size + 2 + len(msg) > 1400:
            flush()
            size = MOLD_HEADER
        batch.append(msg)
        size += 2 + len(msg)
    flush()
    write_pcap_ns(out, out_frames)
    return len(out_frames)
