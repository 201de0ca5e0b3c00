"""Traffic through an in-process C core: a strategy (dataplane.strategy_driver)
and the venues (dataplane.venue_sim) around a dataplane.core.Core, frames
going round until the exchange is quiet.  For the observability tests,
whose readers (exporter, heatmap) run beside it in other threads."""
from __future__ import annotations

import time

from dataplane.core import Core
from dataplane.strategy_driver import StrategyDriver
from dataplane.venue_sim import VenueSim

VENUE_LATENCY_NS = 20_000


class CoreTraffic:
    def __init__(self, core: Core, cfg, *, session_index: int = 0):
        self.core, self.cfg = core, cfg
        self.drv = StrategyDriver(cfg.sessions[session_index], cfg.appliance)
        symbols = [i.symbol for i in cfg.instruments]
        self.sims = {v.ip: VenueSim(v, cfg.appliance, symbols=symbols, seed=v.id, p_passive=0.5)
                     for v in cfg.venues}
        self.now = time.time_ns()
        self.sent = {"new_order": 0, "modify": 0, "cancel": 0}

    def _clock(self) -> int:
        self.now = max(self.now + 1, time.time_ns())
        return self.now

    def exchange(self, frames: list[bytes]) -> None:
        """Hand `frames` to the core and carry every answer round (venue
        answers VENUE_LATENCY_NS later) until nothing is left; bounded."""
        for _ in range(64):
            if not frames:
                return
            now = self._clock()
            out = self.core.process_burst(frames, now)
            frames = []
            later = now + VENUE_LATENCY_NS
            answers = []
            for f in out:
                dst = ".".join(str(b) for b in f[30:34])
                sim = self.sims.get(dst)
                if sim is not None:
                    answers += sim.handle_frame(f, later)
                else:
                    frames += self.drv.handle_frame(f, now)
            if answers:
                self.now = max(self.now, later)
                frames = answers + frames
        raise AssertionError("the exchange did not go quiet in 64 rounds")

    def login(self) -> None:
        self.exchange(self.drv.login(self._clock()))

    def orders(self, first_id: int, n: int, *, reject_every: int = 7,
               cancel_every: int = 3) -> None:
        """n NewOrders (every reject_every-th with quantity 0: BAD_QTY),
        every cancel_every-th canceled again."""
        frames = []
        for i in range(n):
            cid = first_id + i
            qty = 0 if reject_every and i % reject_every == reject_every - 1 else 100
            frames += self.drv.new_order(self._clock(), cid, "AAPL", 150_0000_0000, qty,
                                         account=1)
            self.sent["new_order"] += 1
        self.exchange(frames)
        frames = []
        for i in range(0, n, cancel_every):
            frames += self.drv.cancel(self._clock(), first_id + i)
            self.sent["cancel"] += 1
        self.exchange(frames)
