"""IGMPv3 from cdefs/igmp.c against a real IGMPv3 implementation: a Linux
bridge with IGMP snooping and a querier (IGMP version 3) in a namespace
made for the test.  The bridge learns the appliance's membership from its
report (`bridge mdb show` lists the group on its port), keeps it past the
membership interval only while the appliance answers its queries, and
drops it after a leave."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest
from live_run import Steered, eventually
from netns import can_make_namespaces, run

ROOT = Path(__file__).resolve().parent.parent
GROUP = "239.1.1.1"
MEMBERSHIP_S = 2.5  # mcast_membership_interval 250 (centiseconds)


@pytest.fixture
def bridge():
    why = can_make_namespaces()
    if why:
        pytest.skip(why)
    ns = f"fi{os.getpid() % 100000}"
    port, host = f"{ns}a", f"{ns}b"
    run("ip", "netns", "del", ns, check=False)
    try:
        run("ip", "netns", "add", ns)
        run("ip", "-n", ns, "link", "add", "br0", "type", "bridge", "mcast_snooping", "1",
            "mcast_querier", "1", "mcast_igmp_version", "3", "mcast_query_interval", "100",
            "mcast_query_response_interval", "50", "mcast_membership_interval", "250",
            "mcast_last_member_interval", "10", "mcast_last_member_count", "1",
            "mcast_startup_query_count", "1")
        run("ip", "-n", ns, "link", "add", port, "type", "veth", "peer", "name", host)
        run("ip", "-n", ns, "link", "set", port, "master", "br0")
        for dev in ("lo", "br0", port, host):
            run("ip", "-n", ns, "link", "set", dev, "up")
        run("ip", "-n", ns, "addr", "add", "10.0.0.254/24", "dev", "br0")
        yield ns, port, host
    finally:
        run("ip", "netns", "del", ns, check=False)


def igmp_host(ns: str, iface: str) -> Steered:
    """tests/igmp_host.py on `iface` in `ns`, steered line by line."""
    return Steered(["ip", "netns", "exec", ns, sys.executable,
                    str(ROOT / "tests" / "igmp_host.py"), iface, "10.0.0.1"],
                   capture_stderr=False)


def members(ns: str, port: str) -> bool:
    out = run("bridge", "-n", ns, "mdb", "show").stdout
    return any(f"port {port} grp {GROUP}" in line for line in out.splitlines())


def test_bridge_learns_keeps_and_drops_the_membership(bridge):
    ns, port, host = bridge
    h = igmp_host(ns, host)
    try:
        # without answers to its queries the bridge forgets the member
        assert h.cmd("answer off")["ok"]
        assert h.cmd(f"join {GROUP}")["rc"] == 0
        assert eventually(lambda: members(ns, port), 3), "the report was not learned"
        assert eventually(lambda: not members(ns, port), MEMBERSHIP_S + 2), \
            "the membership outlived its interval without answers"
        # answering, it stays past the membership interval
        assert h.cmd(f"leave {GROUP}")["rc"] == 0
        assert h.cmd("answer on")["ok"]
        assert h.cmd(f"join {GROUP}")["rc"] == 0
        assert eventually(lambda: members(ns, port), 3)
        end = time.monotonic() + MEMBERSHIP_S + 1
        while time.monotonic() < end:
            assert members(ns, port), "membership lost while answering queries"
            time.sleep(0.1)
        stats = h.cmd("stats")
        assert stats["counters"]["GENERAL_QUERIES"] >= 2, stats
        # a leave (CHANGE_TO_INCLUDE {}) removes it
        assert h.cmd(f"leave {GROUP}")["rc"] == 0
        assert eventually(lambda: not members(ns, port), 2), "the leave was not heard"
    finally:
        h.close()


def test_bridge_learns_a_source_specific_membership(bridge):
    ns, port, host = bridge
    h = igmp_host(ns, host)
    try:
        assert h.cmd(f"join {GROUP} 10.0.0.7")["rc"] == 0  # ALLOW_NEW_SOURCES {S}

        def has_source() -> bool:
            out = run("bridge", "-n", ns, "-d", "mdb", "show").stdout
            return any(f"port {port} grp {GROUP} src 10.0.0.7" in line
                       for line in out.splitlines())
        assert eventually(has_source, 3), run("bridge", "-n", ns, "-d", "mdb", "show").stdout
        assert h.cmd(f"leave {GROUP} 10.0.0.7")["rc"] == 0  # BLOCK_OLD_SOURCES {S}
        assert eventually(lambda: not has_source(), 2), "the block was not heard"
    finally:
        h.close()
