"""ITCH 5.0 / MoldUDP64 multicast pcaps from a small JSON Lines scenario,
for feed tests and demos (docs/market-data.md "Scenarios").

    python -m pcaps.itch_gen pcaps/itch_scenarios/itch_day.jsonl out/itch_day.pcap

Lines (one JSON object each; "#" lines and blank lines are skipped):

    {"feed": {"session": "20261127A1", "group": "239.1.1.1", "port": 26400,
              "source": "10.0.0.7", "locates": {"AAPL": 1, "MSFT": 2}}}
    {"t_ms": 0, "msgs": [{"type": "R", "stock": "AAPL"},
                         {"type": "A", "stock": "AAPL", "ref": 1, "side": "B",
                          "shares": 100, "price": "150.25"}]}
    {"t_ms": 5, "lose": true, "msgs": [...]}   sequenced, never sent: a gap
    {"t_ms": 9, "heartbeat": true}
    {"t_ms": 9, "end_of_session": true}

The feed line is optional (defaults below) and comes first.  A packet line
is one MoldUDP64 packet at t_ms; its messages take the next sequence
numbers.  A message names its type and the fields of its layer in
pcaps/itch_layers.py; "stock" also sets the stock locate from "locates"
(messages without a stock field, like E or X, use it for that alone);
prices are decimal strings, exact to 4 places.  ITCH timestamps are
9:30:00 plus t_ms unless a message gives "timestamp".  Errors name the
file, line and key."""
from __future__ import annotations

import argparse
import ipaddress
import json
import sys
from pathlib import Path

from dataplane import frames
from pcaps.builder import write_pcap_ns
from pcaps.itch_layers import ITCH_CLASSES, itch_message, mold_packet, price4

DEFAULT_FEED = {"session": "00000001AA", "group": "239.1.1.1", "port": 26400,
                "source": "10.0.0.7", "src_mac": "02:00:00:00:00:07", "src_port": 26399,
                "locates": {}}
MARKET_OPEN_NS = 34_200 * 1_000_000_000  # 9:30, ITCH timestamps count from midnight


class ScenarioError(ValueError):
    def __init__(self, source: str, line: int, key: str, reason: str):
        super().__init__(f"{source}:{line}: {key}: {reason}")


def _group_mac(group: str) -> bytes:
    g = ipaddress.IPv4Address(group).packed
    return bytes([0x01, 0x00, 0x5E, g[1] & 0x7F, g[2], g[3]])


def _message(d: dict, feed: dict, t_ms: int, where: tuple[str, int]) -> bytes:
    if not isinstance(d, dict) or d.get("type") not in ITCH_CLASSES:
        raise ScenarioError(*where, "msgs", f"a message needs a type in {sorted(ITCH_CLASSES)}")
    d = dict(d)
    code = d.pop("type")
    cls = ITCH_CLASSES[code]
    names = {f.name for f in cls.fields_desc} - {"type"}
    stock = d.get("stock")
    if stock is not None:
        if stock not in feed["locates"]:
            raise ScenarioError(*where, "stock", f"{stock!r} has no locate in the feed line")
        d.setdefault("locate", feed["locates"][stock])
        if "stock" not in names:
            del d["stock"]
    d.setdefault("timestamp", MARKET_OPEN_NS + t_ms * 1_000_000)
    for k, v in d.items():
        if k not in names:
            raise ScenarioError(*where, k, f"not a field of {cls.__name__}")
        if k == "price" and isinstance(v, str):
            try:
                d[k] = price4(v)
            except (ValueError, ArithmeticError) as e:
                raise ScenarioError(*where, k, str(e)) from None
    try:
        return itch_message(code, **d)
    except (TypeError, ValueError, OverflowError) as e:
        raise ScenarioError(*where, code, str(e)) from None


def build_frames(lines, source: str = "<memory>") -> list[tuple[int, bytes]]:
    """(time in ns, Ethernet frame) of every packet the scenario sends."""
    feed = dict(DEFAULT_FEED)
    seq, out, first = 1, [], True
    for n, raw in enumerate(lines, 1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise ScenarioError(source, n, "-", f"not JSON: {e.msg}") from None
        if not isinstance(obj, dict):
            raise ScenarioError(source, n, "-", "each line is a JSON object")
        if "feed" in obj:
            if not first:
                raise ScenarioError(source, n, "feed", "the feed line comes first")
            unknown = set(obj["feed"]) - set(DEFAULT_FEED)
            if unknown:
                raise ScenarioError(source, n, sorted(unknown)[0], "unknown feed key")
            feed.update(obj["feed"])
            first = False
            continue
        first = False
        t_ms = obj.get("t_ms")
        if not isinstance(t_ms, int) or t_ms < 0:
            raise ScenarioError(source, n, "t_ms", "a packet line needs t_ms >= 0 (integer)")
        unknown = set(obj) - {"t_ms", "msgs", "lose", "heartbeat", "end_of_session"}
        if unknown:
            raise ScenarioError(source, n, sorted(unknown)[0], "unknown key")
        if obj.get("heartbeat") or obj.get("end_of_session"):
            payload = mold_packet(feed["session"], seq, [],
                                  count=0 if obj.get("heartbeat") else 0xFFFF)
        else:
            msgs = obj.get("msgs")
            if not isinstance(msgs, list) or not msgs:
                raise ScenarioError(source, n, "msgs", "a list of at least one message")
            payload = mold_packet(feed["session"], seq,
                                  [_message(m, feed, t_ms, (source, n)) for m in msgs])
            seq += len(msgs)
        if obj.get("lose"):
            continue
        frame = frames.udp_frame(frames.mac(feed["src_mac"]), _group_mac(feed["group"]),
                                 ipaddress.IPv4Address(feed["source"]).packed,
                                 ipaddress.IPv4Address(feed["group"]).packed,
                                 feed["src_port"], feed["port"], payload)
        out.append((t_ms * 1_000_000, frame))
    return out


def build_pcap(scenario: str | Path, out: str | Path) -> int:
    with open(scenario, encoding="utf-8") as f:
        fr = build_frames(f, str(scenario))
    write_pcap_ns(out, fr)
    return len(fr)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pcaps.itch_gen", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenario")
    ap.add_argument("out")
    args = ap.parse_args(argv)
    try:
        n = build_pcap(args.scenario, args.out)
    except (OSError, ScenarioError) as e:
        print(f"itch_gen: {e}", file=sys.stderr)
        return 1
    print(f"{n} packets -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
