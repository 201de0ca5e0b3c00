"""Test hosts for the hot standby: a strategy host, a venue host and three
appliance hosts (`a`, `b`, `c`: a primary, its backup, and a spare that
waits to back up the backup) that meet the peers on two Linux bridges in a
switch namespace - one towards the strategy, one towards the venue - as
appliances on one shared segment would.  Both appliances are configured
with the same service IP and MAC (tests/wire.py APPLIANCE): only the
primary transmits, and a backup that takes over moves the MAC to its own
bridge ports by its gratuitous ARP.  A third bridge of their own carries
the replication links (10.99.0.1-3, kernel TCP).
Whatever a test makes here is removed afterwards, even when it fails."""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import wire
from netns import run

APPLIANCES = ("a", "b", "c")
REPL_IP = {"a": "10.99.0.1", "b": "10.99.0.2", "c": "10.99.0.3"}
REPL_PORT = 7400


@dataclass
class StandbyHosts:
    prefix: str

    def ns(self, name: str) -> str:
        """st, ve, sw (the bridges), a, b, c"""
        return f"{self.prefix}{name}"

    @property
    def strategy(self) -> str:
        return self.ns("st")

    @property
    def venue(self) -> str:
        return self.ns("ve")

    @property
    def switch(self) -> str:
        return self.ns("sw")

    def app_if(self, who: str, side: str) -> str:
        """appliance `who`'s end towards the strategy (side s) or venue (v)"""
        return f"{self.prefix}{who}{side}1"

    def bridge_port(self, who: str, side: str) -> str:
        """the switch's end of that link: where its frames enter the bridge"""
        return f"{self.prefix}{who}{side}0"

    def exec(self, ns: str, *cmd: str) -> list[str]:
        return ["ip", "netns", "exec", ns, *cmd]


def _teardown(h: StandbyHosts) -> None:
    for name in ("st", "ve", "sw", *APPLIANCES):
        run("ip", "netns", "del", h.ns(name), check=False)


@contextlib.contextmanager
def standby_hosts(prefix: str | None = None):
    h = StandbyHosts(prefix or f"h{os.getpid() % 100000}")
    _teardown(h)
    sess, ven, app = wire.SESSIONS[0], wire.VENUES[0], wire.APPLIANCE
    sw = h.switch
    try:
        for name in ("st", "ve", "sw", *APPLIANCES):
            run("ip", "netns", "add", h.ns(name))
            run("ip", "-n", h.ns(name), "link", "set", "lo", "up")
            # no IPv6 autoconfiguration: the kernel's router solicitations
            # from an appliance's interface (its MAC is the service MAC)
            # would move the MAC to that bridge port
            for key in ("all", "default"):
                run(*h.exec(h.ns(name), "sysctl", "-qw",
                            f"net.ipv6.conf.{key}.disable_ipv6=1"))
        for br in ("brs", "brv", "brr"):
            # no STP, no forwarding delay: a port forwards once up
            run("ip", "-n", sw, "link", "add", br, "type", "bridge", "stp_state", "0",
                "forward_delay", "0")
            run("ip", "-n", sw, "link", "set", br, "up")
        links = [(h.strategy, f"{h.prefix}st0", f"{h.prefix}sts", "brs", sess.mac),
                 (h.venue, f"{h.prefix}ve0", f"{h.prefix}vev", "brv", ven.mac)]
        for who in APPLIANCES:
            for side, br in (("s", "brs"), ("v", "brv")):
                links.append((h.ns(who), h.app_if(who, side), h.bridge_port(who, side), br,
                              app.mac))
        for ns, dev, port, br, mac in links:
            run("ip", "link", "add", dev, "type", "veth", "peer", "name", port)
            run("ip", "link", "set", dev, "netns", ns)
            run("ip", "link", "set", port, "netns", sw)
            run("ip", "-n", ns, "link", "set", dev, "address", mac)
            run("ip", "-n", sw, "link", "set", port, "master", br)
            run("ip", "-n", sw, "link", "set", port, "up")
            run("ip", "-n", ns, "link", "set", dev, "up")
        run("ip", "-n", h.strategy, "addr", "add", f"{sess.ip}/16", "dev", f"{h.prefix}st0")
        run("ip", "-n", h.venue, "addr", "add", f"{ven.ip}/16", "dev", f"{h.prefix}ve0")
        for ns, dev in ((h.strategy, f"{h.prefix}st0"), (h.venue, f"{h.prefix}ve0")):
            run(*h.exec(ns, "ethtool", "-K", dev, "tx", "off"), check=False)
        for who in APPLIANCES:
            dev, port = f"{h.prefix}{who}r1", f"{h.prefix}{who}r0"
            run("ip", "link", "add", dev, "type", "veth", "peer", "name", port)
            run("ip", "link", "set", dev, "netns", h.ns(who))
            run("ip", "link", "set", port, "netns", sw)
            run("ip", "-n", sw, "link", "set", port, "master", "brr")
            run("ip", "-n", sw, "link", "set", port, "up")
            run("ip", "-n", h.ns(who), "addr", "add", f"{REPL_IP[who]}/24", "dev", dev)
            run("ip", "-n", h.ns(who), "link", "set", dev, "up")
        yield h
    finally:
        _teardown(h)
