"""Hidden behaviour of each named simulated venue (issue 9 item 1).

FROZEN.  These parameters were committed before any fill-probability model
work began and are not to be tuned afterwards: tests/test_venue_profiles.py
pins this file's SHA-256, so a change fails the suite on purpose.  A venue
that behaves differently is a NEW profile under a new name, never an edit.

Each profile drives :class:`dataplane.venue_sim.VenueSim` (``profile=``) per
symbol (docs/venue-sim.md "Hidden behaviour"):

* ``mkt_rate_hz`` / ``add_rate_hz`` / ``cancel_hazard_hz``: other
  participants' order flow, a seeded Markov jump process per symbol:
  marketable orders at rate ``mkt_rate_hz`` (buy or sell, 1/2 each, taking
  the contra touch level only, size geometric in lots with mean
  ``mkt_lots_mean``), passive orders at rate ``add_rate_hz`` (side 1/2
  each, joining the back of the queue ``1 .. add_depth`` ticks (uniform)
  from the symbol's reference price on its side, uniform
  ``1 .. add_lots_max`` lots), and cancels: each resting synthetic order is
  pulled at rate ``cancel_hazard_hz`` (so the book's size is stationary).
* ``iceberg_prob`` / ``iceberg_reserve``: the chance that a synthetic
  order (the opening book's and each passive add) carries a hidden reserve
  of ``iceberg_reserve`` times its displayed size; when the displayed part
  is taken it reloads (new order reference, back of the queue).
* ``dark_prob``: the chance that a passive add is non-displayed: it holds
  its place in the queue and trades, but the feed never shows it.
* ``fade_prob``: when a client's marketable order reaches the book, each
  synthetic order it would cross is pulled first with this chance.
* ``latency_us`` / ``jitter_sigma``: the delay from a client packet's
  arrival to its processing by the matching engine, lognormal with this
  median (microseconds) and log-sd (0: fixed), drawn per packet.
"""
from __future__ import annotations

from dataclasses import dataclass

LOT = 100


@dataclass(frozen=True)
class VenueProfile:
    name: str
    mkt_rate_hz: float = 20.0
    mkt_lots_mean: float = 2.0
    add_rate_hz: float = 20.0
    add_lots_max: int = 5
    add_depth: int = 3
    cancel_hazard_hz: float = 0.2
    iceberg_prob: float = 0.0
    iceberg_reserve: int = 0
    dark_prob: float = 0.0
    fade_prob: float = 0.0
    latency_us: float = 0.0
    jitter_sigma: float = 0.0


PROFILES: dict[str, VenueProfile] = {p.name: p for p in (
    # Order flow only: what is displayed is what there is.
    VenueProfile("plain"),
    # Deep hidden reserve: marketable orders fill beyond the displayed size.
    VenueProfile("iceberg", iceberg_prob=0.6, iceberg_reserve=3),
    # Quotes pulled when hit: marketable orders fill below the displayed size.
    VenueProfile("fade", fade_prob=0.5),
    # Non-displayed size ahead in the queue: resting orders wait longer.
    VenueProfile("dark", dark_prob=0.5),
    # Slow and jittery: the book moves between sending and matching.
    VenueProfile("jitter", latency_us=20_000.0, jitter_sigma=1.0),
    # Busy: twice the flow, queues turn over fast.
    VenueProfile("busy", mkt_rate_hz=40.0, add_rate_hz=40.0, cancel_hazard_hz=0.4),
)}
