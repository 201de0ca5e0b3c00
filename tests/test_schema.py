"""omsctl config schema: the JSON Schema generated from control/config.py."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from control import config as C
from control.schema import (
    DRAFT,
    SUPPORTED_KEYWORDS,
    generate_schema,
    iter_errors,
    schema_main,
)

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = [C.DEFAULT_CONFIG_PATH, *sorted((ROOT / "deploy").glob("*.yaml"))]

try:
    import jsonschema
except ImportError:  # optional: the built-in subset validator stands in
    jsonschema = None


def errors(instance, schema) -> list[str]:
    if jsonschema is not None:
        v = jsonschema.Draft202012Validator(schema)
        return [e.message for e in v.iter_errors(instance)]
    return list(iter_errors(instance, schema))


@pytest.fixture(scope="module")
def schema():
    return generate_schema()


def _walk(node):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def test_schema_is_valid_draft_2020_12(schema):
    assert schema["$schema"] == DRAFT
    json.loads(json.dumps(schema))  # plain JSON
    if jsonschema is not None:
        jsonschema.Draft202012Validator.check_schema(schema)
        return
    # structure: every object schema closed, every $ref resolves, only keywords we know
    for node in _walk(schema):
        if "$ref" in node:
            assert node["$ref"].startswith("#/$defs/")
            assert node["$ref"].rsplit("/", 1)[1] in schema["$defs"]
        if node.get("type") == "object" and "properties" in node:
            assert node["additionalProperties"] is False
            assert set(node.get("required", ())) <= set(node["properties"])
    for name, d in schema["$defs"].items():
        assert set(d) <= SUPPORTED_KEYWORDS, name


def test_every_dataclass_field_is_a_property_and_required_matches(schema):
    defs = {**schema["$defs"], "Config": schema}
    for name, d in defs.items():
        cls = getattr(C, name)
        names = {f.name for f in dataclasses.fields(cls)} - set(C.NOT_IN_YAML)
        required = {f.name for f in dataclasses.fields(cls) if f.name not in C.NOT_IN_YAML
                    and f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING}
        assert set(d["properties"]) == names, name
        assert set(d.get("required", ())) == required, name


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_bundled_and_deploy_configs_validate(schema, path):
    C.load_config(path)  # the loader agrees they are valid
    assert errors(yaml.safe_load(path.read_text()), schema) == []


def _default():
    return yaml.safe_load(C.DEFAULT_CONFIG_PATH.read_text())


@pytest.mark.parametrize("spoil", [
    lambda d: d.update(bogus=1),
    lambda d: d["appliance"].update(strategy_prot=9000),
    lambda d: d["sessions"][0].update(heartbeat=5),
    lambda d: d["accounts"][0].update(max_qty=5),
    lambda d: d["instruments"][0].update(band=5),
    lambda d: d.update(dataplane={"ports": {"strategy": "a", "venue": "b", "x": "c"}}),
], ids=["top", "appliance", "session", "account", "instrument", "dataplane.ports"])
def test_unknown_keys_are_rejected(schema, spoil):
    d = _default()
    spoil(d)
    assert errors(d, schema), "an unknown key passed the schema"


@pytest.mark.parametrize("spoil", [
    lambda d: d["appliance"].pop("mac"),
    lambda d: d.pop("routing"),
    lambda d: d["appliance"].update(strategy_port=70000),
    lambda d: d["appliance"].update(mac="02:00:00:00:00"),
    lambda d: d["appliance"].update(capacity="X"),
    lambda d: d["tables"].update(orders=0),
    lambda d: d.update(tables={"replay_depth": 1000}),
    lambda d: d["sessions"][0].update(enabled="yes please"),
    lambda d: d["venues"][0].update(session="ELEVENCHARS"),
    lambda d: d["instruments"][0].update(symbol="aapl"),
    lambda d: (d["instruments"][1].pop("reference_price"),
               d["instruments"][1].update(price_band_pct=5)),
    lambda d: d["instruments"][0].update(tick_size=0),
    lambda d: d["accounts"][0].update(max_order_qty=1_000_000),
    lambda d: d["accounts"][0].update(order_types=["LIMIT", "STOP"]),
    lambda d: d["accounts"][0]["max_position"].update(AAPL=-1),
], ids=["missing-mac", "missing-routing", "port-range", "mac-pattern", "capacity-enum",
        "orders-range", "replay-depth-power-of-two", "bool-type", "venue-session-length",
        "symbol-pattern", "band-needs-reference", "tick-positive", "qty-range",
        "order-type-enum", "position-negative"])
def test_loader_rules_are_expressed(schema, spoil, tmp_path):
    d = _default()
    d["accounts"][0]["max_position"] = dict(d["accounts"][0]["max_position"])  # unalias
    spoil(d)
    assert errors(d, schema), "the schema accepted what the loader rejects"
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump(d))
    with pytest.raises(C.ConfigError):
        C.load_config(f)


def test_cli_prints_the_schema(capsys):
    assert schema_main([]) == 0
    assert json.loads(capsys.readouterr().out) == generate_schema()
