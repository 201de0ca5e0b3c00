"""The seeded reorder knob of the strategy driver and the venue simulator
(dataplane/reorder.py): it only permutes what they send (nothing lost,
nothing added), a held datagram goes out right after the next one or after
the hold time, the same seed gives the same permutation, and it counts.
The venue simulator's use of it: tests/test_venue_sim.py."""
from __future__ import annotations

import pytest
import wire

from dataplane.reorder import Reorder
from dataplane.strategy_driver import StrategyDriver

MS = 1_000_000
T0 = 1_700_000_000_000_000_000


def test_held_item_goes_out_after_the_next_one():
    stats: dict = {}
    r = Reorder(stats, 1.0, 1, hold_ns=5 * MS)
    assert r.apply(["a"], T0) == [] and r.holding
    assert r.apply(["b", "c"], T0) == ["b", "a"]  # c is held now (probability 1)
    assert r.due(T0 + 4 * MS) == []
    assert r.due(T0 + 5 * MS) == ["c"]
    assert stats == {"reordered": 1, "reorder_timeouts": 1}
    assert r.apply(["d"], T0) == [] and r.flush() == ["d"] and r.flush() == []


def test_probability_zero_changes_nothing_and_bad_arguments_are_refused():
    stats: dict = {}
    r = Reorder(stats, 0.0, 1, hold_ns=MS)
    assert r.apply(list(range(100)), T0) == list(range(100))
    assert stats["reordered"] == 0
    with pytest.raises(ValueError):
        Reorder({}, 1.5, 1, hold_ns=MS)
    with pytest.raises(ValueError):
        Reorder({}, 0.5, 1, hold_ns=0)


def _driver_run(reorder):
    d = StrategyDriver(wire.SESSIONS[0], wire.APPLIANCE, reorder=reorder)
    out = d.login(T0)
    for i in range(300):
        out += d.new_order(T0 + i, 1000 + i, "AAPL", 150_0000_0000, 100)
    out += d.tick(T0 + 10 * d.heartbeat_ns)  # a late tick lets a held one go
    out += d.flush_reorder()
    return out, d.stats


def test_driver_permutes_its_frames_deterministically():
    plain, _ = _driver_run(None)
    shuffled, stats = _driver_run((0.1, 5))
    assert shuffled != plain
    # the same frames apart from the tick's Heartbeat (its timestamp is that
    # of the tick either way)
    assert sorted(shuffled) == sorted(plain)
    assert stats["reordered"] > 10
    again, stats2 = _driver_run((0.1, 5))
    assert again == shuffled and stats2 == stats
    other, _ = _driver_run((0.1, 6))
    assert other != shuffled
