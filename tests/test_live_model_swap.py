"""A fill-model swap under load (issue 9, "Done when": "a model swap under
load loses no packet and tags each decision with one model id"): the
appliance on DPDK ports (net_af_packet) in namespaces, a venue publishing
its AAPL book by multicast and answering orders, a strategy sending a steady
stream of limit orders that name no venue, so that the smart router scores
every one with the fill model; in the middle of the stream `omsctl reload`
names another model file.  Every order is answered, nothing is lost at the
ports or in the core, every order has one routing decision scored by a
model, and in the session's order the decisions carry the old model's id,
then from one point on the new one's, each with the probability that
model gives."""
from __future__ import annotations

import json
import math
import subprocess
import time

import netns
import pytest
import test_live_e2e as live
from live_run import (
    OMSCTL,
    PEERS,
    PY,
    ROOT,
    STRATEGY_HEAD,
    LiveRun,
    report_of,
    stop,
    wait_for,
    wait_ready,
)
from test_fill_route import model

why_not = netns.can_make_namespaces()
pytestmark = pytest.mark.skipif(why_not is not None, reason=why_not or "")

# within the core's decision ring (OMS_ROUTE_RING, 1024): the report holds them all
ORDERS = 900
RATE = 300  # orders per second, one per datagram

# NASDAQ likely to fill under the old model, unlikely under the new: the two
# give each decision a different probability as well as a different id
OLD = model({"NASDAQ": 1.5})
NEW = model({"NASDAQ": -1.0})

MARKET = """
market_data:
  symbols: [AAPL]
  stale_after_ms: 60000
  subscriptions:
    - {venue: 1, group: 239.1.1.1, port: 26400}
"""

# The strategy: ORDERS buy limit orders for AAPL at the venue's ask, at RATE,
# answers handled as they come; touches `third` after a third of them, then
# prints each order's state.
STRATEGY = STRATEGY_HEAD + """
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
out(drv.login(time.time_ns()))
drain(0.5)
t0 = time.monotonic()
for i in range({orders}):
    while time.monotonic() < t0 + i / {rate}:
        drain(0.0005)
    out(drv.new_order(time.time_ns(), 10000 + i, "AAPL", 150_5000_0000, 100, account=1))
    if i == {orders} // 3:
        open({third!r}, "w").close()
    out(drv.tick(time.time_ns()))
def answered(o):
    return o.rejects or o.state != "PendingNew"
end = time.monotonic() + 15
while time.monotonic() < end:
    drain(0.01)
    out(drv.tick(time.time_ns()))
    if all(answered(o) for o in drv.orders.values()):
        break
print(json.dumps({{"orders": {{c: (o.rejects[0][1] if o.rejects else o.state)
                               for c, o in drv.orders.items()}},
                  "unanswered": [c for c, o in drv.orders.items() if not answered(o)]}},
                 default=str))
"""


def config(h: netns.Hosts, model_file: str) -> str:
    text = live.config_text(h, "af_packet").replace(
        "routing: {default_venue: 1}", f"routing: {{default_venue: sor, model: {model_file}}}")
    return text + MARKET


def ctl(sock: str, *args: str) -> tuple[int, dict]:
    r = subprocess.run([OMSCTL, *args, "--socket", sock], capture_output=True, text=True,
                       timeout=30)
    return r.returncode, json.loads(r.stdout)


def test_model_swap_under_load(tmp_path):
    sock = str(tmp_path / "control.sock")
    third = tmp_path / "third"
    (tmp_path / "old.json").write_text(json.dumps(OLD))
    (tmp_path / "new.json").write_text(json.dumps(NEW))
    old_id, new_id = OLD["model_id"], NEW["model_id"]
    assert old_id != new_id
    with netns.three_hosts() as h, LiveRun(h) as run:
        cfg = tmp_path / "live.yaml"
        cfg.write_text(config(h, "old.json"))
        new_cfg = tmp_path / "new.yaml"
        new_cfg.write_text(config(h, "new.json"))
        ready = tmp_path / "ready.json"
        app = run.appliance(cfg, ready, duration=60, args=("--control-socket", sock))
        venue = run.venue(tmp_path / "venue.json", duration=60)
        wait_ready(app, ready)
        # the book is published once, then heartbeats: after the appliance listens
        feed = run.spawn(h.venue, PY, PEERS, "feed", "--duration", "40", "--bid", "150.40",
                         "--ask", "150.50")
        time.sleep(1.0)  # the book in the appliance before the first order
        strat = run.spawn(h.strategy, PY, "-c", STRATEGY.format(
            root=str(ROOT), orders=ORDERS, rate=RATE, third=str(third)))
        wait_for(third.exists, "a third of the orders sent", (strat,))
        rc, ok = ctl(sock, "reload", "--config", str(new_cfg))
        assert rc == 0 and ok == {"ok": True, "file": str(new_cfg), "generation": 2}, ok
        s_out, s_err = strat.communicate(timeout=40)
        assert strat.returncode == 0, s_err[-3000:]
        out, err = stop(app)
        stop(venue, check=False)
        stop(feed, check=False)
    result = json.loads(s_out.strip().splitlines()[-1])
    report = report_of(out)

    # every order answered, none refused; nothing lost at the ports or in the core
    assert result["unanswered"] == []
    got = {int(c): v for c, v in result["orders"].items()}
    assert sorted(got) == list(range(10000, 10000 + ORDERS))
    assert all(v in ("New", "PartiallyFilled", "Filled") for v in got.values()), \
        {v for v in got.values()}
    for p in report["ports"].values():
        assert p["imissed"] == 0 and p["oerrors"] == 0, p
    core = report["core"]
    assert core["event"].get("SP_SEQ_GAPS", 0) == 0
    assert core["sp_in"][str(0x10)] == ORDERS  # every NewOrder reached the core
    assert core["event"]["ORDERS_ROUTED"] == ORDERS
    assert core["reject_system"] == {} and core["reject_business"] == {}
    # the kernel's IPv6 chatter on the veths, and IGMP (the core does not answer it)
    assert set(core["drop"]) <= {"NOT_IPV4", "NOT_UDP"}, core["drop"]
    assert report["worker"].get("tx_dropped", 0) == 0
    assert report["generation"] == 2 and core["event"]["CONFIG_SWAPS"] == 1

    # one decision per order, each scored by a model and naming it
    routes = {r["cl_ord_id"]: r for r in report["route_decisions"]}
    assert len(routes) == len(report["route_decisions"]) == ORDERS
    assert sorted(routes) == list(range(10000, 10000 + ORDERS))
    for r in routes.values():
        assert r["by_model"] is True and r["venue"] == 1, r
        assert r["model_id"] in (old_id, new_id), r
        # the probability is the one that model gives (venue alone: a fixed logit)
        logit = 1.5 if r["model_id"] == old_id else -1.0
        assert r["seen"][0]["p_fill"] == pytest.approx(1 / (1 + math.exp(-logit)), abs=1e-3)
    # old, then new: one switch point in the session's order, mid-stream
    ids = [routes[10000 + i]["model_id"] for i in range(ORDERS)]
    k = ids.index(new_id)
    assert ids == [old_id] * k + [new_id] * (ORDERS - k)
    assert ORDERS // 3 < k < ORDERS
