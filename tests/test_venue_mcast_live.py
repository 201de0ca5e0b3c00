"""The venue simulator publishing its market data by multicast between
network namespaces (issue 6 item 6): ``tests/live_peers.py venue --mcast``
in the venue's namespace, a listener joined to the group in the
appliance's; the C feed handler fed what arrived rebuilds the book the
venue reports at its end, the sequence has no holes, and the venue's
request server answers a re-request over the link."""
from __future__ import annotations

import json

import netns
import pytest
import wire
from live_run import PEERS, PY, LiveRun, eventually

from dataplane.feed import Feed
from pcaps.itch_layers import MoldHeader

GROUP, PORT, MD_REQ = "239.1.1.1", 26400, 26401


def test_venue_publishes_multicast_between_namespaces(tmp_path):
    why = netns.can_make_namespaces()
    if why:
        pytest.skip(why)
    app, ven = wire.APPLIANCE, wire.VENUES[0]
    with netns.three_hosts() as h, LiveRun(h) as run:
        netns.run("ip", "-n", h.oms, "addr", "add", f"{app.ip}/16", "dev", h.oms_venue_if)
        lout, vout = tmp_path / "listen.json", tmp_path / "venue.json"
        ready = tmp_path / "joined"
        listener = run.spawn(h.oms, PY, PEERS, "listen", "--group", GROUP, "--port", str(PORT),
                             "--iface-ip", app.ip, "--duration", "20", "--out", str(lout),
                             "--ready", str(ready), "--request", "1:5",
                             "--request-to", f"{ven.ip}:{MD_REQ}", capture=False)
        eventually(lambda: ready.exists() or listener.poll() is not None, 15, step=0.02)
        assert ready.exists(), "the listener did not join"
        venue = run.spawn(h.venue, PY, PEERS, "venue", "--duration", "3", "--out", str(vout),
                          "--mcast", f"{GROUP}:{PORT}", "--md-request-port", str(MD_REQ),
                          "--profile", "busy", capture=False)
        assert venue.wait(timeout=20) == 0
        assert listener.wait(timeout=25) == 0
    got = json.loads(lout.read_text())
    md = json.loads(vout.read_text())["market_data"]
    packets = [bytes.fromhex(p["payload"]) for p in got["packets"]]
    assert {p["from"] for p in got["packets"]} == {ven.ip}
    assert md["stats"]["messages"]["A"] > 50 and md["stats"]["messages"]["E"] > 10
    seq = 1
    for p in packets:  # every message, in order: the link loses nothing
        h = MoldHeader(p)
        assert h.seq == seq
        seq += h.count if h.count != 0xFFFF else 0
    assert seq == md["next_seq"]
    f = Feed(mac=app.mac, ip=app.ip, port=26500, group=GROUP, group_port=PORT)
    for i, sym in enumerate(wire.SYMBOLS):
        f.subscribe(sym, i)
    for p in packets:
        f.process_packet(p, 0)
    for i, sym in enumerate(wire.SYMBOLS):
        t = f.tob(i)
        assert t["stale"] == 0
        assert [t["bid_px"] // 10_000, t["bid_qty"], t["ask_px"] // 10_000,
                t["ask_qty"]] == md["top"][sym]
    (answer,) = got["answers"]  # messages 1..5, again, from the venue's request server
    a = bytes.fromhex(answer["payload"])
    assert answer["from"] == ven.ip and MoldHeader(a).seq == 1 and MoldHeader(a).count == 5
    assert a[20:] == packets[0][20:20 + len(a) - 20]
