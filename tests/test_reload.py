"""Configuration generations and routing (docs/semantics.md "Configuration
generations", NewOrder check 8), against both the C core and the reference
model: the routing table picks the most specific rule; a reload changes
verdicts from the next burst on and keeps the accounting; what a reload
removes is absent; capacity since start is enforced; what only a restart can
change is refused; the file watch notices a rewrite."""
from __future__ import annotations

import os
from dataclasses import replace

import pytest
import test_risk as R
from test_risk import REASON, Harness, verdict
from wire import ouch_canceled

from control.config import (
    DEFAULT_CONFIG_PATH,
    ConfigError,
    Route,
    Tables,
    Throttle,
    load_config_text,
)
from control.reload import FileWatch, fixed_changes
from dataplane.core import Core, CoreError

IMPLS = R.IMPLS
UNKNOWN_SYMBOL = 6  # docs/protocol.md, an order check's reason


def cfg_with(**kw):
    return replace(R.config(), **kw)


def venue_of(out) -> int:
    assert len(out) == 1 and out[0]["to"] == "venue", out
    return out[0]["venue"]


@pytest.mark.parametrize("impl", IMPLS)
def test_the_most_specific_route_wins(impl):
    routes = (Route(venue=2, account=6), Route(venue=2, symbol="NOREF"),
              Route(venue=1, account=6, symbol="MSFT"))
    h = Harness(impl, cfg_with(routes=routes))
    assert venue_of(h.new(1, account=1)) == 1            # default
    assert venue_of(h.new(2, account=6)) == 2            # account 6
    assert venue_of(h.new(3, account=1, symbol="NOREF")) == 2   # symbol
    assert venue_of(h.new(4, account=6, symbol="MSFT")) == 1    # (account, symbol)
    assert venue_of(h.new(5, account=6, venue=1)) == 1   # a named venue is DMA
    # MSFT trades on venue 1 only: a route elsewhere is judged like a choice
    h.core.reload(cfg_with(routes=(Route(venue=2, symbol="MSFT"),)))
    assert verdict(h.new(6, account=6, symbol="MSFT")) == REASON["VENUE_NOT_ALLOWED"]


@pytest.mark.parametrize("impl", IMPLS)
def test_reload_changes_verdicts_and_keeps_the_accounting(impl):
    h = Harness(impl)
    assert verdict(h.new(1, account=6, qty=1000)) == "sent"
    assert verdict(h.new(2, account=6, qty=500)) == "sent"
    before = h.core.account(6)
    assert before["open_orders"] == 2
    tighter = tuple(replace(a, max_order_qty=600, max_open_orders=2) if a.id == 6 else a
                    for a in R.ACCOUNTS)
    assert h.core.reload(cfg_with(accounts=tighter)) == 2
    assert h.core.generation() == 2
    assert h.core.account(6) == before
    assert verdict(h.new(3, account=6, qty=100)) == REASON["OPEN_ORDERS_LIMIT"]
    h.accept(2)
    assert verdict(h.app(1, R.modify, 2, R.REF, 700)) == REASON["QTY_LIMIT"]
    # the operator's kill survives a reload; the configuration's follows it
    h.core.set_kill(6, True)
    h.core.reload(cfg_with(accounts=tighter))
    assert verdict(h.new(4, account=6)) == REASON["KILL_SWITCH"]
    h.core.set_kill(6, False)
    assert verdict(h.new(5, account=3)) == REASON["KILL_SWITCH"]  # kill: true
    h.core.kill(0, False, h.now)  # releasing every operator switch
    assert verdict(h.new(6, account=3)) == REASON["KILL_SWITCH"]
    freed = tuple(replace(a, kill=False) for a in R.ACCOUNTS)
    h.core.reload(cfg_with(accounts=freed))
    assert verdict(h.new(7, account=3)) == "sent"
    assert h.core.stats()["event"]["CONFIG_SWAPS"] == 3


@pytest.mark.parametrize("impl", IMPLS)
def test_what_a_reload_removes_is_absent_until_it_comes_back(impl):
    h = Harness(impl)
    assert verdict(h.new(1, account=6, symbol="MSFT")) == "sent"
    h.accept(1)
    without = cfg_with(
        accounts=tuple(replace(a, max_position=tuple(p for p in a.max_position
                                                     if p[0] != "NOREF"))
                       for a in R.ACCOUNTS if a.id != 6),
        instruments=tuple(i for i in R.INSTRUMENTS if i.symbol != "NOREF"))
    h.core.reload(without)
    assert h.core.account(6) is None
    assert verdict(h.new(2, account=6)) == REASON["UNKNOWN_ACCOUNT"]
    assert verdict(h.new(3, account=1, symbol="NOREF")) == UNKNOWN_SYMBOL
    # its live order: no modify, but cancels and venue answers go on
    assert verdict(h.app(1, R.modify, 1, R.REF, 50)) == REASON["UNKNOWN_ACCOUNT"]
    out = h.app(1, R.cancel, 1)
    assert out[0]["to"] == "venue" and out[0]["type"] == "X"
    h.venue(ouch_canceled(h.refs[1], 100))
    h.core.reload(R.config())
    assert h.core.account(6) == {"open_orders": 0, "open_notional": 0}
    assert verdict(h.new(4, account=6)) == "sent"


@pytest.mark.parametrize("impl", IMPLS)
def test_a_reload_beyond_the_tables_since_start_is_refused(impl):
    base = cfg_with(tables=Tables(orders=1024, tx_frames=8192, max_accounts=6))
    h = Harness(impl, base)
    more = replace(R.ACCOUNTS[5], id=77)
    with pytest.raises((CoreError, ValueError)):
        h.core.reload(replace(base, accounts=R.ACCOUNTS[:5] + (more,)))
    assert h.core.generation() == 1
    assert verdict(h.new(1, account=6)) == "sent"  # the running generation stays
    assert verdict(h.new(2, account=77)) == REASON["UNKNOWN_ACCOUNT"]


@pytest.mark.parametrize("impl", IMPLS)
def test_a_tighter_throttle_applies_to_a_full_bucket(impl):
    h = Harness(impl)
    slow = tuple(replace(s, throttle=Throttle(per_second=1, burst=1)) if s.id == 1 else s
                 for s in R.SESSIONS)
    h.core.reload(cfg_with(sessions=slow))
    assert verdict(h.new(1, account=6)) == "sent"
    assert verdict(h.new(2, account=6)) == REASON["THROTTLED"]


def test_only_a_restart_changes_what_is_fixed_at_start():
    cfg = R.config()
    assert fixed_changes(cfg, cfg_with(routes=(Route(venue=2, account=1),))) == []
    s0 = replace(cfg.sessions[0], port=9999)
    s1 = replace(cfg.sessions[1], throttle=Throttle(5, 5))
    changes = fixed_changes(cfg, replace(cfg, sessions=(s0, s1) + cfg.sessions[2:],
                                         venues=cfg.venues[:1]))
    assert changes == ["venues: changed; only a restart applies it",
                       "sessions: session 1 port changed; only a restart applies it"]


def test_the_core_refuses_a_generation_built_for_another_core():
    a, b = Core(R.config()), Core(cfg_with(tables=Tables(max_accounts=7)))
    gen = b.build_generation(b.cfg)
    with pytest.raises(CoreError):
        a.publish(gen)
    assert a.generation() == 1


def test_file_watch_notices_a_rewrite(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("a: 1\n")
    w = FileWatch(str(p))
    assert not w.changed()
    p.write_text("a: 22\n")
    assert w.changed() and not w.changed()
    os.replace(tmp_path / "c.yaml", tmp_path / "old.yaml")
    assert not w.changed()  # briefly missing: no change yet
    (tmp_path / "c.yaml").write_text("a: 333\n")
    assert w.changed()


def test_routes_in_yaml_name_file_line_and_key():
    base = DEFAULT_CONFIG_PATH.read_text()
    good = base + "routes:\n  - {account: 1, venue: 2}\n  - {symbol: AAPL, venue: 1}\n"
    cfg = load_config_text(good, "r.yaml")
    assert cfg.routes == (Route(venue=2, account=1), Route(venue=1, symbol="AAPL"))
    bad = base + ("routes:\n  - {account: 1, venue: 7}\n  - {venue: 1}\n"
                  "  - {symbol: ZZZ, venue: 1}\n")
    with pytest.raises(ConfigError) as e:
        load_config_text(bad, "r.yaml")
    lines = str(e.value).splitlines()
    n = base.count("\n")
    assert [ln.split(": ")[1] for ln in lines] == ["routes[0].venue", "routes[1]",
                                                    "routes[2].symbol"]
    assert [int(ln.split(":")[1]) for ln in lines] == [n + 2, n + 3, n + 4]
