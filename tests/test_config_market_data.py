"""The market_data section of the YAML configuration: subscriptions (venue,
group, UDP port, optional source_ip, receive port and queue, retransmission
server, staleness) and subscribed symbols; every mistake named by file,
line and key, and the JSON Schema saying the same."""
from __future__ import annotations

import pytest
import yaml

from control import config as C
from control.schema import generate_schema, iter_errors

BASE = C.DEFAULT_CONFIG_PATH.read_text()
GOOD = """
market_data:
  stale_after_ms: 500
  request_port: 9300
  symbols: [AAPL, MSFT]
  subscriptions:
    - venue: 1
      group: 239.1.1.1
      port: 26400
      source_ip: 10.10.2.7
      rx_queue: 1
      retransmission: {ip: 10.10.2.9, port: 26401, mac: "02:00:00:00:02:09"}
    - venue: 2
      group: 239.1.1.2
      port: 26400
      stale_after_ms: 2000
"""


def load(extra: str) -> C.Config:
    return C.load_config_text(BASE + extra, "md.yaml")


def test_market_data_section_is_read():
    md = load(GOOD).market_data
    assert md.symbols == ("AAPL", "MSFT") and md.stale_after_ms == 500
    assert md.request_port == 9300
    a, b = md.subscriptions
    assert (a.venue, a.group, a.port, a.source_ip, a.rx_queue) == (1, "239.1.1.1", 26400,
                                                                "10.10.2.7", 1)
    assert a.retransmission == C.Retransmission("10.10.2.9", 26401, "02:00:00:00:02:09")
    assert (b.source_ip, b.retransmission, b.stale_after_ms) == ("", None, 2000)
    assert C.load_config_text(BASE).market_data == C.MarketData()


def line_of(text: str, needle: str) -> int:
    """The line of the last occurrence: the edited one, when it repeats."""
    lines = (BASE + text).splitlines()
    return len(lines) - lines[::-1].index(needle)


@pytest.mark.parametrize("old,new,key,reason", [
    ("    - venue: 2", "    - venue: 3", "market_data.subscriptions[1].venue", "not configured"),
    ("    - venue: 2", "    - venue: 1", "market_data.subscriptions[1].venue",
     "already has a feed"),
    ("      group: 239.1.1.2", "      group: 10.0.0.1", "market_data.subscriptions[1].group",
     "not a routable multicast group"),
    ("      group: 239.1.1.2", "      group: 224.0.0.22", "market_data.subscriptions[1].group",
     "not a routable multicast group"),
    ("      source_ip: 10.10.2.7", "      source_ip: 239.0.0.1",
     "market_data.subscriptions[0].source_ip", "not a source"),
    ("  symbols: [AAPL, MSFT]", "  symbols: [AAPL, ZZZZ]", "market_data.symbols[1]",
     "not a configured instrument"),
    ("  symbols: [AAPL, MSFT]", "  symbols: [AAPL, AAPL]", "market_data.symbols[1]",
     "listed twice"),
    ("  request_port: 9300", "  request_port: 9000", "market_data.request_port",
     "already appliance.strategy_port"),
    ("  stale_after_ms: 500", "  stale_after_ms: 0", "market_data.stale_after_ms",
     "out of range"),
    ('      retransmission: {ip: 10.10.2.9, port: 26401, mac: "02:00:00:00:02:09"}',
     '      retransmission: {ip: 10.10.2.9, port: 26401, mac: "02:00"}',
     "market_data.subscriptions[0].retransmission.mac", "not a MAC address"),
    ('      retransmission: {ip: 10.10.2.9, port: 26401, mac: "02:00:00:00:02:09"}',
     '      retransmission: {ip: 10.10.2.9, mac: "02:00:00:00:02:09"}',
     "market_data.subscriptions[0].retransmission.port", "missing required key"),
    ("      rx_queue: 1", "      rx_queu: 1", "market_data.subscriptions[0].rx_queu",
     "unknown key"),
])
def test_mistakes_are_named_by_file_line_and_key(old, new, key, reason):
    text = GOOD.replace(old, new)
    assert text != GOOD
    with pytest.raises(C.ConfigError) as e:
        load(text)
    assert e.value.file == "md.yaml" and e.value.key == key and reason in e.value.reason
    assert e.value.line == line_of(text, new), str(e.value)


def test_same_group_port_and_source_twice_is_refused():
    text = GOOD.replace("group: 239.1.1.2", "group: 239.1.1.1").replace(
        "      stale_after_ms: 2000", "      source_ip: 10.10.2.7")
    with pytest.raises(C.ConfigError, match="same group, port and source"):
        load(text)


def test_schema_describes_the_section():
    schema = generate_schema()
    assert schema["properties"]["market_data"] == {"$ref": "#/$defs/MarketData"}
    doc = yaml.safe_load(BASE + GOOD)
    assert list(iter_errors(doc, schema)) == []
    doc["market_data"]["subscriptions"][0]["group"] = "not an ip"
    doc["market_data"]["subscriptions"][1]["colour"] = "blue"
    assert len(list(iter_errors(doc, schema))) == 2


def test_feeds_are_built_from_the_section():
    from dataplane.feed import feeds_from_config, symbol_indices
    cfg = load(GOOD)
    feeds = feeds_from_config(cfg)
    assert sorted(feeds) == [1, 2]
    idx = symbol_indices(cfg)
    assert idx == {"AAPL": [i.symbol for i in cfg.instruments].index("AAPL"),
                   "MSFT": [i.symbol for i in cfg.instruments].index("MSFT")}
    for f in feeds.values():
        assert f.tob(idx["AAPL"])["stale"] == 1  # subscribed, nothing received yet
        assert f.tob(max(idx.values()) + 1) is None
