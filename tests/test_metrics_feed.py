"""The market-data feed's counters in the exporter: a gap the test makes is
one oms_feed_gaps_total, its missing messages oms_feed_gap_messages_total,
the packet ahead of the gap a drop by reason, the book stale until the
re-requested messages fill it; the exposition passes promtool."""
from __future__ import annotations

import shutil
import subprocess

import pytest
import wire
from feed_wire import multicast, retransmission
from prometheus_client.parser import text_string_to_metric_families
from test_feed import S, feed, opening

from control.metrics import DataPlaneSource, exposition, make_registry
from dataplane.core import Core
from pcaps.itch_layers import itch_message as M
from pcaps.itch_layers import mold_packet as P

GAP = 2


def scrape(source) -> dict:
    text = exposition(make_registry(source)).decode()
    if shutil.which("promtool"):
        r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 0, r.stdout + r.stderr
    else:
        pytest.skip("promtool (Debian's prometheus package) is not installed")
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_a_gap_is_counted_and_the_feed_stale_until_filled():
    cfg = wire.config()
    f = feed(max_request=10)
    source = DataPlaneSource(cfg, [Core(cfg)], feeds=[f])
    v = (("venue", "1"),)
    f.process([multicast(P(S, 1, opening()))], 1)
    before = scrape(source)
    assert before[("oms_feed_gaps_total", v)] == 0
    assert before[("oms_feed_stale", v)] == 0
    # messages 5-9 lost: 10 arrives ahead, a gap of 5
    lost = [M("A", locate=7, ref=i, side="B", shares=i, price="10.00") for i in range(1, 6)]
    f.process([multicast(P(S, 10, [M("A", locate=7, ref=9, side="S", shares=1,
                                     price="11.00")]))], 2)
    during = scrape(source)
    assert during[("oms_feed_gaps_total", v)] == 1
    assert during[("oms_feed_gap_messages_total", v)] == 5
    assert during[("oms_feed_drops_total", (("reason", "ahead"), *v))] == 1
    assert during[("oms_feed_stale", v)] == GAP
    f.process([retransmission(P(S, 5, lost + [M("A", locate=7, ref=9, side="S", shares=1,
                                                  price="11.00")]))], 3)
    after = scrape(source)
    assert after[("oms_feed_stale", v)] == 0
    assert after[("oms_feed_events_total", (("event", "recoveries"), *v))] == 1
    assert after[("oms_feed_book_orders", v)] == 6
