"""Frames and addresses the feed tests share: the venue's multicast, its
re-request server and the appliance, built with the peers' frame module
and the project's ITCH layers."""
from __future__ import annotations

import ipaddress

from dataplane import frames

APP_MAC, APP_IP, APP_PORT = "02:00:00:00:00:01", "10.0.0.1", 26500
GROUP, GROUP_PORT = "239.1.1.1", 26400
VENUE_MAC, VENUE_IP = "02:00:00:00:00:07", "10.0.0.7"
RETRANS_MAC, RETRANS_IP, RETRANS_PORT = "02:00:00:00:00:09", "10.0.0.9", 26501
GROUP_MAC = "01:00:5e:01:01:01"


def _ip(a: str) -> bytes:
    return ipaddress.IPv4Address(a).packed


def multicast(payload: bytes, src_ip: str = VENUE_IP, group: str = GROUP,
              port: int = GROUP_PORT) -> bytes:
    return frames.udp_frame(frames.mac(VENUE_MAC), frames.mac(GROUP_MAC), _ip(src_ip),
                            _ip(group), 26399, port, payload)


def retransmission(payload: bytes, src_ip: str = RETRANS_IP) -> bytes:
    return frames.udp_frame(frames.mac(RETRANS_MAC), frames.mac(APP_MAC), _ip(src_ip),
                            _ip(APP_IP), RETRANS_PORT, APP_PORT, payload)


def feed_kwargs(retrans: bool = True, **kw) -> dict:
    d = dict(mac=APP_MAC, ip=APP_IP, port=APP_PORT, group=GROUP, group_port=GROUP_PORT)
    if retrans:
        d["retrans"] = (RETRANS_IP, RETRANS_PORT, RETRANS_MAC)
    d.update(kw)
    return d
