"""NIC checksum offload, as the core sees it: with RX verified it does not
sum received frames again; with TX offload it leaves the IPv4 checksum at 0
and the pseudo-header sum in the UDP checksum for the NIC to finish - and a
NIC finishing it gets exactly the software checksums."""
from __future__ import annotations

import struct

import wire

from dataplane.core import Core, lib


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def nic_finishes(frame: bytes) -> bytes:
    """What a NIC with IPv4 and UDP checksum offload does to the frame."""
    f = bytearray(frame)
    f[24:26] = struct.pack("!H", ~csum(bytes(f[14:34])) & 0xFFFF)
    udp_len = struct.unpack_from("!H", f, 38)[0]
    # the UDP field holds the pseudo-header sum: the NIC adds the datagram
    c = ~csum(bytes(f[34:34 + udp_len])) & 0xFFFF
    f[40:42] = struct.pack("!H", c or 0xFFFF)
    return bytes(f)


def run(offload: int, frames):
    core = Core(wire.config(), checksum_offload=offload)
    return core, core.process_burst(frames, 10**9)


def test_tx_offload_leaves_what_the_nic_completes_to_the_software_bytes():
    frames = [wire.from_strategy(1, wire.login(1)), wire.from_strategy(1, wire.new_order(1, 1, 7))]
    _, soft = run(0, frames)
    _, off = run(lib.OMS_CSUM_TX_OFFLOAD, frames)
    assert len(soft) == len(off) == 2
    for s, o in zip(soft, off, strict=True):
        assert o[24:26] == b"\0\0"  # IPv4 checksum left to the NIC
        assert o[40:42] != s[40:42]
        assert nic_finishes(o) == s


def test_rx_verified_skips_the_sums_the_nic_already_checked():
    bad = wire.from_strategy(1, wire.login(1), bad_udp_csum=True)
    core, out = run(0, [bad])
    assert out == [] and core.stats()["drop"] == {"UDP_CHECKSUM": 1}
    core, out = run(lib.OMS_CSUM_RX_VERIFIED, [bad])
    assert len(out) == 1 and core.stats()["drop"] == {}
