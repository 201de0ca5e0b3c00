#!/usr/bin/env bash
# Sets up everything the appliance and its tests need on a Debian 12 host,
# as root: the Debian packages, then a virtual environment in .venv with the
# project installed in editable mode (which compiles the C core with cffi).
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# chromium, chromium-driver: the latency page's browser test; prometheus:
# promtool, which checks the exporter's output in the tests; nats-server: JetStream,
# where omsctl journal ship exports the journal (started by the tests themselves)
DEBIAN_PACKAGES=(gcc libc6-dev make pkg-config python3-venv python3-dev libdpdk-dev dpdk
                 libxdp-dev libbpf-dev xdp-tools iproute2 ethtool nftables
                 chromium chromium-driver prometheus nats-server)

missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: missing Debian packages ${missing[*]}; run as root" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test]'
echo "setup: ok ($(.venv/bin/python --version), C core built)"
