"""After a replay through the DPDK data plane, the exported metrics agree
with what is on the wire: each counter against counts decoded here, with
scapy, from the input and output captures (not against the report, which
reads the same C counters - though it must agree too), and each per-order
stage histogram counts every order the strategies sent.  The exposition
passes `promtool check metrics`."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from scapy.layers.inet import IP, UDP
from scapy.utils import rdpcap

from control.config import load_default_config
from pcaps import layers as L

ROOT = Path(__file__).resolve().parent.parent
OMSCTL = str(Path(sys.executable).parent / "omsctl")
# enough of the bundled scenario for every kind of order, reject and mass
# cancel, small enough for scapy to decode in a few seconds
SCENARIO_LINES = 1500
APP_TYPES = {0x10: "new_order", 0x11: "modify", 0x12: "cancel", 0x13: "mass_cancel"}
VENUE_REJECTED = 14


def dpdk_built() -> bool:
    try:
        import dataplane._oms_dpdk  # noqa: F401
    except ImportError:
        return False
    return True


pytestmark = pytest.mark.skipif(not dpdk_built(), reason="DPDK extension not built")


def samples(text: str) -> dict[tuple, float]:
    """{(sample name, sorted labels): value}"""
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(m: dict, name: str, **labels) -> float:
    return m[(name, tuple(sorted(labels.items())))]


def sp_messages(pkt):
    """Each strategy message (SPHeader) of a datagram."""
    return [layer for layer in pkt.iterpayloads() if isinstance(layer, L.SPHeader)]


def ouch_messages(pkt):
    """Each OUCH message (the layer inside each UFOBlock) of a packet."""
    return [layer.payload for layer in pkt.iterpayloads() if isinstance(layer, L.UFOBlock)]


def decode(path: Path, cfg):
    """Counts of what the capture holds, decoded with the scapy layers."""
    sp_in, sp_out, ouch_out, rejected = Counter(), Counter(), Counter(), Counter()
    enter_by_venue = Counter()
    frames = 0
    for pkt in rdpcap(str(path)):
        frames += 1
        udp = pkt.getlayer(UDP)
        if udp is None:
            continue
        if udp.dport == cfg.appliance.strategy_port:
            for h in sp_messages(pkt):
                sp_in[h.type] += 1
        elif udp.sport == cfg.appliance.strategy_port:
            for h in sp_messages(pkt):
                sp_out[h.type] += 1
                if h.type == 0x91:
                    r = h.payload
                    rejected[(r.ref_type, r.reason)] += 1
        elif udp.sport == cfg.appliance.venue_port:
            for m in ouch_messages(pkt):
                letter = bytes(m)[:1].decode()
                ouch_out[letter] += 1
                if letter == "O":
                    enter_by_venue[pkt[IP].dst] += 1
    return {"frames": frames, "sp_in": sp_in, "sp_out": sp_out, "ouch_out": ouch_out,
            "rejected": rejected, "enter_by_venue": enter_by_venue}


def test_replay_metrics_equal_the_counts_decoded_from_the_captures(tmp_path):
    cfg = load_default_config()
    lines = (ROOT / "pcaps" / "scenarios" / "session.jsonl").read_text().splitlines()
    scenario = tmp_path / "scenario.jsonl"
    scenario.write_text("\n".join(lines[:SCENARIO_LINES]) + "\n")
    inp, out, prom = tmp_path / "in.pcap", tmp_path / "out.pcap", tmp_path / "metrics.prom"
    report = tmp_path / "report.jsonl"
    subprocess.run([OMSCTL, "pcap", "build", str(scenario), "-o", str(inp)], check=True,
                   capture_output=True, timeout=120)
    r = subprocess.run([OMSCTL, "replay", str(inp), "-o", str(out), "--report", str(report),
                        "--venue-sim", "--backend", "dpdk", "--metrics", str(prom)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    text = prom.read_text()
    if shutil.which("promtool"):
        chk = subprocess.run(["promtool", "check", "metrics"], input=text,
                             capture_output=True, text=True, timeout=30)
        assert chk.returncode == 0, chk.stdout + chk.stderr
    else:
        pytest.skip("promtool (Debian's prometheus package) is not installed")
    m = samples(text)
    got_in = decode(inp, cfg)
    got = decode(out, cfg)
    summary = json.loads(report.read_text().splitlines()[-1])["summary"]

    # frames: the output capture, frame by frame
    assert value(m, "oms_frames_total", direction="out") == got["frames"] == \
        summary["frames_out"]
    # strategy messages out and OUCH messages out, by type
    for t, n in got["sp_out"].items():
        name = L.SP_TYPES[t]
        assert value(m, "oms_strategy_messages_total", direction="out",
                     type=_snake(name)) == n == summary["messages_by_type"][f"strategy.{name}"]
    for letter, name, report_name in (("O", "enter_order", "EnterOrder"),
                                      ("U", "replace_order", "ReplaceOrder"),
                                      ("X", "cancel_order", "CancelOrder")):
        assert value(m, "oms_venue_messages_total", direction="out", type=name) == \
            got["ouch_out"][letter] == summary["messages_by_type"][f"venue.{report_name}"]
    # every event and drop counter is the report's
    events = {labels[0][1]: v for (name, labels), v in m.items() if name == "oms_events_total"}
    assert {k.upper(): v for k, v in events.items() if v} == summary["events"]
    drops = {labels[0][1]: v for (name, labels), v in m.items() if name == "oms_drops_total"}
    assert {k.upper(): v for k, v in drops.items() if v} == summary["drops"]
    assert value(m, "oms_events_total", event="frames_out") == got["frames"]
    assert value(m, "oms_strategy_messages_total", direction="in", type="new_order") == \
        got_in["sp_in"][0x10]
    # every application message the strategies sent was handled, and each
    # per-order stage histogram counted it once
    sent = {APP_TYPES[t]: got_in["sp_in"][t] for t in APP_TYPES}
    orders = sum(sent.values())
    assert orders > 1000 and all(sent.values())
    for stage in ("rx_to_decision", "decision_to_tx", "in_to_out", "handle"):
        assert value(m, "oms_stage_latency_seconds_count", stage=stage) == orders
        assert value(m, "oms_stage_latency_seconds_bucket", stage=stage, le="+Inf") == orders
    # orders by type and result: rejected by the appliance, by reason, as
    # the Rejected messages say; accepted = sent - rejected
    names = {code: name for code, name in L.SP_REJECT_REASONS.items()}
    for t, tname in APP_TYPES.items():
        core_rejected = 0
        for (ref_type, reason), n in got["rejected"].items():
            if ref_type != t or reason == VENUE_REJECTED:
                continue
            assert value(m, "oms_orders_total", type=tname, result="rejected",
                         reason=names[reason].lower()) == n
            core_rejected += n
        assert value(m, "oms_orders_total", type=tname, result="accepted", reason="") == \
            sent[tname] - core_rejected
        if t != 0x13:
            assert value(m, "oms_venue_rejects_total", type=tname) == \
                got["rejected"][(t, VENUE_REJECTED)]
    # new orders accepted went out as Enter Orders, per venue
    assert value(m, "oms_orders_total", type="new_order", result="accepted", reason="") == \
        got["ouch_out"]["O"]
    assert value(m, "oms_orders_total", type="modify", result="accepted", reason="") == \
        got["ouch_out"]["U"]
    for v in cfg.venues:
        assert value(m, "oms_routed_orders_total", venue=str(v.id)) == \
            got["enter_by_venue"][v.ip]
    # rejects by reason: the Rejected messages, and the report's figures
    by_reason = Counter()
    for (_, reason), n in got["rejected"].items():
        by_reason[names[reason]] += n
    for name, n in by_reason.items():
        assert value(m, "oms_rejects_total", kind="business", reason=name.lower()) == n == \
            summary["rejects_business"][name]
    # venue round trips: one per Enter/Replace/Cancel answered, 20 us each in
    # replay (the simulated venue's latency, on the burst clock)
    rtt_count = value(m, "oms_venue_round_trip_seconds_count", venue="1")
    assert rtt_count > 0
    assert value(m, "oms_venue_round_trip_seconds_bucket", venue="1", le="1e-05") == 0
    assert value(m, "oms_venue_round_trip_seconds_bucket", venue="1", le="2.5e-05") == \
        rtt_count


def _snake(name: str) -> str:
    out = ""
    for i, ch in enumerate(name):
        if ch.isupper() and i:
            out += "_"
        out += ch.lower()
    return out
