"""omsctl whatif: one capture replayed under two configurations; the orders
whose outcome changes, and why."""
from __future__ import annotations

import dataclasses
import json

import pytest

from control.config import DEFAULT_CONFIG_PATH, PRICE_SCALE, load_config_text, load_default_config
from control.whatif import outcomes_from_report, whatif, whatif_main
from pcaps.builder import build_pcap

# Orders that a tighter limit catches go to venue 2, everything else to venue
# 1: each venue has its own simulator (and random stream), so rejecting an
# order on venue 2 cannot change what venue 1 does with the others.
SCENARIO = [
    {"timestamp": 1_700_000_000_000, "session": 1, "order_id": 1, "symbol": "MSFT",
     "price": 300.00, "volume": 100, "side": "buy", "account": 2, "venue": 1},
    {"timestamp": 1_700_000_000_001, "session": 1, "order_id": 2, "symbol": "AAPL",
     "price": 100.00, "volume": 500, "side": "buy", "account": 1, "venue": 2},
    {"timestamp": 1_700_000_000_002, "session": 1, "order_id": 3, "symbol": "AAPL",
     "price": 100.00, "volume": 100, "side": "buy", "account": 1, "venue": 2},
    {"timestamp": 1_700_000_000_003, "session": 2, "order_id": 10, "symbol": "GOOG",
     "price": 140.00, "volume": 200, "side": "sell", "account": 3, "venue": 1},
    {"timestamp": 1_700_000_000_004, "session": 1, "order_id": 3, "new_volume": 300},
    {"timestamp": 1_700_000_000_005, "session": 1, "order_id": 4, "symbol": "AAPL",
     "price": 100.00, "volume": 200, "side": "buy", "account": 1, "venue": 2},
    {"timestamp": 1_700_000_000_006, "session": 2, "order_id": 11, "symbol": "MSFT",
     "price": 330.00, "volume": 100, "side": "sell", "account": 3, "venue": 2},
    {"timestamp": 1_700_000_000_007, "session": 2, "order_id": 12, "symbol": "MSFT",
     "price": 301.00, "volume": 100, "side": "sell", "account": 3, "venue": 2},
]


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    from dataplane import pcap_backend

    d = tmp_path_factory.mktemp("whatif")
    scenario = d / "orders.jsonl"
    scenario.write_text("".join(json.dumps(line) + "\n" for line in SCENARIO))
    build_pcap(scenario, d / "orders.pcap", load_default_config())
    return pcap_backend.read_pcap(d / "orders.pcap")


def tighter_qty(cfg, qty=200):
    """Account 1's max_order_qty lowered to `qty`."""
    accounts = tuple(dataclasses.replace(a, max_order_qty=qty) if a.id == 1 else a
                     for a in cfg.accounts)
    return dataclasses.replace(cfg, accounts=accounts, source="tighter-qty")


def msft_band(cfg, pct=5):
    """MSFT (reference 300.00) gets a price band of `pct` percent."""
    instruments = tuple(dataclasses.replace(i, price_band_pct=pct * PRICE_SCALE)
                        if i.symbol == "MSFT" else i for i in cfg.instruments)
    return dataclasses.replace(cfg, instruments=instruments, source="msft-band")


def by_order(result):
    return {(c["session"], c["cl_ord_id"]): c for c in result["changes"]}


def test_identical_configs_change_nothing(records):
    cfg = load_default_config()
    result = whatif(records, cfg, load_default_config())
    assert result["changes"] == [] and result["orders_changed"] == 0
    assert result["config_changes"] == []
    assert result["orders"] == 7  # every NewOrder of the capture was compared


def test_tighter_max_order_qty(records):
    cur = load_default_config()
    result = whatif(records, tighter_qty(cur), cur)
    assert result["config_changes"] == [
        {"key": "accounts[id=1].max_order_qty", "current": 999999, "new": 200}]
    changes = by_order(result)
    # exactly: the 500-share order is rejected, and the Modify taking order 3
    # to 300 shares; order 4 (200 shares, at the limit) and the others pass
    assert set(changes) == {(1, 2), (1, 3)}
    c2 = changes[(1, 2)]
    assert (c2["change"], c2["reason"]) == ("newly_rejected", "QTY_LIMIT")
    assert c2["current"]["state"] != "REJECTED"
    assert (c2["new"]["state"], c2["new"]["reason"]) == ("REJECTED", "QTY_LIMIT")
    assert (c2["symbol"], c2["account"], c2["qty"], c2["price"]) == ("AAPL", 1, 500, "100")
    c3 = changes[(1, 3)]
    assert (c3["change"], c3["reason"]) == ("requests_newly_rejected", "Modify:QTY_LIMIT")
    assert c3["current"]["request_rejects"] == {}
    assert c3["new"]["request_rejects"] == {"Modify:QTY_LIMIT": 1}
    assert result["counts"] == {"newly_rejected": {"QTY_LIMIT": 1},
                                "requests_newly_rejected": {"Modify:QTY_LIMIT": 1}}


def test_price_band_both_directions(records):
    cur = load_default_config()
    result = whatif(records, msft_band(cur), cur)
    changes = by_order(result)
    # 330.00 is 10% off the 300.00 reference: outside a 5% band; 300 and 301 inside
    assert set(changes) == {(2, 11)}
    assert changes[(2, 11)]["new"]["reason"] == "PRICE_BAND"
    assert result["counts"] == {"newly_rejected": {"PRICE_BAND": 1}}
    # swapped: the band is what is loosened
    back = whatif(records, cur, msft_band(cur))
    assert [(c["cl_ord_id"], c["change"], c["reason"]) for c in back["changes"]] == [
        (11, "no_longer_rejected", "PRICE_BAND")]


def test_outcomes_from_report_folds_messages():
    lines = [
        {"to": "strategy", "type": "Accepted", "session_id": 1, "cl_ord_id": 7,
         "qty": 300, "price": 15000000000},
        {"to": "strategy", "type": "Rejected", "session_id": 1, "cl_ord_id": 7,
         "reason": "DUPLICATE_ID", "ref_type": "NewOrder"},
        {"to": "strategy", "type": "Fill", "session_id": 1, "cl_ord_id": 7,
         "last_qty": 100, "last_price": 15000000000, "leaves_qty": 200},
        {"to": "strategy", "type": "Rejected", "session_id": 1, "cl_ord_id": 7,
         "reason": "PRICE_BAND", "ref_type": "Modify"},
        {"to": "strategy", "type": "Canceled", "session_id": 1, "cl_ord_id": 7,
         "reason": "IOC"},
        {"to": "strategy", "type": "Rejected", "session_id": 1, "cl_ord_id": 8,
         "reason": "KILL_SWITCH", "ref_type": "NewOrder"},
        {"to": "venue", "type": "O", "cl_ord_id": "7"},
        {"summary": {}},
    ]
    o = outcomes_from_report(lines)
    assert o[(1, 7)]["state"] == "EXPIRED"
    assert o[(1, 7)]["reason"] is None
    assert (o[(1, 7)]["fills"], o[(1, 7)]["filled_qty"]) == (1, 100)
    assert o[(1, 7)]["request_rejects"] == {"NewOrder:DUPLICATE_ID": 1, "Modify:PRICE_BAND": 1}
    assert (o[(1, 8)]["state"], o[(1, 8)]["reason"]) == ("REJECTED", "KILL_SWITCH")


def test_cli_text_and_json(records, tmp_path, capsys):
    from dataplane import pcap_backend

    pcap = tmp_path / "orders.pcap"
    pcap_backend.write_pcap(pcap, records)
    text = DEFAULT_CONFIG_PATH.read_text()
    first = "{id: 1, max_order_qty: 999999,"
    assert first in text
    new = tmp_path / "new.yaml"
    new.write_text(text.replace(first, "{id: 1, max_order_qty: 200,", 1))
    assert load_config_text(new.read_text()).accounts[0].max_order_qty == 200
    out_json = tmp_path / "whatif.json"
    assert whatif_main([str(pcap), "--config", str(new), "--json", str(out_json)]) == 0
    out = capsys.readouterr().out
    assert "accounts[id=1].max_order_qty: 999999 -> 200" in out
    assert "QTY_LIMIT: 1 orders newly rejected" in out
    assert "Modify:QTY_LIMIT: 1 orders with a Modify newly rejected" in out
    full = json.loads(out_json.read_text())
    assert [(c["session"], c["cl_ord_id"]) for c in full["changes"]] == [(1, 2), (1, 3)]
    # identical: nothing, and --fail-on-change stays 0
    assert whatif_main([str(pcap), "--config", str(DEFAULT_CONFIG_PATH),
                        "--against", str(DEFAULT_CONFIG_PATH), "--fail-on-change"]) == 0
    assert "no order changes outcome" in capsys.readouterr().out
    assert whatif_main([str(pcap), "--config", str(new), "--fail-on-change"]) == 1
