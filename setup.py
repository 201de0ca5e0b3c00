# Carries only what pyproject.toml cannot: the cffi extension built from cdefs/.
from setuptools import setup

setup(cffi_modules=["dataplane/build_core.py:ffibuilder"])
