"""A journal read whole, for tools (docs/durability.md, docs/fill-model.md
"Dataset"): every good record in order, the ROUTE records' bodies as numpy
records whose layout is derived from cdefs/journal.h through cffi (struct
oms_jroute, struct oms_jroute_venue: the one definition), and the frames of
BURST and MARKET records.  Also the writer of a journal from records, which
the leak test uses to change one record and seal it again."""
from __future__ import annotations

import mmap
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dataplane.core import _ext
from dataplane.journal_tail import HEADER, RECORD, check_file_header, crc32c, parse_record

ffi, lib = _ext.ffi, _ext.lib
BURST, COMMAND, GENERATION, MARKET, ROUTE = (lib.OMS_JREC_BURST, lib.OMS_JREC_COMMAND,
                                             lib.OMS_JREC_GENERATION, lib.OMS_JREC_MARKET,
                                             lib.OMS_JREC_ROUTE)
_SCALAR = {"uint64_t": "<u8", "int64_t": "<i8", "uint32_t": "<u4", "int32_t": "<i4",
           "uint16_t": "<u2", "int16_t": "<i2", "uint8_t": "u1", "int8_t": "i1"}


def struct_dtype(ctype: str) -> np.dtype:
    """The numpy view of a C struct without implicit padding: its fields'
    names, types and offsets as cffi reads them from the header."""
    names, formats, offsets = [], [], []
    for name, f in ffi.typeof(ctype).fields:
        t = f.type
        if t.kind == "array" and t.item.cname == "char":
            fmt = f"S{t.length}"
        elif t.kind == "array":
            fmt = (_SCALAR[t.item.cname], (t.length,))
        else:
            fmt = _SCALAR[t.cname]
        names.append(name)
        formats.append(fmt)
        offsets.append(f.offset)
    return np.dtype({"names": names, "formats": formats, "offsets": offsets,
                     "itemsize": ffi.sizeof(ctype)})


ROUTE_DTYPE = struct_dtype("struct oms_jroute")
VENUE_DTYPE = struct_dtype("struct oms_jroute_venue")


@dataclass(frozen=True)
class Rec:
    type: int
    seq: int
    now_ns: int
    offset: int  # of its header in the file
    body: bytes


def records(path: str | Path) -> Iterator[Rec]:
    """Every good record of a journal file, in order (a torn tail ends it);
    the file is mapped, not read (a day's journal is gigabytes)."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        seq = check_file_header(data[:HEADER])
        off = HEADER
        while True:
            got = parse_record(data, off)
            if got is None or got[0] != seq:
                return
            magic_type, length = struct.unpack_from("<II", data, off)
            (now_ns,) = struct.unpack_from("<Q", data, off + 24)
            yield Rec(magic_type & 0xFFFF, seq, now_ns, off,
                      data[off + RECORD: off + RECORD + length])
            off += got[1]
            seq += 1


def route(body: bytes) -> tuple[np.void, np.ndarray]:
    """A ROUTE body: the decision and its venues (configuration order)."""
    head = np.frombuffer(body, ROUTE_DTYPE, count=1)[0]
    venues = np.frombuffer(body, VENUE_DTYPE, count=int(head["n_venues"]),
                           offset=ROUTE_DTYPE.itemsize)
    return head, venues


def frames(body: bytes) -> list[bytes]:
    """The frames of a BURST or MARKET body (struct oms_jburst, the lengths,
    each frame padded to 8)."""
    (n,) = struct.unpack_from("<I", body)
    lens = struct.unpack_from(f"<{n}H", body, 8)
    off = 8 + (2 * n + 7) // 8 * 8
    out = []
    for ln in lens:
        out.append(body[off:off + ln])
        off += (ln + 7) // 8 * 8
    return out


def frames_body(fs: list[bytes]) -> bytes:
    """The BURST or MARKET body of frames `fs` (the inverse of frames())."""
    lens = struct.pack(f"<{len(fs)}H", *map(len, fs))
    out = bytearray(struct.pack("<II", len(fs), 0) + lens + bytes((8 - len(lens) % 8) % 8))
    for f in fs:
        out += f + bytes((8 - len(f) % 8) % 8)
    return bytes(out)


def write(path: str | Path, file_header: bytes, recs: list[Rec]) -> None:
    """A journal of `recs` (their types, times and bodies; numbered from the
    header's first_seq, each CRC computed again) after `file_header`."""
    seq = check_file_header(file_header)
    out = bytearray(file_header[:HEADER])
    for r in recs:
        head = bytearray(struct.pack("<IIIIQQ", lib.OMS_JOURNAL_MAGIC | r.type, len(r.body), 0, 0,
                                     seq, r.now_ns))
        crc = lib.oms_crc32c(crc32c(bytes(head)), r.body, len(r.body))
        struct.pack_into("<I", head, 8, crc)
        out += head + r.body + bytes((8 - len(r.body) % 8) % 8)
        seq += 1
    Path(path).write_bytes(bytes(out))
