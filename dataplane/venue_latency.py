"""Venue latency monitoring as tools read it (docs/semantics.md "Venue
health"): percentiles from the round-trip histogram, the same for the C
core's view and the reference model's."""
from __future__ import annotations


def with_percentiles(health: dict) -> dict:
    """`health` with rtt_p50_ns and rtt_p99_ns from its histogram: the low
    edge of the bucket the percentile falls in (bucket b holds [2^b,
    2^(b+1)) ns, bucket 0 [0, 2)); None before any sample."""
    hist, total = health["rtt_hist"], sum(health["rtt_hist"])
    for name, p in (("rtt_p50_ns", 50), ("rtt_p99_ns", 99)):
        health[name] = None
        acc = 0
        for b, n in enumerate(hist):
            acc += n
            if total and acc * 100 >= total * p:
                health[name] = 0 if b == 0 else 1 << b
                break
    return health
