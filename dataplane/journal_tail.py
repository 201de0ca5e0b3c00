"""Reading a journal while its writer appends to it (docs/durability.md,
"Export"): whole records whose CRC holds and whose sequence numbers follow,
nothing of a record still being written.

The writer (a poll loop, in another process or thread) copies a record's
header last, so a record whose header or CRC is not there yet is simply not
there yet: the reader stops before it and tries again later. It reads with
pread, never mmap: the writer trims the file when it closes, and a mapping
beyond the new end would fault. Layouts come from cdefs/journal.h through
cffi, CRC32C from the C core (`oms_crc32c`)."""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from dataplane.core import _ext

ffi, lib = _ext.ffi, _ext.lib
HEADER = lib.OMS_JOURNAL_HEADER
RECORD = lib.OMS_JOURNAL_RECORD
MAGIC = lib.OMS_JOURNAL_MAGIC
TYPES = {lib.OMS_JREC_BURST: "burst", lib.OMS_JREC_COMMAND: "command",
         lib.OMS_JREC_GENERATION: "generation", lib.OMS_JREC_MARKET: "market",
         lib.OMS_JREC_ROUTE: "route"}
CHUNK = 1 << 20
MAX_RECORD = 1 << 28  # bigger is a damaged length, not a record

assert ffi.sizeof("struct oms_journal_record") == RECORD
assert ffi.sizeof("struct oms_journal_file_header") == HEADER
_CRC_AT = ffi.offsetof("struct oms_journal_record", "crc")
_SEQ_AT = ffi.offsetof("struct oms_journal_record", "seq")
_FIRST_SEQ_AT = ffi.offsetof("struct oms_journal_file_header", "first_seq")
_HEADER_CRC_AT = ffi.offsetof("struct oms_journal_file_header", "crc")


class TailError(RuntimeError):
    pass


@dataclass(frozen=True)
class Record:
    seq: int
    offset: int  # in the journal file
    data: bytes  # header, body and padding: exactly the bytes in the file

    @property
    def type(self) -> str:
        return TYPES[struct.unpack_from("<I", self.data)[0] & 0xFFFF]


def crc32c(data: bytes) -> int:
    return lib.oms_crc32c(0, data, len(data))


def check_file_header(data: bytes) -> int:
    """The first record's sequence number, if `data` is a journal's file
    header whose CRC holds."""
    if len(data) < HEADER:
        raise TailError("not a journal file header (too short)")
    h = ffi.from_buffer("struct oms_journal_file_header *", bytearray(data[:HEADER]))
    if (ffi.string(h.magic) != b"OMSJRNL" or h.header_size != HEADER
            or h.crc != crc32c(data[:_HEADER_CRC_AT])):
        raise TailError("not a journal file header (magic, size or CRC)")
    return h.first_seq


def parse_record(data: bytes, offset: int = 0) -> tuple[int, int] | None:
    """(sequence number, total length) of the whole, CRC-good record at
    data[offset:], or None (not there yet, cut short, or bad)."""
    if len(data) - offset < RECORD:
        return None
    magic_type, length, crc = struct.unpack_from("<III", data, offset)
    if magic_type & 0xFFFF0000 != MAGIC or magic_type & 0xFFFF not in TYPES:
        return None
    total = RECORD + (length + 7) // 8 * 8
    if len(data) - offset < total:
        return None
    head = bytearray(data[offset: offset + RECORD])
    head[_CRC_AT: _CRC_AT + 4] = bytes(4)
    body = data[offset + RECORD: offset + RECORD + length]
    if lib.oms_crc32c(crc32c(bytes(head)), body, length) != crc:
        return None
    return struct.unpack_from("<Q", data, offset + _SEQ_AT)[0], total


class JournalTail:
    """Follows one journal file from a position (offset, sequence number)."""

    def __init__(self, path: str):
        self.path = path
        self.fd = os.open(path, os.O_RDONLY)
        self.file_header = os.pread(self.fd, HEADER, 0)
        try:
            self.first_seq = check_file_header(self.file_header)
        except TailError as e:
            os.close(self.fd)
            raise TailError(f"{path}: {e}") from None
        self.offset, self.next_seq = HEADER, self.first_seq
        # how far the lag walk has seen records (headers only, no CRC)
        self._seen = (HEADER, self.first_seq)

    def close(self) -> None:
        os.close(self.fd)

    def read(self, max_records: int, max_bytes: int) -> list[Record]:
        """The next whole records from the position on, up to max_records
        and max_bytes (at least one when one is there, however big), and
        moves past them."""
        out: list[Record] = []
        used = 0
        while len(out) < max_records and used < max_bytes:
            buf = os.pread(self.fd, CHUNK, self.offset)
            if len(buf) >= RECORD:  # a record bigger than a chunk: read it whole
                need = RECORD + (struct.unpack_from("<I", buf, 4)[0] + 7) // 8 * 8
                if len(buf) < need <= MAX_RECORD:
                    buf = os.pread(self.fd, need, self.offset)
            pos = 0
            while len(out) < max_records:
                got = parse_record(buf, pos)
                if got is None or got[0] != self.next_seq:
                    break
                seq, total = got
                if out and used + total > max_bytes:
                    return out
                out.append(Record(seq, self.offset, bytes(buf[pos: pos + total])))
                used += total
                pos += total
                self.offset += total
                self.next_seq += 1
            if pos == 0:  # nothing (more) whole here yet
                break
        return out

    def seek(self, seq: int, mark: tuple[int, int] | None = None) -> None:
        """Position on record `seq` (first_seq .. the one after the last
        present), walking record headers from the current position, from
        `mark` (the offset and sequence number of a record known to be
        there) or from the start; the records are CRC-checked when read."""
        if seq < self.next_seq:
            self.offset, self.next_seq = HEADER, self.first_seq
            if mark is not None and self.first_seq <= mark[1] <= seq:
                self.offset, self.next_seq = mark
        while self.next_seq < seq:
            head = os.pread(self.fd, RECORD, self.offset)
            if len(head) < RECORD or struct.unpack_from("<I", head)[0] & 0xFFFF0000 != MAGIC \
                    or struct.unpack_from("<Q", head, _SEQ_AT)[0] != self.next_seq:
                raise TailError(f"{self.path}: has no record {seq - 1} (its records end at "
                                f"{self.next_seq - 1}): the sink holds records this journal "
                                "does not")
            self.offset += RECORD + (struct.unpack_from("<I", head, 4)[0] + 7) // 8 * 8
            self.next_seq += 1

    def record(self, seq: int, mark: tuple[int, int] | None = None) -> Record | None:
        """Record `seq`, the position left where it was."""
        saved = (self.offset, self.next_seq)
        try:
            self.seek(seq, mark)
            got = self.read(1, 1)
            return got[0] if got else None
        finally:
            self.offset, self.next_seq = saved

    def appended(self) -> tuple[int, int]:
        """(end offset, next sequence number) of what the writer has
        appended, by walking record headers on from where the last walk
        stopped (no CRC: a lag figure, not a check)."""
        off, seq = max(self._seen, (self.offset, self.next_seq))
        while True:
            head = os.pread(self.fd, RECORD, off)
            if len(head) < RECORD:
                break
            magic_type, length = struct.unpack_from("<II", head)
            if magic_type & 0xFFFF0000 != MAGIC or \
                    struct.unpack_from("<Q", head, _SEQ_AT)[0] != seq:
                break
            off += RECORD + (length + 7) // 8 * 8
            seq += 1
        self._seen = (off, seq)
        return off, seq

    def lag(self, acked_offset: int, acked_next_seq: int) -> dict:
        end, nxt = self.appended()
        return {"records": max(0, nxt - acked_next_seq), "bytes": max(0, end - acked_offset)}
