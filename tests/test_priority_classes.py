"""Typed mode's execution by priority class (cdefs/priority.c,
docs/semantics.md "Priority classes"): within a burst, Cancel, MassCancel
and PRIORITY-flagged NewOrders run before queued normal messages; a Cancel
or MassCancel takes back a queued NewOrder it names, which then never reaches
the venue; everything else is what run-to-completion gives."""
from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest
import wire
from test_transcripts import decode_out
from wire import cancel, login, mass_cancel, modify, new_order, ouch_accepted

from control.cli import run_replay
from control.config import (
    DEFAULT_CONFIG_PATH,
    ConfigError,
    Threading,
    load_config_text,
    load_default_config,
)
from dataplane.core import Core
from pcaps.builder import build_pcap

ROOT = Path(__file__).resolve().parent.parent
T0 = 1_638_247_400_000_000_000
PRIORITY = 0x01  # SP_FLAG_PRIORITY


def typed(cfg):
    return replace(cfg, dataplane=replace(cfg.dataplane, threading=Threading(mode="typed")))


class Strategy:
    """Session 1 logged in on a core; bursts of messages at 1 ms steps."""

    def __init__(self, mode: str):
        cfg = wire.config()
        self.core = Core(typed(cfg) if mode == "typed" else cfg)
        self.now = T0
        self.seq = 1
        self.vseq = 1
        self.refs: dict[int, int] = {}  # ClOrdID -> UserRefNum
        self.sent: set[int] = set()
        self.burst([wire.from_strategy(1, login(1, 1))])

    def burst(self, frames):
        self.now += 1_000_000
        out = [decode_out(f) for f in self.core.process_burst(frames, self.now)]
        out = [o for o in out if o["type"] not in ("Heartbeat", "Request")]
        for cid in self.sent:
            o = self.core.order(1, cid)
            if o:
                self.refs[cid] = o["ref"]
        by_ref = {r: c for c, r in self.refs.items()}
        for o in out:
            if o["to"] == "venue" and o["type"] in "OX":
                o["cid"] = by_ref.get(o["ref"])
        return out

    def msgs(self, *builders):
        """One datagram per message, all in one burst, numbered in order."""
        frames = []
        for build, *args in builders:
            if build in (new_order, modify, cancel):
                self.sent.add(args[0])
            frames.append(wire.from_strategy(1, build(1, self.seq, *args[:-1], **args[-1])))
            self.seq += 1
        return self.burst(frames)

    def open_order(self, cid, **kw):
        assert [o["type"] for o in self.msgs((new_order, cid, kw))] == ["O"]
        v = wire.VENUES[0]
        out = self.burst([wire.from_venue(1, wire.ufo(v.session, self.vseq,
                                                      ouch_accepted(self.refs[cid])))])
        self.vseq += 1
        assert [o["type"] for o in out] == ["Accepted"]


def summary(out):
    """(where, type, the order's ClOrdID) of each output, venue Cancels by
    the order they name."""
    return [(o["to"], o["type"], o.get("cl_ord_id") or o.get("cid")) for o in out]


def test_a_cancel_behind_normal_orders_reaches_the_venue_first():
    rtc, typ = Strategy("rtc"), Strategy("typed")
    for s in (rtc, typ):
        s.open_order(1)
    burst = [(new_order, 100 + i, {}) for i in range(20)] + [(cancel, 1, {})]
    a, b = rtc.msgs(*burst), typ.msgs(*burst)
    cancel_ref = typ.refs[1]
    # run to completion: the 20 orders, then the Cancel; typed: the Cancel
    # first, then the same 20 orders in their order
    assert [o["type"] for o in a] == ["O"] * 20 + ["X"]
    assert [o["type"] for o in b] == ["X"] + ["O"] * 20
    assert b[0]["ref"] == cancel_ref
    assert [o["cid"] for o in b[1:]] == list(range(100, 120))
    assert typ.core.order(1, 1)["state"] == rtc.core.order(1, 1)["state"]


def test_a_cancel_of_a_queued_new_order_takes_it_back():
    s = Strategy("typed")
    out = s.msgs((new_order, 5, {}), (new_order, 6, {}), (cancel, 5, {}))
    # order 5 never reaches the venue; the strategy gets its Canceled, all
    # of it, and order 6 goes on
    assert summary(out) == [("sp", "Canceled", 5), ("venue", "O", 6)]
    c = out[0]
    assert (c["canceled_qty"], c["leaves_qty"], c["reason"]) == (100, 0, 1)  # USER
    assert s.core.order(1, 5) is None
    assert s.core.stats()["event"]["QUEUED_CANCELS"] == 1
    # it never existed for the venue: a later Modify names an unknown order
    out = s.msgs((modify, 5, 150_2500_0000, 200, {}))
    assert summary(out) == [("sp", "Rejected", 5)] and out[0]["reason"] == 11  # UNKNOWN_ORDER


def test_a_cancel_names_the_tables_order_before_a_queued_duplicate():
    s = Strategy("typed")
    s.open_order(7)
    # a second NewOrder 7 (a duplicate) waits; the Cancel is for the open one
    out = s.msgs((new_order, 7, {}), (cancel, 7, {}))
    assert summary(out) == [("venue", "X", 7), ("sp", "Rejected", 7)]
    assert out[1]["reason"] == 1  # DUPLICATE_ID, as in run-to-completion
    assert s.core.stats()["event"].get("QUEUED_CANCELS", 0) == 0


def test_a_mass_cancel_takes_back_the_queued_orders_of_its_account():
    s = Strategy("typed")
    s.open_order(1, account=1)
    out = s.msgs((new_order, 2, {"account": 1}), (new_order, 3, {"account": 2}),
                 (new_order, 4, {"account": 1}), (mass_cancel, 1, {}),
                 (new_order, 5, {"account": 1}))
    # the open order's venue Cancel, the queued ones of account 1 in their
    # order, then account 2's order and the one that came after the
    # MassCancel
    assert summary(out) == [("venue", "X", 1), ("sp", "Canceled", 2),
                            ("sp", "Canceled", 4), ("venue", "O", 3), ("venue", "O", 5)]


def test_a_priority_order_overtakes_queued_normal_ones_and_keeps_its_class_order():
    s = Strategy("typed")
    out = s.msgs(*[(new_order, 10 + i, {}) for i in range(5)],
                 (new_order, 20, {"flags": PRIORITY}), (new_order, 21, {"flags": PRIORITY}))
    assert [o["cid"] for o in out] == [20, 21, 10, 11, 12, 13, 14]


def test_a_modify_stays_behind_its_new_order():
    rtc, typ = Strategy("rtc"), Strategy("typed")
    burst = [(new_order, 30, {}), (modify, 30, 150_2600_0000, 100, {}),
             (new_order, 31, {"flags": PRIORITY}), (modify, 31, 150_2600_0000, 100, {})]
    # both Modifies are normal: each runs after its NewOrder (and is
    # ORDER_PENDING, as in run-to-completion); only the priority order moves
    a, b = rtc.msgs(*burst), typ.msgs(*burst)
    assert summary(b) == [("venue", "O", 31), ("venue", "O", 30), ("sp", "Rejected", 30),
                          ("sp", "Rejected", 31)]
    assert sorted(summary(a)) == sorted(summary(b))


def test_the_session_layer_still_runs_in_arrival_order():
    rtc, typ = Strategy("rtc"), Strategy("typed")
    outs = []
    for s in (rtc, typ):
        s.sent |= {40, 41}
        frames = [wire.from_strategy(1, new_order(1, 1, 40)),
                  wire.from_strategy(1, new_order(1, 1, 41)),   # duplicate seq: dropped
                  wire.from_strategy(1, cancel(1, 3, 40)),       # gap: not handled, asked again
                  wire.from_strategy(1, cancel(1, 2, 40))]
        outs.append(s.burst(frames))
        st = s.core.stats()["drop"]
        assert (st["SP_DUPLICATE_SEQ"], st["SP_OUT_OF_ORDER"]) == (1, 1)
    a, b = outs
    # the gap's RetransmitRequest ends the run: order 40 runs before it, so
    # the Cancel finds it in the table, as in run to completion
    assert summary(a) == summary(b) == [("venue", "O", 40), ("sp", "RetransmitRequest", None),
                                        ("venue", "X", 40)]


def class_of(msg: bytes) -> int:
    t, flags = msg[1], msg[39] if msg[1] == 0x10 else 0
    return 0 if t in (0x12, 0x13) or flags & PRIORITY else 1


@pytest.mark.parametrize("seed", range(5))
def test_typed_equals_rtc_on_the_burst_sorted_by_class(seed):
    """The definition of what may differ: a burst in typed mode gives
    exactly what run-to-completion gives for the same messages stably sorted
    by class, as long as no Cancel or MassCancel names a NewOrder of the
    same burst (that case is the take-back above)."""
    rng = random.Random(seed)
    rtc, typ = Strategy("rtc"), Strategy("typed")
    for s in (rtc, typ):
        for cid in range(1, 6):
            s.open_order(cid, account=1 + cid % 2)
    cid = 100
    for _ in range(10):
        msgs = []
        for _ in range(rng.randint(1, 12)):
            k = rng.random()
            if k < 0.4:
                # account 1: the MassCancels below are account 2's
                msgs.append(lambda seq, c=cid: new_order(1, seq, c, account=1,
                                                         flags=PRIORITY * (c % 3 == 0)))
                cid += 1
            elif k < 0.6:
                c, tick = rng.randint(1, 5), rng.randint(0, 9)
                msgs.append(lambda seq, c=c, tick=tick: modify(
                    1, seq, c, 150_2600_0000 + tick * 10**6, 100))
            elif k < 0.9:
                c = rng.randint(1, 5)
                msgs.append(lambda seq, c=c: cancel(1, seq, c))
            else:
                msgs.append(lambda seq: mass_cancel(1, seq, 2))
        built = [m(typ.seq + i) for i, m in enumerate(msgs)]
        typ.seq += len(built)
        out_t = typ.burst([wire.from_strategy(1, m) for m in built])
        # run to completion gets the same messages in class order,
        # renumbered so its session layer takes them all
        ordered = sorted(built, key=class_of)
        renum = [m[:8] + (rtc.seq + i).to_bytes(8, "little") + m[16:]
                 for i, m in enumerate(ordered)]
        rtc.seq += len(renum)
        out_r = rtc.burst([wire.from_strategy(1, m) for m in renum])
        strip = [{k: v for k, v in o.items() if k != "seq"} for o in out_r]
        assert [{k: v for k, v in o.items() if k != "seq"} for o in out_t] == strip


@pytest.mark.parametrize("scenario", ["session", "brief_example"])
def test_typed_replays_the_bundled_scenarios_as_rtc(tmp_path, scenario):
    """The bundled scenarios send one message per burst: there is nothing
    to reorder, so typed mode's output is run-to-completion's, byte for
    byte."""
    cfg = load_default_config()
    outs = []
    for mode, c in (("rtc", cfg), ("typed", typed(cfg))):
        d = tmp_path / mode
        d.mkdir()
        build_pcap(ROOT / f"pcaps/scenarios/{scenario}.jsonl", d / "orders.pcap", c)
        run_replay(d / "orders.pcap", d / "out.pcap", d / "report.jsonl", c, venue_sim=True,
                   verify=False)
        outs.append(((d / "out.pcap").read_bytes(), (d / "report.jsonl").read_bytes()))
    assert outs[0] == outs[1]


def test_the_loader_takes_typed_mode_without_workers():
    base = DEFAULT_CONFIG_PATH.read_text()
    cfg = load_config_text(base + "dataplane:\n  threading: {mode: typed}\n", "t.yaml")
    assert cfg.dataplane.threading.mode == "typed"
    with pytest.raises(ConfigError) as e:
        load_config_text(base + "dataplane:\n  threading:\n    mode: typed\n    workers:\n"
                         "      - {sessions: [1], venues: [1]}\n", "t.yaml")
    assert "only sharded mode has workers" in str(e.value)
    with pytest.raises(ConfigError) as e:
        load_config_text(base + "dataplane:\n  threading: {mode: fifo}\n", "t.yaml")
    assert "'fifo' is not rtc, sharded or typed" in str(e.value)
