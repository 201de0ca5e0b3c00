"""Replay: a capture goes through the C core as if it arrived on the wire,
optionally with the venue simulator answering the core's venue messages, and
optionally with the reference model run beside it (--verify).

Determinism: frames are handed to the core in file order, grouped into
bursts of equal timestamps, each burst with its timestamp as `now_ns`.  Venue
answers come back `venue_latency_ns` after the frame that caused them and,
at equal times, after the capture's frames.  Nothing here reads a clock
except for --timings, which never reaches the output pcap or the report.

Backends: `pcap` runs `schedule` below with the core in this thread; `dpdk`
has a net_pcap port read the capture on a worker lcore, which schedules
the same way in C (dataplane/netpcap_replay.py, cdefs/replay_loop.c).
Both give the same output pcap and report, byte for byte."""
from __future__ import annotations

import heapq
import json
import struct
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from control.config import Config
from dataplane import pcap_backend
from dataplane.core import Core, lib
from dataplane.venue_sim import VenueSim

DEFAULT_VENUE_LATENCY_NS = 20_000
PROGRESS_EVERY = 256  # bursts between two progress reports


class VerifyError(AssertionError):
    pass


@dataclass
class ReplayResult:
    frames_in: int = 0
    frames_out: int = 0
    outbound_by_type: Counter = field(default_factory=Counter)
    stats: dict = field(default_factory=dict)
    verified: bool = False
    port_stats: dict | None = None  # DPDK backend: rte_eth_stats of capture and venue ports
    worker_stats: dict | None = None  # DPDK backend: the replay loop's counters
    mbufs_in_use: int | None = None
    route_decisions: list = field(default_factory=list)  # the smart router's, in order
    market_data: dict | None = None  # the dispatcher's counters, with subscriptions


def _frame_udp(frame: bytes) -> tuple[str, int, int, bytes] | None:
    """(destination ip, source port, destination port, payload) of a frame
    the core built (untagged IPv4/UDP, no options)."""
    if len(frame) < 42 or frame[12:14] != b"\x08\x00":
        return None
    dst = ".".join(str(b) for b in frame[30:34])
    sport, dport = struct.unpack_from(">HH", frame, 34)
    return dst, sport, dport, frame[42:]


class Replayer:
    def __init__(self, cfg: Config, *, venue_sim: bool = False,
                 venue_latency_ns: int = DEFAULT_VENUE_LATENCY_NS, verify: bool = False,
                 timings: bool = False, sim_seed: int = 1, backend: str = "pcap"):
        self.cfg = cfg
        self.backend = backend
        if backend not in ("pcap", "dpdk"):
            raise ValueError(f"unknown replay backend {backend!r} (pcap or dpdk)")
        # dpdk: the core is made with the DPDK extension when the run starts
        self.core = Core(cfg) if backend == "pcap" else None
        self.timing = timings
        if self.core is not None:
            self.core.set_timing(timings)
        self.venue_latency_ns = venue_latency_ns
        self.venue_sim = venue_sim
        self.sim_seed = sim_seed
        self.sims = self._new_sims()
        self.model = None
        self.model_md = None
        if verify:
            from dataplane.reference_model import ReferenceCore
            self.model = ReferenceCore(cfg)
            if cfg.market_data.subscriptions:
                from dataplane.market_data import ModelMarketData
                self.model_md = ModelMarketData(cfg)
                self.model_md.attach(self.model)
        self.venue_ips = {v.ip: v for v in cfg.venues}
        self.burst_cpu_ns: list[int] = []
        # market data: feeds the core reads, fed from the capture's frames
        self.md = None
        if cfg.market_data.subscriptions and self.core is not None:
            from dataplane.market_data import CMarketData
            self.md = CMarketData(cfg)
            self.md.attach(self.core)

    def _new_sims(self) -> dict[str, VenueSim]:
        """One venue simulator per venue, fresh (they keep session state)."""
        if not self.venue_sim:
            return {}
        symbols = [i.symbol for i in self.cfg.instruments]
        return {v.ip: VenueSim(v, self.cfg.appliance, symbols=symbols, seed=self.sim_seed + v.id)
                for v in self.cfg.venues}

    def run_file(self, path: str | Path, progress=None
                 ) -> tuple[list[tuple[int, bytes]], ReplayResult]:
        """Replay a capture file: the pcap backend reads it here; the dpdk
        backend has a net_pcap port read it on a worker lcore.
        `progress(done, total)`, if given, hears now and then how many of
        the capture's frames the core has been handed, and at the end."""
        records = pcap_backend.read_pcap(path)
        if self.backend == "dpdk":
            return self._run_dpdk(Path(path), records, progress)
        return self.run(records, progress)

    def run(self, records: list[tuple[int, bytes]], progress=None
            ) -> tuple[list[tuple[int, bytes]], ReplayResult]:
        """Returns the transmitted frames with their times, and the summary.
        (The dpdk backend needs a file for its net_pcap port: the records
        are written to a temporary one.)"""
        if self.backend == "dpdk":
            with tempfile.TemporaryDirectory(prefix="oms-replay-") as d:
                path = Path(d) / "capture.pcap"
                pcap_backend.write_pcap(path, records)
                return self._run_dpdk(path, records, progress)
        res = ReplayResult(frames_in=len(records))

        def check(now, burst, tx):
            if self.model is not None:
                if self.model_md is not None:
                    burst = self.model_md.split(burst, now)
                expected = self.model.process_burst(burst, now)
                if expected != tx:
                    raise VerifyError(_describe_difference(now, burst, tx, expected))

        out = schedule(self.core, records, self.sims, self.venue_latency_ns,
                       on_burst=check, burst_ns=self.burst_cpu_ns, progress=progress,
                       md=self.md, decisions=res.route_decisions)
        res.frames_out = len(out)
        res.stats = self.core.stats()
        if self.md is not None:
            res.market_data = self.md.stats()
        if self.model is not None and res.route_decisions != self.model.route_decisions():
            raise VerifyError("the C router's decisions differ from the reference model's")
        self._verify_stats(res)
        return out, res

    def _run_dpdk(self, path: Path, records: list[tuple[int, bytes]], progress=None
                  ) -> tuple[list[tuple[int, bytes]], ReplayResult]:
        from dataplane.netpcap_replay import NetPcapReplay

        res = ReplayResult(frames_in=len(records))
        rp = NetPcapReplay(self.cfg, path, records, sims=self.sims,
                           venue_latency_ns=self.venue_latency_ns, timing=self.timing)
        try:
            out = rp.run(progress)
        finally:
            rp.close()
        self.core = rp.core
        res.frames_out = len(out)
        res.stats = self.core.stats()
        res.route_decisions = self.core.route_decisions()
        if rp.md is not None:
            res.market_data = rp.md.stats()
        res.port_stats = rp.port_stats
        res.worker_stats = rp.loop_stats
        res.mbufs_in_use = rp.mbufs_in_use
        if self.model is not None:
            # the model runs under the pcap backend's scheduler, with venue
            # simulators of its own; the worker's output must be the same
            expected = schedule(self.model, records, self._new_sims(), self.venue_latency_ns,
                                md=self.model_md)
            _compare_outputs(out, expected)
            if res.route_decisions != self.model.route_decisions():
                raise VerifyError("the C router's decisions differ from the reference model's")
        self._verify_stats(res)
        return out, res

    def _verify_stats(self, res: ReplayResult) -> None:
        if self.model is not None:
            model_stats = self.model.stats()
            if model_stats != res.stats:
                raise VerifyError(f"counters differ:\n core  {res.stats}\n model {model_stats}")
            res.verified = True

    def timings(self) -> dict:
        """Per-order processing time from the core's TSC histogram, in
        cycles and (by a TSC rate measured here) nanoseconds."""
        hist = self.core.latency_histogram()
        hz = tsc_hz()
        total = sum(c for _, c in hist)
        pct = {}
        for p in (50, 90, 99, 99.9, 99.99):
            want = total * p / 100
            acc = 0
            for low, c in hist:
                acc += c
                if acc >= want:
                    pct[f"p{p}"] = {"cycles": low, "ns": round(low * 1e9 / hz, 1)}
                    break
        return {"orders_timed": total, "tsc_hz": hz, "percentiles": pct,
                "note": "lower bound of the log-linear bucket (<= 6.25% wide)",
                "bursts": len(self.burst_cpu_ns),
                "burst_wall_ns_median": sorted(self.burst_cpu_ns)[len(self.burst_cpu_ns) // 2]
                if self.burst_cpu_ns else 0}


def schedule(core, records: list[tuple[int, bytes]], sims: dict[str, VenueSim],
             venue_latency_ns: int, *, on_burst=None, burst_ns: list[int] | None = None,
             progress=None, md=None, decisions: list | None = None
             ) -> list[tuple[int, bytes]]:
    """Feed `core` (the C core or the reference model) the capture, the
    venue simulators' answers and its timers; returns what it transmitted,
    with the time of the call that sent it.

    Frames go in file order, grouped into bursts of equal timestamps (at
    most MAX_BURST), each burst with its timestamp as `now_ns`.  Besides the
    capture's frames and the venue's answers, the core gets a call with no
    frames whenever its next timer is due (heartbeats, timeouts, re-sent
    requests), as a live backend would make it, up to the capture's last
    timestamp.  cdefs/replay_loop.c does the same on a DPDK worker lcore.

    With market data (`md`, dataplane.market_data), each burst's frames are
    split first: the feeds take theirs (and run their timers at the burst's
    time) before the core gets the rest, as the worker does; the feeds'
    re-requests are sent at once.  `decisions` collects the router's
    decision records after every burst."""
    INPUT, ANSWER, TIMER = 0, 1, 2
    heap: list[tuple[int, int, int, bytes | None]] = [
        (ts, INPUT, i, f) for i, (ts, f) in enumerate(records)]
    heapq.heapify(heap)
    horizon = max((ts for ts, _ in records), default=0)
    timers_set: set[int] = set()
    order = 0
    out: list[tuple[int, bytes]] = []
    done = bursts = 0
    while heap:
        now = heap[0][0]
        burst = []
        while heap and heap[0][0] == now and len(burst) < pcap_backend.MAX_BURST:
            _, kind, _, frame = heapq.heappop(heap)
            if kind == TIMER:
                timers_set.discard(now)
            else:
                burst.append(frame)
                done += kind == INPUT
        t0 = time.perf_counter_ns()
        core_burst = burst
        if md is not None:
            core_burst = md.split(burst, now)
            out += [(now, f) for f in md.take_requests()]
        tx = core.process_burst(core_burst, now)
        if burst_ns is not None:
            burst_ns.append(time.perf_counter_ns() - t0)
        if on_burst is not None:
            on_burst(now, burst, tx)
        if decisions is not None and hasattr(core, "route_decisions"):
            decisions += core.route_decisions(len(decisions) + 1)
        for frame in tx:
            out.append((now, frame))
            for answer in answer_frame(sims, frame, now + venue_latency_ns):
                order += 1
                heapq.heappush(heap, (now + venue_latency_ns, ANSWER, order, answer))
        bursts += 1
        if progress is not None and bursts % PROGRESS_EVERY == 0:
            progress(done, len(records))
        deadline = core.next_deadline()
        if deadline <= horizon and deadline not in timers_set:
            timers_set.add(deadline)
            order += 1
            heapq.heappush(heap, (deadline, TIMER, order, None))
    if progress is not None:
        progress(done, len(records))
    return out


def answer_frame(sims: dict[str, VenueSim], frame: bytes, at_ns: int) -> list[bytes]:
    """The venue simulator's answers to a frame the core sent (none if the
    frame is not for a simulated venue)."""
    udp = _frame_udp(frame)
    sim = sims.get(udp[0]) if udp else None
    return sim.handle_frame(frame, at_ns) if sim is not None else []


def _compare_outputs(got: list[tuple[int, bytes]], expected: list[tuple[int, bytes]]) -> None:
    for i, (g, e) in enumerate(zip(got, expected, strict=False)):
        if g != e:
            raise VerifyError(f"the DPDK run and the reference model differ at output frame {i}:"
                              f"\n core  {g[0]} {g[1].hex()}\n model {e[0]} {e[1].hex()}")
    if len(got) != len(expected):
        raise VerifyError(f"the DPDK run sent {len(got)} frames, the reference model "
                          f"{len(expected)}")


def tsc_hz() -> float:
    """TSC ticks per second, measured over ~20 ms against the monotonic
    clock."""
    c0, t0 = lib.oms_cycles(), time.perf_counter_ns()
    time.sleep(0.02)
    c1, t1 = lib.oms_cycles(), time.perf_counter_ns()
    return (c1 - c0) * 1e9 / max(1, t1 - t0)


def _describe_difference(now, burst, got, expected) -> str:
    lines = [f"core and reference model differ in the burst at {now} ns "
             f"({len(burst)} frames in): core sent {len(got)} frames, model {len(expected)}"]
    for i in range(max(len(got), len(expected))):
        g = got[i] if i < len(got) else b""
        e = expected[i] if i < len(expected) else b""
        if g != e:
            lines.append(f"first difference in frame {i}:\n core  {g.hex()}\n model {e.hex()}")
            break
    return "\n".join(lines)


ROUTE_WHY = {1: "chosen", 2: "worse", 3: "excluded", 4: "not_allowed", 5: "no_feed",
             6: "stale", 7: "halted", 8: "down", 9: "unresponsive", 10: "no_quote",
             11: "through_limit", 12: "split"}


def route_line(d: dict) -> dict:
    """A decision record (docs/semantics.md "Smart order routing") for the
    report: what each venue showed, and why it was or was not chosen."""
    side = "buy" if d["side"] == 1 else "sell"
    chosen = next((s for s in d["seen"] if s["why"] == 1), None)
    if chosen is None:
        reason = "no venue: " + ", ".join(f"{s['venue']} {ROUTE_WHY[s['why']]}"
                                          for s in d["seen"])
    elif d.get("by_model"):
        reason = (f"expected value: fill probability {chosen['p_fill'] / (1 << 30):.4f} at "
                  f"{chosen['px'] / 1e8:.4f} x {chosen['qty']}, latency cost "
                  f"{chosen['cost'] / 1e8:.4f} (fill model {d['model_id']:016x})")
    else:
        reason = (f"best {'ask' if side == 'buy' else 'bid'} {chosen['px'] / 1e8:.4f} x "
                  f"{chosen['qty']}, latency cost {chosen['cost'] / 1e8:.4f} "
                  "(by price, then size, then latency)")
    if d.get("children"):
        parts = sorted((s for s in d["seen"] if s["alloc"]), key=lambda s: s["why"] != 1)
        reason += (f"; split into {d['children']} (best shows {chosen['qty']} of {d['qty']}): "
                   + ", ".join(f"{s['alloc']} to {s['venue']} at {s['px'] / 1e8:.4f} "
                               f"(shows {s['qty']})" for s in parts))
    line = {"ts_ns": d["now_ns"], "to": "router", "msg": "RouteDecision",
            "session": d["session_id"], "cl_ord_id": d["cl_ord_id"], "account": d["account"],
            "symbol": d["symbol"], "side": side, "qty": d["qty"], "price": d["price"],
            "venue": d["venue"] or None, "reason": reason,
            "seen": [{"venue": s["venue"], "px": s["px"], "qty": s["qty"], "cost": s["cost"],
                      "rtt_ewma_ns": s["rtt_ewma_ns"], "verdict": ROUTE_WHY[s["why"]],
                      **({"sent": s["alloc"]} if d.get("children") else {})}
                     for s in d["seen"]]}
    if d.get("model_id"):  # a generation with a fill model: its id and probabilities
        line["model_id"] = f"{d['model_id']:016x}"
        line["by_model"] = bool(d["by_model"])
        for s, out in zip(d["seen"], line["seen"], strict=True):
            out["p_fill"] = None if s["p_fill"] < 0 else round(s["p_fill"] / (1 << 30), 6)
    return line


def report_lines(cfg: Config, out: list[tuple[int, bytes]], stats: dict,
                 decisions: list[dict] | None = None) -> list[dict]:
    """One decoded line per outbound message, and one per routing decision
    (before the messages sent at its time), then the summary line."""
    from pcaps.layers import decode_sp, decode_venue

    lines: list[dict] = []
    by_type: Counter = Counter()
    venue_by_ip = {v.ip: v for v in cfg.venues}
    for ts, frame in out:
        udp = _frame_udp(frame)
        if udp is None:
            continue
        dst, sport, _dport, payload = udp
        if sport in (cfg.appliance.venue_port, cfg.appliance.request_port):
            v = venue_by_ip.get(dst)
            for msg in decode_venue(payload, direction="to_venue"):
                if sport == cfg.appliance.request_port:
                    msg = {**msg, "msg": "RetransmitRequest" if msg.get("count") else "Hello"}
                by_type[f"venue.{msg.get('msg') or msg.get('type')}"] += 1
                lines.append({"ts_ns": ts, "to": "venue", "venue": v.id if v else None,
                              **_public(msg)})
        else:
            for msg in decode_sp(payload):
                by_type[f"strategy.{msg['type']}"] += 1
                lines.append({"ts_ns": ts, "to": "strategy", **_public(msg)})
    if decisions:
        # sorted is stable: a decision goes before the messages of its time
        lines = sorted([route_line(d) for d in decisions] + lines, key=lambda x: x["ts_ns"])
    summary = {
        "frames_out": len(out),
        "messages_by_type": dict(sorted(by_type.items())),
        "rejects_business": {_reject_name(k): v for k, v in stats["reject_business"].items()},
        "rejects_system": {_reject_name(k + 1000): v for k, v in stats["reject_system"].items()},
        "drops": stats["drop"],
        "events": stats["event"],
    }
    lines.append({"summary": summary})
    return lines


_REJECT_NAMES = {getattr(lib, n): n[len("SP_REJ_"):] for n in dir(lib) if n.startswith("SP_REJ_")
                 and n != "SP_REJ_BUSINESS_MAX"}


def _reject_name(code: int) -> str:
    return _REJECT_NAMES.get(code, str(code))


def _public(msg: dict) -> dict:
    return {k: v for k, v in msg.items() if not k.startswith("reserved")}


def write_report(path: str | Path, lines: list[dict]) -> None:
    with open(path, "w") as f:
        for line in lines:
            f.write(json.dumps(line, sort_keys=True, default=str) + "\n")
