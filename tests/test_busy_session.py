"""The busy session (pcaps/make_busy.py): 100,000 orders with modifies,
cancels, fills, duplicates and junk, generated, built, replayed through the
C core with the venue simulator and the reference model beside it, and
compared with the recorded SHA-256 sums.  Part of every test run (CI): it is
deliberately not marked slow or skipped; it takes a few minutes."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pcaps.builder import JUNK_KINDS
from pcaps.make_busy import JUNK_COUNTER

ROOT = Path(__file__).resolve().parent.parent


def test_busy_session_replays_verified_and_as_recorded(tmp_path):
    scenario = tmp_path / "busy.jsonl"
    r = subprocess.run([sys.executable, "-m", "pcaps.make_busy", str(scenario), "--check"],
                       cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-6000:]
    summary = json.loads((tmp_path / "busy.summary.json").read_text())
    assert summary["problems"] == [] and summary["sha256_differs"] == []
    gen, replay = summary["scenario"], summary["replay"]
    counts, drops = gen["counts"], replay["drops"]

    assert counts["new"] == 100_000
    assert replay["verified_against_reference_model"] is True
    assert replay["rejects_system"] == {}
    # junk of every kind was sent and landed in its counter
    for kind in JUNK_KINDS:
        assert counts[f"junk.{kind}"] > 0, kind
    for counter, sent in gen["expected_drops"].items():
        assert sent > 0
        assert sum(drops.get(c, 0) for c in counter.split("+")) == sent, counter
    assert set(JUNK_COUNTER.values()) <= set(gen["expected_drops"])
    assert drops["SP_BAD_LENGTH"] > 0  # truncated inside the body too
    # duplicates were counted, and no sequence gap was ever made
    assert drops["SP_DUPLICATE_SEQ"] == counts["duplicate"] > 0
    assert replay["events"].get("SP_SEQ_GAPS", 0) == 0
    assert drops.get("SP_OUT_OF_ORDER", 0) == 0
    assert replay["events"]["SP_MSGS_IN"] == counts["sequenced"]
    # a busy session: everything happened, many times
    by_type = replay["messages_by_type"]
    for t in ("strategy.Accepted", "strategy.Fill", "strategy.Replaced", "strategy.Canceled",
              "strategy.Rejected", "venue.EnterOrder", "venue.ReplaceOrder",
              "venue.CancelOrder"):
        assert by_type.get(t, 0) > 1000, t
    for reason in ("BAD_QTY", "UNKNOWN_SYMBOL", "PRICE_UNREPRESENTABLE", "LOCATE_REQUIRED"):
        assert replay["rejects_business"].get(reason, 0) > 500, reason
    assert replay["events"].get("ORDERS_EVICTED", 0) > 0  # the table's slots were reused
