"""The core's IPv4 and UDP checksum verification (cdefs/net.c csum_bytes)
against RFC 1071 computed in Python, over every datagram length class: the
32-byte blocks, the 8-byte steps and each 4/2/1-byte tail, at any
alignment of the frame in memory (Ethernet puts the UDP payload at offset
42, so the native loads are unaligned)."""
from __future__ import annotations

import struct

import wire
from hypothesis import given, settings
from hypothesis import strategies as st

from dataplane.core import Core

S = wire.SESSIONS[0]


def frame(payload: bytes, **kw) -> bytes:
    return wire.udp_frame(S.mac, wire.APPLIANCE.mac, S.ip, wire.APPLIANCE.ip, S.port,
                          wire.APPLIANCE.strategy_port, payload, **kw)


def drops(core: Core, f: bytes) -> dict:
    core.process_burst([f], 10**9)
    return core.stats()["drop"]


@settings(max_examples=300, deadline=None)
@given(payload=st.binary(min_size=0, max_size=300), data=st.data())
def test_a_correct_checksum_passes_and_any_one_bit_flip_is_caught(payload, data):
    core = Core(wire.config())
    good = frame(payload)
    assert "UDP_CHECKSUM" not in drops(core, good) and "IP_CHECKSUM" not in drops(core, good)

    # one bit of the UDP datagram, header included (not the length, which
    # is checked before the sum, nor the checksum field turned to 0, which
    # means "none")
    udp_len = 8 + len(payload)
    at = data.draw(st.sampled_from([0, 1, 2, 3] + list(range(6, udp_len))), label="byte")
    bit = data.draw(st.integers(0, 7), label="bit")
    bad = bytearray(good)
    bad[34 + at] ^= 1 << bit
    if bad[40:42] == b"\0\0":
        return
    core = Core(wire.config())
    got = drops(core, bytes(bad))
    # a flip in a port may also make it not ours; the sum is checked first
    assert got.get("UDP_CHECKSUM") == 1, got


@settings(max_examples=100, deadline=None)
@given(byte=st.integers(0, 19), bit=st.integers(0, 7))
def test_any_one_bit_flip_in_the_ip_header_is_caught(byte, bit):
    bad = bytearray(frame(b"x" * 37))
    bad[14 + byte] ^= 1 << bit
    got = drops(Core(wire.config()), bytes(bad))
    # the version, header length and total length are checked before the sum
    if byte in (0, 2, 3):
        assert "IP_CHECKSUM" not in got or got["IP_CHECKSUM"] == 1
    else:
        assert got == {"IP_CHECKSUM": 1}, got


def test_the_checksums_of_built_frames_verify():
    core = Core(wire.config())
    out = core.process_burst([wire.from_strategy(1, wire.login(1)),
                              wire.from_strategy(1, wire.new_order(1, 1, 7))], 10**9)
    assert len(out) == 2
    for f in out:
        assert wire.ones_complement(f[14:34]) == 0
        udp_len = struct.unpack_from("!H", f, 38)[0]
        pseudo = f[26:34] + struct.pack("!BBH", 0, 17, udp_len)
        assert wire.ones_complement(pseudo + f[34:34 + udp_len]) == 0


def with_ip_options(f: bytes, options: bytes) -> bytes:
    """The frame with IPv4 options after the 20-byte header and the header
    checksum made right again (the UDP one does not cover options)."""
    ip = bytearray(f[14:34])
    udp = f[34:]
    ip[0] = 0x40 | (20 + len(options)) // 4
    ip[2:4] = struct.pack("!H", 20 + len(options) + len(udp))
    ip[10:12] = b"\0\0"
    hdr = bytes(ip) + options
    hdr = hdr[:10] + struct.pack("!H", wire.ones_complement(hdr)) + hdr[12:]
    return f[:14] + hdr + udp


@given(bit=st.integers(0, 8 * 24 - 1))
@settings(max_examples=60, deadline=None)
def test_a_header_with_options_is_summed_whole(bit):
    good = with_ip_options(frame(b"y" * 29), b"\x01\x01\x01\x00")
    assert "IP_CHECKSUM" not in drops(Core(wire.config()), good)
    bad = bytearray(good)
    bad[14 + bit // 8] ^= 1 << (bit % 8)
    got = drops(Core(wire.config()), bytes(bad))
    if bit // 8 not in (0, 2, 3):  # checked before the sum
        assert got == {"IP_CHECKSUM": 1}, got
