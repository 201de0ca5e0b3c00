"""The cffi modules export Python's entry point and no other function.

Anything else exported may be interposed at load time, so the compiler could
not inline across the core's files: the module Python loads ran the core
4.6 % slower a frame than the benchmarks' executables built from the same
sources (cdefs/module_exports.map).  This holds what runs to what is
measured."""
from __future__ import annotations

import importlib.util
import subprocess

import pytest

MODULES = ["_oms_core", "_oms_dpdk", "_oms_afxdp"]


@pytest.mark.parametrize("name", MODULES)
def test_only_the_entry_point_is_exported(name: str) -> None:
    spec = importlib.util.find_spec(f"dataplane.{name}")
    if spec is None or not spec.origin:
        pytest.skip(f"dataplane.{name} not built")
    out = subprocess.run(["nm", "-D", "--defined-only", spec.origin], check=True,
                         capture_output=True, text=True).stdout
    functions = [line.split()[-1] for line in out.splitlines()
                 if len(line.split()) == 3 and line.split()[1] in "TtWi"]
    assert functions == [f"PyInit_{name}"]
