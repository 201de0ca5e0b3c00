"""Metrics of the live appliance around the core: on DPDK
(dataplane/serve.py) its ports (rte_eth_stats and xstats), the worker's
rings and mempool, the worker lcore's own counters and what it answers for
the kernel (ARP, ICMP); on the native AF_XDP backend (dataplane/afxdp.py)
its sockets, the kernel's XDP statistics and the poll thread.  Read at
scrape time from the exporter's thread, in place (see control/metrics.py on
why reading the worker's 64-bit counters is safe)."""
from __future__ import annotations

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

XSTATS_ROOM = 256


def port_xstats(ffi, lib, port: int) -> dict[str, int]:
    room = XSTATS_ROOM
    buf = ffi.new(f"struct oms_xstat[{room}]")
    n = lib.oms_port_xstats(port, buf, room)
    if n < 0 or n > room:
        return {}
    return {ffi.string(buf[i].name).decode(errors="replace"): buf[i].value for i in range(n)}


def port_names(app) -> dict[int, str]:
    d = app.cfg.dataplane.ports
    names: dict[int, list[str]] = {}
    for role, name in (("strategy", d.strategy), ("venue", d.venue)):
        pid = app.lib.oms_port_by_name(name.encode())
        names.setdefault(pid, []).append(role)
    return {pid: "+".join(roles) for pid, roles in names.items()}


def appliance_families(app):
    ffi, lib = app.ffi, app.lib
    roles = port_names(app)
    packets = CounterMetricFamily("oms_port_packets", "Packets a DPDK port received or sent "
                                  "(rte_eth_stats)", labels=["port", "role", "direction"])
    octets = CounterMetricFamily("oms_port_bytes", "Bytes a DPDK port received or sent",
                                 labels=["port", "role", "direction"])
    missed = CounterMetricFamily("oms_port_missed", "Packets the port dropped because the "
                                 "receive queue was full (imissed)", labels=["port", "role"])
    errors = CounterMetricFamily("oms_port_errors", "Erroneous packets, by direction "
                                 "(ierrors, oerrors)", labels=["port", "role", "direction"])
    nombuf = CounterMetricFamily("oms_port_rx_nombuf", "Receive failures for want of an mbuf",
                                 labels=["port", "role"])
    xstats = CounterMetricFamily("oms_port_xstats", "The port driver's extended statistics "
                                 "(rte_eth_xstats), by name", labels=["port", "role", "name"])
    pc = ffi.new("struct oms_port_counters *")
    for pid in app.ports:
        labels = [str(pid), roles.get(pid, "")]
        if lib.oms_port_counters(pid, pc) != 0:
            continue
        packets.add_metric(labels + ["rx"], pc.ipackets)
        packets.add_metric(labels + ["tx"], pc.opackets)
        octets.add_metric(labels + ["rx"], pc.ibytes)
        octets.add_metric(labels + ["tx"], pc.obytes)
        missed.add_metric(labels, pc.imissed)
        errors.add_metric(labels + ["rx"], pc.ierrors)
        errors.add_metric(labels + ["tx"], pc.oerrors)
        nombuf.add_metric(labels, pc.rx_nombuf)
        for name, value in sorted(port_xstats(ffi, lib, pid).items()):
            xstats.add_metric(labels + [name], value)
    yield from (packets, octets, missed, errors, nombuf, xstats)

    depth = GaugeMetricFamily("oms_port_rx_queue_depth", "Frames waiting in a port's RX "
                              "queue (where the driver can tell)", labels=["port", "role",
                                                                          "queue"])
    link = GaugeMetricFamily("oms_port_link_up", "1 while the port's link is up",
                             labels=["port", "role"])
    speed = GaugeMetricFamily("oms_port_link_speed_mbps", "The link's speed (0: unknown)",
                              labels=["port", "role"])
    mtu = GaugeMetricFamily("oms_port_mtu", "The port's MTU in force", labels=["port", "role"])
    now = ffi.new("struct oms_port_info *")
    for pid in app.ports:  # every queue is polled by one lcore
        info = app.port_info[pid]
        labels = [str(pid), roles.get(pid, "")]
        for q in range(info["rx_queues"]):
            n = lib.oms_port_rx_queue_depth(pid, q)
            if n >= 0:
                depth.add_metric(labels + [str(q)], n)
        if lib.oms_port_link(pid, now, 0) == 0:
            link.add_metric(labels, now.link_up)
            speed.add_metric(labels, now.link_speed_mbps)
        mtu.add_metric(labels, info["mtu"])
    yield from (depth, link, speed, mtu)
    ring = GaugeMetricFamily("oms_ring_entries", "Entries waiting in a ring: a worker's "
                             "commands, and in the sharded mode its frames in and out",
                             labels=["ring", "worker"])
    ring_cap = GaugeMetricFamily("oms_ring_capacity", "Entries a ring holds at most",
                                 labels=["ring", "worker"])
    for i, w in enumerate(app.workers):
        rings = [("commands", app.command_rings[i])]
        if app.io is not None:
            rings += [("in", w.in_ring), ("out", w.out_ring)]
        for name, r in rings:
            ring.add_metric([name, str(i)], lib.oms_ring_count(r))
            ring_cap.add_metric([name, str(i)], lib.oms_ring_capacity(r))
    yield ring
    yield ring_cap
    pool = GaugeMetricFamily("oms_mempool_mbufs", "Mbufs of the mempool, in use or in all",
                             labels=["pool", "state"])
    pool.add_metric(["oms_pool", "in_use"], lib.oms_pool_in_use(app.pool))
    pool.add_metric(["oms_pool", "size"], lib.oms_pool_size(app.pool))
    yield pool

    worker = CounterMetricFamily("oms_worker", "Each worker lcore's own counters, by kind "
                                 "(struct oms_worker_stats)", labels=["lcore", "kind"])
    for w, lc in zip(app.workers, app.lcores, strict=True):
        for name, _ in ffi.typeof("struct oms_worker_stats").fields:
            worker.add_metric([str(lc), name], getattr(w.stats, name))
    yield worker
    if app.io is not None:
        io = CounterMetricFamily("oms_io", "The I/O lcore's counters (sharded mode), by kind",
                                 labels=["kind"])
        to_worker = CounterMetricFamily("oms_io_to_worker", "Frames the I/O lcore handed to "
                                        "each worker", labels=["worker"])
        st = app.io.stats
        for name, _ in ffi.typeof("struct oms_io_stats").fields:
            if name == "to_worker":
                for i in range(len(app.workers)):
                    to_worker.add_metric([str(i)], st.to_worker[i])
            else:
                io.add_metric([name], getattr(st, name))
        yield io
        yield to_worker
    link_of = app.io.link if app.io is not None else app.worker.link
    link = CounterMetricFamily("oms_link", "What the appliance answers for the kernel (ARP, "
                               "ICMP echo), by kind", labels=["kind"])
    for name, _ in ffi.typeof("struct link_stats").fields:
        link.add_metric([name], getattr(link_of, name))
    yield link
    tsc = GaugeMetricFamily("oms_tsc_hz", "The TSC rate latency cycles are converted with")
    tsc.add_metric([], lib.oms_tsc_hz())
    yield tsc


def afxdp_families(app):
    """The native AF_XDP backend (dataplane/afxdp.py): its sockets' counters
    and the kernel's XDP statistics, the poll thread's own counters."""
    ffi, lib = app.ffi, app.lib
    roles: dict[str, list[str]] = {}
    for role, iface in zip(("strategy", "venue"), app.ifaces, strict=True):
        roles.setdefault(iface, []).append(role)
    packets = CounterMetricFamily("oms_port_packets", "Frames an AF_XDP socket received or "
                                  "sent", labels=["port", "role", "direction"])
    missed = CounterMetricFamily("oms_port_missed", "Frames the kernel dropped before the "
                                 "socket (XDP rx_dropped + rx_ring_full)", labels=["port", "role"])
    errors = CounterMetricFamily("oms_port_errors", "Frames not received or sent for an error "
                                 "(invalid descriptors; TX: no room or oversize)",
                                 labels=["port", "role", "direction"])
    xstats = CounterMetricFamily("oms_port_xstats", "The socket's counters and the kernel's "
                                 "XDP statistics, by name", labels=["port", "role", "name"])
    st = ffi.new("struct oms_xsk_stats *")
    for i, iface in enumerate(app.ports):
        if lib.oms_afxdp_port_stats(app.dp, i, st) != 0:
            continue
        labels = [iface, "+".join(roles.get(iface, []))]
        packets.add_metric(labels + ["rx"], st.rx_frames)
        packets.add_metric(labels + ["tx"], st.tx_frames)
        missed.add_metric(labels, st.k_rx_dropped + st.k_rx_ring_full)
        errors.add_metric(labels + ["rx"], st.k_rx_invalid_descs)
        errors.add_metric(labels + ["tx"], st.tx_full + st.tx_oversize + st.k_tx_invalid_descs)
        for name, _ in ffi.typeof("struct oms_xsk_stats").fields:
            xstats.add_metric(labels + [name], getattr(st, name))
    yield from (packets, missed, errors, xstats)
    loop = ffi.new("struct oms_afxdp_loop_stats *")
    lib.oms_afxdp_loop_stats(app.dp, loop)
    worker = CounterMetricFamily("oms_worker", "The poll thread's own counters, by kind",
                                 labels=["lcore", "kind"])
    for name, _ in ffi.typeof("struct oms_afxdp_loop_stats").fields:
        worker.add_metric(["poll_thread", name], getattr(loop, name))
    yield worker
    link = ffi.new("struct link_stats *")
    lib.oms_afxdp_link_stats(app.dp, link)
    fam = CounterMetricFamily("oms_link", "What the poll thread answers for the kernel (ARP, "
                              "ICMP echo), by kind", labels=["kind"])
    for name, _ in ffi.typeof("struct link_stats").fields:
        fam.add_metric([name], getattr(link, name))
    yield fam
