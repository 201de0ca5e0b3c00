"""Which RX queue each traffic class lands on: order entry, venue responses
and market data are kept apart so that one class can never hold up
another.  Where a NIC can do it, rte_flow rules steer them in hardware;
virtual devices (net_af_packet, net_af_xdp, net_ring) support no rte_flow,
so there each class gets its own device (its own veth) and the core's
classification in software does the rest, every frame it does not want
counted by reason.

`steering_rules` is a pure function of the configuration, unit-tested
against the expected pattern/action lists; `probe` asks the port."""
from __future__ import annotations

from dataclasses import dataclass

from control.config import Config
from dataplane.core import ip_to_int

MULTICAST = ("224.0.0.0", 4)  # market data arrives on IPv4 multicast


@dataclass(frozen=True)
class FlowRule:
    traffic: str  # "orders", "venue", "venue_requests", "market_data"
    pattern: tuple  # rte_flow items, outermost first: ("eth",), ("ipv4", {...}), ("udp", {...})
    actions: tuple  # (("queue", {"index": n}),)


def steering_rules(cfg: Config, queues: dict[str, int] | None = None) -> list[FlowRule]:
    """The rules for one port carrying every class; `queues` maps each class
    to its RX queue (default 0, 1, 1, 2)."""
    q = {"orders": 0, "venue": 1, "venue_requests": 1, "market_data": 2, **(queues or {})}
    ip = cfg.appliance.ip
    rules = [
        FlowRule("orders", (("eth",), ("ipv4", {"dst": ip}),
                            ("udp", {"dst_port": cfg.appliance.strategy_port})),
                 (("queue", {"index": q["orders"]}),)),
        FlowRule("venue", (("eth",), ("ipv4", {"dst": ip}),
                           ("udp", {"dst_port": cfg.appliance.venue_port})),
                 (("queue", {"index": q["venue"]}),)),
        FlowRule("venue_requests", (("eth",), ("ipv4", {"dst": ip}),
                                    ("udp", {"dst_port": cfg.appliance.request_port})),
                 (("queue", {"index": q["venue_requests"]}),)),
        FlowRule("market_data", (("eth",), ("ipv4", {"dst": MULTICAST[0],
                                                     "dst_prefix": MULTICAST[1]}),
                                 ("udp",)),
                 (("queue", {"index": q["market_data"]}),)),
    ]
    return rules


def to_c(rule: FlowRule, ffi):
    """The rule as the C side's struct oms_flow_rule."""
    ipv4 = next(p[1] for p in rule.pattern if p[0] == "ipv4")
    udp = next(p for p in rule.pattern if p[0] == "udp")
    prefix = ipv4.get("dst_prefix", 32)
    mask = (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF
    queue = rule.actions[0][1]["index"]
    return ffi.new("struct oms_flow_rule *", {
        "dst_ip": ip_to_int(ipv4["dst"]), "dst_ip_mask": mask,
        "udp_dst_port": udp[1]["dst_port"] if len(udp) > 1 else 0, "queue": queue})


def probe(lib, ffi, port: int, rules: list[FlowRule],
          rx_queues: int | None = None) -> tuple[str, str]:
    """("rte_flow", "") when the port validates every rule, else
    ("software", the first reason).  `rx_queues`: how many the port was
    started with, when known; rules naming a queue beyond them cannot be."""
    need = 1 + max(r.actions[0][1]["index"] for r in rules)
    if rx_queues is not None and rx_queues < need:
        return "software", (f"the rules need {need} RX queues and the port has {rx_queues} "
                            f"(dataplane.rx_queues: {need})")
    err = ffi.new("char[256]")
    for r in rules:
        if lib.oms_flow_validate(port, to_c(r, ffi), err, 256) != 0:
            return "software", f"{r.traffic}: {ffi.string(err).decode() or 'not supported'}"
    return "rte_flow", ""


def install(lib, ffi, port: int, rules: list[FlowRule]) -> None:
    """Create the rules the probe validated; a failure here is an error
    (the port said it could)."""
    err = ffi.new("char[256]")
    for r in rules:
        if lib.oms_flow_create(port, to_c(r, ffi), err, 256) != 0:
            raise RuntimeError(f"port {port}: rte_flow rule for {r.traffic} was validated "
                               f"but not created: {ffi.string(err).decode()}")
