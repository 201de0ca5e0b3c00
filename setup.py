# Carries only what pyproject.toml cannot: the cffi extensions built from
# cdefs/.  The DPDK one is built where pkg-config finds libdpdk.
import shutil
import subprocess

from setuptools import setup

modules = ["dataplane/build_core.py:ffibuilder"]
has_dpdk = shutil.which("pkg-config") and subprocess.run(
    ["pkg-config", "--exists", "libdpdk"]).returncode == 0
if has_dpdk:
    modules.append("dataplane/build_dpdk.py:ffibuilder")

setup(cffi_modules=modules)
