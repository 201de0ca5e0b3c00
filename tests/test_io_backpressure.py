"""Sharded mode with a port that stops taking frames (tests/io_backpressure_run.py,
a subprocess: EAL once per process).  Its transmit ring full for 200 ms, the
output backs up through the I/O lcore into the worker's out ring and the
worker waits - no stage drops anything, each counts that it waited - and
once the port drains, every venue order comes out once, in order."""
from __future__ import annotations

import pytest
import wire
from ring_rig import run_script
from test_bench_dpdk_smoke import dpdk_available
from test_transcripts import decode_out

N = 300

pytestmark = pytest.mark.skipif(not dpdk_available(), reason="libdpdk not found by pkg-config")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    res = run_script("io_backpressure_run.py", tmp_path_factory.mktemp("iobp") / "out.json",
                     str(N))
    frames = [bytes.fromhex(f) for f in res["frames"]]
    res["arp"] = [f for f in frames if f[12:14] == b"\x08\x06"]
    res["out"] = [decode_out(f) for f in frames if f[12:14] == b"\x08\x00"]
    return res


def test_every_stage_waited_and_none_dropped(run):
    held = run["held"]
    assert held["io"]["tx_waits"] >= 1
    assert held["worker"]["out_ring_waits"] >= 1
    for when in ("held", "end"):
        assert run[when]["io"]["tx_dropped"] == 0
        assert run[when]["worker"]["tx_dropped"] == 0


def test_every_venue_order_came_out_once_in_order(run):
    orders = [o for o in run["out"] if o["type"] == "O"]
    assert [o["ref"] for o in orders] == list(range(1, N + 1))
    assert [o["type"] for o in run["out"] if o["type"] not in ("O", "Heartbeat")] == [
        "LoginAccepted"]


def test_an_arp_request_answered_on_the_full_port_is_sent_once_it_drains(run):
    # the gratuitous ARP at start (op 1), then the reply (op 2) to the
    # session host, which asked while the port was full
    gratuitous, reply = run["arp"]
    assert gratuitous[20:22] == b"\x00\x01" and reply[20:22] == b"\x00\x02"
    s, app = wire.SESSIONS[0], wire.APPLIANCE
    assert reply[:6] == wire.mac(s.mac) and reply[28:32] == wire.ip4(app.ip)
    assert reply[38:42] == wire.ip4(s.ip)
    assert run["held"]["io"]["tx_dropped"] == run["end"]["io"]["tx_dropped"] == 0
    # behind what the port held (its 63-frame ring) and the burst waiting
    # in the I/O lcore when it was asked
    assert [bytes.fromhex(f) for f in run["frames"]].index(reply) > 63


def test_the_port_counted_what_came_out(run):
    end = run["end"]
    assert end["io"]["tx_frames"] == len(run["arp"]) + len(run["out"])
    assert end["worker"]["tx_frames"] == len(run["out"])


def test_no_mbuf_is_left_behind(run):
    assert run["pool_in_use_after"] == run["pool_in_use_before"]
    assert not any(run["core"]["drop"].values())
