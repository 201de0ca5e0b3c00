"""The bundled sample end to end: scenario -> pcap -> replay through the C
core with the venue simulator, against the golden outputs and the
reference model, twice, byte for byte."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from control.cli import run_replay
from control.config import load_default_config
from pcaps import make_golden, make_scenarios
from pcaps.builder import build_pcap

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "pcaps" / "golden"
OMSCTL = Path(sys.executable).parent / "omsctl"


def golden_sums() -> dict[str, str]:
    out = {}
    for line in (GOLDEN / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        out[name] = digest
    return out


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def session_run(tmp_path_factory):
    """The bundled session replayed twice, into two directories."""
    cfg = load_default_config()
    runs = []
    for i in range(2):
        d = tmp_path_factory.mktemp(f"run{i}")
        build_pcap(ROOT / "pcaps/scenarios/session.jsonl", d / "orders.pcap", cfg)
        summary = run_replay(d / "orders.pcap", d / "out.pcap", d / "report.jsonl", cfg,
                             venue_sim=True, verify=True)
        runs.append((d, summary))
    return runs


def test_scenario_sources_are_what_the_script_makes():
    assert make_scenarios.main(["--check"]) == 0


def test_bundled_sample_twice_is_byte_identical_and_matches_the_model(session_run):
    (a, sa), (b, sb) = session_run
    for name in ("orders.pcap", "out.pcap", "report.jsonl"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert sa["verified_against_reference_model"] and sb["verified_against_reference_model"]


def test_bundled_sample_matches_golden_checksums(session_run):
    d, _ = session_run[0]
    sums = golden_sums()
    for name in ("orders.pcap", "out.pcap", "report.jsonl"):
        assert sha(d / name) == sums[f"session.{name}"], name


def test_bundled_sample_exact_outbound_counts(session_run):
    """Counted by hand from the golden report and pinned: any change in what
    the appliance sends for the sample shows up here first."""
    _, summary = session_run[0]
    assert summary["messages_by_type"] == {
        "strategy.LoginAccepted": 2,
        "strategy.Accepted": 2896,
        "strategy.Rejected": 1008,
        "strategy.Replaced": 405,
        "strategy.Canceled": 897,
        "strategy.Fill": 3888,
        "venue.EnterOrder": 2896,
        "venue.ReplaceOrder": 405,
        "venue.CancelOrder": 731,
    }
    assert summary["rejects_business"] == {
        "BAD_QTY": 28, "LOCATE_REQUIRED": 22, "ORDER_PENDING": 17,
        "PRICE_UNREPRESENTABLE": 33, "TOO_LATE": 816, "UNKNOWN_ORDER": 67,
        "UNKNOWN_SYMBOL": 25,
    }
    assert summary["rejects_system"] == {}
    assert summary["drops"] == {}
    assert summary["frames_in"] == 4732


def test_golden_files_are_what_the_script_makes():
    assert make_golden.main(["--check"]) == 0


def test_brief_example_goes_accepted_replaced_canceled():
    report = (GOLDEN / "brief_example.report.jsonl").read_text()
    lines = [json.loads(x) for x in report.splitlines()]
    to_strategy = [(m["type"], m.get("price"), m.get("qty")) for m in lines
                   if m.get("to") == "strategy" and m["type"] != "Heartbeat"]
    assert to_strategy == [("LoginAccepted", None, None), ("Accepted", 15025000000, 100),
                           ("Replaced", 15100000000, 50), ("Canceled", None, None)]
    to_venue = [(m["msg"], m.get("user_ref"), m.get("qty"), m.get("price")) for m in lines
                if m.get("to") == "venue" and m["msg"] != "Heartbeat"]
    # ten seconds between the brief's messages: heartbeats both ways, no timeout
    assert sum(m.get("type") == "Heartbeat" for m in lines if m.get("to") == "strategy") == 20
    assert to_venue == [("EnterOrder", 1, 100, 1502500), ("ReplaceOrder", 2, 50, 1510000),
                        ("CancelOrder", 2, 0, None)]


def test_omsctl_build_and_replay_from_the_command_line(tmp_path):
    pcap = tmp_path / "orders.pcap"
    subprocess.run([OMSCTL, "pcap", "build", ROOT / "pcaps/scenarios/brief_example.jsonl",
                    "-o", pcap], check=True, capture_output=True)
    assert pcap.read_bytes() == (GOLDEN / "brief_example.orders.pcap").read_bytes()
    r = subprocess.run([OMSCTL, "replay", pcap, "-o", tmp_path / "out.pcap", "--report",
                        tmp_path / "report.jsonl", "--venue-sim", "--verify", "--timings",
                        tmp_path / "timings.json"], check=True, capture_output=True, text=True)
    assert json.loads(r.stdout)["verified_against_reference_model"] is True
    assert (tmp_path / "out.pcap").read_bytes() == (GOLDEN / "brief_example.out.pcap").read_bytes()
    timings = json.loads((tmp_path / "timings.json").read_text())
    assert timings["orders_timed"] == 3 and "p50" in timings["percentiles"]


def test_omsctl_names_the_bad_scenario_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"order_id": 1, "symbol": "AAPL", "price": 1.5, "volume": 10}\n'
                   '{"order_id": 2, "symbol": "AAPL", "price": "x", "volume": 10}\n')
    r = subprocess.run([OMSCTL, "pcap", "build", bad, "-o", tmp_path / "o.pcap"],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert f"{bad}:2" in r.stderr and "price" in r.stderr


def test_omsctl_config_check_names_file_line_and_key(tmp_path):
    cfg = tmp_path / "c.yaml"
    text = (ROOT / "deploy/example-config.yaml").read_text().replace(
        "strategy_port:", "strategy_prot:", 1)
    cfg.write_text(text)
    r = subprocess.run([OMSCTL, "config", "check", cfg], capture_output=True, text=True)
    assert r.returncode == 2
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "strategy_prot" in t)
    assert f"{cfg}:{line}:" in r.stderr and "strategy_prot" in r.stderr
