# Carries only what pyproject.toml cannot: the cffi extensions built from
# cdefs/.  The DPDK one is built where pkg-config finds libdpdk, the native
# AF_XDP one where it finds libxdp and libbpf.
import shutil
import subprocess

from setuptools import setup


def pkgconfig_has(*pkgs: str) -> bool:
    return bool(shutil.which("pkg-config")) and subprocess.run(
        ["pkg-config", "--exists", *pkgs]).returncode == 0


modules = ["dataplane/build_core.py:ffibuilder"]
if pkgconfig_has("libdpdk"):
    modules.append("dataplane/build_dpdk.py:ffibuilder")
if pkgconfig_has("libxdp", "libbpf"):
    modules.append("dataplane/build_afxdp.py:ffibuilder")

setup(cffi_modules=modules)
