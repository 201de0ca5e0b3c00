"""Test hosts in network namespaces: a strategy host, the appliance host and
a venue host, joined by veth pairs (strategy <-> oms, venue <-> oms).  The
appliance's two veth ends carry no IP address: DPDK owns them.  Whatever a
test makes here is removed afterwards, even when the test fails."""
from __future__ import annotations

import contextlib
import os
import subprocess
from dataclasses import dataclass

import wire


def run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=check, capture_output=True, text=True)


def can_make_namespaces() -> str | None:
    """None when this host can, else why not."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    if subprocess.run(["ip", "-V"], capture_output=True).returncode != 0:
        return "needs iproute2"
    return None


@dataclass
class Hosts:
    prefix: str

    @property
    def strategy(self) -> str:
        return f"{self.prefix}st"

    @property
    def oms(self) -> str:
        return f"{self.prefix}om"

    @property
    def venue(self) -> str:
        return f"{self.prefix}ve"

    # the appliance's ends of the two links
    @property
    def oms_strategy_if(self) -> str:
        return f"{self.prefix}s1"

    @property
    def oms_venue_if(self) -> str:
        return f"{self.prefix}v1"

    def exec(self, ns: str, *cmd: str) -> list[str]:
        return ["ip", "netns", "exec", ns, *cmd]


def _teardown(h: Hosts) -> None:
    for ns in (h.strategy, h.oms, h.venue):
        run("ip", "netns", "del", ns, check=False)


@contextlib.contextmanager
def three_hosts(prefix: str | None = None):
    """strategy (10.10.1.1, session 1's MAC), oms (DPDK's), venue
    (10.10.2.1, venue 1's MAC), addresses as in tests/wire.py."""
    h = Hosts(prefix or f"o{os.getpid() % 100000}")
    _teardown(h)
    s0, s1, v0, v1 = (f"{h.prefix}s0", h.oms_strategy_if, f"{h.prefix}v0", h.oms_venue_if)
    sess, ven, app = wire.SESSIONS[0], wire.VENUES[0], wire.APPLIANCE
    try:
        for ns in (h.strategy, h.oms, h.venue):
            run("ip", "netns", "add", ns)
            run("ip", "-n", ns, "link", "set", "lo", "up")
        run("ip", "link", "add", s0, "type", "veth", "peer", "name", s1)
        run("ip", "link", "add", v0, "type", "veth", "peer", "name", v1)
        run("ip", "link", "set", s0, "netns", h.strategy)
        run("ip", "link", "set", s1, "netns", h.oms)
        run("ip", "link", "set", v0, "netns", h.venue)
        run("ip", "link", "set", v1, "netns", h.oms)
        for ns, dev, mac in ((h.strategy, s0, sess.mac), (h.venue, v0, ven.mac),
                             (h.oms, s1, app.mac), (h.oms, v1, app.mac)):
            run("ip", "-n", ns, "link", "set", dev, "address", mac)
        run("ip", "-n", h.strategy, "addr", "add", f"{sess.ip}/16", "dev", s0)
        run("ip", "-n", h.venue, "addr", "add", f"{ven.ip}/16", "dev", v0)
        for ns, dev in ((h.strategy, s0), (h.oms, s1), (h.venue, v0), (h.oms, v1)):
            run("ip", "-n", ns, "link", "set", dev, "up")
        # the kernel would leave UDP checksums to a NIC that veth does not
        # have; the appliance drops frames with bad checksums
        for ns, dev in ((h.strategy, s0), (h.venue, v0)):
            run(*h.exec(ns, "ethtool", "-K", dev, "tx", "off"), check=False)
        yield h
    finally:
        _teardown(h)
