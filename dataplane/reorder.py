"""A seeded reordering knob for the test peers (the strategy driver and the
venue simulator): what a network that reorders would do to their output,
without one.

Each outgoing datagram, while none is held, draws ``rng.random()`` once from
``random.Random(seed)``; below ``probability`` it is held back instead of
sent.  The held datagram goes out right after the next datagram sent
(``stats["reordered"]`` += 1: the two swapped places), or, if no other
datagram follows within ``hold_ns``, on the first timer call at least that
late (``stats["reorder_timeouts"]`` += 1: delayed, not reordered).  Nothing
is drawn while a datagram is held.  So which datagrams swap is a function of
the seed and the sequence of calls (and their ``now``) alone.
"""
from __future__ import annotations

import random
from typing import Generic, TypeVar

T = TypeVar("T")


class Reorder(Generic[T]):
    """One held-back slot; counts into the owner's ``stats``."""

    def __init__(self, stats: dict, probability: float, seed: int, hold_ns: int) -> None:
        if not 0.0 <= probability <= 1.0:
            raise ValueError("reorder probability must be in [0, 1]")
        if hold_ns <= 0:
            raise ValueError("reorder hold time must be positive")
        self.probability = probability
        self.hold_ns = hold_ns
        self._rng = random.Random(seed)
        self._held: T | None = None
        self._held_at = 0
        self.stats = stats
        stats.setdefault("reordered", 0)
        stats.setdefault("reorder_timeouts", 0)

    @property
    def holding(self) -> bool:
        return self._held is not None

    def apply(self, items: list[T], now: int) -> list[T]:
        """The datagrams to send now, in place of `items`."""
        out: list[T] = []
        for item in items:
            if self._held is not None:
                out.append(item)
                out.append(self._held)
                self._held = None
                self.stats["reordered"] += 1
            elif self._rng.random() < self.probability:
                self._held, self._held_at = item, now
            else:
                out.append(item)
        return out

    def due(self, now: int) -> list[T]:
        """The held datagram, once it has waited ``hold_ns`` for a successor."""
        if self._held is None or now - self._held_at < self.hold_ns:
            return []
        item, self._held = self._held, None
        self.stats["reorder_timeouts"] += 1
        return [item]

    def flush(self) -> list[T]:
        """The held datagram, if any, now (not counted as reordered)."""
        item, self._held = self._held, None
        return [] if item is None else [item]
