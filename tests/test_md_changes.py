"""The market-data dispatcher's IGMPv3 host and live subscription changes
(cdefs/md_dispatch.c, dataplane/md_reload.py), without a network: the
dispatcher driven the way a poll loop drives it.  Every report it makes is
compared byte for byte with scapy's; queries on the port are taken off the
burst and answered; changes posted by the control plane take effect at the
loop's next call - the group left or joined, the software filter following,
a removed feed's books stale - and what only a restart can change is
refused with the reason."""
from __future__ import annotations

import ipaddress
import threading
import time
from dataclasses import replace

from scapy.layers.igmp import IGMPv3_MQ, IGMPv3_MR, IGMPv3_MR_Group
from scapy.layers.inet import IP, IPOption_Router_Alert
from scapy.layers.l2 import Ether

from control.config import load_config_text
from control.reload import fixed_changes
from dataplane import frames, md_reload
from dataplane.core import Core
from dataplane.market_data import CMarketData
from pcaps.itch_layers import mold_packet

G1, G2, SRC = "239.1.1.1", "232.5.6.7", "10.10.2.2"
V1_IP = "10.10.2.1"
APP_MAC, APP_IP = "02:00:00:00:00:01", "10.10.0.1"
SEC = 1_000_000_000
MARKET = """
market_data:
  symbols: [AAPL, MSFT]
  subscriptions:
{subs}
"""
SUBS = {1: f"    - {{venue: 1, group: {G1}, port: 26400}}",
        2: f"    - {{venue: 2, group: {G2}, port: 26400, source_ip: {SRC}}}"}


def cfg_with(*venues: int, extra: str = ""):
    from control.config import DEFAULT_CONFIG_PATH
    text = DEFAULT_CONFIG_PATH.read_text() + MARKET.format(
        subs="\n".join(SUBS[v] for v in venues)) + extra
    return load_config_text(text, "md.yaml")


def report(*records: tuple[int, str, list[str]]) -> bytes:
    recs = [IGMPv3_MR_Group(rtype=t, maddr=g, srcaddrs=s) for t, g, s in records]
    return bytes(Ether(src=APP_MAC, dst="01:00:5e:00:00:16")
                 / IP(src=APP_IP, dst="224.0.0.22", ttl=1, tos=0xC0, id=0, flags="DF",
                      options=[IPOption_Router_Alert()])
                 / IGMPv3_MR(type=0x22, records=recs))


def query() -> bytes:
    return bytes(Ether(src="02:00:00:00:00:fe", dst="01:00:5e:00:00:01")
                 / IP(src="10.10.255.254", dst="224.0.0.1", ttl=1, tos=0xC0,
                      options=[IPOption_Router_Alert()])
                 / IGMPv3_MQ(type=0x11, mrcode=10, gaddr="0.0.0.0"))


def _ip(a: str) -> bytes:
    return ipaddress.IPv4Address(a).packed


def heartbeat(group: str, src: str, seq: int = 1) -> bytes:
    return frames.udp_frame(frames.mac("02:00:00:00:02:01"), frames.mac("01:00:5e:01:01:01"),
                            _ip(src), _ip(group), 26399, 26400,
                            mold_packet("SESSION001", seq, [], count=0))


class Loop:
    """The poll loop's part: call the dispatcher between (empty) bursts
    on a thread of its own while the control plane posts changes."""

    def __init__(self, md: CMarketData, now_ns: int):
        self.md, self.now, self.stop = md, now_ns, threading.Event()
        self.t = threading.Thread(target=self.run)

    def run(self) -> None:
        while not self.stop.is_set():
            self.md.split([], self.now)
            time.sleep(0.0005)

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.t.join(5)


def test_joins_at_the_first_call_answers_queries_and_follows_changes():
    cfg = cfg_with(1, 2)
    md = CMarketData(cfg)
    core = Core(cfg)
    md.attach(core)
    md.enable_igmp(seed=1)
    # a query before the loop runs is the core's business no more: taken off
    assert md.split([query()], 10) == []
    joins = md.igmp.take_tx()
    assert joins == [report((4, G1, [])), report((5, G2, [SRC]))]
    # the general query is answered with the current state, within 1 s
    answers = []
    for t in range(10, 10 + SEC, SEC // 100):
        md.split([], t)
        answers += [f for f in md.igmp.take_tx() if f not in joins]
    assert answers == [report((2, G1, []), (1, G2, [SRC]))]
    assert md.live_stats()["igmp"]["queries_answered"] == 1

    other = frames.udp_frame(frames.mac("02:00:00:00:02:01"), frames.mac(APP_MAC),
                             _ip(V1_IP), _ip(APP_IP), 9200, 9100,
                             b"x" * 20)
    assert md.split([heartbeat(G1, V1_IP), other], 2 * SEC) == [other]
    assert md.live_stats()["feeds"]["1"]["heartbeats"] == 1
    assert md.igmp.take_tx() == joins  # the robustness repeats, due at 1 s

    # venue 1's subscription removed: the group left at the loop's next
    # call, its frames filtered, its books stale (OMS_STALE_UNSUBSCRIBED)
    changes, errors = md_reload.plan(md, cfg_with(2), lambda v: None)
    assert errors == [] and [(c.op, c.venue) for c in changes] == [("remove", 1)]
    with Loop(md, 3 * SEC):
        assert md_reload.apply(md, changes) == []
    assert md.igmp.take_tx() == [report((3, G1, []))]
    assert md.feeds[1].stale() & 64
    assert md.split([heartbeat(G1, V1_IP, 2)], 4 * SEC) == []
    s = md.live_stats()
    assert s["filter_drops"] == {"NO_GROUP": 1} and s["feeds"]["1"]["heartbeats"] == 1
    assert s["subscriptions"] == {"2": f"{G2}:26400 from {SRC}"}
    assert md.igmp.take_tx() == [report((3, G1, []))]  # the leave's repeat, due at 4 s

    # back again: the same feed, joined again, no longer stale for it
    changes, errors = md_reload.plan(md, cfg, lambda v: core)
    assert errors == [] and [(c.op, c.venue) for c in changes] == [("add", 1)]
    assert changes[0].feed is md.feeds[1]
    with Loop(md, 5 * SEC):
        assert md_reload.apply(md, changes) == []
    assert md.igmp.take_tx() == [report((4, G1, []))]
    assert not md.feeds[1].stale() & 64
    md.split([heartbeat(G1, V1_IP, 1)], 6 * SEC)
    md.igmp.take_tx()  # the repeats
    assert md.live_stats()["feeds"]["1"]["heartbeats"] == 2
    assert md.live_stats()["changes"] == 2

    # stopping: every group left (venue 1's feed, added last, comes last)
    md.lib.oms_md_leave_all(md.ptr, 7 * SEC)
    assert md.igmp.take_tx() == [report((6, G2, [SRC])), report((3, G1, []))]


def test_a_new_symbol_is_subscribed_in_every_feed():
    cfg = cfg_with(1)
    md = CMarketData(cfg)
    new = replace(cfg, market_data=replace(cfg.market_data, symbols=("AAPL", "MSFT", "GOOG")))
    # GOOG is instrument 2, within the books the feeds were sized for? no:
    # sized for AAPL and MSFT (indices 0, 1)
    changes, errors = md_reload.plan(md, new, lambda v: None)
    assert errors and "GOOG would be book 2" in errors[0]
    md = CMarketData(replace(cfg, market_data=replace(cfg.market_data,
                                                      symbols=("AAPL", "GOOG"))))
    changes, errors = md_reload.plan(md, new, lambda v: None)
    assert errors == [] and [(c.op, c.symbol) for c in changes] == [("subscribe", "MSFT")]
    with Loop(md, SEC):
        assert md_reload.apply(md, changes) == []
    assert md.feeds[1].symbols == {"AAPL", "MSFT", "GOOG"}
    assert md.feeds[1].tob(1) is not None


def test_what_only_a_restart_changes_is_refused():
    cfg = cfg_with(1, 2)
    assert fixed_changes(cfg, cfg_with(2), live_market_data=True) == []
    # without live market data (journal recovery, say) any change is fixed
    assert fixed_changes(cfg, cfg_with(2)) == [
        "market_data: changed; only a restart applies it"]
    bigger = replace(cfg, market_data=replace(cfg.market_data, max_orders=1 << 10))
    assert fixed_changes(cfg, bigger, live_market_data=True) == [
        "market_data.max_orders: changed; only a restart applies it"]
    fewer = replace(cfg, market_data=replace(cfg.market_data, symbols=("AAPL",)))
    assert fixed_changes(cfg, fewer, live_market_data=True) == [
        "market_data.symbols: MSFT removed; the feeds keep its book until a restart"]
    none = replace(cfg, market_data=replace(cfg.market_data, subscriptions=()))
    assert fixed_changes(none, cfg, live_market_data=True) == [
        "market_data.subscriptions: the appliance started without market data; only a "
        "restart adds the first subscription"]
    # sharded, a venue whose core is not beside the market data
    md = CMarketData(cfg_with(1))
    _, errors = md_reload.plan(md, cfg, lambda v: None if v == 2 else object())
    assert errors == ["market_data.subscriptions: venue 2's orders are handled by a worker "
                      "that does not own the market data (sharded); only a restart gives it "
                      "a new feed"]
