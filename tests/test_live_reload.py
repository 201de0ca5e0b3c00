"""Live reload under sustained traffic (docs/semantics.md "Configuration
generations"): the appliance on DPDK ports in namespaces, a strategy sending
a steady stream of orders, and in the middle of it `omsctl reload` with new
limits that flip the verdict for a known subset of the orders.  Every order
is answered, nothing is lost at the ports, both verdicts occur, and every
order is judged wholly by the old or wholly by the new limits: in the
session's order, a prefix by the old ones and the rest by the new ones.
Bad files - by `omsctl reload`, by a change of the watched file and by
SIGHUP - are refused with their errors and change nothing."""
from __future__ import annotations

import json
import signal
import subprocess
import time

import netns
import pytest
import test_live_e2e as live
from live_run import OMSCTL, PY, ROOT, STRATEGY_HEAD, LiveRun, report_of, stop, wait_ready

why_not = netns.can_make_namespaces()
pytestmark = pytest.mark.skipif(why_not is not None, reason=why_not or "")

ORDERS = 4000
RATE = 1500  # orders per second, one per datagram

# The strategy: ORDERS orders at RATE, classes by cl_ord_id % 4, answers
# handled as they come; touches `third` after a third of them, then prints
# each order's verdict: "sent" (not rejected) or the reject reason.
STRATEGY = STRATEGY_HEAD + """
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
CLASSES = [("AAPL", 600), ("MSFT", 300), ("MSFT", 600), ("AAPL", 100)]
out(drv.login(time.time_ns()))
drain(0.5)
t0 = time.monotonic()
sent = 0
for i in range({orders}):
    while time.monotonic() < t0 + i / {rate}:
        drain(0.0005)
    sym, qty = CLASSES[i % 4]
    out(drv.new_order(time.time_ns(), 10000 + i, sym, 100_0000_0000, qty, account=1))
    if i == {orders} // 3:
        open({third!r}, "w").close()
    out(drv.tick(time.time_ns()))
def answered(o):
    return o.rejects or o.state != "PendingNew"
end = time.monotonic() + 20
while time.monotonic() < end:
    drain(0.01)
    out(drv.tick(time.time_ns()))
    if all(answered(o) for o in drv.orders.values()):
        break
print(json.dumps({{"orders": {{c: (o.rejects[0][1] if o.rejects else "sent")
                               for c, o in drv.orders.items()}},
                  "unanswered": [c for c, o in drv.orders.items() if not answered(o)],
                  "stats": drv.stats}}, default=str))
"""

def reasons():
    from dataplane.reference_model import REJ_QTY_LIMIT, REJ_SYMBOL_RESTRICTED
    return REJ_QTY_LIMIT, REJ_SYMBOL_RESTRICTED


def limits_yaml(max_order_qty: int, msft_restricted: bool) -> str:
    return f"""
instruments: [{{symbol: AAPL}}, {{symbol: MSFT, restricted: {str(msft_restricted).lower()}}},
              {{symbol: SPY}}]
accounts:
  - {{id: 1, max_order_qty: {max_order_qty}, max_order_notional: 1000000000,
     max_open_orders: 100000, credit_limit: 90000000000,
     max_position: {{AAPL: 1000000000, MSFT: 1000000000, SPY: 1000000000}}}}
"""


def config(h: netns.Hosts, max_order_qty: int, msft_restricted: bool,
           driver: str = "af_packet") -> str:
    base = live.config_text(h, driver)
    head, _, rest = base.partition("instruments:")
    tail = rest[rest.index("dataplane:"):]
    return head + limits_yaml(max_order_qty, msft_restricted) + tail


def verdicts(cls: int, old: bool) -> object:
    """What the old (qty <= 1000, MSFT restricted) and the new (qty <= 500,
    MSFT free) limits say of each class of order."""
    qty_limit, restricted = reasons()
    table = {0: ("sent", qty_limit), 1: (restricted, "sent"), 2: (restricted, qty_limit),
             3: ("sent", "sent")}
    return table[cls][0 if old else 1]


def ctl(sock: str, *args: str) -> tuple[int, dict]:
    r = subprocess.run([OMSCTL, *args, "--socket", sock], capture_output=True, text=True,
                       timeout=30)
    return r.returncode, json.loads(r.stdout)


@pytest.mark.parametrize("driver", ["af_packet", "afxdp"])
def test_reload_under_sustained_traffic(tmp_path, driver):
    sock = str(tmp_path / "control.sock")
    third = tmp_path / "third"
    with netns.three_hosts() as h, LiveRun(h) as run:
        cfg = tmp_path / "live.yaml"
        cfg.write_text(config(h, 1000, True, driver))
        new_cfg = tmp_path / "new.yaml"
        new_cfg.write_text(config(h, 500, False, driver))
        bad_cfg = tmp_path / "bad.yaml"
        bad_cfg.write_text(config(h, 5_000_000, False, driver).replace("symbol: SPY",
                                                                       "symbol: spy"))
        ready = tmp_path / "ready.json"
        app = run.appliance(cfg, ready, duration=90,
                            args=("--control-socket", sock, *live.backend_args(driver)))
        venue = run.venue(tmp_path / "venue.json", duration=90)
        wait_ready(app, ready)
        # a bad file is refused with every error; nothing changes
        rc, bad = ctl(sock, "reload", "--config", str(bad_cfg))
        assert rc == 1 and not bad["ok"]
        assert any("max_order_qty" in e and "out of range" in e for e in bad["errors"])
        assert any("instruments[2].symbol" in e for e in bad["errors"])
        assert all(e.startswith(f"{bad_cfg}:") for e in bad["errors"])
        strat = run.spawn(h.strategy, PY, "-c", STRATEGY.format(
            root=str(ROOT), orders=ORDERS, rate=RATE, third=str(third)))
        deadline = time.monotonic() + 30
        while not third.exists():
            assert strat.poll() is None, strat.communicate()[1][-3000:]
            assert time.monotonic() < deadline
            time.sleep(0.01)
        rc, ok = ctl(sock, "reload", "--config", str(new_cfg))
        assert rc == 0 and ok == {"ok": True, "file": str(new_cfg), "generation": 2}, ok
        s_out, s_err = strat.communicate(timeout=60)
        assert strat.returncode == 0, s_err[-3000:]
        # the watched file turns bad, then SIGHUP reloads it: both refused
        cfg.write_text(bad_cfg.read_text())
        time.sleep(0.5)
        app.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        out, err = stop(app)
        stop(venue, check=False)
    result = json.loads(s_out.strip().splitlines()[-1])
    report = report_of(out)

    # every order answered; nothing lost at the ports or in the session
    assert result["unanswered"] == []
    got = {int(c): v for c, v in result["orders"].items()}
    assert sorted(got) == list(range(10000, 10000 + ORDERS))
    for p in report["ports"].values():
        if driver == "afxdp":  # the socket's and the kernel's own counters
            assert p["tx_full"] == p["k_rx_dropped"] == p["k_rx_ring_full"] == 0, p
            assert p["k_rx_fill_ring_empty_descs"] == 0, p
        else:
            assert p["imissed"] == 0, p
    core = report["core"]
    assert core["event"].get("SP_SEQ_GAPS", 0) == 0
    assert core["sp_in"][str(0x10)] == ORDERS  # every NewOrder reached the core
    assert set(core["drop"]) <= {"NOT_IPV4"}  # the kernel's IPv6 chatter on the veths
    assert core["reject_system"] == {}
    assert report["worker"].get("tx_dropped", 0) == 0

    # wholly old, then wholly new: one switch point k in the session's order,
    # before which every verdict is the old limits' and from which the new's
    seq = [got[10000 + i] for i in range(ORDERS)]
    first_not_old = next(j for j in range(ORDERS) if seq[j] != verdicts(j % 4, True))
    last_not_new = max(j for j in range(ORDERS) if seq[j] != verdicts(j % 4, False))
    assert last_not_new < first_not_old, (last_not_new, first_not_old)
    assert ORDERS // 3 < first_not_old < ORDERS  # the reload landed mid-stream
    # both verdicts for every class that flips
    for cls in (0, 1, 2):
        assert {seq[j] for j in range(ORDERS) if j % 4 == cls} == \
            {verdicts(cls, True), verdicts(cls, False)}
    assert report["generation"] == 2, (report["reloads"], err)
    assert report["reloads"] == {"ok": 1, "refused": 3}
    assert core["event"]["CONFIG_SWAPS"] == 1
    assert "reload" in err and err.count('"ok": false') == 2
