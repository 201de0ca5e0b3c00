"""The live appliance: EAL from the config's `dataplane:` section, the ports
it names, the core on a worker lcore in live mode (now_ns from the TSC),
ARP and ICMP echo answered for the appliance's address.  `serve` runs it, or
the native AF_XDP backend (dataplane/afxdp.py) with the same lifecycle and
control commands (LiveControl).  The Python main
thread only waits - in short sleeps, so SIGINT and SIGTERM get through - and
on a signal stops the worker, which flushes what it holds, then reports the
final counters (and, if asked, every order's final state to a file)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from control.config import Config, ConfigError, load_config
from control.ctl import ControlSocket
from control.reload import FileWatch, fixed_changes
from dataplane import dpdk, steering, typed_lanes
from dataplane.core import STATE_NAMES, Core, ip_to_int, mac_to_bytes
from dataplane.eal_stale import clear_stale_eal
from dataplane.journal import start_core


def eal_args(cfg: Config) -> list[str]:
    d = cfg.dataplane
    # lcore@cpu maps more lcores than CPUs (time-shared: small machines, CI)
    lcore_opt = "--lcores" if "@" in d.lcores else "-l"
    args = ["oms", lcore_opt, d.lcores, "--file-prefix", f"oms{os.getpid()}",
            "--log-level", "lib.eal:error", "--no-telemetry"]
    if d.hugepages:
        # no hugepage files: they would hold their pages after the
        # appliance stops (or is killed) until someone removes them; the
        # appliance has no secondary processes that would need them
        args.append("--in-memory")
    else:
        args += ["--no-huge", "-m", str(d.memory_mb)]
    if d.pci:
        for p in d.pci:
            args += ["-a", p]
    else:
        args.append("--no-pci")
    for v in d.vdevs:
        args += ["--vdev", v]
    return args


def xdp_attached(iface: str) -> dict | None:
    """The XDP program on `iface` as iproute2 reports it ({"mode": ...,
    "prog": {"id": ...}}), or None."""
    r = subprocess.run(["ip", "-j", "-d", "link", "show", "dev", iface],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return None
    links = json.loads(r.stdout or "[]")
    return links[0].get("xdp") if links else None


def detach_stale_xdp(cfg: Config) -> list[str]:
    """A killed run can leave its XDP program on the interface, and then
    neither net_af_xdp nor the native AF_XDP backend can attach its own:
    detach whatever is there first, from every interface either is
    configured to use.  Returns the interfaces that had one."""
    ifaces = []
    for v in cfg.dataplane.vdevs:
        if not v.startswith("net_af_xdp"):
            continue
        opts = dict(kv.split("=", 1) for kv in v.split(",")[1:] if "=" in kv)
        if opts.get("iface"):
            ifaces.append(opts["iface"])
    if cfg.dataplane.afxdp is not None:
        ifaces += [cfg.dataplane.afxdp.strategy_iface, cfg.dataplane.afxdp.venue_iface]
    done = []
    for iface in dict.fromkeys(ifaces):
        if xdp_attached(iface) is None:
            continue
        for mode in ("xdp", "xdpgeneric", "xdpdrv", "xdpoffload"):
            subprocess.run(["ip", "link", "set", "dev", iface, mode, "off"],
                           capture_output=True)
        print(f"omsctl: detached a stale XDP program from {iface}", file=sys.stderr)
        done.append(iface)
    return done


def clear_stale_eal_reported() -> dict[str, list[str]]:
    """Before EAL starts: remove what dead runs left of theirs
    (dataplane/eal_stale.py), and say so."""
    removed = clear_stale_eal()
    if removed["runtime_dirs"] or removed["hugepage_files"]:
        print(f"omsctl: removed what dead DPDK runs left: "
              f"{len(removed['runtime_dirs'])} EAL runtime directories, "
              f"{len(removed['hugepage_files'])} hugepage files", file=sys.stderr)
    return removed


class LiveControl:
    """The control-plane commands of a live appliance, whatever its backend:
    each is handed to the poll loop that owns the core (`_post`) and run
    there between two bursts, while the main thread waits, bounded."""

    def _post(self, cmd) -> bool:
        raise NotImplementedError

    def report(self) -> dict:
        raise NotImplementedError

    def command(self, op: int, a: int = 0, b: int = 0, timeout_s: float = 5.0):
        """Run a command on the worker, between two bursts; (result, cmd)."""
        cmd = self.ffi.new("struct oms_command *", {"op": op, "a": a, "b": b})
        if op == self.lib.OMS_CMD_SNAPSHOT:
            cmd.stats = self._snapshot = self.ffi.new("struct oms_stats *")
        return self.run_command(cmd, timeout_s)

    def run_command(self, cmd, timeout_s: float = 5.0):
        """Hand a command already filled in to the worker; (result, cmd)."""
        if not self._post(cmd):
            raise RuntimeError("the worker's command queue is full")
        self._inflight = cmd  # kept alive until the worker took it, even if we stop waiting
        deadline = time.monotonic() + timeout_s
        while not cmd.done:
            if time.monotonic() > deadline:
                raise RuntimeError("the worker did not take the command in time")
            time.sleep(0.0005)
        return cmd.result, cmd

    def _grace(self, timeout_ms: int) -> bool:
        """Wait until the poll loop can no longer hold a configuration
        generation replaced before this call: True, or False on timeout."""
        raise NotImplementedError

    def _cores(self, cfg: Config) -> list:
        """(core, the part of cfg it takes) for every core of the appliance."""
        return [(self.core, cfg)]

    def reload(self, path: str | None = None) -> dict:
        """Validate the file (the one started with, by default), refuse it if
        it changes what is fixed at start, compile the rest into a
        configuration generation, publish it, wait until the poll loop can
        no longer hold the old one (a grace period), free that.  On any
        error the running configuration stays; the answer says why."""
        path = path or self.config_path
        try:
            new = load_config(path)
        except ConfigError as e:
            self.reloads["refused"] += 1
            return {"ok": False, "file": path,
                    "errors": [str(x) for x in getattr(e, "errors", [e])]}
        md = getattr(self, "md", None)
        fixed = fixed_changes(self.cfg, new, live_market_data=md is not None)
        md_changes = []
        if md is not None and not fixed:
            from dataplane import md_reload
            md_changes, md_errors = md_reload.plan(md, new, self._md_core)
            fixed += md_errors
        if fixed:
            self.reloads["refused"] += 1
            return {"ok": False, "file": path, "errors": [f"{path}: {x}" for x in fixed]}
        pairs = []
        try:
            for core, part in self._cores(new):
                pairs.append((core, core.build_generation(part)))
        except Exception as e:  # CoreError: the tables' capacity since start
            for _, gen in pairs:
                self.lib.oms_gen_free(gen)
            self.reloads["refused"] += 1
            return {"ok": False, "file": path, "errors": [f"{path}: {e}"]}
        number = self.lib.oms_gen_number(pairs[0][1])
        old = [core.publish(gen) for core, gen in pairs]
        if self._grace(5000):
            for gen in old:
                self.lib.oms_gen_free(gen)
        else:
            # a loop that does not come round in 5 s may still read it: keep
            # it (a leak) rather than free it under the loop
            print("omsctl: reload: the poll loop did not pass a quiescent point in 5 s; "
                  "the replaced configuration is kept in memory", file=sys.stderr)
        self.cfg = new
        self.reloads["ok"] += 1
        self.published_generation = number
        answer = {"ok": True, "file": path, "generation": number}
        if md_changes:
            errors = md_reload.apply(md, md_changes)
            self._market_data_changed()
            answer["market_data"] = {"changes": len(md_changes) - len(errors),
                                     "subscriptions": md.live_stats()["subscriptions"]}
            if errors:
                answer.update(ok=False, errors=[f"{path}: {x}" for x in errors])
        return answer

    def _md_core(self, venue: int):
        """The core that reads `venue`'s feed when it runs on the market
        data's poll loop, else None (dataplane/md_reload.py)."""
        return self.core

    def _market_data_changed(self) -> None:
        """After subscriptions changed: the exporter follows new feeds, the
        port's multicast list the groups."""
        src = getattr(self, "metrics_source", None)
        if src is not None:  # one feed per venue: the one it reads now
            src.feeds = list(self.md.feeds.values())
        self.program_mc_list()

    def program_mc_list(self) -> None:
        """The NIC's multicast address list, where the backend has one."""

    def handle_control(self, request: dict) -> dict:
        """One control-plane request (see control/ctl.py)."""
        lib = self.lib
        what = request.get("cmd")
        if what == "ping":
            return {"ok": True}
        if what == "reload":
            return self.reload(request.get("path"))
        if what == "stats":
            live, cmd = self.command(lib.OMS_CMD_SNAPSHOT)
            report = self.report()
            report["core"] = self.core.stats_dict(cmd.stats)
            report["live_orders"] = live
            return {"ok": True, **report}
        if what == "mass_cancel":
            n, _ = self.command(lib.OMS_CMD_MASS_CANCEL, int(request["session"]),
                                int(request["account"]))
            if n < 0:
                return {"ok": False, "error": f"unknown session {request['session']}"}
            return {"ok": True, "canceled": n}
        if what in ("kill", "unkill"):
            # account 0 or none: every account (semantics.md "Kill switch")
            account = int(request.get("account") or 0)
            if not 0 <= account < 2**32:
                return {"ok": False, "error": f"account {account} out of range"}
            on = what == "kill"
            n, _ = self.command(lib.OMS_CMD_KILL, account, int(on))
            if n < 0:
                return {"ok": False, "error": f"unknown account {account}"}
            self._operator_kill(account, on)
            return {"ok": True, "account": account or "all", "kill": on, "canceled": n}
        if what == "status":
            from control.status import appliance_status
            return {"ok": True, **appliance_status(self)}
        if what == "order":
            return self.order_show(request)
        return {"ok": False, "error": f"unknown command {what!r}"}

    # --- observability (docs/observability.md) ---------------------------

    def observe(self) -> None:
        """Set up what the exporter, the latency page and `omsctl status`
        read: the stage histograms on (observability.timing), the kill
        switches as commanded."""
        from control.metrics import DataPlaneSource

        cores = getattr(self, "cores", [self.core])
        for core in cores:
            core.set_timing(self.cfg.observability.timing)
        self.started = time.time()
        self.operator_kill: dict[int, bool] = {}
        self.operator_kill_all = False
        md = getattr(self, "md", None)
        feeds = tuple(md.feeds.values()) if md is not None else ()
        self.metrics_source = DataPlaneSource(self.cfg, cores, self, feeds=feeds)

    _target = 0  # the worker commands go to (sharded: one of several)

    def _each_worker(self):
        """Once per worker, with commands going to it."""
        try:
            for i in range(len(getattr(self, "workers", ())) or 1):
                self._target = i
                yield i
        finally:
            self._target = 0

    def snapshot_all(self) -> list[tuple[int, dict]]:
        """(live orders, counters) of every worker, each copied by the worker
        between two bursts."""
        out = []
        for i in self._each_worker():
            live, cmd = self.command(self.lib.OMS_CMD_SNAPSHOT)
            core = getattr(self, "cores", [self.core])[i]
            out.append((live, core.stats_dict(cmd.stats)))  # before the next replaces it
        return out

    @property
    def config_generation(self) -> dict[str, int]:
        """The generation the worker judges by (it takes a newly published
        one at its next burst) and the last one published."""
        in_force = self.core.generation()
        return {"in_force": in_force,
                "published": max(in_force, getattr(self, "published_generation", 0))}

    def _operator_kill(self, account: int, on: bool) -> None:
        # as oms_core_kill: account 0 sets every account's switch, and those
        # of accounts a later generation adds
        if account == 0:
            self.operator_kill_all = on
            self.operator_kill = dict.fromkeys(
                {a.id for a in self.cfg.accounts} | set(self.operator_kill), on)
        else:
            self.operator_kill[account] = on

    def kill_state(self) -> dict[str, bool]:
        """Each configured account's kill switch: the configuration's or
        the operator's engaged (semantics.md "Kill switch"), as configured
        and commanded through this control plane."""
        return {str(a.id): bool(a.kill) or self.operator_kill.get(a.id, self.operator_kill_all)
                for a in sorted(self.cfg.accounts, key=lambda a: a.id)}

    def metric_families(self):
        """The backend's own metrics beside the core's (control/metrics.py)."""
        return []

    def order_show(self, request: dict) -> dict:
        """One order, copied by the poll loop between two bursts: by
        (session, cl_ord_id), or by the venue's token (venue, UserRefNum)."""
        from control.status import order_history
        ffi, lib = self.ffi, self.lib
        view = ffi.new("struct oms_order_view *")
        cmd = ffi.new("struct oms_command *", {"op": lib.OMS_CMD_ORDER})
        cmd.order = view
        if request.get("venue_token") is not None:
            a, b, key = 0, int(request["venue"]), int(request["venue_token"])
            what = f"venue {b} token {key}"
            ok = 0 < b < 2**16 and 0 <= key < 2**32
        else:
            a, b, key = int(request["session"]), 0, int(request["cl_ord_id"])
            what = f"session {a} cl_ord_id {key}"
            ok = 0 < a < 2**32 and 0 <= key < 2**64
        if not ok:
            return {"ok": False, "error": f"{what}: out of range"}
        cmd.a, cmd.b, cmd.id = a, b, key
        # sharded: the worker that owns the session (or venue) has it
        for i in self._each_worker():
            cmd.done = 0
            result, _ = self.run_command(cmd)
            if result == 0:
                core = getattr(self, "cores", [self.core])[i]
                return {"ok": True, "worker": i, **order_history(core, view)}
        return {"ok": False, "error": f"{what}: no such order (never seen, or evicted)"}


def start_ports(ffi, lib, ports: list[int], pool, dp) -> dict[int, dict]:
    """Start each port as dataplane.mtu/rx_queues say; what each turned
    out to be (driver, MTU, queues, RSS, link), logged once."""
    pc = ffi.new("struct oms_port_conf *", {"mtu": dp.mtu, "rx_queues": dp.rx_queues})
    err = ffi.new("char[256]")
    out = {}
    for pid in ports:
        info = ffi.new("struct oms_port_info *")
        if lib.oms_port_start_conf(pid, pool, pc, info, err, 256) != 0:
            raise dpdk.DpdkError(ffi.string(err).decode())
        if dp.link_wait_ms:
            lib.oms_port_link(pid, info, dp.link_wait_ms)
        d = port_info_dict(ffi, info)
        out[pid] = d
        print(f"omsctl: port {pid} ({d['driver']}): {describe_port(d, dp.rx_queues)}",
              file=sys.stderr)
    return out


def port_info_dict(ffi, info) -> dict:
    d = {n: getattr(info, n) for n, _ in ffi.typeof("struct oms_port_info").fields}
    d["driver"] = ffi.string(info.driver).decode()
    return d


def describe_port(d: dict, asked_queues: int) -> str:
    link = ("link down" if not d["link_up"] else
            "link up" + (f" {d['link_speed_mbps'] / 1000:g} Gbps" if d["link_speed_mbps"] else "")
            + (" full-duplex" if d["link_full_duplex"] else " half-duplex"))
    mtu = f"MTU {d['mtu']}" + ("" if d["mtu_settable"] else " (the driver has no MTU control)")
    queues = f"{d['rx_queues']} RX queue{'s' if d['rx_queues'] != 1 else ''}"
    if d["rx_queues"] < asked_queues:
        queues += f" (of {asked_queues} asked: the device has {d['max_rx_queues']})"
    rss = ("RSS on" if d["rss_hf"] else
           "RSS unavailable: every flow on queue 0" if d["rx_queues"] > 1 else "RSS off")
    return f"{link}, {mtu}, {queues}, {rss}"


def port_state(ffi, lib, pid: int, info: dict) -> dict:
    """The configured facts and the link as it is now."""
    now = ffi.new("struct oms_port_info *")
    lib.oms_port_link(pid, now, 0)
    return {"driver": info["driver"], "mtu": info["mtu"], "rx_queues": info["rx_queues"],
            "rss": bool(info["rss_hf"]), "link_up": bool(now.link_up),
            "link_speed_mbps": now.link_speed_mbps}


class Appliance(LiveControl):
    """The appliance on DPDK ports."""

    def __init__(self, cfg: Config):
        if cfg.dataplane.ports is None:
            raise dpdk.DpdkError(f"{cfg.source}: dataplane.ports is not set: which DPDK ports "
                                 "carry strategy and venue traffic?")
        self.cfg = cfg
        # what SIGHUP, a change of the file and `omsctl reload` read
        self.config_path = cfg.source
        detach_stale_xdp(cfg)
        clear_stale_eal_reported()
        dpdk.eal_init(eal_args(cfg))
        ext = dpdk.extension()
        self.ffi, self.lib = ext.ffi, ext.lib
        ffi, lib = self.ffi, self.lib
        names = [cfg.dataplane.ports.strategy, cfg.dataplane.ports.venue]
        ids = []
        for name in names:
            pid = lib.oms_port_by_name(name.encode())
            if pid < 0:
                raise dpdk.DpdkError(
                    f"no DPDK port named {name!r}: add it to dataplane.vdevs (virtual devices) "
                    "or dataplane.pci (and bind the NIC with dpdk-devbind.py)")
            ids.append(pid)
        socket = lib.oms_port_socket(ids[0])
        self.pool = lib.oms_pool_create(b"oms_pool", cfg.dataplane.mbufs, max(socket, 0))
        if self.pool == ffi.NULL:
            raise dpdk.DpdkError(f"cannot create a mempool of {cfg.dataplane.mbufs} mbufs: "
                                 "not enough memory (dataplane.memory_mb, hugepages)")
        self.ports = sorted(set(ids))
        self.port_info = start_ports(ffi, lib, self.ports, self.pool, cfg.dataplane)
        # steering: rte_flow where the port can, else one device per class
        # and software classification; chosen per port, logged, reported
        rules = steering.steering_rules(cfg)
        self.steering = {}
        for pid in self.ports:
            path, why = steering.probe(lib, ffi, pid, rules, self.port_info[pid]["rx_queues"])
            if path == "rte_flow":
                steering.install(lib, ffi, pid, rules)
            self.steering[pid] = {"path": path, "reason": why}
            print(f"omsctl: port {pid}: traffic steering by {path}"
                  + (f" ({why})" if why else ""), file=sys.stderr)
        # what the ports hold for themselves (AF_XDP fills its ring from the
        # pool): the baseline the pool must be back at when traffic stops
        self.mbufs_at_start = lib.oms_pool_in_use(self.pool)
        # run-to-completion: one worker polls the ports; sharded: an I/O
        # lcore feeds one worker per shard, each with its own core
        self.sharded = cfg.dataplane.threading.mode == "sharded"
        # typed: the I/O lcore sorts frames into lanes by type for one
        # placement worker, helped by a modification and a cancellation
        # worker (dataplane/typed_lanes.py)
        self.typed = cfg.dataplane.threading.mode == "typed"
        extra = self.sharded + typed_lanes.EXTRA_LCORES * self.typed
        parts = self._parts(cfg)
        # market data: the first worker takes it off its bursts and writes
        # the books between them; every core reads them (seqlock)
        self.md = None
        if cfg.market_data.subscriptions:
            from dataplane.market_data import CMarketData
            self.md = CMarketData(cfg, ext=ext)
        # a journal per core (docs/durability.md); one that holds records
        # is recovered first; the first core's journal holds the market
        # data (MARKET records), which its recovery hands to the feeds
        started = [start_core(cfg, ext=ext, part=lambda c, i=i: self._parts(c)[i],
                              index=i if len(parts) > 1 else None,
                              md=self.md if i == 0 else None)
                   for i in range(len(parts))]
        self.cores = [core for core, _, _ in started]
        self.journals = [j for _, j, _ in started]
        self.recoveries = [r for _, _, r in started]
        self.core = self.cores[0]
        self.rcu = lib.oms_rcu_create(len(parts))
        if self.rcu == ffi.NULL:
            raise dpdk.DpdkError("cannot create the RCU variable for configuration reloads")
        lcores, lc = [], 0xFFFFFFFF
        for _ in range(len(parts) + extra):
            lc = lib.oms_next_worker_lcore(lc)
            if lc >= 1024:
                need = ("one for Python, one for I/O and one per worker" if self.sharded
                        else "one each for Python, I/O, placement, modification and "
                        "cancellation" if self.typed else "give at least two")
                raise dpdk.DpdkError(
                    f"dataplane.lcores {cfg.dataplane.lcores!r} has too few lcores: {need}"
                    f" ({len(parts) + extra + 1} in all)")
            lcores.append(lc)
        self.io_lcore = lcores.pop(0) if self.sharded or self.typed else None
        self.checker_lcores = [lcores.pop(), lcores.pop()][::-1] if self.typed else []
        self.lcores = lcores
        self.workers, self.command_rings, self._rings = [], [], []
        for i, core in enumerate(self.cores):
            ring = lib.oms_ring_create(f"oms_cmd{i}".encode(), 256, max(socket, 0), 1)
            if ring == ffi.NULL:
                raise dpdk.DpdkError("cannot create a worker's command ring")
            w = ffi.new("struct oms_worker *")
            w.commands = ring
            w.core = core._core
            w.journal = self.journals[i]._j if self.journals[i] else ffi.NULL
            w.pool = self.pool
            w.strategy_tx_port, w.venue_tx_port = ids
            w.strategy_udp = cfg.appliance.strategy_port
            w.mac = list(mac_to_bytes(cfg.appliance.mac))
            w.ip = ip_to_int(cfg.appliance.ip)
            w.mode = lib.OMS_MODE_LIVE
            w.idle_sleep_us = cfg.dataplane.idle_sleep_us
            w.tx_wait_us = cfg.dataplane.tx_wait_us
            w.rcu = self.rcu
            w.rcu_id = i
            if self.sharded:
                w.in_ring = self._ring(f"oms_in{i}", socket)
                w.out_ring = self._ring(f"oms_out{i}", socket)
            elif self.typed:
                self.lanes = typed_lanes.TypedLanes(self, cfg, w, socket)
            else:
                polled = [(pid, q) for pid in self.ports
                          for q in range(self.port_info[pid]["rx_queues"])]
                w.n_rx = len(polled)
                for k, (pid, q) in enumerate(polled):
                    w.rx_port[k], w.rx_queue[k] = pid, q
                w.answer_link = 1
            self.workers.append(w)
            self.command_rings.append(ring)
        self.worker, self.commands = self.workers[0], self.command_rings[0]
        self.repl = None
        if cfg.replication is not None:
            from dataplane.standby import Replication
            self.repl = Replication(cfg, self.journals[0], self.core, ext)
            self.worker.repl = self.repl.ptr
            if self.md is not None:  # the primary's MARKET records rebuild our books
                self.md.rebuild_with(self.core)
        self.mc_list = None
        if self.md is not None:
            for core in self.cores:
                self.md.attach(core)
            # the worker speaks IGMPv3 for the venue (market-data) port
            self.md.enable_igmp(seed=os.getpid())
            self.workers[0].md = self.md.ptr
            self.program_mc_list()
        self.lcore = self.lcores[0]
        self.io = self._io(cfg, socket) if self.sharded else \
            self.lanes.io if self.typed else None
        self.reloads = {"ok": 0, "refused": 0}
        self.stopping = False
        self.observe()

    def _parts(self, cfg: Config) -> list[Config]:
        if cfg.dataplane.threading.mode != "sharded":
            return [cfg]
        from dataplane.sharding import shard_config
        return [shard_config(cfg, w) for w in cfg.dataplane.threading.workers]

    def _cores(self, cfg: Config) -> list:
        return list(zip(self.cores, self._parts(cfg), strict=True))

    def _md_core(self, venue: int):
        # sharded: only worker 0's core runs beside the market data
        if not self.sharded:
            return self.core
        owner = next((i for i, w in enumerate(self.cfg.dataplane.threading.workers)
                      if venue in w.venues), None)
        return self.cores[0] if owner == 0 else None

    def program_mc_list(self) -> None:
        """The group MACs on the venue port's multicast address list
        (rte_eth_dev_set_mc_addr_list); a port without one (net_af_packet,
        net_af_xdp) relies on the software filter, counted by reason."""
        macs = self.md.group_macs()
        rc = self.lib.oms_port_set_mc_list(self.workers[0].venue_tx_port, b"".join(macs),
                                           len(macs))
        self.mc_list = "nic" if rc == 0 else f"software ({os.strerror(-rc)})"

    def _ring(self, name: str, socket: int):
        r = self.lib.oms_ring_create(name.encode(), 4096, max(socket, 0), 1)
        if r == self.ffi.NULL:
            raise dpdk.DpdkError(f"cannot create ring {name}")
        self._rings.append(r)
        return r

    def _io(self, cfg: Config, socket: int):
        """The I/O lcore's routes: each session's (address, port) and each
        venue's address to the worker that owns it."""
        io = self.ffi.new("struct oms_io *")
        io.n_rx = len(self.ports)
        for k, pid in enumerate(self.ports):
            io.rx_port[k] = pid
        io.n_workers = len(self.workers)
        routes = []
        for i, (w, shard) in enumerate(zip(self.workers, cfg.dataplane.threading.workers,
                                           strict=True)):
            io.in_ring[i], io.out_ring[i] = w.in_ring, w.out_ring
            routes += [(ip_to_int(s.ip), s.port, i) for s in cfg.sessions
                       if s.id in shard.sessions]
            routes += [(ip_to_int(v.ip), 0, i) for v in cfg.venues if v.id in shard.venues]
        for k, (ip, port, w) in enumerate(routes):
            io.routes[k] = {"ip": ip, "port": port, "worker": w}
        io.n_routes = len(routes)
        io.strategy_udp = cfg.appliance.strategy_port
        io.mac = list(mac_to_bytes(cfg.appliance.mac))
        io.ip = ip_to_int(cfg.appliance.ip)
        io.pool = self.pool
        io.idle_sleep_us = cfg.dataplane.idle_sleep_us
        return io

    def start(self) -> None:
        for w, lc in zip(self.workers, self.lcores, strict=True):
            if self.lib.oms_worker_launch(w, lc) != 0:
                raise dpdk.DpdkError(f"cannot launch a worker on lcore {lc}")
        if self.typed:
            self.lanes.launch_checkers(self.checker_lcores)
        if self.io is not None and self.lib.oms_io_launch(self.io, self.io_lcore) != 0:
            raise dpdk.DpdkError(f"cannot launch the I/O lcore {self.io_lcore}")

    def _post(self, cmd) -> bool:
        return self.lib.oms_command(self.command_rings[self._target], cmd) == 0

    def handle_control(self, request: dict) -> dict:
        """Sharded: a command runs on every worker (a kill of one account
        and a mass cancel find nothing on the workers that do not own it);
        counters are added up."""
        what = request.get("cmd")
        if len(self.workers) == 1 or what not in ("stats", "kill", "unkill", "mass_cancel"):
            return super().handle_control(request)
        answers = []
        try:
            for i in range(len(self.workers)):
                self._target = i
                answers.append(super().handle_control(request))
        finally:
            self._target = 0
        if what == "stats":
            out = self.report()
            out["core"] = sum_counters([a["core"] for a in answers])
            out["live_orders"] = sum(a["live_orders"] for a in answers)
            return {"ok": True, **out}
        ok = [a for a in answers if a.get("ok")]
        if not ok:
            return answers[0]
        return {**ok[0], "canceled": sum(a.get("canceled", 0) for a in ok)}

    def _grace(self, timeout_ms: int) -> bool:
        # DPDK's RCU: the worker reports a quiescent state every poll
        return self.lib.oms_rcu_wait(self.rcu, timeout_ms) == 0

    def metric_families(self):
        """Ports, rings, mempool, worker lcore (control/appliance_metrics.py)."""
        from control.appliance_metrics import appliance_families
        return appliance_families(self)

    def stop(self) -> dict:
        """Stop receiving, let the workers finish what they were handed and
        flush, stop the ports; the final counters."""
        if self.typed:
            self.lanes.drain()
        elif self.io is not None:
            self.io.rx_off = 1
            deadline = time.monotonic() + 5
            while any(self.lib.oms_ring_count(w.in_ring) for w in self.workers) and \
                    time.monotonic() < deadline:
                time.sleep(0.001)
        for w, lc in zip(self.workers, self.lcores, strict=True):
            w.stop = 1
            self.lib.oms_worker_wait(lc)
        if self.typed:
            self.lanes.stop_checkers(self.checker_lcores)
        if self.io is not None:
            self.io.stop = 1  # a last drain of what the workers sent
            self.lib.oms_worker_wait(self.io_lcore)
        report = self.report()
        report["mbufs_in_use_at_start"] = self.mbufs_at_start
        if self.repl is not None:
            self.repl.close()
            self.repl = None
        close_journal(self, report)
        for pid in self.ports:
            self.lib.oms_port_stop(pid)
            self.lib.oms_port_close(pid)
        return report

    def report(self) -> dict:
        ffi = self.ffi
        ports = {}
        for pid in self.ports:
            vals = [ffi.new("uint64_t *") for _ in range(4)]
            self.lib.oms_port_stats(pid, *vals)
            ports[pid] = dict(zip(("ipackets", "opackets", "imissed", "oerrors"),
                                  (v[0] for v in vals), strict=True))
            ports[pid].update(port_state(ffi, self.lib, pid, self.port_info[pid]))
        fields = [n for n, _ in ffi.typeof("struct oms_worker_stats").fields]
        workers = [{n: getattr(w.stats, n) for n in fields} for w in self.workers]
        link_of = self.io.link if self.io is not None else self.worker.link
        link = {n: getattr(link_of, n) for n, _ in ffi.typeof("struct link_stats").fields}
        out = {"ports": ports, "worker": sum_counters(workers), "link": link,
               "core": sum_counters([c.stats() for c in self.cores]),
               "steering": self.steering, "generation": self.core.generation(),
               "threading": self.cfg.dataplane.threading.mode,
               "reloads": dict(self.reloads),
               "mbufs_in_use": self.lib.oms_pool_in_use(self.pool),
               "live_orders": sum(c.live_orders() for c in self.cores),
               **journal_report(self)}
        if self.repl is not None:
            out["replication"] = self.repl.stats()
        if self.md is not None:
            from dataplane.replay import route_line
            out["market_data"] = {**self.md.live_stats(), "mc_list": self.mc_list}
            out["route_decisions"] = [route_line(d) for c in self.cores
                                      for d in c.route_decisions()]
        if self.io is not None:
            st = self.io.stats
            out["io"] = {n: (list(getattr(st, n))[:len(self.workers)] if n == "to_worker"
                             else getattr(st, n))
                         for n, _ in ffi.typeof("struct oms_io_stats").fields}
            out["workers"] = [{"worker": wk, "core": c.stats(), "live_orders": c.live_orders()}
                              for wk, c in zip(workers, self.cores, strict=True)]
        if self.typed:
            out["typed"] = self.lanes.report()
        return out


def sum_counters(items: list[dict]) -> dict:
    """Counters of several workers or cores added up, key by key."""
    out: dict = {}
    for d in items:
        for k, v in d.items():
            out[k] = sum_counters([out.get(k, {}), v]) if isinstance(v, dict) else \
                out.get(k, 0) + v
    return out


def journal_report(app) -> dict:
    """The journals' counters and what recovery did at start, for reports:
    one journal's as they are, several (sharded: one per worker) as lists."""
    stats = [j.stats() for j in app.journals if j is not None and j._j is not None]
    recs = [r for r in app.recoveries if r is not None]
    out: dict = {}
    if stats:
        out["journal"] = stats[0] if len(app.journals) == 1 else stats
    if recs:
        out["recovery"] = recs[0] if len(app.recoveries) == 1 else recs
    return out


def close_journal(app, report: dict) -> None:
    """Once the poll loops have stopped: sync and close the journals."""
    stats = [j.stats() for j in app.journals if j is not None]
    if stats:
        report["journal"] = stats[0] if len(app.journals) == 1 else stats
    for j in app.journals:
        if j is not None:
            j.close()


def cancel_after_recovery(app) -> None:
    """journal.after_recovery: cancel - once the poll loop runs, every open
    order the recovery brought back is canceled at its venue: a mass cancel
    of each session and account, run and journaled by the loop."""
    j = app.cfg.journal
    if not any(app.recoveries) or j is None or j.after_recovery != "cancel":
        return
    canceled = 0
    for s in app.cfg.sessions:
        for a in app.cfg.accounts:
            # sharded: handle_control runs it on every worker
            answer = app.handle_control({"cmd": "mass_cancel", "session": s.id,
                                         "account": a.id})
            canceled += answer.get("canceled", 0)
    for r in app.recoveries:
        if r is not None:
            r["canceled_after"] = canceled
    print(f"omsctl: after recovery: {canceled} open orders canceled", file=sys.stderr,
          flush=True)


def dump_orders(core: Core, cfg: Config, ids: range) -> list[dict]:
    """Every order the core holds with a cl_ord_id in `ids`, for each
    configured session.  The core has no way to list its orders, so this
    looks each (session, cl_ord_id) up: for tests, after the worker stopped."""
    out = []
    for s in cfg.sessions:
        for cid in ids:
            o = core.order(s.id, cid)
            if o is not None:
                out.append({"cl_ord_id": o["cl_ord_id"], "session": o["session_id"],
                            "state": STATE_NAMES.get(o["state"], o["state"]),
                            "qty": o["qty"], "cum_qty": o["cum_qty"],
                            "leaves_qty": o["leaves_qty"], "price": o["price"]})
    return out


def start_observability(app: LiveControl):
    """The exporter and latency page (observability: in the config), or
    None.  A busy address does not stop the appliance: it says so."""
    from control.httpd import ObservabilityServer

    obs = app.cfg.observability
    if not obs.enabled:
        return None
    try:
        httpd = ObservabilityServer(app.metrics_source, obs.listen)
    except OSError as e:
        print(f"omsctl: observability.listen {obs.listen}: {e}; running without the "
              "metrics exporter and latency page", file=sys.stderr)
        return None
    httpd.start()
    print(f"omsctl: metrics at {httpd.url}/metrics, latency heatmap at {httpd.url}/",
          file=sys.stderr)
    return httpd


def serve(cfg: Config, duration_s: float | None = None, ready_file: str | None = None,
          control_socket: str | None = None, orders_file: str | None = None,
          order_ids: range = range(0), backend: str = "dpdk",
          watch_config: bool = True) -> dict:
    if backend == "afxdp":
        if cfg.replication is not None:
            raise ValueError("replication: the hot standby runs on the DPDK backend only "
                             "(docs/durability.md \"Hot standby\", Limits)")
        from dataplane.afxdp import AfxdpAppliance
        app = AfxdpAppliance(cfg)
    else:
        app = Appliance(cfg)
    stop = {"now": False, "reload": False}

    def on_signal(signum, frame):
        stop["now"] = True

    def on_hup(signum, frame):
        stop["reload"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_hup)
    watch = (FileWatch(app.config_path)
             if watch_config and os.path.isfile(app.config_path) else None)
    ctl = ControlSocket(control_socket, app.handle_control) if control_socket else None
    httpd = start_observability(app)
    app.start()
    cancel_after_recovery(app)
    repl = getattr(app, "repl", None)
    if repl is not None and not repl.wait_caught_up(30, lambda: stop["now"]):
        print("omsctl: replication: the backup has not caught up with its primary in 30 s",
              file=sys.stderr, flush=True)
    if ready_file:
        with open(ready_file, "w") as f:
            f.write(json.dumps({"pid": os.getpid(), "ports": app.ports,
                                "metrics": httpd.url if httpd else None}))
    t_end = time.monotonic() + duration_s if duration_s else None
    try:
        while not stop["now"] and (t_end is None or time.monotonic() < t_end):
            if ctl:
                ctl.poll(0.05)
            else:
                time.sleep(0.05)
            # SIGHUP or a change of the file: the same reload as `omsctl reload`
            if stop["reload"] or (watch and watch.changed()):
                stop["reload"] = False
                print("omsctl: reload: " + json.dumps(app.reload()), file=sys.stderr,
                      flush=True)
    finally:
        if ctl:
            ctl.close()
        if httpd:
            httpd.close()
    report = app.stop()
    if orders_file:
        with open(orders_file, "w") as f:
            json.dump(dump_orders(app.core, cfg, order_ids), f)
    print(json.dumps(report, sort_keys=True, default=str), file=sys.stdout, flush=True)
    return report
