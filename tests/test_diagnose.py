"""The start-up check (dataplane/diagnose.py): each problem it knows, on a
fake /sys and /proc tree, is one finding that says what is wrong and how to
fix it; and on this machine, `omsctl doctor` and `omsctl run` use it."""
from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from control.config import Dataplane, Threading, load_config, load_default_config
from dataplane.diagnose import (
    ERROR,
    OK,
    WARNING,
    diagnose,
    hugepages_free_mb,
    parse_cpu_list,
    parse_lcores,
)

ROOT = Path(__file__).resolve().parent.parent
OMSCTL = Path(sys.executable).parent / "omsctl"
NIC = "0000:3b:00.0"
NIC2 = "0000:3b:00.1"


def write(root: Path, path: str, text: str) -> None:
    p = root / path.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text + "\n")


def link(root: Path, path: str, target: str) -> None:
    p = root / path.lstrip("/")
    p.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, p)


def fake_machine(root: Path, *, cpus: int = 4, online: str = "0-3",
                 nodes: dict[int, str] | None = None, siblings: dict[int, str] | None = None,
                 hugepages: tuple[int, int] | None = (1024, 1024),
                 node_hugepages: dict[int, tuple[int, int]] | None = None,
                 mounted: bool = True, nics: dict[str, dict] | None = None,
                 iommu: bool = True, noiommu: str | None = None, cmdline: str = "",
                 l3: dict[int, str] | None = None) -> Path:
    """A /sys and /proc with what diagnose reads: CPUs, NUMA nodes, 2 MiB
    hugepages (reserved, free), mounts, PCI NICs (driver, node, IOMMU
    group)."""
    for c in range(cpus):
        write(root, f"/sys/devices/system/cpu/cpu{c}/topology/thread_siblings_list",
              (siblings or {}).get(c, str(c)))
        # L1d and L2 per CPU, L3 shared as `l3` says (all of them by default)
        cache = f"/sys/devices/system/cpu/cpu{c}/cache"
        for idx, level, shared in ((0, 1, str(c)), (2, 2, str(c)),
                                   (3, 3, (l3 or {}).get(c, f"0-{cpus - 1}"))):
            write(root, f"{cache}/index{idx}/level", str(level))
            write(root, f"{cache}/index{idx}/shared_cpu_list", shared)
    write(root, "/sys/devices/system/cpu/online", online)
    for n, cpulist in (nodes or {0: f"0-{cpus - 1}"}).items():
        write(root, f"/sys/devices/system/node/node{n}/cpulist", cpulist)
        nr, free = (node_hugepages or {}).get(n, hugepages or (0, 0))
        base = f"/sys/devices/system/node/node{n}/hugepages/hugepages-2048kB"
        write(root, f"{base}/nr_hugepages", str(nr))
        write(root, f"{base}/free_hugepages", str(free))
    nr, free = hugepages or (0, 0)
    write(root, "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages", str(nr))
    write(root, "/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages", str(free))
    mounts = "proc /proc proc rw 0 0\nsysfs /sys sysfs rw 0 0\n"
    if mounted:
        mounts += "hugetlbfs /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0\n"
    write(root, "/proc/mounts", mounts)
    write(root, "/proc/cmdline", cmdline or "BOOT_IMAGE=/vmlinuz root=/dev/sda1")
    for addr, nic in (nics or {}).items():
        base = f"/sys/bus/pci/devices/{addr}"
        write(root, f"{base}/numa_node", str(nic.get("node", 0)))
        if nic.get("driver"):
            link(root, f"{base}/driver", f"../../../bus/pci/drivers/{nic['driver']}")
        if iommu:
            link(root, f"{base}/iommu_group", "../../../kernel/iommu_groups/17")
    if iommu:
        (root / "sys/kernel/iommu_groups/17").mkdir(parents=True, exist_ok=True)
        (root / "dev/vfio").mkdir(parents=True, exist_ok=True)
    if noiommu is not None:
        write(root, "/sys/module/vfio/parameters/enable_unsafe_noiommu_mode", noiommu)
    return root


def dataplane(**kw) -> Dataplane:
    base = {"lcores": "0,1", "hugepages": True, "pci": (NIC,), "idle_sleep_us": 0,
            "mbufs": 8191}
    return Dataplane(**{**base, **kw})


def problems(findings, level=None):
    return [f for f in findings if (f.level == level if level else f.level != OK)]


def only_error(findings, check: str) -> str:
    errs = problems(findings, ERROR)
    assert [f.check for f in errs] == [check], errs
    return errs[0].text


def test_a_ready_machine_has_no_problems(tmp_path):
    root = fake_machine(tmp_path, nics={NIC: {"driver": "vfio-pci"}})
    findings = diagnose(dataplane(), root)
    assert problems(findings) == []
    assert {f.check for f in findings} == {"lcores", "pci", "iommu", "hugepages"}


def test_no_hugepages_reserved(tmp_path):
    root = fake_machine(tmp_path, hugepages=None, nics={NIC: {"driver": "vfio-pci"}})
    text = only_error(diagnose(dataplane(), root), "hugepages")
    assert "no hugepages are reserved" in text
    assert "deploy/hugepages.sh" in text and "dataplane.hugepages: false" in text


def test_hugepages_reserved_but_not_mounted(tmp_path):
    root = fake_machine(tmp_path, mounted=False, nics={NIC: {"driver": "vfio-pci"}})
    text = only_error(diagnose(dataplane(), root), "hugepages")
    assert "no hugetlbfs is mounted" in text and "mount -t hugetlbfs" in text


def test_hugepages_all_in_use(tmp_path):
    root = fake_machine(tmp_path, hugepages=(1024, 0), nics={NIC: {"driver": "vfio-pci"}})
    text = only_error(diagnose(dataplane(), root), "hugepages")
    assert "none is free" in text and "another DPDK process" in text


def test_too_few_hugepages_free_for_the_mempool(tmp_path):
    root = fake_machine(tmp_path, hugepages=(64, 64), nics={NIC: {"driver": "vfio-pci"}})
    text = only_error(diagnose(dataplane(mbufs=262143), root), "hugepages")
    assert "only 128 MiB are free" in text and "dataplane.mbufs: 262143" in text


def test_no_huge_needs_no_hugepages(tmp_path):
    root = fake_machine(tmp_path, hugepages=None, mounted=False)
    findings = diagnose(dataplane(hugepages=False, pci=()), root)
    assert problems(findings) == []


def test_pci_address_that_does_not_exist(tmp_path):
    root = fake_machine(tmp_path, nics={NIC: {"driver": "vfio-pci"}})
    text = only_error(diagnose(dataplane(pci=(NIC, "3b:00.7")), root), "pci")
    assert "0000:3b:00.7" in text and "does not exist" in text


def test_port_bound_to_its_kernel_driver(tmp_path):
    root = fake_machine(tmp_path, nics={NIC: {"driver": "ixgbe"}})
    text = only_error(diagnose(dataplane(), root), "pci")
    assert "bound to the kernel driver ixgbe" in text
    assert f"deploy/bind-nic.sh {NIC}" in text


def test_port_to_bind_on_a_machine_without_iommu(tmp_path):
    root = fake_machine(tmp_path, iommu=False, nics={NIC: {"driver": "ixgbe"}})
    text = only_error(diagnose(dataplane(), root), "pci")
    assert f"deploy/bind-nic.sh {NIC} uio_pci_generic" in text and "no IOMMU" in text


def test_port_bound_to_no_driver(tmp_path):
    root = fake_machine(tmp_path, nics={NIC: {}})
    text = only_error(diagnose(dataplane(), root), "pci")
    assert "bound to no driver" in text and f"deploy/bind-nic.sh {NIC}" in text


@pytest.mark.parametrize("driver", ["uio_pci_generic", "igb_uio", "mlx5_core"])
def test_other_drivers_dpdk_can_use(tmp_path, driver):
    root = fake_machine(tmp_path, iommu=False, nics={NIC: {"driver": driver}})
    assert problems(diagnose(dataplane(), root)) == []


def test_vfio_without_an_iommu(tmp_path):
    root = fake_machine(tmp_path, iommu=False, nics={NIC: {"driver": "vfio-pci"}})
    text = only_error(diagnose(dataplane(), root), "iommu")
    assert "needs an IOMMU" in text and "intel_iommu=on" in text
    assert f"deploy/bind-nic.sh {NIC} uio_pci_generic" in text


def test_vfio_iommu_asked_for_but_not_active(tmp_path):
    root = fake_machine(tmp_path, iommu=False, cmdline="root=/dev/sda1 intel_iommu=on",
                        nics={NIC: {"driver": "vfio-pci"}})
    assert "firmware" in only_error(diagnose(dataplane(), root), "iommu")


def test_vfio_in_no_iommu_mode_is_a_warning(tmp_path):
    root = fake_machine(tmp_path, iommu=False, noiommu="Y", nics={NIC: {"driver": "vfio-pci"}})
    findings = diagnose(dataplane(), root)
    assert problems(findings, ERROR) == []
    assert [f.check for f in problems(findings, WARNING)] == ["iommu"]


def test_lcore_the_machine_does_not_have(tmp_path):
    root = fake_machine(tmp_path, cpus=2, online="0-1", hugepages=None)
    text = only_error(diagnose(dataplane(lcores="0,5", hugepages=False, pci=()), root),
                      "lcores")
    assert "CPU 5" in text and "it has CPUs 0-1" in text


def test_offline_lcore(tmp_path):
    root = fake_machine(tmp_path, online="0-1,3")
    text = only_error(diagnose(dataplane(lcores="0-2", hugepages=False, pci=()), root),
                      "lcores")
    assert "CPU 2" in text and "offline" in text and "cpu2/online" in text


def test_one_lcore_leaves_no_worker(tmp_path):
    root = fake_machine(tmp_path)
    text = only_error(diagnose(dataplane(lcores="1", hugepages=False, pci=()), root), "lcores")
    assert "the worker needs another" in text


def test_cpu_listed_twice(tmp_path):
    root = fake_machine(tmp_path)
    text = only_error(diagnose(dataplane(lcores="0-2,2", hugepages=False, pci=()), root),
                      "lcores")
    assert "lcore 2 twice" in text


def test_busy_pollers_on_hyperthreads_of_one_core(tmp_path):
    root = fake_machine(tmp_path, siblings={1: "1,3", 3: "1,3"})
    dp = dataplane(lcores="0,1,3", hugepages=False, pci=())
    text = only_error(diagnose(dp, root), "lcores")
    assert "hyperthreads of one core" in text and "allow_shared_cpus: true" in text
    # allowed by the configuration, or not busy-polling: no problem
    assert problems(diagnose(dataclasses.replace(dp, allow_shared_cpus=True), root)) == []
    assert problems(diagnose(dataclasses.replace(dp, idle_sleep_us=50), root)) == []


def test_busy_pollers_mapped_onto_one_cpu(tmp_path):
    root = fake_machine(tmp_path, cpus=2, online="0-1")
    dp = dataplane(lcores="0@0,1@1,2@1", hugepages=False, pci=())
    text = only_error(diagnose(dp, root), "lcores")
    assert "worker lcores 1-2 all run on CPU 1" in text and "allow_shared_cpus: true" in text
    assert problems(diagnose(dataclasses.replace(dp, allow_shared_cpus=True), root)) == []
    assert problems(diagnose(dataclasses.replace(dp, idle_sleep_us=50), root)) == []
    text = only_error(diagnose(dataplane(lcores="0@0,1@4", hugepages=False, pci=()), root),
                      "lcores")
    assert "names CPU 4" in text


def test_numa_mismatch_is_a_warning_with_the_local_cpus(tmp_path):
    root = fake_machine(tmp_path, nodes={0: "0-1", 1: "2-3"},
                        nics={NIC: {"driver": "vfio-pci", "node": 1}})
    findings = diagnose(dataplane(lcores="0,1"), root)
    assert problems(findings, ERROR) == []
    [w] = problems(findings, WARNING)
    assert w.check == "numa"
    assert "NUMA node 1" in w.text and "worker lcores on CPU(s) 1 are on node 0" in w.text
    assert "CPUs 2-3" in w.text
    assert problems(diagnose(dataplane(lcores="0,2"), root)) == []
    # EAL's main lcore is the lowest: Python on CPU 1, the worker on CPU 2
    assert problems(diagnose(dataplane(lcores="2,1"), root)) == []


def test_sharded_lcores_over_two_l3_caches_is_a_warning(tmp_path):
    # two CCXs of four CPUs each
    root = fake_machine(tmp_path, cpus=8, online="0-7",
                        l3={c: "0-3" if c < 4 else "4-7" for c in range(8)})
    sharded = dataclasses.replace(dataplane(lcores="0,1,5", hugepages=False, pci=()),
                                  threading=Threading(mode="sharded"))
    [w] = problems(diagnose(sharded, root))
    assert w.level == WARNING and w.check == "cache"
    assert "spread over 2 L3 caches" in w.text
    assert "CPU(s) 1 share an L3 with 0-3; CPU(s) 5 share an L3 with 4-7" in w.text
    # within one L3, or run to completion (nothing handed between lcores):
    # nothing to say
    assert problems(diagnose(dataclasses.replace(sharded, lcores="0,1,2"), root)) == []
    assert problems(diagnose(dataplane(lcores="0,1,5", hugepages=False, pci=()), root)) == []
    typed = dataclasses.replace(sharded, lcores="0,1,2,3,4", threading=Threading(mode="typed"))
    [w] = problems(diagnose(typed, root))
    assert "CPU(s) 1-3 share an L3 with 0-3; CPU(s) 4 share an L3 with 4-7" in w.text


def test_no_hugepages_on_the_ports_node_is_a_warning(tmp_path):
    root = fake_machine(tmp_path, nodes={0: "0-1", 1: "2-3"},
                        node_hugepages={0: (1024, 1024), 1: (0, 0)},
                        nics={NIC: {"driver": "vfio-pci", "node": 1}})
    findings = diagnose(dataplane(lcores="0,2"), root)
    [w] = problems(findings)
    assert w.level == WARNING and w.check == "numa"
    assert "no free hugepages" in w.text and "deploy/hugepages.sh 1024 1" in w.text


def test_port_missing_from_the_pci_list(tmp_path):
    cfg = load_config(ROOT / "deploy/two-port-nic.yaml")
    cfg = dataclasses.replace(cfg, dataplane=dataclasses.replace(
        cfg.dataplane, pci=(NIC,), lcores="0,1"))
    root = fake_machine(tmp_path, nics={NIC: {"driver": "vfio-pci"},
                                        NIC2: {"driver": "vfio-pci"}})
    text = only_error(diagnose(cfg, root), "pci")
    assert "dataplane.ports.venue" in text and NIC2 in text


def test_cpu_and_lcore_lists():
    assert parse_cpu_list("0-3,8,10-11\n") == [0, 1, 2, 3, 8, 10, 11]
    assert parse_lcores("0-1,3") == [(0, 0), (1, 1), (3, 3)]
    assert parse_lcores("0@0,1@1,2@1") == [(0, 0), (1, 1), (2, 1)]


# --- this machine ---------------------------------------------------------

def test_this_machine_runs_the_default_job():
    """The replay job's settings (two lcores, no hugepages, no PCI) on this
    machine: nothing stops it, and doctor says so."""
    findings = diagnose(load_default_config())
    assert problems(findings, ERROR) == [], findings
    r = subprocess.run([OMSCTL, "doctor"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ok: lcores: CPUs 0-1 are present and online" in r.stdout
    assert "0 error(s)" in r.stdout


def test_run_refuses_to_start_and_says_why(tmp_path):
    """A live configuration naming a CPU this machine lacks: `omsctl run`
    stops before EAL with the reason and the fix, and doctor exits 1."""
    n = os.cpu_count() or 1
    text = (ROOT / "deploy/two-port-nic.yaml").read_text()
    text = re.sub(r'lcores: "[^"]*"', f'lcores: "0,{n + 60}"', text)
    text = text.replace("hugepages: true", "hugepages: false")
    text = re.sub(r"pci: \[[^\]]*\]", "pci: []", text)
    text = re.sub(r"ports: \{[^}]*\}", "ports: {strategy: net_null0, venue: net_null0}", text)
    text = text.replace("pci: []", 'pci: []\n  vdevs: ["net_null0"]')
    cfg = tmp_path / "bad-lcores.yaml"
    cfg.write_text(text)
    r = subprocess.run([OMSCTL, "run", "--config", cfg, "--duration", "1"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 5, r.stdout + r.stderr
    assert f"names CPU {n + 60}, which this machine does not have" in r.stderr
    assert "not starting" in r.stderr and "EAL" not in r.stderr
    r = subprocess.run([OMSCTL, "doctor", "--config", cfg], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 1 and "1 error(s)" in r.stdout


def test_hugepages_are_found_through_sysfs_and_the_mount(tmp_path):
    pool = tmp_path / "sys/kernel/mm/hugepages/hugepages-2048kB"
    pool.mkdir(parents=True)
    (pool / "nr_hugepages").write_text("512\n")
    (pool / "free_hugepages").write_text("300\n")
    (tmp_path / "proc").mkdir()
    mounts = tmp_path / "proc/mounts"
    mounts.write_text("proc /proc proc rw 0 0\nnodev /dev/hugepages hugetlbfs rw,relatime 0 0\n")
    assert hugepages_free_mb(tmp_path) == 600
    # without a mount EAL cannot find them
    mounts.write_text("proc /proc proc rw 0 0\n")
    assert hugepages_free_mb(tmp_path) == 0
    mounts.write_text("nodev /dev/hugepages hugetlbfs rw,relatime 0 0\n")
    (pool / "free_hugepages").write_text("0\n")
    assert hugepages_free_mb(tmp_path) == 0
