"""Orders per second through the native AF_XDP backend on a veth, in the live
tests' set-up (tests/netns.py: strategy, oms and venue namespaces).

    .venv/bin/python bench/run_afxdp_bench.py            # full run, appended to results
    .venv/bin/python bench/run_afxdp_bench.py --orders 2000 --no-record

The strategy logs in, then sends N new orders (unique ids, all valid) over
ordinary kernel UDP as fast as one Python thread can, `--per-datagram`
orders in each datagram; the venue host only sinks what the appliance sends
(a bound socket nobody reads, so no ICMP comes back; its long timeout keeps
the venue up).  The appliance runs with 16,384 UMEM frames per interface,
so a burst from the sender fits its RX ring.  The appliance's own counters, read through its control
socket, say when the last Enter Order left: orders/s = N / (that time -
first send).  The kernel sender is the limit at one order per datagram;
with several per datagram the appliance's share shows more.  Reported, not
gated.  Needs root (namespaces)."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT), str(Path(__file__).resolve().parent)]
import netns  # noqa: E402
import wire  # noqa: E402
from run_core_bench import commit, machine  # noqa: E402

from control.ctl import request  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "afxdp_bench.jsonl"
OMSCTL = str(Path(sys.executable).parent / "omsctl")

SENDER = """
import json, socket, sys, time
sys.path[:0] = [{root!r}, {root!r} + "/tests"]
import wire
from dataplane.strategy_driver import StrategyDriver
sess, app = wire.SESSIONS[0], wire.APPLIANCE
drv = StrategyDriver(sess, app)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sess.ip, sess.port))
s.settimeout(5)
dst = (app.ip, app.strategy_port)
for f in drv.login(time.time_ns()):
    s.sendto(f[42:], dst)
s.recvfrom(65535)  # LoginAccepted
now = time.time_ns()
msgs = [f[42:] for i in range({n}) for f in drv.new_order(now, 1 + i, "AAPL", 150_0000_0000, 1)]
k = {per}
grams = [b"".join(msgs[i:i + k]) for i in range(0, len(msgs), k)]
sent = refused = 0
t0 = time.time()
for g in grams:
    try:
        s.sendto(g, dst)
        sent += 1
    except OSError:
        refused += 1
t1 = time.time()
print(json.dumps({{"t0": t0, "t1": t1, "datagrams": sent, "refused": refused}}))
"""

SINK = """
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
s.bind(({ip!r}, {port}))
time.sleep({seconds})
"""


def config_text(h: netns.Hosts, orders: int, idle_sleep_us: int) -> str:
    s, v, a = wire.SESSIONS[0], wire.VENUES[0], wire.APPLIANCE
    return f"""
appliance: {{mac: "{a.mac}", ip: {a.ip}, strategy_port: {a.strategy_port},
             venue_port: {a.venue_port}}}
tables: {{orders: {1 << max(16, (orders * 2 - 1).bit_length())}}}
sessions:
  - {{id: 1, ip: {s.ip}, port: {s.port}, mac: "{s.mac}", heartbeat_ms: 1000,
     timeout_ms: 600000}}
venues:
  - {{id: 1, name: NASDAQ, session: {v.session}, ip: {v.ip}, port: {v.port},
     mac: "{v.mac}", heartbeat_ms: 1000, timeout_ms: 600000}}
routing: {{default_venue: 1}}
instruments: [{{symbol: AAPL}}]
accounts:
  - {{id: 1, max_order_qty: 999999, max_order_notional: 1000000000,
     max_open_orders: {orders * 2}, credit_limit: 90000000000,
     max_position: {{AAPL: 1000000000}}}}
dataplane:
  afxdp: {{strategy_iface: {h.oms_strategy_if}, venue_iface: {h.oms_venue_if},
          frames: 16384}}
  idle_sleep_us: {idle_sleep_us}
"""


def run_once(orders: int, per: int, idle_sleep_us: int, work: Path) -> dict:
    ctl = str(work / "ctl.sock")
    with netns.three_hosts() as h:
        cfg = work / "bench.yaml"
        cfg.write_text(config_text(h, orders, idle_sleep_us))
        ready = work / "ready.json"
        ready.unlink(missing_ok=True)
        app = subprocess.Popen(h.exec(h.oms, OMSCTL, "run", "--backend", "afxdp", "--config",
                                      str(cfg), "--duration", "120", "--ready-file", str(ready),
                                      "--control-socket", ctl),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        v = wire.VENUES[0]
        sink = subprocess.Popen(h.exec(h.venue, sys.executable, "-c",
                                       SINK.format(ip=v.ip, port=v.port, seconds=100)))
        try:
            deadline = time.monotonic() + 20
            while not ready.exists():
                if app.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the appliance did not start: {app.communicate()[1]}")
                time.sleep(0.05)
            sender = subprocess.Popen(h.exec(h.strategy, sys.executable, "-c",
                                             SENDER.format(root=str(ROOT), n=orders, per=per)),
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            # the appliance's counters until every order has left for the venue
            # (or nothing moves for 2 s)
            last, last_change, out_at = -1, time.monotonic(), None
            while time.monotonic() - last_change < 2.0:
                st = request(ctl, {"cmd": "stats"})
                n = st["core"]["event"].get("VENUE_MSGS_OUT", 0)
                if n != last:
                    last, last_change = n, time.monotonic()
                    out_at = time.time()
                if n >= orders:
                    break
                time.sleep(0.01)
            s_out, s_err = sender.communicate(timeout=60)
            if sender.returncode != 0:
                raise SystemExit(f"sender failed: {s_err[-2000:]}")
            snd = json.loads(s_out.strip().splitlines()[-1])
            app.terminate()
            out, _ = app.communicate(timeout=30)
        finally:
            for p in (app, sink):
                if p.poll() is None:
                    p.kill()
                    p.wait()
    report = json.loads(out.strip().splitlines()[-1])
    core = report["core"]
    ports = report["ports"]
    elapsed = out_at - snd["t0"]
    return {
        "orders": orders, "per_datagram": per, "idle_sleep_us": idle_sleep_us,
        "datagrams": snd["datagrams"], "sender_refused": snd["refused"],
        "sender_orders_per_s": round(orders / (snd["t1"] - snd["t0"])),
        "orders_out": last, "orders_per_s": round(last / elapsed),
        "accepted": core["event"].get("ORDERS_ACCEPTED_INTERNAL", 0),
        "reject_system": core["reject_system"], "drops": core["drop"],
        "xsk": {name: {k: p[k] for k in ("rx_frames", "tx_frames", "tx_full", "tx_kicks",
                                         "k_rx_dropped", "k_rx_ring_full",
                                         "k_rx_fill_ring_empty_descs")}
                for name, p in ports.items()},
        # what the kernel dropped in front of the appliance: its XDP
        # socket's RX ring and fill ring both exhausted while it was busy
        "kernel_rx_dropped": sum(p["k_rx_dropped"] for p in ports.values()),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, default=50_000)
    ap.add_argument("--per-datagram", type=int, action="append",
                    help="orders per datagram (repeatable); default 1 and 16")
    ap.add_argument("--idle-sleep-us", type=int, default=0,
                    help="the poll thread's idle back-off; 0: busy poll (default)")
    ap.add_argument("--no-record", action="store_true")
    args = ap.parse_args(argv)
    if why := netns.can_make_namespaces():
        raise SystemExit(why)
    work = ROOT / "bench" / "work" / "afxdp"
    work.mkdir(parents=True, exist_ok=True)
    runs = []
    for per in args.per_datagram or [1, 16]:
        r = run_once(args.orders, per, args.idle_sleep_us, work)
        runs.append(r)
        print(f"afxdp veth copy mode, {per} order(s)/datagram: {r['orders_per_s']:,} orders/s "
              f"through the appliance ({r['orders_out']:,}/{r['orders']:,} out), sender "
              f"{r['sender_orders_per_s']:,} orders/s, datagrams dropped by the kernel at the "
              f"XDP socket {r['kernel_rx_dropped']:,}, system rejects "
              f"{sum(r['reject_system'].values())}, core drops {r['drops'] or 0}")
    if not args.no_record:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        with RESULTS.open("a") as f:
            f.write(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                "commit": commit(), "machine": machine(), "runs": runs})
                    + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
