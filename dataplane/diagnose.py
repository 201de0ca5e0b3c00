"""Start-up diagnosis: what the machine lacks for the configured data plane,
read from /proc and /sys before EAL starts, each problem a sentence saying
what is wrong and how to fix it (rather than EAL's own error, which names
neither).  `omsctl doctor` prints every finding; `omsctl run` refuses to
start on an error and prints the warnings.

Every path is read under `root`, so tests run the checks against a fake
sysfs/procfs tree."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from control.config import Config, Dataplane
from dataplane.eal_stale import hugetlbfs_mounts

ERROR, WARNING, OK = "error", "warning", "ok"
# drivers DPDK's PCI poll-mode drivers can use
DPDK_DRIVERS = ("vfio-pci", "uio_pci_generic", "igb_uio")
# NICs whose DPDK driver works beside the kernel's own (bifurcated)
BIFURCATED = ("mlx4_core", "mlx5_core")
# an mbuf in the mempool: data room (RTE_MBUF_DEFAULT_BUF_SIZE), header and
# mempool overhead, rounded up
MBUF_BYTES = 2560
# rings, ports' queues and EAL's own allocations beside the mempool
EAL_OVERHEAD_MB = 64
_PCI = re.compile(r"^(?:([0-9a-fA-F]{4}):)?([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])$")


@dataclass(frozen=True)
class Finding:
    level: str   # error, warning or ok
    check: str   # hugepages, pci, lcores, numa, iommu, cache
    text: str

    def __str__(self) -> str:
        return f"{self.level}: {self.check}: {self.text}"


def parse_cpu_list(text: str) -> list[int]:
    """The kernel's and EAL's CPU list syntax: "0-3,8,10-11"."""
    out: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def pci_address(name: str) -> str | None:
    """The full domain:bus:device.function form, or None if not PCI."""
    m = _PCI.match(name)
    if not m:
        return None
    return f"{(m.group(1) or '0000').lower()}:{m.group(2).lower()}:{m.group(3).lower()}." \
           f"{m.group(4)}"


class _Machine:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, p: str) -> Path:
        return self.root / p.lstrip("/")

    def read(self, p: str) -> str | None:
        try:
            return self.path(p).read_text().strip()
        except OSError:
            return None

    def read_int(self, p: str) -> int | None:
        v = self.read(p)
        try:
            return int(v) if v is not None else None
        except ValueError:
            return None

    def listdir(self, p: str) -> list[str]:
        try:
            return sorted(os.listdir(self.path(p)))
        except OSError:
            return []

    def link_name(self, p: str) -> str | None:
        try:
            return os.path.basename(os.readlink(self.path(p)))
        except OSError:
            return None


def diagnose(cfg: Config | Dataplane, root: str | Path = "/") -> list[Finding]:
    """Every finding about the machine under `root` for cfg's data plane."""
    d = cfg.dataplane if isinstance(cfg, Config) else cfg
    m = _Machine(root)
    out: list[Finding] = []
    workers = _check_lcores(d, m, out)
    devices = _check_pci(cfg if isinstance(cfg, Config) else None, d, m, out)
    _check_hugepages(d, m, out)
    _check_numa(d, m, workers, devices, out)
    _check_l3(d, m, workers, out)
    return out


def errors(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.level == ERROR]


# --- lcores ---------------------------------------------------------------

def parse_lcores(text: str) -> list[tuple[int, int]]:
    """(lcore, CPU) pairs of dataplane.lcores: an EAL -l list ("0,1",
    "0-3": lcore n on CPU n) or lcore@cpu items ("0@0,1@1,2@1")."""
    pairs: list[tuple[int, int]] = []
    for part in text.strip().split(","):
        lcore, at, cpu = part.partition("@")
        if at:
            pairs.append((int(lcore), int(cpu)))
        else:
            pairs.extend((c, c) for c in parse_cpu_list(part))
    return pairs


def _check_lcores(d: Dataplane, m: _Machine, out: list[Finding]) -> list[int]:
    """Returns the worker lcores' CPUs (EAL's main lcore, the lowest, is
    Python's)."""
    pairs = parse_lcores(d.lcores)
    bad = False
    lcores: dict[int, int] = {}
    for lc, cpu in pairs:
        if lc in lcores:
            bad = True
            out.append(Finding(ERROR, "lcores", f"dataplane.lcores {d.lcores!r} lists lcore "
                               f"{lc} twice: list each once"))
        lcores[lc] = cpu
    present = {int(n[3:]) for n in m.listdir("/sys/devices/system/cpu")
               if re.fullmatch(r"cpu\d+", n)}
    online_text = m.read("/sys/devices/system/cpu/online")
    online = set(parse_cpu_list(online_text)) if online_text else present
    for c in sorted(set(lcores.values())):
        if present and c not in present:
            bad = True
            out.append(Finding(ERROR, "lcores", f"dataplane.lcores {d.lcores!r} names CPU {c}, "
                               f"which this machine does not have (it has CPUs "
                               f"{_ranges(present)}): choose lcores among them"))
        elif c not in online:
            bad = True
            out.append(Finding(ERROR, "lcores", f"CPU {c} of dataplane.lcores is offline: "
                               f"echo 1 > /sys/devices/system/cpu/cpu{c}/online, or choose "
                               f"among the online CPUs {_ranges(online)}"))
    if len(lcores) < 2:
        bad = True
        out.append(Finding(ERROR, "lcores", f"dataplane.lcores {d.lcores!r} has one lcore: "
                           "the first is Python's (control), the worker needs another, "
                           'e.g. "0,1"'))
    main = min(lcores, default=0)
    workers = {lc: cpu for lc, cpu in sorted(lcores.items()) if lc != main}
    if d.idle_sleep_us == 0 and not d.allow_shared_cpus:
        # busy pollers on one CPU, or on the hyperthreads of one core, take
        # turns on it
        by_cpu: dict[int, list[int]] = {}
        for lc, cpu in workers.items():
            by_cpu.setdefault(cpu, []).append(lc)
        for cpu, group in by_cpu.items():
            if len(group) > 1:
                bad = True
                out.append(Finding(ERROR, "lcores", f"worker lcores {_ranges(group)} all run "
                                   f"on CPU {cpu} and busy-poll (idle_sleep_us: 0), so they "
                                   "take turns on it: give each its own CPU, or set "
                                   "dataplane.allow_shared_cpus: true (and idle_sleep_us "
                                   "above 0)"))
        by_core: dict[str, list[int]] = {}
        for cpu in by_cpu:
            sib = m.read(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list")
            if sib:
                by_core.setdefault(sib, []).append(cpu)
        for sib, group in by_core.items():
            if len(group) > 1:
                bad = True
                out.append(Finding(ERROR, "lcores", f"worker lcores on CPUs {_ranges(group)} "
                                   f"are hyperthreads of one core (siblings {sib}) and "
                                   "busy-poll (idle_sleep_us: 0), so they take turns on it: "
                                   "choose CPUs on different cores, or set "
                                   "dataplane.allow_shared_cpus: true"))
    if not bad:
        out.append(Finding(OK, "lcores", f"CPUs {_ranges(lcores.values())} are present and "
                           f"online (Python on {lcores.get(main, main)}, workers on "
                           f"{_ranges(workers.values())})"))
    return sorted(set(workers.values()))


# --- PCI ports and the IOMMU ----------------------------------------------

def _check_pci(cfg: Config | None, d: Dataplane, m: _Machine, out: list[Finding]
               ) -> dict[str, int]:
    """The PCI devices found, with their NUMA node (-1: unknown)."""
    devices: dict[str, int] = {}
    need_iommu: list[str] = []
    for name in d.pci:
        addr = pci_address(name)
        if addr is None:
            out.append(Finding(ERROR, "pci", f"dataplane.pci {name!r} is not a PCI address "
                               "like 0000:3b:00.0 (dpdk-devbind.py --status lists them)"))
            continue
        base = f"/sys/bus/pci/devices/{addr}"
        if not m.path(base).exists():
            out.append(Finding(ERROR, "pci", f"PCI device {addr} (dataplane.pci) does not "
                               "exist on this machine: check the address with "
                               "dpdk-devbind.py --status or lspci -D"))
            continue
        node = m.read_int(f"{base}/numa_node")
        devices[addr] = node if node is not None else -1
        driver = m.link_name(f"{base}/driver")
        if driver in DPDK_DRIVERS:
            out.append(Finding(OK, "pci", f"{addr} is bound to {driver}"))
            if driver == "vfio-pci":
                need_iommu.append(addr)
        elif driver in BIFURCATED:
            out.append(Finding(OK, "pci", f"{addr} keeps its kernel driver {driver}, which "
                               "DPDK's mlx driver works beside"))
        else:
            now = f"bound to the kernel driver {driver}" if driver else "bound to no driver"
            if m.listdir("/sys/kernel/iommu_groups"):
                fix = f"deploy/bind-nic.sh {addr} (vfio-pci)"
            else:
                fix = (f"deploy/bind-nic.sh {addr} uio_pci_generic (this machine has no "
                       "IOMMU, which vfio-pci needs)")
            out.append(Finding(ERROR, "pci", f"{addr} is {now}, so DPDK cannot drive it: "
                               f"bind it with {fix}"))
    if cfg is not None and d.ports is not None:
        allowed = {pci_address(p) for p in d.pci}
        for role in ("strategy", "venue"):
            name = getattr(d.ports, role)
            addr = pci_address(name)
            if addr is not None and addr not in allowed:
                out.append(Finding(ERROR, "pci", f"dataplane.ports.{role} is {name}, which is "
                                   "not in dataplane.pci: add it there, or EAL will not "
                                   "probe it"))
    for addr in need_iommu:
        _check_iommu(addr, m, out)
    return devices


def _check_iommu(addr: str, m: _Machine, out: list[Finding]) -> None:
    noiommu = m.read("/sys/module/vfio/parameters/enable_unsafe_noiommu_mode")
    if m.link_name(f"/sys/bus/pci/devices/{addr}/iommu_group") is not None and \
            m.listdir("/sys/kernel/iommu_groups"):
        if not m.path("/dev/vfio").exists():
            out.append(Finding(ERROR, "iommu", f"{addr} is bound to vfio-pci but /dev/vfio "
                               "is missing: modprobe vfio-pci"))
        else:
            out.append(Finding(OK, "iommu", f"{addr}: IOMMU group present for vfio-pci"))
    elif noiommu in ("Y", "1"):
        out.append(Finding(WARNING, "iommu", f"{addr} uses vfio-pci in no-IOMMU mode: DMA is "
                           "not isolated; enable the IOMMU (intel_iommu=on iommu=pt on the "
                           "kernel command line) for production"))
    else:
        cmdline = m.read("/proc/cmdline") or ""
        hint = ("the kernel command line has no intel_iommu=on / amd_iommu=on: add it "
                "(with iommu=pt) and reboot" if "iommu=on" not in cmdline
                else "the IOMMU is asked for on the kernel command line but not active: "
                     "enable VT-d / AMD-Vi in the firmware")
        out.append(Finding(ERROR, "iommu", f"{addr} is bound to vfio-pci, which needs an "
                           f"IOMMU, and there is none: {hint}; or bind it with "
                           f"deploy/bind-nic.sh {addr} uio_pci_generic"))


# --- hugepages ------------------------------------------------------------

def _hugepage_pools(m: _Machine, base: str) -> list[tuple[int, int, int]]:
    """(page size in kB, pages reserved, pages free) under base."""
    pools = []
    for name in m.listdir(base):
        size = re.fullmatch(r"hugepages-(\d+)kB", name)
        if size:
            pools.append((int(size.group(1)), m.read_int(f"{base}/{name}/nr_hugepages") or 0,
                          m.read_int(f"{base}/{name}/free_hugepages") or 0))
    return pools


def _hugetlbfs_mounted(m: _Machine) -> bool:
    return bool(hugetlbfs_mounts(str(m.path("/proc/mounts"))))


def hugepages_free_mb(root: str | Path = "/") -> int:
    """MiB of free hugepages (every page size) on the machine under `root`;
    0 when no hugetlbfs is mounted, since EAL finds the pages through one."""
    m = _Machine(root)
    if not _hugetlbfs_mounted(m):
        return 0
    return sum(size * free for size, _, free in
               _hugepage_pools(m, "/sys/kernel/mm/hugepages")) // 1024


def _check_hugepages(d: Dataplane, m: _Machine, out: list[Finding]) -> None:
    if not d.hugepages:
        out.append(Finding(OK, "hugepages", f"not used: --no-huge with {d.memory_mb} MiB of "
                           "ordinary memory (dataplane.hugepages: false)"))
        return
    pools = _hugepage_pools(m, "/sys/kernel/mm/hugepages")
    reserved = sum(n for _, n, _ in pools)
    free_mb = sum(size * free for size, _, free in pools) // 1024
    need_mb = d.mbufs * MBUF_BYTES // (1 << 20) + EAL_OVERHEAD_MB
    fix = (f"reserve some with deploy/hugepages.sh {max(512, need_mb // 2 + 1)} (2 MiB pages),"
           " or set dataplane.hugepages: false to run on ordinary memory")
    if reserved == 0:
        out.append(Finding(ERROR, "hugepages", "dataplane.hugepages is true but no hugepages "
                           f"are reserved: {fix}"))
        return
    if not _hugetlbfs_mounted(m):
        out.append(Finding(ERROR, "hugepages", f"{reserved} hugepages are reserved but no "
                           "hugetlbfs is mounted: mount -t hugetlbfs nodev /dev/hugepages "
                           "(deploy/hugepages.sh does)"))
        return
    if free_mb < need_mb:
        what = "none is free" if free_mb == 0 else f"only {free_mb} MiB are free"
        out.append(Finding(ERROR, "hugepages", f"the mempool (dataplane.mbufs: {d.mbufs}) "
                           f"needs about {need_mb} MiB of hugepages and {what} (another DPDK "
                           f"process, or too few reserved): {fix}"))
        return
    out.append(Finding(OK, "hugepages", f"{free_mb} MiB of hugepages free, mounted; about "
                       f"{need_mb} MiB needed"))


# --- NUMA -----------------------------------------------------------------

def _cpu_nodes(m: _Machine) -> dict[int, int]:
    nodes: dict[int, int] = {}
    for name in m.listdir("/sys/devices/system/node"):
        n = re.fullmatch(r"node(\d+)", name)
        if n:
            for c in parse_cpu_list(m.read(f"/sys/devices/system/node/{name}/cpulist") or ""):
                nodes[c] = int(n.group(1))
    return nodes


def _check_numa(d: Dataplane, m: _Machine, workers: list[int], devices: dict[str, int],
                out: list[Finding]) -> None:
    cpu_node = _cpu_nodes(m)
    for addr, node in devices.items():
        if node < 0:
            continue  # one node, or the firmware does not say
        far = [c for c in workers if c in cpu_node and cpu_node[c] != node]
        if far:
            local = sorted(c for c, n in cpu_node.items() if n == node)
            out.append(Finding(WARNING, "numa", f"port {addr} is on NUMA node {node} but the "
                               f"worker lcores on CPU(s) {_ranges(far)} are on node "
                               f"{_ranges({cpu_node[c] for c in far})}: every frame crosses "
                               f"between sockets; choose worker lcores from node {node} "
                               f"(CPUs {_ranges(local)})"))
        if d.hugepages:
            pools = _hugepage_pools(m, f"/sys/devices/system/node/node{node}/hugepages")
            if pools and sum(free for _, _, free in pools) == 0:
                out.append(Finding(WARNING, "numa", f"port {addr} is on NUMA node {node}, "
                                   f"which has no free hugepages: its mempool will be remote; "
                                   f"deploy/hugepages.sh 1024 {node} reserves them there"))


# --- last-level cache -----------------------------------------------------

def _l3_of(m: _Machine, cpu: int) -> str | None:
    """The CPUs that share cpu's level-3 cache, as sysfs lists them."""
    base = f"/sys/devices/system/cpu/cpu{cpu}/cache"
    for idx in m.listdir(base):
        if re.fullmatch(r"index\d+", idx) and m.read(f"{base}/{idx}/level") == "3":
            return m.read(f"{base}/{idx}/shared_cpu_list") or None
    return None


def _check_l3(d: Dataplane, m: _Machine, workers: list[int], out: list[Finding]) -> None:
    """The sharded and typed modes hand every frame from the I/O lcore to a
    worker and back through rings: between two L3 caches (two CCXs of an
    EPYC, two sockets) each hand-over is a transfer from the other cache,
    185-230 ns on the benchmark machine against 40-65 ns within one L3."""
    if d.threading.mode == "rtc" or len(workers) < 2:
        return
    groups: dict[str, list[int]] = {}
    for c in workers:
        l3 = _l3_of(m, c)
        if l3:
            groups.setdefault(l3, []).append(c)
    if len(groups) > 1:
        split = "; ".join(f"CPU(s) {_ranges(cs)} share an L3 with {l3}"
                          for l3, cs in sorted(groups.items(), key=lambda g: min(g[1])))
        biggest = max(groups, key=lambda l3: len(parse_cpu_list(l3)))
        out.append(Finding(WARNING, "cache", f"dataplane.threading.mode {d.threading.mode}: "
                           f"the I/O and worker lcores are spread over {len(groups)} L3 caches "
                           f"({split}), so every frame they hand over crosses between caches "
                           f"(about 200 ns against 40-65 within one); choose their CPUs from "
                           f"one L3, e.g. among {biggest}"))


def _ranges(values) -> str:
    """1,2,3,5 -> "1-3,5"."""
    vals = sorted(set(values))
    parts = []
    i = 0
    while i < len(vals):
        j = i
        while j + 1 < len(vals) and vals[j + 1] == vals[j] + 1:
            j += 1
        parts.append(str(vals[i]) if i == j else f"{vals[i]}-{vals[j]}")
        i = j + 1
    return ",".join(parts) if parts else "none"
