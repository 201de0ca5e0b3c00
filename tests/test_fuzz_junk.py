"""Junk interleaved with valid orders: random bytes, truncated frames, wrong
lengths and checksums, unknown types, bad versions, unknown sessions and
duplicate sequence numbers.  The core must not crash, must count each bad
frame under its reason, and must handle every valid order exactly as it
does without the junk (same venue traffic byte for byte, same execution
reports, same final orders)."""
from __future__ import annotations

import random
import struct

import pytest
import wire

from dataplane.replay import Replayer
from dataplane.venue_sim import default_ref_price

SYMBOLS = ("AAPL", "MSFT", "SPY")


def valid_messages(rng: random.Random, n: int) -> list[tuple]:
    """Abstract strategy messages for session 1: (kind, args)."""
    out, ids = [], []
    for _ in range(n):
        r = rng.random()
        if r < 0.6 or not ids:
            cid = 1000 + len(out)
            sym = rng.choice(SYMBOLS)
            px = (default_ref_price(sym) + rng.randint(-6, 6) * 100) * 10_000
            out.append(("new", cid, sym, px, rng.choice((100, 200, 500)),
                        rng.choice((1, 2)), rng.choice((1, 1, 2))))
            ids.append((cid, sym, px))
        elif r < 0.8:
            cid, sym, px = rng.choice(ids)
            out.append(("modify", cid, px + rng.randint(-2, 2) * 100 * 10_000,
                        rng.choice((300, 600))))
        else:
            cid, _, _ = rng.choice(ids)
            out.append(("cancel", cid))
    return out


def encode(msg: tuple, seq: int) -> bytes:
    k = msg[0]
    if k == "new":
        _, cid, sym, px, qty, side, tif = msg
        return wire.new_order(1, seq, cid, symbol=sym, price=px, qty=qty, side=side, tif=tif)
    if k == "modify":
        return wire.modify(1, seq, msg[1], msg[2], msg[3])
    return wire.cancel(1, seq, msg[1])


JUNK_KINDS = ["random", "truncated", "msg_length", "ip_csum", "udp_csum", "unknown_type",
              "bad_msg_length", "bad_version", "unknown_session", "duplicate", "ip_total_len",
              "venue_random"]
# the counter each kind lands in; kinds marked * take a sequence number
EXPECTED_DROP = {"truncated": "BAD_IP_LENGTH", "msg_length": "SP_BAD_LENGTH",
                 "ip_csum": "IP_CHECKSUM", "udp_csum": "UDP_CHECKSUM",
                 "unknown_type": "SP_UNKNOWN_TYPE", "bad_msg_length": "SP_BAD_MSG_LENGTH",
                 "bad_version": "SP_BAD_VERSION", "unknown_session": "SP_UNKNOWN_SESSION",
                 "duplicate": "SP_DUPLICATE_SEQ", "ip_total_len": "BAD_IP_LENGTH"}
TAKES_SEQ = {"unknown_type", "bad_msg_length"}


def junk_frame(kind: str, rng: random.Random, seq: int, sent: list[bytes]) -> bytes:
    valid = wire.from_strategy(1, wire.cancel(1, seq, 1))
    if kind == "random":
        # random bytes never start with our MAC + IPv4 by chance: drop as
        # a runt or non-IPv4 frame, counted below as one of those
        return bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 80)))
    if kind == "venue_random":
        return wire.from_venue(1, bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 19))))
    if kind == "truncated":
        return valid[: rng.randint(34, len(valid) - 1)]
    if kind == "msg_length":
        return wire.from_strategy(1, wire.sp(0x12, 1, seq, b"\0" * 8, length=200))
    if kind == "ip_csum":
        return wire.from_strategy(1, wire.cancel(1, seq, 1), bad_ip_csum=True)
    if kind == "udp_csum":
        return wire.from_strategy(1, wire.cancel(1, seq, 1), bad_udp_csum=True)
    if kind == "unknown_type":
        return wire.from_strategy(1, wire.sp(0x7E, 1, seq, b"\0" * 8))
    if kind == "bad_msg_length":
        return wire.from_strategy(1, wire.sp(0x12, 1, seq, b"\0" * 12))
    if kind == "bad_version":
        return wire.from_strategy(1, wire.cancel(1, seq, 1)[:0] + wire.sp(0x12, 1, seq,
                                                                          b"\0" * 8, version=9))
    if kind == "unknown_session":
        return wire.from_strategy(1, wire.sp(0x12, 77, seq, b"\0" * 8))
    if kind == "duplicate":
        return rng.choice(sent)
    if kind == "ip_total_len":
        f = bytearray(valid)
        struct.pack_into("!H", f, 16, len(f))  # beyond the frame
        f[24:26] = b"\0\0"
        s = sum(struct.unpack("!10H", bytes(f[14:34])))
        while s >> 16:
            s = (s & 0xFFFF) + (s >> 16)
        struct.pack_into("!H", f, 24, ~s & 0xFFFF)
        return bytes(f)
    raise AssertionError(kind)


def streams(seed: int, n: int = 300):
    rng = random.Random(seed)
    msgs = valid_messages(rng, n)
    t0 = 1_000_000_000
    login = wire.from_strategy(1, wire.login(1))
    clean = [(t0, login)] + [(t0 + 10_000 * (i + 1), wire.from_strategy(1, encode(m, i + 1)))
                             for i, m in enumerate(msgs)]
    junked = [(t0, login)]
    junk_counts: dict[str, int] = {}
    sent: list[bytes] = []
    seq = 1
    for i, m in enumerate(msgs):
        ts = t0 + 10_000 * (i + 1)
        # junk shares the valid frame's timestamp, so it lands in the same burst
        while rng.random() < 0.5:
            kind = rng.choice(JUNK_KINDS)
            if kind == "duplicate" and not sent:
                continue
            junked.append((ts, junk_frame(kind, rng, seq, sent)))
            junk_counts[kind] = junk_counts.get(kind, 0) + 1
            if kind in TAKES_SEQ:
                seq += 1
        f = wire.from_strategy(1, encode(m, seq))
        sent.append(f)
        junked.append((ts, f))
        seq += 1
    return clean, junked, junk_counts


def run(records):
    rp = Replayer(wire.config(orders=4096), venue_sim=True, verify=True)
    out, res = rp.run(records)
    return rp, out, res


def strategy_view(out):
    """Execution reports without the per-session sequence number (junk that
    takes sequence numbers shifts them) and without SessionRejects."""
    msgs = []
    for ts, f in out:
        if struct.unpack_from("!H", f, 34)[0] != wire.APPLIANCE.strategy_port:
            continue
        d = wire.decode_sp_out(f)
        if d["type"] == "SessionReject":
            continue
        d.pop("seq")
        msgs.append((ts, d))
    return msgs


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_junk_changes_nothing_for_valid_orders_and_is_counted(seed):
    clean, junked, junk_counts = streams(seed)
    assert sum(junk_counts.values()) > 100
    rp_c, out_c, res_c = run(clean)
    rp_j, out_j, res_j = run(junked)  # verify=True: the model agrees on the junk too

    venue_port = wire.APPLIANCE.venue_port
    to_venue_c = [x for x in out_c if struct.unpack_from("!H", x[1], 34)[0] == venue_port]
    to_venue_j = [x for x in out_j if struct.unpack_from("!H", x[1], 34)[0] == venue_port]
    assert to_venue_j == to_venue_c
    assert strategy_view(out_j) == strategy_view(out_c)
    for cid in range(1000, 1300):
        assert rp_j.core.order(1, cid) == rp_c.core.order(1, cid)

    drops_c, drops_j = res_c.stats["drop"], res_j.stats["drop"]
    expected: dict[str, int] = {}
    for kind, n in junk_counts.items():
        if kind in EXPECTED_DROP:
            expected[EXPECTED_DROP[kind]] = expected.get(EXPECTED_DROP[kind], 0) + n
    for reason, n in expected.items():
        assert drops_j.get(reason, 0) - drops_c.get(reason, 0) == n, reason
    # random bytes land in the frame-level reasons; venue junk in the framing's
    frame_level = ("RUNT", "NOT_IPV4", "BAD_IP_HEADER", "NOT_UDP", "NOT_FOR_US")
    extra_frame = sum(drops_j.get(r, 0) - drops_c.get(r, 0) for r in frame_level)
    assert extra_frame == junk_counts.get("random", 0)
    assert drops_j.get("UFO_TRUNCATED", 0) == junk_counts.get("venue_random", 0)
    assert res_j.stats["event"]["SP_MSGS_OUT"] - res_c.stats["event"]["SP_MSGS_OUT"] == sum(
        junk_counts.get(k, 0) for k in TAKES_SEQ)  # one SessionReject each
    assert res_j.stats["reject_system"] == {} == res_c.stats["reject_system"]
