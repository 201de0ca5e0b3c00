"""The YAML configuration loader: the bundled files load, and every error
names the right file, line and key."""
from __future__ import annotations

import pickle
import sys
from dataclasses import replace
from pathlib import Path

import pytest

# The repository root holds the `control` package; nothing else puts it on
# sys.path when pytest is run as `.venv/bin/pytest tests/...`.
_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from control.config import (  # noqa: E402 (needs the sys.path entry above)
    DEFAULT_CONFIG_PATH,
    Config,
    ConfigError,
    load_config,
    load_config_text,
    load_default_config,
)

EXAMPLE_CONFIG_PATH = _ROOT / "deploy" / "example-config.yaml"

BASE = """\
appliance:
  mac: "02:00:00:00:00:01"
  ip: 10.10.0.1
  strategy_port: 9000
  venue_port: 9100
  capacity: A
tables:
  orders: 1024
  tx_frames: 64
sessions:
  - id: 1
    name: alpha
    ip: 10.10.1.1
    port: 9001
    mac: "02:00:00:00:01:01"
    enabled: true
  - id: 2
    name: beta
    ip: 10.10.1.2
    port: 9001
    mac: "02:00:00:00:01:02"
    enabled: false
venues:
  - id: 1
    name: NASDAQ
    session: NSDQ01
    ip: 10.10.2.1
    port: 9200
    mac: "02:00:00:00:02:01"
  - id: 2
    name: NSDQBX
    session: BX01
    ip: 10.10.2.2
    port: 9200
    mac: "02:00:00:00:02:02"
routing:
  default_venue: 1
instruments:
  - symbol: AAPL
  - symbol: MSFT
"""


def line_of(text: str, needle: str, nth: int = 1) -> int:
    """1-based line of the nth line containing `needle`."""
    hits = [i for i, line in enumerate(text.splitlines(), 1) if needle in line]
    assert len(hits) >= nth, f"{needle!r} not in text"
    return hits[nth - 1]


def edit(old: str, new: str, nth: int = 1) -> str:
    """BASE with the nth occurrence of `old` replaced by `new`."""
    assert BASE.count(old) >= nth, old
    head, *tails = BASE.split(old)
    return head + "".join((new if i == nth - 1 else old) + t for i, t in enumerate(tails))


def error_of(text: str, source: str = "test.yaml") -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config_text(text, source)
    return info.value


# --- the bundled files ------------------------------------------------------


def test_default_config_loads():
    config = load_default_config()
    assert isinstance(config, Config)
    assert config.source == str(DEFAULT_CONFIG_PATH)
    a = config.appliance
    assert (a.mac, a.ip, a.strategy_port, a.venue_port, a.capacity) == (
        "02:00:00:00:00:01", "10.10.0.1", 9000, 9100, "A")
    assert config.tables.orders == 65536
    assert config.tables.tx_frames == 8192
    assert [(s.id, s.ip, s.port, s.enabled) for s in config.sessions] == [
        (1, "10.10.1.1", 9001, True), (2, "10.10.1.2", 9001, True)]
    assert [(v.id, v.name, v.session, v.ip, v.port) for v in config.venues] == [
        (1, "NASDAQ", "NSDQ01", "10.10.2.1", 9200), (2, "NSDQBX", "BX01", "10.10.2.2", 9200)]
    assert config.routing.default_venue == 1
    assert [i.symbol for i in config.instruments] == [
        "AAPL", "MSFT", "GOOG", "AMZN", "TSLA", "NVDA", "META", "SPY", "QQQ", "IBM"]
    assert config.session(2).ip == "10.10.1.2"
    assert config.venue(2).session == "BX01"
    assert config.session(3) is None


def test_example_config_equals_default():
    example = load_config(EXAMPLE_CONFIG_PATH)
    assert replace(example, source="") == replace(load_default_config(), source="")


def test_base_loads_and_tables_is_optional():
    config = load_config_text(BASE)
    assert config.source == "<string>"
    assert config.sessions[1].enabled is False
    assert config.tables.orders == 1024
    assert config.tables.max_sessions == 64  # default for a key left out
    no_tables = load_config_text(BASE.replace("tables:\n  orders: 1024\n  tx_frames: 64\n", ""))
    assert no_tables.tables == type(config.tables)()


def test_flow_style_and_optional_keys():
    config = load_config_text(
        "appliance: {mac: \"02:00:00:00:00:01\", ip: 10.10.0.1, strategy_port: 9000,"
        " venue_port: 9100}\n"
        "venues:\n"
        "  - {id: 7, name: X, session: S, ip: 10.0.0.7, port: 1, mac: \"aa:BB:cc:dd:ee:ff\"}\n"
        "routing: {default_venue: 7}\n"
    )
    assert config.appliance.capacity == "A"
    assert config.sessions == () and config.instruments == ()
    assert config.routing.default_venue == 7


# --- located errors ---------------------------------------------------------

CASES = [
    # (id, old, new, nth, key, line needle (nth), reason fragment)
    ("unknown nested key", "    port: 9001\n", "    prot: 9001\n", 2,
     "sessions[1].prot", ("prot: 9001", 1), "unknown key, expected one of"),
    ("unknown top-level key", "routing:\n", "routin:\n", 1,
     "routin", ("routin:", 1), "unknown key"),
    ("unknown key in appliance", "  capacity: A\n", "  capacity: A\n  speed: 10\n", 1,
     "appliance.speed", ("speed:", 1), "unknown key"),
    ("duplicate key", "  venue_port: 9100\n", "  venue_port: 9100\n  venue_port: 9101\n", 1,
     "appliance.venue_port", ("venue_port: 9101", 1), "duplicate key (first at line 5)"),
    ("port is a string", "    port: 9200\n", '    port: "9200"\n', 2,
     "venues[1].port", ('port: "9200"', 1), "expected an integer, got a string"),
    ("port is a float", "  strategy_port: 9000\n", "  strategy_port: 9000.0\n", 1,
     "appliance.strategy_port", ("strategy_port", 1), "expected an integer, got a float"),
    ("id is a bool", "  - id: 2\n", "  - id: true\n", 1,
     "sessions[1].id", ("id: true", 1), "expected an integer, got a boolean"),
    ("enabled is a string", "    enabled: true\n", '    enabled: "true"\n', 1,
     "sessions[0].enabled", ('enabled: "true"', 1), "expected a boolean"),
    ("enabled is an int", "    enabled: false\n", "    enabled: 0\n", 1,
     "sessions[1].enabled", ("enabled: 0", 1), "expected a boolean (true/false), got an integer"),
    ("section is a list", "routing:\n  default_venue: 1\n", "routing: [1]\n", 1,
     "routing", ("routing:", 1), "expected a mapping, got a list"),
    ("instruments is a mapping", "instruments:\n  - symbol: AAPL\n  - symbol: MSFT\n",
     "instruments: {symbol: AAPL}\n", 1,
     "instruments", ("instruments:", 1), "expected a list, got a mapping"),
    ("port out of range", "    port: 9001\n", "    port: 65536\n", 1,
     "sessions[0].port", ("port: 65536", 1), "65536 is out of range 1..65535"),
    ("port zero", "  venue_port: 9100\n", "  venue_port: 0\n", 1,
     "appliance.venue_port", ("venue_port: 0", 1), "out of range 1..65535"),
    ("same ports", "  venue_port: 9100\n", "  venue_port: 9000\n", 1,
     "appliance.venue_port", ("venue_port: 9000", 1), "must differ"),
    ("session id too big", "  - id: 2\n", "  - id: 4294967296\n", 1,
     "sessions[1].id", ("id: 4294967296", 1), "out of range 1..4294967295"),
    ("venue id too big", "  - id: 2\n", "  - id: 65536\n", 2,
     "venues[1].id", ("id: 65536", 1), "out of range 1..65535"),
    ("tx_frames too small", "  tx_frames: 64\n", "  tx_frames: 63\n", 1,
     "tables.tx_frames", ("tx_frames", 1), "out of range 64..1000000"),
    ("orders too big", "  orders: 1024\n", "  orders: 67108865\n", 1,
     "tables.orders", ("orders", 1), "out of range 1..67108864"),
    ("bad mac", '    mac: "02:00:00:00:02:02"\n', '    mac: "02:00:00:00:02"\n', 1,
     "venues[1].mac", ('mac: "02:00:00:00:02"', 1), "not a MAC address"),
    ("bad mac hex", '  mac: "02:00:00:00:00:01"\n', '  mac: "02:00:00:00:00:0g"\n', 1,
     "appliance.mac", ("0g", 1), "not a MAC address"),
    ("unquoted mac read as a number", '    mac: "02:00:00:00:01:02"\n',
     "    mac: 12:30:00:00:01:02\n", 1,
     "sessions[1].mac", ("mac: 12:30", 1), 'expected a string, got an integer (quote it'),
    ("bad ip", "    ip: 10.10.1.2\n", "    ip: 10.10.1.256\n", 1,
     "sessions[1].ip", ("10.10.1.256", 1), "not an IPv4 address"),
    ("ip with leading zero", "  ip: 10.10.0.1\n", "  ip: 10.10.0.01\n", 1,
     "appliance.ip", ("10.10.0.01", 1), "not an IPv4 address"),
    ("ip not a quad", "    ip: 10.10.2.1\n", "    ip: 10.10.2\n", 1,
     "venues[0].ip", ("ip: 10.10.2", 1), "not an IPv4 address"),
    ("duplicate session id", "  - id: 2\n", "  - id: 1\n", 1,
     "sessions[1].id", ("id: 1", 2), "duplicate session id 1 (first at line 11)"),
    ("duplicate venue id", "  - id: 2\n", "  - id: 1\n", 2,
     "venues[1].id", ("id: 1", 3), "duplicate venue id 1"),
    ("duplicate venue ip", "    ip: 10.10.2.2\n", "    ip: 10.10.2.1\n", 1,
     "venues[1].ip", ("ip: 10.10.2.1", 2), "duplicate venue ip"),
    ("duplicate symbol", "  - symbol: MSFT\n", "  - symbol: AAPL\n", 1,
     "instruments[1].symbol", ("AAPL", 2), "duplicate symbol AAPL"),
    ("default venue not configured", "  default_venue: 1\n", "  default_venue: 3\n", 1,
     "routing.default_venue", ("default_venue", 1), "venue 3 is not configured"),
    ("symbol too long", "  - symbol: MSFT\n", "  - symbol: MICROSOFT\n", 1,
     "instruments[1].symbol", ("MICROSOFT", 1), "1 to 8 characters"),
    ("symbol lowercase", "  - symbol: AAPL\n", "  - symbol: aapl\n", 1,
     "instruments[0].symbol", ("aapl", 1), "1 to 8 characters"),
    ("symbol read as a boolean", "  - symbol: MSFT\n", "  - symbol: ON\n", 1,
     "instruments[1].symbol", ("symbol: ON", 1), 'got a boolean (quote it: "ON")'),
    ("venue session too long", "    session: BX01\n", "    session: BX0123456789\n", 1,
     "venues[1].session", ("BX0123456789", 1), "1 to 10 printable ASCII"),
    ("venue session empty", "    session: BX01\n", '    session: ""\n', 1,
     "venues[1].session", ('session: ""', 1), "1 to 10 printable ASCII"),
    ("venue session trailing space", "    session: BX01\n", '    session: "BX01 "\n', 1,
     "venues[1].session", ("BX01 ", 1), "must not end with a space"),
    ("capacity", "  capacity: A\n", "  capacity: X\n", 1,
     "appliance.capacity", ("capacity", 1), "expected one of: A, P, R, O"),
    ("too many sessions", "  tx_frames: 64\n", "  tx_frames: 64\n  max_sessions: 1\n", 1,
     "sessions[1]", ("- id: 2", 1), "2 sessions configured, more than tables.max_sessions (1)"),
    ("too many instruments", "  tx_frames: 64\n", "  tx_frames: 64\n  max_instruments: 1\n", 1,
     "instruments[1]", ("symbol: MSFT", 1), "more than tables.max_instruments"),
]


@pytest.mark.parametrize(
    "old, new, nth, key, needle, reason", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_error_names_line_and_key(old, new, nth, key, needle, reason):
    text = edit(old, new, nth)
    err = error_of(text)
    assert err.file == "test.yaml"
    assert err.key == key
    assert err.line == line_of(text, *needle)
    assert reason in err.reason
    assert str(err).splitlines()[0] == f"test.yaml:{err.line}: {key}: {err.reason}"


def test_unknown_key_lists_expected_and_suggests():
    err = error_of(edit("    port: 9001\n", "    prot: 9001\n", 2))
    assert "expected one of: id, ip, port, mac, enabled, name" in err.reason
    assert "did you mean 'port'?" in err.reason


def test_missing_key_names_parent_mapping_line():
    err = error_of(edit("    session: BX01\n", ""))
    assert err.key == "venues[1].session"
    assert err.reason == "missing required key"
    assert err.line == line_of(BASE, "  - id: 2", 2)  # the item's first line

    text = edit("  strategy_port: 9000\n", "")
    err = error_of(text)
    assert (err.key, err.line) == ("appliance.strategy_port", line_of(text, "appliance:"))

    text = edit("routing:\n  default_venue: 1\n", "")
    err = error_of(text)
    assert (err.key, err.line) == ("routing", 1)

    text = edit("routing:\n  default_venue: 1\n", "routing: {}\n")
    err = error_of(text)
    assert (err.key, err.line) == ("routing.default_venue", line_of(text, "routing:"))


def test_yaml_syntax_error_names_line():
    text = edit("    port: 9200\n", "    port: [9200\n", 2)
    err = error_of(text)
    assert err.key == ""
    assert err.reason.startswith("YAML syntax error")
    assert err.line >= line_of(text, "port: [9200")
    assert str(err).startswith(f"test.yaml:{err.line}: YAML syntax error")

    text = edit("  ip: 10.10.0.1\n", "  ip: 10.10.0.1\n bad: indent\n")
    err = error_of(text)
    assert err.line == line_of(text, "bad: indent")
    assert err.reason.startswith("YAML syntax error")


def test_empty_and_non_mapping_documents():
    assert error_of("").reason == "the configuration is empty"
    assert error_of("# only a comment\n").line == 1
    err = error_of("- 1\n")
    assert (err.key, err.line) == ("(root)", 1)
    assert "expected a mapping" in err.reason
    assert error_of("a: 1\n---\nb: 2\n").reason.startswith("YAML syntax error")


def test_load_config_file_error_contains_file_and_line(tmp_path):
    text = edit("  - id: 2\n", "  - id: 1\n")
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    err = info.value
    line = line_of(text, "id: 1", 2)
    assert (err.file, err.line, err.key) == (str(path), line, "sessions[1].id")
    assert str(err).startswith(f"{path}:{line}: sessions[1].id: duplicate session id 1")


def test_load_config_file_problems(tmp_path):
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(missing)
    assert info.value.line is None
    assert str(info.value).startswith(f"{missing}: cannot read")

    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"appliance:\n  mac: \xff\n")
    with pytest.raises(ConfigError) as info:
        load_config(binary)
    assert (info.value.line, info.value.reason[:15]) == (2, "not valid UTF-8")


def test_config_error_pickles():
    err = error_of(edit("  default_venue: 1\n", "  default_venue: 9\n"))
    again = pickle.loads(pickle.dumps(err))
    assert (again.file, again.line, again.key, again.reason) == (
        err.file, err.line, err.key, err.reason)
    assert str(again) == str(err)


def test_every_deploy_example_loads():
    """What operators copy from deploy/ must be valid as it stands."""
    from control.config import load_config
    root = Path(__file__).resolve().parent.parent / "deploy"
    examples = sorted(root.glob("*.yaml"))
    assert len(examples) >= 2
    for path in examples:
        cfg = load_config(path)
        assert cfg.sessions and cfg.venues


# --- pre-trade risk settings -------------------------------------------------

RISK_BASE = BASE.replace(
    "instruments:\n  - symbol: AAPL\n  - symbol: MSFT\n",
    """instruments:
  - symbol: AAPL
    tick_size: 0.01
    lot_size: 100
    reference_price: 150.25
    price_band_pct: 7.5
    price_band_abs: 0.3
    venues: [1]
  - symbol: MSFT
    halted: true
accounts:
  - id: 7
    max_order_qty: 5000
    max_order_notional: 250000.5
    max_open_orders: 10
    credit_limit: 1000000
    max_position: {AAPL: 20000}
    order_types: [LIMIT]
    tifs: [DAY, IOC]
    kill: false
""").replace("    enabled: true\n",
             "    enabled: true\n    throttle: {per_second: 500, burst: 20}\n", 1)


def test_risk_settings_load_as_fixed_point():
    cfg = load_config_text(RISK_BASE)
    aapl, msft = cfg.instruments
    assert (aapl.tick_size, aapl.lot_size, aapl.reference_price, aapl.price_band_pct,
            aapl.price_band_abs, aapl.venues) == (1_000_000, 100, 150_2500_0000, 7_5000_0000,
                                                  3000_0000, (1,))
    assert msft.halted and not msft.restricted and msft.reference_price == 0
    (acct,) = cfg.accounts
    assert (acct.id, acct.max_order_qty, acct.max_order_notional, acct.max_open_orders,
            acct.credit_limit, acct.max_position, acct.order_types, acct.tifs, acct.kill) == (
        7, 5000, 250_000_5000_0000, 10, 1_000_000 * 10**8, (("AAPL", 20000),), ("LIMIT",),
        ("DAY", "IOC"), False)
    assert cfg.sessions[0].throttle.per_second == 500 and cfg.sessions[0].throttle.burst == 20
    assert cfg.sessions[1].throttle is None
    # decimals are exact: 0.3 is not 0.299999...
    text = RISK_BASE.replace("price_band_abs: 0.3", "price_band_abs: 0.00000003")
    assert load_config_text(text).instruments[0].price_band_abs == 3


RISK_CASES = [
    ("too many decimals", "reference_price: 150.25", "reference_price: 150.123456789",
     "instruments[0].reference_price", "more than 8 decimal places"),
    ("price as a string", "reference_price: 150.25", 'reference_price: "150.25"',
     "instruments[0].reference_price", "expected a decimal number"),
    ("price not on the tick", "reference_price: 150.25", "reference_price: 150.255",
     "instruments[0].reference_price", "not a multiple of the tick_size"),
    ("band without a reference", "    reference_price: 150.25\n", "",
     "instruments[0].price_band_pct", "needs the instrument's reference_price"),
    ("zero tick", "tick_size: 0.01", "tick_size: 0", "instruments[0].tick_size",
     "out of range above 0"),
    ("unknown venue", "venues: [1]", "venues: [1, 3]", "instruments[0].venues[1]",
     "venue 3 is not configured"),
    ("position for an unknown symbol", "{AAPL: 20000}", "{AAPL: 20000, GOOG: 5}",
     "accounts[0].max_position.GOOG", "not configured under instruments"),
    ("bad order type", "order_types: [LIMIT]", "order_types: [LIMIT, STOP]",
     "accounts[0].order_types[1]", "'STOP' is not one of: LIMIT, MARKET"),
    ("bad tif", "tifs: [DAY, IOC]", "tifs: [DAY, DAY]", "accounts[0].tifs[1]", "listed twice"),
    ("notional too big", "max_order_notional: 250000.5", "max_order_notional: 90000000001",
     "accounts[0].max_order_notional", "out of range"),
    ("missing credit limit", "    credit_limit: 1000000\n", "", "accounts[0].credit_limit",
     "missing required key"),
    ("duplicate account", "    kill: false\n",
     "    kill: false\n  - {id: 7, max_order_qty: 1, max_order_notional: 1,"
     " max_open_orders: 1, credit_limit: 1}\n", "accounts[1].id", "duplicate account id 7"),
    ("kill not a bool", "kill: false", "kill: 0", "accounts[0].kill", "expected a boolean"),
    ("throttle without burst", "{per_second: 500, burst: 20}", "{per_second: 500}",
     "sessions[0].throttle.burst", "missing required key"),
    ("throttle rate zero", "per_second: 500", "per_second: 0",
     "sessions[0].throttle.per_second", "out of range 1..10000000"),
]


@pytest.mark.parametrize("old, new, key, reason", [c[1:] for c in RISK_CASES],
                         ids=[c[0] for c in RISK_CASES])
def test_risk_error_names_line_and_key(old, new, key, reason):
    assert old in RISK_BASE
    text = RISK_BASE.replace(old, new, 1)
    err = error_of(text)
    assert err.key == key and reason in err.reason, str(err)
    assert str(err).startswith(f"test.yaml:{err.line}: {key}: ")
    line = text.splitlines()[err.line - 1]
    leaf = key.split(".")[-1].split("[")[0]
    if "missing" in reason:  # named at the mapping that lacks it
        assert "- id: 7" in line or "throttle" in line, line
    else:
        assert leaf in line or leaf == "id" and "id: 7" in line, (leaf, line)


def test_session_cancel_on_disconnect():
    """Optional per session, false by default, a boolean."""
    config = load_config_text(BASE)
    assert [s.cancel_on_disconnect for s in config.sessions] == [False, False]
    text = BASE.replace("    enabled: true\n",
                        "    enabled: true\n    cancel_on_disconnect: true\n", 1)
    assert [s.cancel_on_disconnect for s in load_config_text(text).sessions] == [True, False]
    with pytest.raises(ConfigError) as e:
        load_config_text(text.replace("cancel_on_disconnect: true", "cancel_on_disconnect: 1"))
    assert "sessions[0].cancel_on_disconnect" in str(e.value)
    assert "expected a boolean" in str(e.value)


def test_every_error_is_reported_with_its_line_and_key():
    """One run lists every problem, each with file, line and key; a bad
    entry still counts as configured where others refer to it."""
    text = edit("    port: 9001\n", "    port: 99999\n")
    text = text.replace("    session: BX01\n", "    session: BX01BX01BX01\n")
    # venue 2's entry is left out, yet an instrument may still name it
    text = text.replace("  - symbol: MSFT\n", "  - {symbol: MSFT, venues: [2], lot_size: 0}\n")
    with pytest.raises(ConfigError) as info:
        load_config_text(text, "many.yaml")
    errors = info.value.errors
    assert [e.key for e in errors] == ["sessions[0].port", "venues[1].session",
                                       "instruments[1].lot_size"]
    assert [e.line for e in errors] == [line_of(text, "port: 99999"), line_of(text, "BX01BX01"),
                                        line_of(text, "lot_size")]
    assert str(info.value).splitlines() == [
        f"many.yaml:{e.line}: {e.key}: {e.reason}" for e in errors]


def test_risk_account_defaults_fill_what_an_account_leaves_out():
    text = BASE + """risk:
  account_defaults: {max_order_qty: 500, max_order_notional: 1000.50, max_open_orders: 7,
                     credit_limit: 20000, max_position: {AAPL: 100}, tifs: [IOC]}
accounts:
  - {id: 1}
  - {id: 2, max_order_qty: 9, max_position: {MSFT: 5}, kill: true}
"""
    cfg = load_config_text(text, "d.yaml")
    a, b = cfg.accounts
    assert (a.max_order_qty, a.max_order_notional, a.max_open_orders, a.credit_limit,
            a.max_position, a.tifs, a.order_types) == (
        500, 1000_50000000, 7, 20000 * 10**8, (("AAPL", 100),), ("IOC",), ("LIMIT", "MARKET"))
    assert (b.max_order_qty, b.max_position, b.kill, b.max_open_orders) == (
        9, (("MSFT", 5),), True, 7)
    # without a default the account must say; defaults are checked like limits
    err = error_of(BASE + "risk: {account_defaults: {max_order_qty: 0}}\naccounts:\n  - {id: 1}\n")
    keys = [e.key for e in err.errors]
    assert keys[0] == "risk.account_defaults.max_order_qty"
    assert "accounts[0].max_order_notional" in keys and "accounts[0].credit_limit" in keys
