"""The core's observability counters (cdefs/stages.h) agree with its own
counters, with the stage histograms on: every handled order is timed once
in every stage, rejects by type add up to rejects by reason, routed orders
to Enter Orders sent; junk traffic changes none of that; and timing never
changes a byte of output.  (Also run under ASan and UBSan,
tests/test_sanitizers.py.)"""
from __future__ import annotations

import pytest
import test_fuzz_junk as junk
import wire

from control.metrics import APP_TYPES, REJ_SLOTS, STAGES, SYSTEM_SLOT
from dataplane.core import lib
from dataplane.replay import Replayer


def replay(records, timing: bool, orders: int = 4096):
    rp = Replayer(wire.config(orders=orders), venue_sim=True, timings=timing)
    out, res = rp.run(records)
    return rp, out, res


def check_counts(rp, res) -> int:
    core = rp.core._core
    counts = lib.oms_core_order_counts(core)
    handled = sum(counts.handled[t] for t in range(len(APP_TYPES)))
    assert counts.stage_unrecorded == 0
    for stage in STAGES.values():
        assert lib.oms_core_stage(core, stage).count == handled
        h = lib.oms_core_stage(core, stage)
        assert sum(h.bucket[b] for b in range(lib.oms_lat_buckets())) == handled
    # rejects by type, summed, are the core's rejects by reason
    for slot in range(REJ_SLOTS):
        by_type = sum(counts.rejected[t][slot] for t in range(len(APP_TYPES)))
        stats = lib.oms_core_stats(core)
        by_reason = (stats.reject_business[slot] if slot < SYSTEM_SLOT
                     else stats.reject_system[slot - SYSTEM_SLOT])
        assert by_type == by_reason, slot
    # each handled message was accepted or rejected by the appliance (a
    # venue's reject comes later, for an accepted one)
    venue_rejected = lib.SP_REJ_VENUE_REJECTED
    for t in range(len(APP_TYPES)):
        core_rejects = sum(counts.rejected[t][s] for s in range(REJ_SLOTS)
                           if s != venue_rejected)
        assert counts.accepted[t] + core_rejects == counts.handled[t], APP_TYPES[t]
    assert counts.accepted[0] == lib.oms_core_stats(core).venue_out[ord("O")]
    # routed: every Enter Order, by venue
    stats = lib.oms_core_stats(core)
    routed = sum(lib.oms_core_venue_routed(core, i) for i in range(len(wire.VENUES)))
    assert routed == stats.venue_out[ord("O")]
    # each venue answer to a pending request timed at most once
    rtt = sum(lib.oms_core_venue_rtt(core, i).count for i in range(len(wire.VENUES)))
    assert 0 < rtt <= stats.event[lib.OMS_EV_VENUE_MSGS_IN]
    assert lib.oms_core_venue_rtt(core, len(wire.VENUES)) == rp.core.ffi.NULL
    return handled


@pytest.mark.parametrize("seed", [1, 2])
def test_stage_counts_agree_with_the_core_and_timing_changes_no_byte(seed):
    clean, junked, _ = junk.streams(seed)
    rp_off, out_off, _ = replay(junked, timing=False)
    rp_on, out_on, res_on = replay(junked, timing=True)
    assert out_on == out_off
    handled = check_counts(rp_on, res_on)
    # junk changes nothing about the orders handled
    rp_clean, _, res_clean = replay(clean, timing=True)
    assert check_counts(rp_clean, res_clean) == handled
    # with timing off only the counters count, no histogram
    off = rp_off.core._core
    assert sum(lib.oms_core_order_counts(off).handled[t] for t in range(len(APP_TYPES))) == \
        handled
    assert all(lib.oms_core_stage(off, s).count == 0 for s in STAGES.values())


def test_system_rejects_are_counted_by_type_in_their_own_slots():
    """A table of 8 orders fills: NewOrders rejected SYS_TABLE_FULL (1000),
    counted apart from every business reason."""
    _, junked, _ = junk.streams(3)
    rp, _, res = replay(junked, timing=True, orders=8)
    assert res.stats["reject_system"].get(0, 0) > 0  # SYS_TABLE_FULL
    check_counts(rp, res)
    counts = lib.oms_core_order_counts(rp.core._core)
    assert counts.rejected[0][SYSTEM_SLOT] == res.stats["reject_system"][0]
