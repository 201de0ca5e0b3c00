"""The busy session: 100,000 new orders over the two default sessions, with
modifies, cancels, mass cancels, IOC and market orders, orders that break
the rules, re-sent (duplicate) sequence numbers and junk frames of every
kind.  It is generated from a seeded RNG and never committed: only this
source and the SHA-256 of what it produces (pcaps/golden/busy.SHA256SUMS)
are.

    python -m pcaps.make_busy [SCENARIO]            # write the scenario
    python -m pcaps.make_busy [SCENARIO] --check    # build, replay, compare
    python -m pcaps.make_busy [SCENARIO] --record   # build, replay, record

SCENARIO defaults to bench/work/busy.jsonl (gitignored); the capture, the
replay's output and report and a summary go beside it (busy.orders.pcap,
busy.out.pcap, busy.report.jsonl, busy.summary.json).  --check and --record
build the pcap with the bundled config, replay it through the C core with
the venue simulator and the reference model beside it (verify), print a
summary, and fail if the core and the model differ, if any system reject
occurred, if a junk kind or the duplicates did not land in their counters
exactly, or (--check) if any SHA-256 differs from the recorded one.
--record writes the sums only when all the rest holds.

What is in it (per line, from the RNG; times advance 1-40 us a line, so the
sessions never go quiet long enough to need heartbeats):

- ~1% junk lines (pcaps/builder.py "Junk"), every kind, each landing in one
  drop counter; truncated ones are cut both below the header's 24 bytes
  (SP_TRUNCATED) and inside the body (SP_BAD_LENGTH).  Junk that looks like
  an order carries the id the session's next real order will take, so a junk
  frame that got through would show up as that order's DUPLICATE_ID.
- ~0.5% duplicates: an application message the session already sent, again,
  with its old sequence number (builder key ``seq``): SP_DUPLICATE_SEQ.
  The builder continues numbering from a forced ``seq``, so after re-sending
  anything but the session's last message the session's next sequenced line
  gives the right next number itself: no gap is ever made (a gap would
  make the appliance drop everything after it until a resend, go-back-N).
- the rest are application messages: ~65% NewOrder, ~20% Modify, ~15% Cancel
  (modifies and cancels mostly of one of the session's last 64 orders: the
  older ones have mostly filled by then, and would be rejected TOO_LATE)
  and now and then (~1 in 15,000) a MassCancel of one account; a session
  holding more than LIVE_LIMIT orders it has not canceled mass-cancels its
  biggest account, so live orders stay well within the order table (65,536
  slots) and NewOrder never meets SYS_TABLE_FULL.
- NewOrders as pcaps/make_scenarios.py's: prices within 8 ticks of the
  venue simulator's reference price (about half cross), a fifth of them to
  venue 2; 8% IOC, 2% market; 1% each zero quantity, unknown symbol, a price
  finer than the tick, sell short without a locate; 3% sell short with one.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path

from dataplane.venue_sim import default_ref_price
from pcaps.builder import JUNK_KINDS
from pcaps.make_scenarios import START_NS, SYMBOLS, _line, _px

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SCENARIO = ROOT / "bench" / "work" / "busy.jsonl"
SUMS = ROOT / "pcaps" / "golden" / "busy.SHA256SUMS"
SEED = 100_000
N_ORDERS = 100_000
P_JUNK = 0.01
P_DUPLICATE = 0.005
P_MASS_CANCEL = 1 / 15_000
LIVE_LIMIT = 24_000  # per session; two sessions stay under 65,536 slots
P_RECENT = 0.8  # modifies and cancels: the chance of picking a recent order
RECENT = 64
DUP_WINDOW = 2_000  # a duplicate re-sends one of the session's last messages
# the output files, by the names the sums give them
OUTPUTS = ("busy.jsonl", "busy.orders.pcap", "busy.out.pcap", "busy.report.jsonl")
# the drop counter each junk kind lands in (random: RUNT or NOT_IPV4)
JUNK_COUNTER = {"random": "RUNT+NOT_IPV4", "bad_ip_checksum": "IP_CHECKSUM",
                "bad_udp_checksum": "UDP_CHECKSUM", "truncated": "SP_TRUNCATED",
                "wrong_port": "UNKNOWN_PORT", "not_for_us": "NOT_FOR_US",
                "unknown_session": "SP_UNKNOWN_SESSION", "bad_version": "SP_BAD_VERSION"}
assert set(JUNK_COUNTER) == set(JUNK_KINDS)


class _Live:
    """A session's orders the scenario has not canceled: random choice and
    removal in O(1), deterministic."""

    def __init__(self):
        self.ids: list[int] = []
        self.pos: dict[int, int] = {}
        self.info: dict[int, dict] = {}
        self.recent: list[int] = []  # every id added, oldest first

    def __len__(self) -> int:
        return len(self.ids)

    def add(self, oid: int, info: dict) -> None:
        self.pos[oid] = len(self.ids)
        self.ids.append(oid)
        self.info[oid] = info
        self.recent.append(oid)

    def remove(self, oid: int) -> None:
        i = self.pos.pop(oid)
        last = self.ids.pop()
        if last != oid:
            self.ids[i] = last
            self.pos[last] = i
        del self.info[oid]

    def pick(self, rng: random.Random) -> int:
        """Mostly one of the last RECENT orders, as a strategy works on
        what it just sent (older ones have mostly filled by then); else
        any."""
        if rng.random() < P_RECENT:
            for _ in range(4):
                oid = self.recent[-rng.randint(1, min(RECENT, len(self.recent)))]
                if oid in self.pos:
                    return oid
        return self.ids[rng.randrange(len(self.ids))]


def busy(n_orders: int = N_ORDERS, seed: int = SEED) -> tuple[list[str], dict]:
    """The scenario's lines and what the generator put in them (counts, and
    the drops its junk and duplicates must cause)."""
    rng = random.Random(seed)
    lines: list[str] = []
    counts: Counter = Counter()
    expected_drops: Counter = Counter()
    t = START_NS
    live = {1: _Live(), 2: _Live()}
    next_id = {1: 1_000_000, 2: 2_000_000}
    next_seq = {1: 1, 2: 1}  # what the appliance expects next, per session
    restore = {1: False, 2: False}  # the builder's numbering must be put right
    sent: dict[int, list[tuple[dict, dict]]] = {1: [], 2: []}  # by seq - 1

    def app(obj: dict, prices: dict | None = None) -> None:
        """A sequenced strategy message: takes the session's next number."""
        sess = obj["session"]
        if restore[sess]:
            obj["seq"] = next_seq[sess]
            restore[sess] = False
        lines.append(_line(obj, prices))
        sent[sess].append((obj, prices or {}))
        next_seq[sess] += 1

    def mass_cancel(sess: int, acct: int) -> None:
        app({"timestamp_ns": t, "session": sess, "action": "mass_cancel", "account": acct})
        counts["mass_cancel"] += 1
        for oid in [k for k, v in live[sess].info.items() if v["account"] == acct]:
            live[sess].remove(oid)  # forgotten: no late modifies

    made = 0
    while made < n_orders:
        t += rng.randint(1_000, 40_000)
        sess = rng.choice((1, 2))
        mine = live[sess]
        r = rng.random()
        if r < P_JUNK:
            kind = rng.choice(JUNK_KINDS)
            obj: dict = {"timestamp_ns": t, "action": "junk", "kind": kind}
            counter = JUNK_COUNTER[kind]
            if kind == "random":
                obj["seed"] = rng.getrandbits(32)
            else:
                obj.update(session=sess, order_id=next_id[sess])
            if kind == "truncated":
                if rng.random() < 0.25:
                    obj["length"] = rng.randint(24, 63)
                    counter = "SP_BAD_LENGTH"
                else:
                    obj["length"] = rng.randint(1, 23)
            elif kind == "wrong_port":
                obj["port"] = rng.choice((9001, 9002, 9200, 9201, 53, 12345))
            elif kind == "not_for_us":
                obj["dst_ip"] = rng.choice(("192.0.2.1", "10.10.0.2", "10.10.1.1",
                                            "255.255.255.255"))
            elif kind == "unknown_session":
                obj["session_id"] = rng.choice((0, 3, 77, 4_294_967_295))
            elif kind == "bad_version":
                obj["version"] = rng.choice((0, 2, 3, 255))
            lines.append(_line(obj))
            counts[f"junk.{kind}"] += 1
            expected_drops[counter] += 1
            continue
        if r < P_JUNK + P_DUPLICATE and sent[sess]:
            # re-send an earlier message with its own number: the last one
            # (the builder's numbering is unchanged) or an older one
            if rng.random() < 0.3:
                seq = next_seq[sess] - 1
            else:
                seq = rng.randint(max(1, next_seq[sess] - DUP_WINDOW), next_seq[sess] - 1)
            orig, prices = sent[sess][seq - 1]
            obj = {k: v for k, v in orig.items() if k != "seq"}
            obj.update(timestamp_ns=t, seq=seq)
            lines.append(_line(obj, prices))
            restore[sess] = seq != next_seq[sess] - 1
            counts["duplicate"] += 1
            expected_drops["SP_DUPLICATE_SEQ"] += 1
            continue
        if len(mine) > LIVE_LIMIT:
            per_acct = Counter(v["account"] for v in mine.info.values())
            mass_cancel(sess, max(sorted(per_acct), key=per_acct.__getitem__))
            counts["mass_cancel.forced"] += 1
            continue
        r = rng.random()
        if r < P_MASS_CANCEL and len(mine):
            mass_cancel(sess, rng.choice((1, 2, 3)))
        elif r < 0.65 or not len(mine):
            made += 1
            new_order(rng, t, sess, next_id, mine, counts, app)
        elif r < 0.85:
            oid = mine.pick(rng)
            o = mine.info[oid]
            new_px = o["price"] + rng.randint(-3, 3) * 100
            new_qty = o["qty"] + rng.choice((-100, 0, 100, 200))
            if new_qty <= 0:
                new_qty = o["qty"]
            o.update(price=new_px, qty=new_qty)
            app({"timestamp_ns": t, "session": sess, "order_id": oid,
                 "new_price": "@", "new_volume": new_qty}, {"new_price": _px(new_px)})
            counts["modify"] += 1
        else:
            oid = mine.pick(rng)
            mine.remove(oid)
            app({"timestamp_ns": t, "session": sess, "action": "cancel", "order_id": oid})
            counts["cancel"] += 1
    counts["lines"] = len(lines)
    counts["sequenced"] = sum(len(v) for v in sent.values())
    return lines, {"counts": dict(sorted(counts.items())),
                   "expected_drops": dict(sorted(expected_drops.items()))}


def new_order(rng, t, sess, next_id, mine: _Live, counts: Counter, app) -> None:
    oid = next_id[sess]
    next_id[sess] += 1
    sym = rng.choice(SYMBOLS)
    ref = default_ref_price(sym)
    side = rng.choice(("buy", "sell"))
    off = rng.randint(-8, 8) * 100  # within 8 ticks: about half cross
    px = ref + off if side == "buy" else ref - off
    qty = rng.choice((100, 100, 200, 300, 500, 1000))
    acct = rng.choice((1, 2, 3))
    order = {"timestamp_ns": t, "session": sess, "order_id": oid, "symbol": sym,
             "price": "@", "volume": qty, "type": "LIMIT", "side": side, "account": acct}
    if rng.random() < 0.2:
        order["venue"] = 2
    prices = {"price": _px(px)}
    kind = rng.random()
    rests = True
    if kind < 0.08:
        order["tif"] = "ioc"
        rests = False
        counts["new.ioc"] += 1
    elif kind < 0.10:
        order.update(type="MARKET", tif="ioc")
        del order["price"]
        prices = {}
        rests = False
        counts["new.market"] += 1
    elif kind < 0.11:
        order["volume"] = 0
        rests = False
        counts["new.bad.zero_qty"] += 1
    elif kind < 0.12:
        order["symbol"] = "ZZZZ"
        rests = False
        counts["new.bad.unknown_symbol"] += 1
    elif kind < 0.13:
        prices = {"price": _px(px * 100 + 1, 6)}  # finer than OUCH's tick
        rests = False
        counts["new.bad.sub_tick_price"] += 1
    elif kind < 0.14:
        order["side"] = "sell_short"
        rests = False
        counts["new.bad.short_without_locate"] += 1
    elif kind < 0.17:
        order.update(side="sell_short", locate=True)
        counts["new.sell_short_located"] += 1
    else:
        counts["new.limit_day"] += 1
    counts["new"] += 1
    app(order, prices)
    if rests:
        mine.add(oid, {"price": px, "qty": qty, "account": acct})


# --------------------------------------------------------------------------
# Check / record


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _files(scenario: Path) -> dict[str, Path]:
    stem = scenario.with_suffix("")
    return {"busy.jsonl": scenario,
            "busy.orders.pcap": stem.with_name(stem.name + ".orders.pcap"),
            "busy.out.pcap": stem.with_name(stem.name + ".out.pcap"),
            "busy.report.jsonl": stem.with_name(stem.name + ".report.jsonl"),
            "summary": stem.with_name(stem.name + ".summary.json")}


def _drop_mismatches(expected: dict[str, int], drops: dict[str, int]) -> list[str]:
    out = []
    for counter, n in expected.items():
        got = sum(drops.get(c, 0) for c in counter.split("+"))
        if got != n:
            out.append(f"{counter}: {got} counted, {n} sent")
    return out


def run(scenario: Path, record: bool, verify: bool) -> int:
    from control.cli import run_replay
    from control.config import load_default_config
    from pcaps.builder import build_pcap

    files = _files(scenario)
    timing: dict[str, float] = {}
    t0 = time.perf_counter()
    lines, gen = busy()
    scenario.write_text("\n".join(lines) + "\n")
    timing["generate_s"] = time.perf_counter() - t0

    cfg = load_default_config()
    t0 = time.perf_counter()
    frames_in = build_pcap(scenario, files["busy.orders.pcap"], cfg)
    timing["build_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    problems: list[str] = []
    try:
        summary = run_replay(files["busy.orders.pcap"], files["busy.out.pcap"],
                             files["busy.report.jsonl"], cfg, venue_sim=True, verify=verify)
    except AssertionError as exc:  # VerifyError: the core and the model differ
        print(f"FAIL: the core and the reference model differ:\n{exc}", file=sys.stderr)
        return 1
    timing["replay_s"] = time.perf_counter() - t0
    if not verify:
        problems.append("not verified against the reference model (--no-verify)")

    if summary["rejects_system"]:
        problems.append(f"system rejects: {summary['rejects_system']}")
    problems += _drop_mismatches(gen["expected_drops"], summary["drops"])

    sums = {name: sha256(files[name]) for name in OUTPUTS}
    sums_text = "".join(f"{h}  {name}\n" for name, h in sums.items())
    recorded = _read_sums(SUMS)
    differs = [n for n in OUTPUTS if recorded.get(n) != sums[n]]
    if not record:
        if not recorded:
            problems.append(f"no recorded sums in {SUMS.relative_to(ROOT)}: run --record")
        elif differs:
            problems.append(f"SHA-256 differs from {SUMS.relative_to(ROOT)}: {differs}")

    full = {"scenario": gen, "frames_in": frames_in, "replay": summary, "sha256": sums,
            "sha256_differs": differs, "timing_s": {k: round(v, 1) for k, v in timing.items()},
            "problems": problems}
    files["summary"].write_text(json.dumps(full, indent=2, sort_keys=True) + "\n")
    _print_summary(full, gen, summary, files)

    if problems:
        for p in problems:
            print(f"FAIL: {p}", file=sys.stderr)
        return 1
    if record:
        SUMS.write_text(sums_text)
        print(f"recorded {SUMS.relative_to(ROOT)}")
    else:
        print(f"ok: outputs match {SUMS.relative_to(ROOT)}")
    return 0


def _read_sums(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    out = {}
    for ln in path.read_text().splitlines():
        if ln.strip():
            h, name = ln.split(maxsplit=1)
            out[name.strip()] = h
    return out


def _print_summary(full: dict, gen: dict, summary: dict, files: dict) -> None:
    def table(title: str, d: dict) -> None:
        print(f"{title}:")
        if not d:
            print("  (none)")
        for k, v in d.items():
            print(f"  {k:<36} {v:>9}")

    table("scenario lines", gen["counts"])
    print(f"frames in {full['frames_in']}, frames out {summary['frames_out']}, "
          f"verified against the reference model: {summary['verified_against_reference_model']}")
    table("messages out by type", summary["messages_by_type"])
    table("rejects (business) by reason", summary["rejects_business"])
    table("rejects (system) by reason", summary["rejects_system"])
    table("drops by reason", summary["drops"])
    table("junk and duplicates sent, by the counter they must land in", gen["expected_drops"])
    table("events", summary["events"])
    table("timing (s)", full["timing_s"])
    for name, h in full["sha256"].items():
        mark = "DIFFERS" if name in full["sha256_differs"] else "ok"
        print(f"  {h}  {name}  {mark}")
    print(f"summary: {files['summary']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenario", nargs="?", default=str(DEFAULT_SCENARIO),
                    help="where to write the scenario (default: %(default)s)")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true",
                      help="build, replay with --verify, compare with the recorded sums")
    mode.add_argument("--record", action="store_true",
                      help="build, replay with --verify, record the sums")
    ap.add_argument("--no-verify", action="store_true",
                    help="replay without the reference model (development only: "
                         "then the run always fails)")
    args = ap.parse_args(argv)
    scenario = Path(args.scenario)
    scenario.parent.mkdir(parents=True, exist_ok=True)
    if args.check or args.record:
        return run(scenario, args.record, not args.no_verify)
    lines, gen = busy()
    scenario.write_text("\n".join(lines) + "\n")
    print(f"{scenario}: {len(lines)} lines ({gen['counts']['new']} new orders)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
