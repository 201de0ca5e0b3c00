#!/usr/bin/env bash
# Hand a NIC port to DPDK: deploy/bind-nic.sh 0000:3b:00.0 [vfio-pci]
# The port disappears from the kernel (no IP, no ssh through it). Undo with
#   dpdk-devbind.py --bind=<kernel driver, e.g. ice> 0000:3b:00.0
set -euo pipefail
PCI=${1:?PCI address, e.g. 0000:3b:00.0 (see: dpdk-devbind.py --status)}
DRIVER=${2:-vfio-pci}
modprobe "$DRIVER"
if ip -br link | grep -q .; then
    dpdk-devbind.py --status-dev net | grep -F "$PCI" || true
fi
dpdk-devbind.py --bind="$DRIVER" "$PCI"
dpdk-devbind.py --status-dev net | grep -F "$PCI"
