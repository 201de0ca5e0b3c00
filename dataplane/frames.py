"""Ethernet/IPv4/UDP for the appliance's Python peers (the strategy driver
and the venue simulator): building frames with both checksums, and taking
them apart with every check the appliance itself makes.  The C core and the
reference model keep their own code on purpose (they are what is tested);
this is the peers' one copy."""
from __future__ import annotations

import struct


def mac(text: str) -> bytes:
    b = bytes.fromhex(text.replace(":", "").replace("-", ""))
    if len(b) != 6:
        raise ValueError(f"bad MAC address {text!r}")
    return b


def csum(data: bytes, start: int = 0) -> int:
    if len(data) % 2:
        data += b"\0"
    s = start + sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def udp_csum(src: bytes, dst: bytes, udp: bytes) -> int:
    return csum(src + dst + struct.pack("!BBH", 0, 17, len(udp)) + udp)


def blocks(payload: bytes, off: int, count: int):
    """The messages of a MoldUDP64 or UFO packet: `count` blocks from `off`,
    each a 2-byte big-endian length and the message; stops where the
    packet ends before a block's length."""
    for _ in range(count):
        if off + 2 > len(payload):
            return
        (n,) = struct.unpack_from("!H", payload, off)
        yield payload[off + 2:off + 2 + n]
        off += 2 + n


def bump(d: dict, key) -> None:
    d[key] = d.get(key, 0) + 1


def udp_frame(src_mac: bytes, dst_mac: bytes, src_ip: bytes, dst_ip: bytes, sport: int,
              dport: int, payload: bytes) -> bytes:
    """IPv4 ID 0, DF, TTL 64, both checksums (a computed UDP 0 sent as
    0xFFFF): the frames the appliance builds too."""
    udp_len = 8 + len(payload)
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, 0, 0x4000, 64, 17, 0,
                               src_ip, dst_ip))
    struct.pack_into("!H", ip, 10, csum(bytes(ip)))
    udp = bytearray(struct.pack("!HHHH", sport, dport, udp_len, 0) + payload)
    struct.pack_into("!H", udp, 6, udp_csum(src_ip, dst_ip, bytes(udp)) or 0xFFFF)
    return dst_mac + src_mac + b"\x08\x00" + bytes(ip) + bytes(udp)


def ipv4_udp(f: bytes) -> str | tuple[bytes, bytes, bytes]:
    """(source IP, destination IP, UDP datagram) of a frame, or the reason
    it is not a well-formed unfragmented IPv4/UDP frame (one 802.1Q tag is
    skipped).  The UDP length and checksum are check_udp's."""
    if len(f) < 14:
        return "runt"
    off = 14
    (etype,) = struct.unpack_from("!H", f, 12)
    if etype == 0x8100:
        if len(f) < 18:
            return "runt"
        (etype,) = struct.unpack_from("!H", f, 16)
        off = 18
    if etype != 0x0800:
        return "not_ipv4"
    if len(f) - off < 20 or f[off] >> 4 != 4:
        return "bad_ip_header"
    ihl = (f[off] & 0x0F) * 4
    if ihl < 20 or off + ihl > len(f):
        return "bad_ip_header"
    (total,) = struct.unpack_from("!H", f, off + 2)
    if total < ihl + 8 or off + total > len(f):
        return "bad_ip_length"
    if csum(f[off:off + ihl]) != 0:
        return "ip_checksum"
    if struct.unpack_from("!H", f, off + 6)[0] & 0x3FFF:
        return "ip_fragment"
    if f[off + 9] != 17:
        return "not_udp"
    return f[off + 12:off + 16], f[off + 16:off + 20], f[off + ihl:off + total]


def check_udp(src: bytes, dst: bytes, udp: bytes) -> str | None:
    """Why the datagram's length or checksum is wrong, or None."""
    ulen, ucsum = struct.unpack_from("!HH", udp, 4)
    if ulen != len(udp):
        return "bad_udp_length"
    if ucsum and udp_csum(src, dst, udp) != 0:
        return "udp_checksum"
    return None
