"""Traffic steering: the rte_flow rules are a pure function of the
configuration, and on virtual devices (no rte_flow) the software path is
chosen."""
from __future__ import annotations

import subprocess
import sys

import pytest
import wire

from dataplane.steering import probe, steering_rules


def test_rules_for_each_traffic_class():
    rules = steering_rules(wire.config())
    assert [(r.traffic, r.pattern, r.actions) for r in rules] == [
        ("orders", (("eth",), ("ipv4", {"dst": "10.10.0.1"}), ("udp", {"dst_port": 9000})),
         (("queue", {"index": 0}),)),
        ("venue", (("eth",), ("ipv4", {"dst": "10.10.0.1"}), ("udp", {"dst_port": 9100})),
         (("queue", {"index": 1}),)),
        ("venue_requests", (("eth",), ("ipv4", {"dst": "10.10.0.1"}),
                            ("udp", {"dst_port": 9101})),
         (("queue", {"index": 1}),)),
        ("market_data", (("eth",), ("ipv4", {"dst": "224.0.0.0", "dst_prefix": 4}), ("udp",)),
         (("queue", {"index": 2}),)),
    ]


def test_queues_can_be_chosen():
    rules = steering_rules(wire.config(), {"venue": 3, "venue_requests": 3})
    assert [r.actions[0][1]["index"] for r in rules] == [0, 3, 3, 2]


PROBE = """
import sys
sys.path.insert(0, "tests")
import wire
from dataplane.dpdk import RingPortCore
from dataplane.steering import probe, steering_rules, to_c
rc = RingPortCore(wire.config())
path, why = probe(rc.lib, rc.ffi, rc.port, steering_rules(wire.config()))
c = to_c(steering_rules(wire.config())[3], rc.ffi)
print(path, hex(c.dst_ip), hex(c.dst_ip_mask), c.udp_dst_port, c.queue)
rc.close()
"""


def test_virtual_device_falls_back_to_software():
    pytest.importorskip("dataplane._oms_dpdk")
    r = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split() == ["software", "0xe0000000", "0xf0000000", "0", "2"]


def test_too_few_queues_choose_software_before_asking_the_port():
    # the port is not asked at all: no lib is needed to know it cannot be
    path, why = probe(None, None, 0, steering_rules(wire.config()), rx_queues=1)
    assert path == "software"
    assert why == "the rules need 3 RX queues and the port has 1 (dataplane.rx_queues: 3)"
