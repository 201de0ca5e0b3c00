"""IGMPv3 from the data plane (RFC 3376): every report the C host sends is
compared byte for byte with the same report built from scapy's IGMPv3
layers; joins, leaves, robustness repeats, answers to general and
group-specific queries after a seeded random delay; the multicast MAC; and
the software filter's counted drops."""
from __future__ import annotations

import ipaddress

from feed_wire import multicast
from scapy.layers.igmp import IGMPv3_MQ, IGMPv3_MR, IGMPv3_MR_Group
from scapy.layers.inet import IP, IPOption_Router_Alert
from scapy.layers.l2 import Ether
from scapy.utils import in4_getnsmac

from dataplane.core import ffi, lib
from dataplane.feed import Igmp, mcast_mac

MAC, IP_ADDR = "02:00:00:00:00:01", "10.0.0.1"
G1, G2, SRC = "239.1.1.1", "232.5.6.7", "10.0.0.7"
SEC = 1_000_000_000


def report(*records: tuple[int, str, list[str]]) -> bytes:
    """A membership report as RFC 3376 and scapy say it looks."""
    recs = [IGMPv3_MR_Group(rtype=t, maddr=g, srcaddrs=s) for t, g, s in records]
    return bytes(Ether(src=MAC, dst="01:00:5e:00:00:16")
                 / IP(src=IP_ADDR, dst="224.0.0.22", ttl=1, tos=0xC0, id=0, flags="DF",
                      options=[IPOption_Router_Alert()])
                 / IGMPv3_MR(type=0x22, records=recs))


def query(group: str = "0.0.0.0", mrcode: int = 100, dst: str = "224.0.0.1") -> bytes:
    return bytes(Ether(src="02:00:00:00:00:fe", dst="01:00:5e:00:00:01")
                 / IP(src="10.0.0.254", dst=dst, ttl=1, tos=0xC0,
                      options=[IPOption_Router_Alert()])
                 / IGMPv3_MQ(type=0x11, mrcode=mrcode, gaddr=group))


def test_any_source_join_is_change_to_exclude_repeated_robustness_times():
    g = Igmp(mac=MAC, ip=IP_ADDR, robustness=3, unsolicited_ns=SEC)
    assert g.join(G1, None, 5) == 0
    first = g.take_tx()
    assert first == [report((4, G1, []))]
    assert g.next_deadline() == 5 + SEC
    assert g.poll(5 + SEC - 1) == []
    assert g.poll(5 + SEC) == first
    assert g.poll(5 + 2 * SEC) == first
    assert g.poll(5 + 3 * SEC) == [] and g.next_deadline() == 2**64 - 1
    assert g.counters() == {"REPORTS_SENT": 3, "STATE_CHANGES": 1}


def test_source_specific_join_and_leave_are_allow_and_block():
    g = Igmp(mac=MAC, ip=IP_ADDR, robustness=1)
    g.join(G2, SRC, 1)
    assert g.take_tx() == [report((5, G2, [SRC]))]
    g.leave(G2, SRC, 2)
    assert g.take_tx() == [report((6, G2, [SRC]))]


def test_any_source_leave_is_change_to_include_with_no_sources():
    g = Igmp(mac=MAC, ip=IP_ADDR, robustness=1)
    g.join(G1, None, 1)
    g.join(G1, None, 1)  # two subscriptions on one group: one report
    assert len(g.take_tx()) == 1
    g.leave(G1, None, 2)
    assert g.take_tx() == []  # still one subscription
    g.leave(G1, None, 3)
    assert g.take_tx() == [report((3, G1, []))]
    assert g.leave(G1, None, 4) == -1 and g.counters()["NOT_MEMBER"] == 1


def test_general_query_is_answered_after_a_seeded_delay_below_max_resp_time():
    def answer_time(seed: int) -> tuple[int, list[bytes]]:
        g = Igmp(mac=MAC, ip=IP_ADDR, robustness=1, seed=seed)
        g.join(G1, None, 0)
        g.join(G2, SRC, 0)
        g.take_tx()
        g.rx(query(mrcode=100), 10 * SEC)  # Max Resp Time 10 s
        due = g.next_deadline()
        assert 10 * SEC <= due < 20 * SEC
        assert g.poll(due - 1) == []
        return due, g.poll(due)

    due, frames = answer_time(7)
    assert frames == [report((2, G1, []), (1, G2, [SRC]))]
    assert answer_time(7)[0] == due  # deterministic
    assert len({answer_time(s)[0] for s in range(1, 6)}) > 1  # but spread


def test_group_specific_query_is_answered_for_that_group_only():
    g = Igmp(mac=MAC, ip=IP_ADDR, robustness=1)
    g.join(G1, None, 0)
    g.join(G2, SRC, 0)
    g.take_tx()
    g.rx(query(G2, mrcode=10, dst=G2), SEC)
    g.rx(query("239.9.9.9", mrcode=10, dst="239.9.9.9"), SEC)
    due = g.next_deadline()
    assert SEC <= due < 2 * SEC
    assert g.poll(due) == [report((1, G2, [SRC]))]
    assert g.counters()["GROUP_QUERIES"] == 1 and g.counters()["QUERIES_OTHER_GROUP"] == 1


def test_max_resp_code_floating_point_form():
    # 20.8 s is sent as code 0x8A: mantissa 0xA, exponent 0 -> 0x1A << 3 tenths
    assert query(mrcode=208)[14 + 24 + 1] == 0x8A
    g = Igmp(mac=MAC, ip=IP_ADDR, robustness=1, seed=3)
    g.join(G1, None, 0)
    g.take_tx()
    worst = 0
    for _ in range(30):
        g.rx(query(mrcode=208), 0)
        worst = max(worst, g.next_deadline())
        g.poll(g.next_deadline())
    assert 10 * SEC < worst < 20_800_000_000


def test_malformed_and_other_igmp_frames_are_counted():
    g = Igmp(mac=MAC, ip=IP_ADDR)
    q = bytearray(query())
    q[-3] ^= 0xFF
    g.rx(bytes(q), 0)
    g.rx(report((4, G1, [])), 0)  # another host's report
    g.rx(multicast(b"x" * 30), 0)
    g.rx(query()[:30], 0)
    assert g.counters() == {"BAD_CHECKSUM": 1, "NOT_QUERY": 1, "NOT_IGMP": 1, "TRUNCATED": 1}


def test_multicast_mac_is_01_00_5e_and_the_low_23_bits():
    for grp in ("224.0.0.22", "239.129.1.1", "232.255.255.255"):
        assert mcast_mac(grp) == bytes.fromhex(in4_getnsmac(ipaddress.IPv4Address(grp).packed)
                                               .replace(":", ""))


def test_software_filter_counts_what_it_drops():
    m = ffi.gc(lib.oms_mcast_filter_create(4), lib.oms_mcast_filter_destroy)
    ip = lambda a: int(ipaddress.IPv4Address(a))  # noqa: E731
    assert lib.oms_mcast_filter_add(m, ip("239.1.1.1"), 26400, 0) == 0
    assert lib.oms_mcast_filter_add(m, ip("232.5.6.7"), 26400, ip(SRC)) == 0

    def check(frame: bytes) -> int:
        return lib.oms_mcast_filter_check(m, frame, len(frame))

    assert check(multicast(b"x", group="239.1.1.1")) == 1
    assert check(multicast(b"x", group="232.5.6.7", src_ip=SRC)) == 1
    assert check(multicast(b"x", group="232.5.6.7", src_ip="10.0.0.8")) == 0
    assert check(multicast(b"x", group="239.1.1.1", port=26401)) == 0
    assert check(multicast(b"x", group="239.2.2.2")) == 0
    assert check(query()) == 1  # IGMP is not the filter's business
    drops = lib.oms_mcast_filter_drops(m)
    assert [drops[i] for i in range(lib.OMS_MCAST_DROP_MAX)] == [1, 1, 1]
    assert lib.oms_mcast_filter_passed(m) == 2
    assert lib.oms_mcast_filter_remove(m, ip("239.1.1.1"), 26400, 0) == 0
    assert check(multicast(b"x", group="239.1.1.1")) == 0
