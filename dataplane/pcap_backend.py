"""The pcap backend: classic pcap files in and out, with nanosecond
timestamps, and the grouping of frames into bursts.  It needs no DPDK, so
testers can replay on any Linux box; the core cannot tell it from a NIC."""
from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from pathlib import Path

MAGIC_US = 0xA1B2C3D4
MAGIC_NS = 0xA1B23C4D
LINKTYPE_ETHERNET = 1
SNAPLEN = 65535
# DPDK's usual burst: big enough to amortise per-burst work, small enough
# that the first frame of a burst does not wait long for the last
MAX_BURST = 32


class PcapError(ValueError):
    pass


def read_pcap(path: str | Path) -> list[tuple[int, bytes]]:
    """(timestamp in ns, frame) for every record of a classic pcap file,
    microsecond or nanosecond, either byte order."""
    data = Path(path).read_bytes()
    if len(data) < 24:
        raise PcapError(f"{path}: too short for a pcap header")
    magic_le = struct.unpack_from("<I", data)[0]
    magic_be = struct.unpack_from(">I", data)[0]
    if magic_le in (MAGIC_US, MAGIC_NS):
        endian, magic = "<", magic_le
    elif magic_be in (MAGIC_US, MAGIC_NS):
        endian, magic = ">", magic_be
    else:
        raise PcapError(f"{path}: not a classic pcap file (magic {data[:4].hex()})")
    linktype = struct.unpack_from(endian + "I", data, 20)[0]
    if linktype != LINKTYPE_ETHERNET:
        raise PcapError(f"{path}: link type {linktype}, only Ethernet (1) is supported")
    scale = 1 if magic == MAGIC_NS else 1000
    rec = struct.Struct(endian + "IIII")
    out = []
    off = 24
    while off < len(data):
        if off + 16 > len(data):
            raise PcapError(f"{path}: truncated record header at byte {off}")
        sec, frac, incl, _orig = rec.unpack_from(data, off)
        off += 16
        if off + incl > len(data):
            raise PcapError(f"{path}: truncated record at byte {off}")
        out.append((sec * 1_000_000_000 + frac * scale, data[off:off + incl]))
        off += incl
    return out


def write_pcap(path: str | Path, records: Iterable[tuple[int, bytes]]) -> None:
    """Nanosecond classic pcap, little-endian, Ethernet."""
    parts = [struct.pack("<IHHiIII", MAGIC_NS, 2, 4, 0, 0, SNAPLEN, LINKTYPE_ETHERNET)]
    rec = struct.Struct("<IIII")
    for ts, frame in records:
        sec, ns = divmod(ts, 1_000_000_000)
        parts.append(rec.pack(sec, ns, len(frame), len(frame)))
        parts.append(frame)
    Path(path).write_bytes(b"".join(parts))


def bursts(records: list[tuple[int, bytes]], max_burst: int = MAX_BURST
           ) -> Iterator[tuple[int, list[bytes]]]:
    """Consecutive frames with the same timestamp form one burst (at most
    max_burst); a burst's time is that timestamp."""
    i = 0
    n = len(records)
    while i < n:
        ts = records[i][0]
        j = i
        while j < n and j - i < max_burst and records[j][0] == ts:
            j += 1
        yield ts, [f for _, f in records[i:j]]
        i = j
