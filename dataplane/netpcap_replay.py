"""Replay through DPDK (omsctl replay --backend dpdk): the capture is the
rx_pcap of a net_pcap port, read on a worker lcore by cdefs/replay_loop.c,
which calls the core as the pcap backend's scheduler does
(dataplane.replay.schedule).  The venue simulator is Python, so its answers
travel through a ring port: the worker sends everything the core transmits
out of that port, each frame stamped with its call's now_ns, and pauses (a
"step"); this main lcore takes the frames off, keeps them for the output
pcap, queues the simulator's answers on the same port stamped
`venue_latency_ns` later, and lets the worker go on.  The ports' own
counters (rte_eth_stats) show what went through them."""
from __future__ import annotations

import itertools
import os
import struct
import tempfile
import time
from pathlib import Path

from control.config import Config
from dataplane import dpdk, pcap_backend
from dataplane.core import Core
from dataplane.replay import answer_frame

# net_pcap in DPDK 22.11 opens captures with pcap_open_offline (microsecond
# precision) and stamps mbufs in microseconds
NET_PCAP_TS_NS = 1000
# a dilated copy counts nanoseconds in pcap's microsecond field: its
# seconds field (32 bits) then holds ~49 days of capture
DILATED_SPAN_NS = (1 << 32) * 1_000_000
# mbufs: answers in flight (one venue latency's worth of the core's output)
# plus a TX ring of frames not yet taken and the ports' bursts
POOL_MBUFS = 32767
ANSWER_RING = 16384
TX_RING = 4096
# an mbuf's data room (RTE_MBUF_DEFAULT_DATAROOM): net_pcap chains longer
# frames, and the core is handed one segment
MAX_FRAME = 2048
# no step for this long: the worker is stuck
STEP_TIMEOUT_S = 30.0
# DPDK keeps devargs as key=value lists: these would split the path
_DEVARGS_SPECIAL = set(",;=")
_names = itertools.count()


class ReplayError(dpdk.DpdkError):
    pass


def eal_args() -> list[str]:
    """No hugepages, no PCI, no shared configuration files (with --no-huge,
    DPDK 22.11 refuses --in-memory, whose other half this is)."""
    return dpdk.default_eal_args() + ["--no-shconf"]


def check_capture(records: list[tuple[int, bytes]], path: Path) -> None:
    """What net_pcap cannot deliver as the pcap backend reads it."""
    for i, (ts, frame) in enumerate(records):
        if len(frame) > MAX_FRAME:
            raise ReplayError(
                f"{path}: frame {i} has {len(frame)} bytes; the replay loop takes frames of "
                f"one mbuf (at most {MAX_FRAME}): replay it with --backend pcap")
        if i and ts < records[i - 1][0]:
            raise ReplayError(
                f"{path}: frame {i} is older than frame {i - 1}; net_pcap delivers frames in "
                "file order and the pcap backend in time order: sort the capture "
                "(e.g. reordercap) or replay it with --backend pcap")
    if records and records[-1][0] - records[0][0] >= DILATED_SPAN_NS:
        raise ReplayError(f"{path}: spans more than 49 days, which net_pcap cannot carry "
                          "to the nanosecond: replay it with --backend pcap")


def write_dilated(path: Path, records: list[tuple[int, bytes]], base_ns: int) -> None:
    """A microsecond pcap of the same frames whose record times, read as
    microseconds, count the nanoseconds since base_ns: net_pcap (DPDK
    22.11) reads every capture to the microsecond, which would round away
    the nanoseconds the core's times are made of."""
    parts = [struct.pack("<IHHiIII", pcap_backend.MAGIC_US, 2, 4, 0, 0, pcap_backend.SNAPLEN,
                         pcap_backend.LINKTYPE_ETHERNET)]
    rec = struct.Struct("<IIII")
    for ts, frame in records:
        sec, usec = divmod(ts - base_ns, 1_000_000)
        parts.append(rec.pack(sec, usec, len(frame), len(frame)))
        parts.append(frame)
    path.write_bytes(b"".join(parts))


def _remove_runtime_dir(args: list[str]) -> None:
    """EAL makes its runtime directory even with --no-shconf, and leaves it,
    empty, behind: one per replay would pile up."""
    prefix = args[args.index("--file-prefix") + 1]
    base = "/var/run" if os.geteuid() == 0 else os.environ.get("XDG_RUNTIME_DIR", "/tmp")
    try:
        os.rmdir(Path(base) / "dpdk" / prefix)
    except OSError:
        pass  # not there, or not empty: then it is not ours to remove


class NetPcapReplay:
    def __init__(self, cfg: Config, capture: Path, records: list[tuple[int, bytes]], *,
                 sims: dict, venue_latency_ns: int, timing: bool = False,
                 idle_sleep_us: int = 50):
        check_capture(records, capture)
        if venue_latency_ns <= 0:
            raise ReplayError("the venue latency must be positive: an answer comes after "
                              "the frame it answers")
        dpdk.eal_init(eal_args())
        ext = dpdk.extension()
        self.ext, self.ffi, self.lib = ext, ext.ffi, ext.lib
        self.records = records
        self.sims = sims
        self.venue_latency_ns = venue_latency_ns
        self._tmp = None
        self.vdev = None
        self.ports: list[int] = []
        self.lcore = None
        self.port_stats: dict = {}
        self.loop_stats: dict = {}
        self.mbufs_in_use: int | None = None
        self.pool = self.ffi.NULL
        try:
            self._start(cfg, capture, records, timing, idle_sleep_us)
        except BaseException:
            self.close()
            raise

    def _start(self, cfg: Config, capture: Path, records: list[tuple[int, bytes]],
               timing: bool, idle_sleep_us: int) -> None:
        ffi, lib = self.ffi, self.lib
        n = next(_names)
        tag = f"npr{n}"
        self.pool = lib.oms_pool_create(f"{tag}_pool".encode(), POOL_MBUFS, 0)
        self.answers = lib.oms_ring_create(f"{tag}_ans".encode(), ANSWER_RING, 0, 1)
        self.tx = lib.oms_ring_create(f"{tag}_tx".encode(), TX_RING, 0, 1)
        if ffi.NULL in (self.pool, self.answers, self.tx):
            raise ReplayError("cannot create the replay's mempool or rings (memory?)")

        # the capture port: net_pcap reading the file, or a dilated copy when
        # its times are finer than microseconds
        src = capture.resolve()
        self.ts_scale, self.ts_base = NET_PCAP_TS_NS, 0
        if any(ts % NET_PCAP_TS_NS for ts, _ in records):
            self.ts_scale = 1
            self.ts_base = records[0][0] // 1_000_000_000 * 1_000_000_000
            self._tmp = tempfile.TemporaryDirectory(prefix="oms-netpcap-")
            src = Path(self._tmp.name) / "capture.dilated.pcap"
            write_dilated(src, records, self.ts_base)
        elif _DEVARGS_SPECIAL & set(str(src)):
            self._tmp = tempfile.TemporaryDirectory(prefix="oms-netpcap-")
            link = Path(self._tmp.name) / "capture.pcap"
            link.symlink_to(src)
            src = link
        self.capture_file = src
        self.vdev = f"net_pcap_replay{os.getpid()}_{n}"
        if lib.oms_vdev_create(self.vdev.encode(), f"rx_pcap={src}".encode()) != 0:
            self.vdev = None
            raise ReplayError(f"cannot create a net_pcap port reading {capture} (is DPDK's "
                              "net_pcap driver, librte-net-pcap23, installed?)")
        self.capture_port = lib.oms_port_by_name(self.vdev.encode())
        # the venue port: a ring port, answers in, the core's frames out
        self.venue_port = lib.oms_port_from_rings(f"net_ring_{tag}".encode(), self.answers,
                                                  self.tx, 0)
        if self.capture_port < 0 or self.venue_port < 0:
            raise ReplayError("cannot find the net_pcap port or create the ring port")
        err = ffi.new("char[256]")
        for port in (self.capture_port, self.venue_port):
            if lib.oms_port_start(port, self.pool, err, 256) != 0:
                raise ReplayError(ffi.string(err).decode())
            self.ports.append(port)

        self.core = Core(cfg, ext=self.ext)
        self.core.set_timing(timing)
        self.md = None
        r = self.loop = ffi.new("struct oms_replay *")
        if cfg.market_data.subscriptions:
            from dataplane.market_data import CMarketData
            self.md = CMarketData(cfg, ext=self.ext)
            self.md.attach(self.core)
            r.md = self.md.ptr
        r.core = self.core._core
        r.pool = self.pool
        r.capture_port = self.capture_port
        r.venue_port = self.venue_port
        r.capture_ts_scale = self.ts_scale
        r.capture_ts_base = self.ts_base
        r.horizon_ns = max((ts for ts, _ in records), default=0)
        r.strategy_udp = cfg.appliance.strategy_port
        r.venue_answers = 1 if self.sims else 0
        r.idle_sleep_us = idle_sleep_us
        lcore = lib.oms_next_worker_lcore(0xFFFFFFFF)
        if lcore >= 1024:  # RTE_MAX_LCORE: none left
            raise ReplayError("no worker lcore: give EAL at least two lcores (-l 0,1)")
        self._out = ffi.new(f"uint8_t[{TX_RING * lib.OMS_TX_SLOT}]")
        self._lens = ffi.new(f"uint16_t[{TX_RING}]")
        self._ts = ffi.new(f"uint64_t[{TX_RING}]")
        if lib.oms_replay_launch(r, lcore) != 0:
            raise ReplayError(f"cannot launch the replay loop on lcore {lcore}")
        self.lcore = lcore

    def run(self, progress=None) -> list[tuple[int, bytes]]:
        """Take what the worker sends and answer its steps until it has
        replayed the whole capture; returns what the core sent, with the
        now_ns of the call that sent it.  The waits are bounded and in short
        sleeps, so signals get through.  `progress(done, total)`, if given,
        hears the capture frames the worker has taken, about 10 times a
        second and at the end."""
        r = self.loop
        out: list[tuple[int, bytes]] = []
        acked = 0
        last_progress = time.monotonic()
        last_report = 0.0
        spins = 0
        while True:
            if progress is not None and time.monotonic() - last_report > 0.1:
                last_report = time.monotonic()
                progress(min(r.stats.capture_frames, len(self.records)), len(self.records))
            # every frame of the steps published so far is on the ring now
            steps = r.steps
            finished = r.finished
            n = self._drain(out)
            progressed = n > 0 or steps > acked
            if steps > acked:
                acked = steps
                r.acked = acked
            if progressed:
                last_progress = time.monotonic()
                spins = 0
                continue
            if finished:
                break
            spins += 1
            if spins > 200:
                time.sleep(0.0001)
            if time.monotonic() - last_progress > STEP_TIMEOUT_S:
                raise ReplayError(f"the replay loop on lcore {self.lcore} sent nothing for "
                                  f"{STEP_TIMEOUT_S} s")
        self._finish()
        if progress is not None:
            progress(len(self.records), len(self.records))
        return out

    def _drain(self, out: list[tuple[int, bytes]]) -> int:
        """Take what the worker sent; queue the venue simulator's answers.
        Returns how many frames were taken."""
        lib, ffi = self.lib, self.ffi
        n = lib.oms_replay_collect(self.tx, self._out, self._lens, self._ts, TX_RING)
        slot = lib.OMS_TX_SLOT
        buf = ffi.buffer(self._out, n * slot)
        answers: list[tuple[int, bytes]] = []
        for i in range(n):
            frame = bytes(buf[i * slot:i * slot + self._lens[i]])
            now = self._ts[i]
            out.append((now, frame))
            at = now + self.venue_latency_ns
            answers += [(at, a) for a in answer_frame(self.sims, frame, at)]
        # one inject call per time, at most a burst each
        for at, group in itertools.groupby(answers, key=lambda a: a[0]):
            frames = [f for _, f in group]
            for i in range(0, len(frames), lib.OMS_BURST):
                self._inject(frames[i:i + lib.OMS_BURST], at)
        return n

    def _inject(self, frames: list[bytes], at: int) -> None:
        ffi = self.ffi
        keep = [ffi.from_buffer(f) for f in frames]
        ptrs = ffi.new("uint8_t *[]", keep)
        lens = ffi.new("uint16_t[]", [len(f) for f in frames])
        if self.lib.oms_inject(self.pool, self.answers, ptrs, lens, len(frames), at) != 0:
            raise ReplayError(f"more than {ANSWER_RING} venue answers in flight (or the "
                              "mempool is empty): the venue latency is too long for this "
                              "capture's rate")

    def _finish(self) -> None:
        """Counters, and the checks that the port delivered the capture as
        the pcap backend reads it."""
        lib = self.lib
        lib.oms_worker_wait(self.lcore)
        self.lcore = None
        st = self.loop.stats
        self.loop_stats = {name: getattr(st, name) for name, _ in
                           self.ffi.typeof("struct oms_replay_stats").fields}
        self.port_stats = {"capture": self._port_stats(self.capture_port),
                           "venue": self._port_stats(self.venue_port)}
        got = self.port_stats["capture"]["ipackets"]
        if got != len(self.records):
            raise ReplayError(f"the net_pcap port delivered {got} of the capture's "
                              f"{len(self.records)} frames")
        first = self.loop.first_capture_raw * self.ts_scale + self.ts_base
        if self.records and first != self.records[0][0]:
            raise ReplayError(
                f"net_pcap stamped the first frame {self.loop.first_capture_raw}, read as "
                f"{first} ns, not {self.records[0][0]}: this DPDK's net_pcap uses another "
                "timestamp unit than 22.11's microseconds")
        if st.tx_dropped or st.stuck_timers or st.time_backwards:
            raise ReplayError(f"the replay loop did not run cleanly: {self.loop_stats}")

    def _port_stats(self, port: int) -> dict:
        vals = [self.ffi.new("uint64_t *") for _ in range(4)]
        self.lib.oms_port_stats(port, *vals)
        return dict(zip(("ipackets", "opackets", "imissed", "oerrors"), (v[0] for v in vals),
                        strict=True))

    def close(self) -> None:
        """Stop the worker (if a failure left it running), the ports and
        the net_pcap device; the pool must then be whole again."""
        lib = self.lib
        if self.lcore is not None:
            self.loop.stop = 1
            lib.oms_worker_wait(self.lcore)
            self.lcore = None
        for port in self.ports:
            lib.oms_port_stop(port)
        self.ports = []
        # after a failure: frames and answers nobody took go back to the pool
        if hasattr(self, "_out"):
            for ring in (self.tx, self.answers):
                while lib.oms_replay_collect(ring, self._out, self._lens, self._ts, TX_RING):
                    pass
        if self.vdev is not None:
            lib.oms_vdev_remove(self.vdev.encode())
            self.vdev = None
        if self.pool != self.ffi.NULL:
            self.mbufs_in_use = lib.oms_pool_in_use(self.pool)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        _remove_runtime_dir(eal_args())
