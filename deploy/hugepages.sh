#!/usr/bin/env bash
# Reserve 2 MiB hugepages for the appliance and mount hugetlbfs.
#   deploy/hugepages.sh [PAGES] [NODE]     (default 1024 pages = 2 GiB, on node 0)
# Then set dataplane.hugepages: true in the YAML config.  Run as root; it
# changes nothing else.  Undo: echo 0 > .../nr_hugepages; umount /dev/hugepages.
set -euo pipefail
PAGES=${1:-1024}
NODE=${2:-0}
sysfs=/sys/devices/system/node/node${NODE}/hugepages/hugepages-2048kB/nr_hugepages
[ -w "$sysfs" ] || { echo "hugepages: $sysfs not writable (root? NUMA node ${NODE}?)" >&2; exit 1; }
echo "$PAGES" > "$sysfs"
got=$(cat "$sysfs")
[ "$got" -ge "$PAGES" ] || echo "hugepages: asked for $PAGES, the kernel gave $got (fragmented memory: reserve at boot with hugepages=$PAGES)" >&2
mkdir -p /dev/hugepages
mountpoint -q /dev/hugepages || mount -t hugetlbfs nodev /dev/hugepages
echo "hugepages: $got x 2 MiB on node $NODE, hugetlbfs on /dev/hugepages"
