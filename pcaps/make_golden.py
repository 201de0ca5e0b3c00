"""Produces the golden outputs in pcaps/golden/ from the scenario sources:
each scenario is built into a pcap and replayed through the C core with the
venue simulator and the reference model beside it.  Never edit the golden
files by hand: run this.

    python -m pcaps.make_golden            # rewrite pcaps/golden/
    python -m pcaps.make_golden --check    # fail if anything differs

Small captures are committed whole; for the larger ones only their SHA-256
(SHA256SUMS) and the replay summary are committed, and tests rebuild them.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

from control.cli import run_replay
from control.config import load_default_config
from pcaps.builder import build_pcap

ROOT = Path(__file__).resolve().parent
SCENARIOS = ROOT / "scenarios"
GOLDEN = ROOT / "golden"
# captures under this size are committed whole
COMMIT_WHOLE_BYTES = 64 * 1024


def produce(name: str, workdir: Path) -> dict[str, Path]:
    """Build and replay one scenario; returns its output files by kind."""
    cfg = load_default_config()
    files = {"orders.pcap": workdir / f"{name}.orders.pcap",
             "out.pcap": workdir / f"{name}.out.pcap",
             "report.jsonl": workdir / f"{name}.report.jsonl",
             "summary.json": workdir / f"{name}.summary.json"}
    build_pcap(SCENARIOS / f"{name}.jsonl", files["orders.pcap"], cfg)
    summary = run_replay(files["orders.pcap"], files["out.pcap"], files["report.jsonl"], cfg,
                         venue_sim=True, verify=True)
    files["summary.json"].write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return files


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    names = sorted(p.stem for p in SCENARIOS.glob("*.jsonl"))
    sums: list[str] = []
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            for kind, path in produce(name, Path(tmp)).items():
                fname = f"{name}.{kind}"
                sums.append(f"{sha256(path)}  {fname}")
                whole = kind == "summary.json" or path.stat().st_size <= COMMIT_WHOLE_BYTES
                dest = GOLDEN / fname
                if args.check:
                    if whole and (not dest.exists() or dest.read_bytes() != path.read_bytes()):
                        problems.append(fname)
                elif whole:
                    GOLDEN.mkdir(exist_ok=True)
                    dest.write_bytes(path.read_bytes())
    text = "\n".join(sums) + "\n"
    sums_path = GOLDEN / "SHA256SUMS"
    if args.check:
        if not sums_path.exists() or sums_path.read_text() != text:
            problems.append("SHA256SUMS")
        if problems:
            print(f"golden outputs differ: {problems}", file=sys.stderr)
            return 1
        return 0
    sums_path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
