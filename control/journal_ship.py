"""Exporting the journal to a distributed log, and rebuilding a journal from
it (docs/durability.md, "Export to a distributed log"; issue 8 item 4).

The shipper runs in the control plane, never on the hot path: it tails the
journal file the poll loop appends to (dataplane/journal_tail.py) and hands
whole, CRC-checked records in batches to a sink. A sink stores them in order
and exactly once, and says which record it holds last; that answer, not a
file of the shipper's own, is the shipper's position, so a restarted shipper
(or one whose sink was restarted) continues with the record after it:
nothing twice, nothing skipped.

`JournalSink` is the interface; `NatsSink` (NATS JetStream) the one
implementation. A Kafka sink would implement the same four methods: one
topic partition per journal, an idempotent producer (`enable.idempotence`,
`acks=all`, the record sequence number as the message key) and `resume` read
from the partition's last message; no Kafka broker is packaged for these
machines, so none is here."""
from __future__ import annotations

import abc
import asyncio
import json
import os
import re
import sys
import time

from dataplane.journal_tail import (
    HEADER,
    JournalTail,
    Record,
    TailError,
    check_file_header,
    parse_record,
)

SEQ_HEADER = "Oms-Journal-Seq"
TYPE_HEADER = "Oms-Journal-Type"
# JetStream's "wrong last msg ID": a record whose predecessor is not the
# stream's last message (a gap, or a record out of order) is refused
WRONG_LAST_MSG_ID = 10070


class SinkError(RuntimeError):
    """The sink could not store (all of) a batch; the shipper asks it where
    it stands (resume) and continues from there."""


class StreamMismatch(SinkError):
    """The sink holds another journal's records: never retried."""


class JournalSink(abc.ABC):
    """Where a journal's records go: in order, each exactly once."""

    @abc.abstractmethod
    async def connect(self) -> None: ...

    @abc.abstractmethod
    async def resume(self, file_header: bytes) -> tuple[int, bytes | None]:
        """Store the journal's file header if the sink holds nothing yet,
        check that it is this journal's otherwise; the sequence number of
        the last record held (first_seq - 1 when none) and that record's
        bytes (None when none)."""

    @abc.abstractmethod
    async def write(self, records: list[Record]) -> None:
        """Store the records, which follow the last one held, in order:
        returns once all are stored; SinkError when it cannot say so."""

    @abc.abstractmethod
    async def close(self) -> None: ...


async def connect(url: str, wait_s: float, **kw):
    """A NATS connection, or SinkError when no server answers at `url`
    within wait_s (the client would otherwise retry forever, quietly)."""
    import nats

    async def quiet(e):  # the client's default logs every failed attempt
        pass

    try:
        return await asyncio.wait_for(nats.connect(url, connect_timeout=2, error_cb=quiet, **kw),
                                      wait_s)
    except Exception as e:
        raise SinkError(f"no NATS server answered at {url} within {wait_s:g} s "
                        f"({type(e).__name__} {e})") from None


def journal_name(path: str) -> str:
    """A NATS subject token / stream name part from the file's name."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", os.path.basename(path)) or "journal"


class NatsSink(JournalSink):
    """NATS JetStream: one stream per journal (the ordering guard below is
    per stream), subject `oms.journal.<name>`; the first message is the
    file header, then one message per record, payload the record's bytes.

    Exactly once: each record's `Nats-Msg-Id` is `<name>:<seq>` (the server
    drops a resend within the stream's duplicate window), and each carries
    `Nats-Expected-Last-Msg-Id: <name>:<seq - 1>`, so the server stores it
    only right after its predecessor, at any time: a batch cut short by a
    lost connection leaves the stream a gap-free prefix, whatever the client
    had buffered, and an old resend is refused rather than stored twice."""

    def __init__(self, url: str, name: str, stream: str | None = None, timeout: float = 5.0,
                 connect_wait_s: float = 10.0):
        self.url, self.name, self.timeout = url, name, timeout
        self.connect_wait_s = connect_wait_s
        self.stream = stream or f"OMS_JOURNAL_{name}"
        self.subject = f"oms.journal.{name}"
        self.nc = self.js = None
        self.last_id = f"{name}:header"
        self.counters = {"reconnects": 0, "disconnects": 0, "duplicates": 0}

    async def connect(self) -> None:
        from nats.js.api import StorageType, StreamConfig
        from nats.js.errors import NotFoundError

        async def disconnected():
            self.counters["disconnects"] += 1

        async def reconnected():
            self.counters["reconnects"] += 1

        self.nc = await connect(self.url, self.connect_wait_s, allow_reconnect=True,
                                max_reconnect_attempts=-1, disconnected_cb=disconnected,
                                reconnected_cb=reconnected)
        try:
            self.js = self.nc.jetstream(timeout=self.timeout)
            try:
                await self.js.stream_info(self.stream)
            except NotFoundError:
                await self.js.add_stream(StreamConfig(
                    name=self.stream, subjects=[self.subject], storage=StorageType.FILE,
                    duplicate_window=120.0))
        except Exception as e:  # no JetStream, no permission: say which
            raise SinkError(f"{self.url}: {type(e).__name__} {e}") from None

    async def resume(self, file_header: bytes) -> tuple[int, bytes | None]:
        first_seq = check_file_header(file_header)
        state = (await self.js.stream_info(self.stream)).state
        if state.messages == 0:
            await self.js.publish(self.subject, file_header, headers={
                "Nats-Msg-Id": f"{self.name}:header", "Nats-Expected-Last-Sequence": "0"})
            self.last_id = f"{self.name}:header"
            return first_seq - 1, None
        first = await self.js.get_msg(self.stream, seq=state.first_seq)
        if first.data != file_header:
            raise StreamMismatch(f"stream {self.stream} holds another journal (its first message "
                            "is not this journal's file header)")
        last = await self.js.get_msg(self.stream, seq=state.last_seq)
        seq = (last.headers or {}).get(SEQ_HEADER)
        if seq is None:  # only the header so far
            self.last_id = f"{self.name}:header"
            return first_seq - 1, None
        self.last_id = f"{self.name}:{seq}"
        return int(seq), last.data

    async def write(self, records: list[Record]) -> None:
        from nats.js.errors import APIError

        if self.max_payload and max(len(r.data) for r in records) > self.max_payload:
            big = max(records, key=lambda r: len(r.data))
            raise SinkError(f"record {big.seq} is {len(big.data)} bytes, over the server's "
                            f"max_payload {self.max_payload}: raise it in nats-server's "
                            "configuration")
        futures = []
        prev = self.last_id
        try:
            for r in records:
                mid = f"{self.name}:{r.seq}"
                futures.append(await self.js.publish_async(self.subject, r.data, headers={
                    "Nats-Msg-Id": mid, "Nats-Expected-Last-Msg-Id": prev,
                    SEQ_HEADER: str(r.seq), TYPE_HEADER: r.type}))
                prev = mid
            acks = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True),
                                          self.timeout)
        except Exception as e:
            for f in futures:
                f.cancel()
            raise SinkError(f"publishing to {self.url}: {type(e).__name__} {e}") from None
        for r, ack in zip(records, acks, strict=True):
            if isinstance(ack, APIError):
                raise SinkError(f"record {r.seq} refused: {ack}")
            if isinstance(ack, BaseException):
                raise SinkError(f"record {r.seq}: {type(ack).__name__} {ack}")
            if ack.duplicate:
                self.counters["duplicates"] += 1
            self.last_id = f"{self.name}:{r.seq}"

    @property
    def max_payload(self) -> int:
        return self.nc.max_payload if self.nc else 0

    async def close(self) -> None:
        if self.nc is not None:
            await self.nc.close()
            self.nc = None


class Shipper:
    """Streams one journal file to a sink, in batches, from where the sink
    stands; retries (with backoff) whatever the sink cannot store."""

    def __init__(self, path: str, sink: JournalSink, batch_records: int = 512,
                 batch_bytes: int = 1 << 20, poll_s: float = 0.02, max_backoff_s: float = 1.0):
        self.path, self.sink = path, sink
        self.batch_records, self.batch_bytes = batch_records, batch_bytes
        self.poll_s, self.max_backoff_s = poll_s, max_backoff_s
        self.tail: JournalTail | None = None
        self.acked = (HEADER, 0)  # (offset, next seq) the sink holds up to
        self.mark: tuple[int, int] | None = None  # (offset, seq) of the last record stored
        self.counters = {"records": 0, "bytes": 0, "batches": 0, "retries": 0,
                         "resumed_at": None, "last_error": None}

    async def start(self) -> None:
        self.tail = JournalTail(self.path)
        await self.sink.connect()
        await self._resync()
        self.counters["resumed_at"] = self.acked[1]

    async def _resync(self) -> None:
        """Position the tail on the record after the sink's last, which
        must be the journal's own record."""
        last, data = await self.sink.resume(self.tail.file_header)
        if data is not None:
            mine = self.tail.record(last, self.mark)
            if mine is None or mine.data != data:
                raise StreamMismatch(
                    f"the sink's record {last} is not this journal's: the journal has "
                    "diverged from what was shipped (its tail lost and rewritten?); the "
                    "sink holds the shipped history")
        self.tail.seek(last + 1, self.mark)
        self.acked = (self.tail.offset, self.tail.next_seq)

    async def ship_available(self) -> int:
        """One batch of what is appended: how many records were stored."""
        batch = self.tail.read(self.batch_records, self.batch_bytes)
        if not batch:
            return 0
        await self.sink.write(batch)
        self.acked = (self.tail.offset, self.tail.next_seq)
        self.mark = (batch[-1].offset, batch[-1].seq)
        self.counters["records"] += len(batch)
        self.counters["bytes"] += sum(len(r.data) for r in batch)
        self.counters["batches"] += 1
        return len(batch)

    async def run(self, stop: asyncio.Event, until_caught_up: bool = False,
                  on_status=None, status_every_s: float = 1.0) -> None:
        """Ship until `stop` is set (or, until_caught_up, until nothing is
        left to ship); a failed batch is retried from the sink's position."""
        backoff, next_status = 0.05, time.monotonic() + status_every_s
        while not stop.is_set():
            try:
                n = await self.ship_available()
                backoff = 0.05
            except (TimeoutError, SinkError, OSError) as e:
                self.counters["retries"] += 1
                self.counters["last_error"] = str(e)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
                try:
                    await self._resync()
                except (TailError, StreamMismatch):
                    raise
                except Exception as e2:  # the sink is still away: try again later
                    self.counters["last_error"] = f"resync: {type(e2).__name__} {e2}"
                continue
            if on_status and time.monotonic() >= next_status:
                on_status(self.status())
                next_status = time.monotonic() + status_every_s
            if n == 0:
                if until_caught_up:
                    break
                try:
                    await asyncio.wait_for(stop.wait(), self.poll_s)
                except TimeoutError:
                    pass

    def status(self) -> dict:
        """Counters, the position and the lag (records and bytes appended
        but not yet stored by the sink)."""
        out = dict(self.counters)
        out["shipped_seq"] = self.acked[1] - 1
        out["shipped_offset"] = self.acked[0]
        out["lag"] = self.tail.lag(*self.acked) if self.tail else None
        out["sink"] = dict(getattr(self.sink, "counters", {}))
        return out

    async def close(self) -> None:
        await self.sink.close()
        if self.tail is not None:
            self.tail.close()
            self.tail = None


async def ship(path: str, sink: JournalSink, stop: asyncio.Event | None = None,
               until_caught_up: bool = False, on_status=None, **kw) -> dict:
    shipper = Shipper(path, sink, **kw)
    try:
        await shipper.start()
        await shipper.run(stop or asyncio.Event(), until_caught_up, on_status)
        return shipper.status()
    finally:
        await shipper.close()


async def fetch(url: str, stream: str, out_path: str, timeout: float = 5.0) -> dict:
    """Rebuild a journal file from a stream alone: the file header, then
    every record in order, each CRC and sequence number checked; written
    to out_path.part and renamed once whole."""
    from nats.js.api import DeliverPolicy

    nc = await connect(url, timeout, allow_reconnect=False)
    try:
        from nats.js.errors import NotFoundError

        js = nc.jetstream(timeout=timeout)
        try:
            info = await js.stream_info(stream)
        except NotFoundError:
            raise SinkError(f"{url} has no stream {stream}") from None
        state, subject = info.state, info.config.subjects[0]
        if state.messages == 0:
            raise SinkError(f"stream {stream} is empty")
        sub = await js.subscribe(subject, stream=stream, ordered_consumer=True,
                                 deliver_policy=DeliverPolicy.ALL)
        part = out_path + ".part"
        records = size = 0
        with open(part, "wb") as f:
            msg = await sub.next_msg(timeout)
            next_seq = check_file_header(msg.data)
            f.write(msg.data)
            size = len(msg.data)
            at = msg.metadata.sequence.stream
            while at < state.last_seq:
                msg = await sub.next_msg(timeout)
                at = msg.metadata.sequence.stream
                got = parse_record(msg.data)
                if got is None or got[1] != len(msg.data) or got[0] != next_seq:
                    raise SinkError(f"stream {stream} message {at}: not record {next_seq} "
                                    "whole with a good CRC")
                f.write(msg.data)
                size += len(msg.data)
                records += 1
                next_seq += 1
            f.flush()
            os.fsync(f.fileno())
        os.replace(part, out_path)
        await sub.unsubscribe()
        return {"stream": stream, "records": records, "bytes": size,
                "last_seq": next_seq - 1, "path": out_path}
    finally:
        await nc.close()


def cmd_ship(args) -> int:
    name = args.name or journal_name(args.path)
    sink = NatsSink(args.to, name, args.stream, timeout=args.timeout)

    def on_status(st):
        print(json.dumps(st, sort_keys=True), flush=True)

    async def main():
        import signal

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await ship(args.path, sink, stop, until_caught_up=args.once,
                          on_status=on_status, batch_records=args.batch)

    try:
        on_status(asyncio.run(main()))
    except (TailError, SinkError, OSError) as e:
        print(f"omsctl: journal ship: {e}", file=sys.stderr)
        return 1
    return 0


def cmd_fetch(args) -> int:
    try:
        out = asyncio.run(fetch(args.source, args.stream, args.output, args.timeout))
    except (TimeoutError, TailError, SinkError, OSError) as e:
        print(f"omsctl: journal fetch: {type(e).__name__} {e}", file=sys.stderr)
        return 1
    print(json.dumps(out, sort_keys=True))
    return 0


def add_subparsers(jsub) -> None:
    """`omsctl journal ship` and `omsctl journal fetch`."""
    s = jsub.add_parser("ship", help="stream the journal to NATS JetStream (resumes where "
                                     "the stream stands)")
    s.add_argument("path")
    s.add_argument("--to", required=True, metavar="nats://HOST:PORT")
    s.add_argument("--name", help="subject token (default: from the file's name)")
    s.add_argument("--stream", help="JetStream stream (default OMS_JOURNAL_<name>)")
    s.add_argument("--batch", type=int, default=512, help="records per batch")
    s.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for acks")
    s.add_argument("--once", action="store_true",
                   help="exit once everything appended so far is stored")
    s.set_defaults(func=cmd_ship)
    f = jsub.add_parser("fetch", help="rebuild a journal file from a JetStream stream")
    f.add_argument("--from", dest="source", required=True, metavar="nats://HOST:PORT")
    f.add_argument("--stream", required=True)
    f.add_argument("-o", "--output", required=True)
    f.add_argument("--timeout", type=float, default=5.0)
    f.set_defaults(func=cmd_fetch)
