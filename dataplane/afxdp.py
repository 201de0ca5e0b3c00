"""The native AF_XDP backend from Python: the appliance live on two kernel
interfaces (the strategy-facing and the venue-facing one, named in the
config's `dataplane.afxdp`) without DPDK.  libxdp attaches its default XDP
program, which redirects queue `queue` of each interface to an XDP socket;
a poll thread started from C (cdefs/afxdp_io.c) does RX -> core -> TX and
answers ARP and ICMP echo, as the DPDK worker does.  The Python main thread
serves the control socket and hands commands to the poll thread through a
mailbox; it never touches the core itself while the thread runs.

Same lifecycle as the DPDK appliance (dataplane/serve.py, which runs either):
start, control commands, SIGINT/SIGTERM stop at a burst boundary with what
the core holds flushed, final counters as JSON."""
from __future__ import annotations

import importlib
import os
import sys

from control.config import Config
from dataplane.core import ip_to_int, mac_to_bytes
from dataplane.journal import start_core
from dataplane.serve import (
    LiveControl,
    close_journal,
    detach_stale_xdp,
    journal_report,
    xdp_attached,
)


def route_line(d: dict) -> dict:
    from dataplane.replay import route_line as line
    return line(d)


class AfxdpError(RuntimeError):
    pass


def extension():
    """The cffi extension with the AF_XDP poll loop, with a clear message
    when it was not built."""
    try:
        return importlib.import_module("dataplane._oms_afxdp")
    except ImportError as e:
        raise AfxdpError(
            "the AF_XDP backend is not built: install libxdp-dev, libbpf-dev and pkg-config "
            "(bash deploy/setup.sh does) and reinstall the project") from e


class AfxdpAppliance(LiveControl):
    """The appliance on AF_XDP sockets; serve.Appliance's API."""

    def __init__(self, cfg: Config):
        a = cfg.dataplane.afxdp
        if a is None:
            raise AfxdpError(f"{cfg.source}: dataplane.afxdp is not set: which interfaces "
                             "carry strategy and venue traffic (strategy_iface, venue_iface)?")
        self.cfg = cfg
        self.config_path = cfg.source  # what SIGHUP, a file change and omsctl reload read
        self.reloads = {"ok": 0, "refused": 0}
        ext = extension()
        self.ffi, self.lib = ext.ffi, ext.lib
        ffi, lib = self.ffi, self.lib
        self.stale_detached = detach_stale_xdp(cfg)
        self.ifaces = [a.strategy_iface, a.venue_iface]
        # market data: the poll thread splits it off and writes the books
        self.md = None
        if cfg.market_data.subscriptions:
            from dataplane.market_data import CMarketData
            self.md = CMarketData(cfg, ext=ext)
        # a journal that holds records is recovered first, its market data
        # into the feeds (docs/durability.md)
        self.core, journal, recovery = start_core(cfg, ext=ext, md=self.md)
        self.journals, self.recoveries = [journal], [recovery]
        c = ffi.new("struct oms_afxdp_config *")
        c.journal = journal._j if journal else ffi.NULL
        for i, name in enumerate(self.ifaces):
            c.ifname[i] = name.encode()
        c.queue = a.queue
        c.mode = lib.OMS_XSK_ZEROCOPY if a.mode == "zerocopy" else lib.OMS_XSK_COPY
        c.frames = a.frames
        c.strategy_udp = cfg.appliance.strategy_port
        c.mac = list(mac_to_bytes(cfg.appliance.mac))
        c.ip = ip_to_int(cfg.appliance.ip)
        c.idle_sleep_us = cfg.dataplane.idle_sleep_us
        c.tx_wait_us = cfg.dataplane.tx_wait_us
        c.cpu = a.cpu
        err = ffi.new("char[256]")
        dp = lib.oms_afxdp_open(c, self.core._core, err, 256)
        if dp == ffi.NULL:
            raise AfxdpError(f"AF_XDP on {', '.join(dict.fromkeys(self.ifaces))}: "
                             f"{ffi.string(err).decode() or 'out of memory'}")
        self.dp = ffi.gc(dp, lib.oms_afxdp_close)
        if self.md is not None:
            self.md.attach(self.core)
            # the poll thread speaks IGMPv3 out of the venue interface
            self.md.enable_igmp(seed=os.getpid())
            lib.oms_afxdp_set_md(self.dp, self.md.ptr)
        # one socket per distinct interface: port i carries class i
        self.ports = list(dict.fromkeys(self.ifaces))
        self.stopping = False
        self.observe()

    def start(self) -> None:
        err = self.ffi.new("char[256]")
        if self.lib.oms_afxdp_start(self.dp, err, 256) != 0:
            raise AfxdpError(f"cannot start the AF_XDP poll thread: "
                             f"{self.ffi.string(err).decode()}")
        print(f"omsctl: AF_XDP on {', '.join(self.ports)} queue {self.cfg.dataplane.afxdp.queue}"
              f" ({self.cfg.dataplane.afxdp.mode}), XDP programs "
              f"{[self.lib.oms_afxdp_prog_id(self.dp, i) for i in range(len(self.ports))]}",
              file=sys.stderr)

    def _post(self, cmd) -> bool:
        return self.lib.oms_afxdp_post(self.dp, cmd) == 0

    def metric_families(self):
        """Sockets, kernel XDP statistics, poll thread (control/appliance_metrics.py)."""
        from control.appliance_metrics import afxdp_families
        return afxdp_families(self)

    def _grace(self, timeout_ms: int) -> bool:
        """The poll thread takes commands only between bursts, where it holds
        no configuration generation: once a command posted now is done, it
        has passed such a point since the swap."""
        try:
            self.command(self.lib.OMS_CMD_SYNC, timeout_s=timeout_ms / 1000)
        except RuntimeError:
            return False
        return True

    def stop(self) -> dict:
        """Stop the poll thread (it flushes what the core holds), report,
        then close the sockets: libxdp detaches its program with the last."""
        self.lib.oms_afxdp_stop(self.dp)
        report = self.report()
        close_journal(self, report)
        self.ffi.release(self.dp)
        report["xdp_after_close"] = {name: xdp_attached(name) for name in self.ports}
        return report

    def report(self) -> dict:
        ffi, lib = self.ffi, self.lib
        ports = {}
        st = ffi.new("struct oms_xsk_stats *")
        for i, name in enumerate(self.ports):
            lib.oms_afxdp_port_stats(self.dp, i, st)
            ports[name] = {n: getattr(st, n) for n, _ in ffi.typeof(st[0]).fields}
            ports[name]["xdp_prog_id"] = lib.oms_afxdp_prog_id(self.dp, i)
            ports[name]["zerocopy"] = bool(lib.oms_afxdp_zerocopy(self.dp, i))
        loop = ffi.new("struct oms_afxdp_loop_stats *")
        lib.oms_afxdp_loop_stats(self.dp, loop)
        link = ffi.new("struct link_stats *")
        lib.oms_afxdp_link_stats(self.dp, link)
        return {"backend": "afxdp", "ports": ports,
                "worker": {n: getattr(loop, n) for n, _ in ffi.typeof(loop[0]).fields},
                "link": {n: getattr(link, n) for n, _ in ffi.typeof(link[0]).fields},
                "core": self.core.stats(), "stale_xdp_detached": self.stale_detached,
                "generation": self.core.generation(), "reloads": dict(self.reloads),
                "live_orders": self.core.live_orders(),
                # XDP sees every frame the interface gets: no NIC list to program
                "market_data": ({**self.md.live_stats(), "mc_list": "software (AF_XDP)"}
                                if self.md is not None else None),
                "route_decisions": [route_line(d) for d in self.core.route_decisions()],
                **journal_report(self)}
