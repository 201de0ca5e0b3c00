"""Port start-up as a network engineer sees it: the MTU and RX queues the
configuration asks for are applied (or refused with the reason), RSS is on
only where the device can hash, and the link's state is read and reported.
Each DPDK use runs in its own subprocess (EAL once per process)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import netns
import pytest

from control.config import ConfigError, load_config_text
from dataplane.serve import describe_port

PROBE = """
import json, sys
from types import SimpleNamespace
from dataplane import dpdk
from dataplane.serve import start_ports
vdevs, mtu, queues = sys.argv[1].split(";"), int(sys.argv[2]), int(sys.argv[3])
args = dpdk.default_eal_args()
for v in vdevs:
    args += ["--vdev", v]
dpdk.eal_init(args)
ext = dpdk.extension()
pool = ext.lib.oms_pool_create(b"p", 2047, 0)
ports = [ext.lib.oms_port_by_name(v.split(",")[0].encode()) for v in vdevs]
try:
    info = start_ports(ext.ffi, ext.lib, ports, pool,
                       SimpleNamespace(mtu=mtu, rx_queues=queues, link_wait_ms=200))
except dpdk.DpdkError as e:
    print(json.dumps({"error": str(e)}))
else:
    print(json.dumps({str(k): v for k, v in info.items()}))
"""


def probe(vdevs: str, mtu: int, queues: int, ns: str | None = None) -> tuple[dict, str]:
    pytest.importorskip("dataplane._oms_dpdk")
    cmd = [sys.executable, "-c", PROBE, vdevs, str(mtu), str(queues)]
    if ns:
        cmd = ["ip", "netns", "exec", ns, *cmd]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                       cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1]), r.stderr


def test_queues_rss_and_link_reported():
    info, log = probe("net_null0;net_ring0", 1500, 3)
    null, ring = info["0"], info["1"]
    assert null["driver"] == "net_null" and null["rx_queues"] == 3 and null["rss_hf"] != 0
    assert null["link_up"] == 1 and null["mtu"] == 1500
    # a ring port cannot hash: its queues are configured, RSS is not
    assert ring["rx_queues"] == 3 and ring["rss_hf"] == 0
    assert "port 0 (net_null): link up 10 Gbps full-duplex, MTU 1500, 3 RX queues, RSS on" in log
    assert "RSS unavailable: every flow on queue 0" in log


def test_mtu_that_does_not_fit_an_mbuf_is_refused():
    info, _ = probe("net_null0", 9000, 1)
    assert "MTU 9000 does not fit an mbuf of 2048 bytes" in info["error"]
    assert "dataplane.mtu" in info["error"]


def test_more_queues_than_the_device_has_are_capped_and_said():
    d = {"driver": "x", "mtu": 1500, "mtu_settable": 1, "rx_queues": 1, "max_rx_queues": 1,
         "rss_hf": 0, "link_up": 0, "link_speed_mbps": 0, "link_full_duplex": 0}
    assert describe_port(d, 4) == ("link down, MTU 1500, 1 RX queue (of 4 asked: the device "
                                   "has 1), RSS off")


why_not = netns.can_make_namespaces()


@pytest.mark.skipif(why_not is not None, reason=why_not or "")
def test_mtu_reaches_the_kernel_interface_behind_af_packet():
    ns = f"mtu{os.getpid() % 100000}"
    netns.run("ip", "netns", "del", ns, check=False)
    try:
        netns.run("ip", "netns", "add", ns)
        netns.run("ip", "-n", ns, "link", "add", "pa", "type", "veth", "peer", "name", "pb")
        for dev in ("pa", "pb"):
            netns.run("ip", "-n", ns, "link", "set", dev, "up")
        info, log = probe("net_af_packet0,iface=pa", 1400, 1, ns=ns)
        assert info["0"]["mtu"] == 1400 and info["0"]["mtu_settable"] == 1, log
        assert info["0"]["link_up"] == 1
        shown = netns.run("ip", "-n", ns, "-j", "link", "show", "pa").stdout
        assert json.loads(shown)[0]["mtu"] == 1400
    finally:
        netns.run("ip", "netns", "del", ns, check=False)


def test_config_keys_and_their_limits():
    base = open(os.path.join(os.path.dirname(__file__), "..", "control",
                             "default_config.yaml")).read()
    cfg = load_config_text(base + "\n", "x.yaml")
    assert (cfg.dataplane.mtu, cfg.dataplane.rx_queues, cfg.dataplane.link_wait_ms) == (1500, 1, 0)
    assert cfg.dataplane.tx_wait_us == 1000
    assert load_config_text(base + "\ndataplane:\n  tx_wait_us: 250\n",
                            "x.yaml").dataplane.tx_wait_us == 250
    with pytest.raises(ConfigError) as e:
        load_config_text(base + "\ndataplane:\n  tx_wait_us: 0\n", "x.yaml")
    assert "dataplane.tx_wait_us" in str(e.value)
    with pytest.raises(ConfigError) as e:
        load_config_text(base + "\ndataplane:\n  rx_queues: 9\n", "x.yaml")
    assert "dataplane.rx_queues" in str(e.value)
    with pytest.raises(ConfigError) as e:
        load_config_text(base + "\ndataplane:\n  rx_queues: 2\n  threading: {mode: sharded, "
                         "workers: [{sessions: [1], venues: [1]}]}\n", "x.yaml")
    assert "only run-to-completion mode polls several RX queues" in str(e.value)
