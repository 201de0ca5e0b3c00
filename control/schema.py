"""JSON Schema (draft 2020-12) of the YAML configuration, generated from the
dataclasses in control/config.py, for editors (``omsctl config schema``).

Every dataclass becomes an object in ``$defs`` with its fields as properties
(the ``source`` bookkeeping field left out), the fields without a default
``required`` and ``additionalProperties: false``, as the loader rejects
unknown keys.  Types come from the annotations (int, bool, str, tuples,
nested dataclasses, ``X | None``); what the loader checks beyond the type --
ranges, patterns, enums, decimals, the shape of ``max_position`` -- is
written down in ``_RULES`` beside it, so a field the loader gains later gets
at least its type here.

Only what JSON Schema can say is said; ``omsctl config check`` remains the
authority (it also checks cross-references such as a venue id being
configured, duplicates, timeout_ms > heartbeat_ms, and that a decimal has at
most 8 decimal places).

``iter_errors`` is a small validator for exactly the keywords this schema
uses, for where the ``jsonschema`` package is not installed."""
from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import types
import typing
from pathlib import Path

from control import config as C

DRAFT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "https://oms-appliance.invalid/schemas/config.json"

_U32 = 2**32 - 1
_PORT = {"type": "integer", "minimum": 1, "maximum": 65535}
_MAC = {"type": "string", "pattern": "^" + C._MAC_RE.pattern + "$",
        "description": 'MAC address, quoted: "02:00:00:00:00:01"'}
_IPV4 = {"type": "string", "format": "ipv4",
         "pattern": r"^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
                    r"(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}$",
         "description": "IPv4 address (dotted quad)"}
_SYMBOL_PATTERN = "^" + C._SYMBOL_RE.pattern + "$"
_TIMER_MS = {"type": "integer", "minimum": 1, "maximum": 3_600_000}


def _int(lo: int, hi: int, description: str | None = None) -> dict:
    out: dict = {"type": "integer", "minimum": lo, "maximum": hi}
    if description:
        out["description"] = description
    return out


def _decimal(hi, *, positive: bool = False, description: str | None = None) -> dict:
    """A decimal number the loader reads exactly into 8-decimal fixed point
    (a YAML int or float without exponent or sign)."""
    out: dict = {"type": "number", "maximum": float(hi) if not isinstance(hi, int) else hi}
    out["exclusiveMinimum" if positive else "minimum"] = 0
    out["description"] = ((description + "; ") if description else "") + \
        "a decimal number, at most 8 decimal places"
    return out


def _names(allowed) -> dict:
    return {"type": "array", "items": {"enum": list(allowed)}, "uniqueItems": True}


# (dataclass name, field) -> schema, where the loader checks more than the type.
_RULES: dict[tuple[str, str], dict] = {
    ("Appliance", "mac"): _MAC,
    ("Appliance", "ip"): _IPV4,
    ("Appliance", "strategy_port"): _PORT,
    ("Appliance", "venue_port"): {**_PORT, "description": "must differ from strategy_port"},
    ("Appliance", "capacity"): {"enum": ["A", "P", "R", "O"],
                                "description": "OUCH Capacity on every Enter Order"},
    ("Appliance", "venue_request_port"): {**_PORT, "description":
                                          "where venues send re-requests; default venue_port + 1"},
    ("Appliance", "retransmit_ms"): _int(1, 60_000),
    ("Tables", "orders"): _int(1, C._MAX_TABLE),
    ("Tables", "tx_frames"): _int(64, 1_000_000),
    ("Tables", "max_sessions"): _int(1, C._MAX_TABLE),
    ("Tables", "max_venues"): _int(1, C._MAX_TABLE),
    ("Tables", "max_instruments"): _int(1, C._MAX_TABLE),
    ("Tables", "replay_depth"): {"type": "integer",
                                 "enum": [1 << n for n in range(4, 21)],
                                 "description": "a power of two, 16..2^20"},
    ("Tables", "max_accounts"): _int(1, 1 << 20),
    ("Tables", "max_positions"): _int(1, 1 << 24),
    ("Throttle", "per_second"): _int(1, 10_000_000),
    ("Throttle", "burst"): _int(1, 1_000_000),
    ("Session", "id"): _int(1, _U32),
    ("Session", "ip"): _IPV4,
    ("Session", "port"): _PORT,
    ("Session", "mac"): _MAC,
    ("Session", "heartbeat_ms"): _TIMER_MS,
    ("Session", "timeout_ms"): {**_TIMER_MS, "description": "longer than heartbeat_ms"},
    ("Venue", "id"): _int(1, 65535),
    ("Venue", "name"): {"type": "string", "minLength": 1},
    ("Venue", "session"): {"type": "string", "pattern": "^[ -~]{0,9}[!-~]$",
                           "description": "framing session name: 1..10 printable ASCII "
                                          "characters, not ending with a space"},
    ("Venue", "ip"): {**_IPV4, "description": "IPv4 address, unique among venues"},
    ("Venue", "port"): _PORT,
    ("Venue", "mac"): _MAC,
    ("Venue", "request_port"): _PORT,
    ("Venue", "heartbeat_ms"): _TIMER_MS,
    ("Venue", "timeout_ms"): {**_TIMER_MS, "description": "longer than heartbeat_ms"},
    ("Instrument", "symbol"): {"type": "string", "pattern": _SYMBOL_PATTERN,
                               "description": "1..8 characters of A-Z, 0-9 and '.'"},
    ("Instrument", "tick_size"): _decimal(C.MAX_PRICE, positive=True,
                                          description="a multiple of it divides every price"),
    ("Instrument", "lot_size"): _int(1, 999_999),
    ("Instrument", "reference_price"): _decimal(C.MAX_PRICE, positive=True,
                                                description="a multiple of tick_size"),
    ("Instrument", "price_band_pct"): _decimal(1000, positive=True,
                                               description="percent around reference_price"),
    ("Instrument", "price_band_abs"): _decimal(C.MAX_PRICE, positive=True,
                                               description="absolute distance from "
                                                           "reference_price"),
    ("Instrument", "venues"): {"type": "array", "items": _int(1, 65535), "maxItems": 16,
                               "uniqueItems": True,
                               "description": "configured venue ids it may trade on; "
                                              "absent: all"},
    ("Account", "id"): _int(0, _U32),
    ("Account", "max_order_qty"): _int(1, 999_999),
    ("Account", "max_order_notional"): _decimal(C.MAX_AMOUNT),
    ("Account", "max_open_orders"): _int(0, _U32),
    ("Account", "credit_limit"): _decimal(C.MAX_AMOUNT, description="the most open notional"),
    ("Account", "max_position"): {
        "type": "object", "propertyNames": {"pattern": _SYMBOL_PATTERN},
        "additionalProperties": _int(0, 1 << 40),
        "description": "symbol: shares, the largest worst-case position either way; "
                       "a symbol without one is blocked"},
    ("Account", "order_types"): _names(C.ORDER_TYPES),
    ("Account", "tifs"): _names(C.TIFS),
    ("Routing", "default_venue"): {"anyOf": [_int(1, 65535), {"enum": ["sor"]}],
                                   "description": "a configured venue id, or \"sor\": the "
                                                  "smart order router"},
    ("Routing", "latency_cost_per_us"): _decimal(C.MAX_PRICE, description="the router's "
                                                 "price of a microsecond of venue latency"),
    ("Routing", "split_max_children"): _int(1, C.SPLIT_MAX, description="split an order "
                                            "across at most this many venues when the best "
                                            "shows less than it needs (1: never)"),
    ("Route", "venue"): {"anyOf": [_int(1, 65535), {"enum": ["sor"]}],
                         "description": "a configured venue id, or \"sor\": the smart "
                                        "order router"},
    ("Route", "exclude"): {"type": "array", "items": _int(1, 65535), "maxItems": 16,
                           "uniqueItems": True,
                           "description": "venue ids the smart router never picks (venue: "
                                          "sor only)"},
    ("Venue", "max_unanswered"): {**_int(0, 1_000_000), "description": "Enter Orders "
                                  "without an answer before the router avoids the venue; "
                                  "0: never"},
    ("Route", "account"): {**_int(0, _U32), "description": "a configured account id"},
    ("Route", "symbol"): {"type": "string", "pattern": _SYMBOL_PATTERN,
                          "description": "a configured symbol"},
    ("Observability", "listen"): {
        "type": "string", "pattern": r"^(\d{1,3}\.){3}\d{1,3}:\d{1,5}$",
        "description": "IPv4 host:port of the metrics exporter and latency page; "
                       "127.0.0.1 keeps it local; port 0: any free port"},
    ("Dataplane", "lcores"): {"type": "string",
                              "pattern": r"^(\d+(-\d+)?|\d+@\d+)(,(\d+(-\d+)?|\d+@\d+))*$",
                              "description": 'EAL -l: "0,1" or "0-3"; or lcore@cpu for '
                                             'EAL --lcores: "0@0,1@1,2@1"'},
    ("Threading", "mode"): {"enum": ["rtc", "sharded", "typed"]},
    ("Dataplane", "memory_mb"): _int(64, 1 << 20),
    ("Dataplane", "mbufs"): _int(511, 1 << 24),
    ("Dataplane", "idle_sleep_us"): _int(0, 1_000_000),
    ("Dataplane", "tx_wait_us"): _int(1, 1_000_000),
    ("Afxdp", "strategy_iface"): {"type": "string", "pattern": "^" + C._IFNAME_RE.pattern + "$",
                                  "description": "kernel interface towards strategies"},
    ("Afxdp", "venue_iface"): {"type": "string", "pattern": "^" + C._IFNAME_RE.pattern + "$",
                               "description": "kernel interface towards venues (may be the "
                                              "strategy one)"},
    ("Afxdp", "queue"): _int(0, 1023),
    ("Afxdp", "mode"): {"enum": list(C.AFXDP_MODES),
                        "description": "copy: generic XDP, any interface; zerocopy: the "
                                       "driver's XDP with XDP_ZEROCOPY"},
    ("Afxdp", "frames"): {"type": "integer", "enum": [1 << n for n in range(6, 19)],
                          "description": "UMEM frames per interface, half RX, half TX"},
    ("Afxdp", "cpu"): _int(-1, 4095),
    ("Journal", "durability"): {"enum": list(C.JOURNAL_DURABILITY),
                                "description": "none: the kernel writes back when it likes; "
                                               "periodic: every sync_interval_ms; burst: "
                                               "before the burst's output is sent"},
    ("Journal", "sync_interval_ms"): _int(1, 60_000),
    ("Journal", "segment_mb"): _int(1, 65_536),
    ("Journal", "route_records"): {"type": "boolean",
                                   "description": "ROUTE records without a fill model too"},
    ("Journal", "after_recovery"): {"enum": list(C.JOURNAL_AFTER_RECOVERY),
                                    "description": "keep: recovered open orders stay working; "
                                                   "cancel: all canceled once running"},
    ("Replication", "role"): {"enum": list(C.REPLICATION_ROLES)},
    ("Replication", "listen"): {"type": "string", "description": "IPv4:port"},
    ("Replication", "peer"): {"type": "string", "description": "IPv4:port"},
    ("Replication", "degrade"): {"enum": list(C.REPLICATION_DEGRADE)},
    ("Replication", "heartbeat_us"): _int(100, 10_000_000),
    ("Replication", "timeout_us"): _int(500, 60_000_000),
    ("Replication", "ack_wait_us"): _int(10, 60_000_000),
    # market data
    ("MarketData", "symbols"): {"type": "array", "uniqueItems": True,
                                "items": {"type": "string", "pattern": _SYMBOL_PATTERN},
                                "description": "subscribed symbols; configured instruments "
                                               "when there are any"},
    ("MarketData", "stale_after_ms"): _TIMER_MS,
    ("MarketData", "request_port"): {**_PORT, "description": "our UDP port for "
                                     "retransmissions; default venue_port + 2"},
    ("MarketData", "max_orders"): _int(16, C._MAX_TABLE),
    ("MarketData", "max_levels"): _int(2, 1 << 20),
    ("FeedSubscription", "venue"): {**_int(1, 65535), "description": "a configured venue id, "
                                    "one feed per venue"},
    ("FeedSubscription", "group"): {**_IPV4, "description": "multicast group, "
                                    "224.0.1.0 to 239.255.255.255"},
    ("FeedSubscription", "port"): _PORT,
    ("FeedSubscription", "source_ip"): {**_IPV4, "description": "source-specific (SSM) "
                                     "sender; absent: any source"},
    ("FeedSubscription", "rx_queue"): _int(0, 1023),
    ("FeedSubscription", "stale_after_ms"): _TIMER_MS,
    ("Retransmission", "ip"): _IPV4,
    ("Retransmission", "port"): _PORT,
    ("Retransmission", "mac"): _MAC,
}

# risk.account_defaults takes what an account takes, each optional
_RULES.update({("AccountDefaults", f): rule for (cls, f), rule in list(_RULES.items())
               if cls == "Account" and f not in ("id", "kill")})

# Sections whose YAML form needs more than their dataclass says.
_EXTRA: dict[str, dict] = {
    "Instrument": {"dependentRequired": {"price_band_pct": ["reference_price"],
                                         "price_band_abs": ["reference_price"]}},
}

_SCALARS = {int: {"type": "integer"}, bool: {"type": "boolean"}, str: {"type": "string"}}


class SchemaGenerationError(TypeError):
    pass


def _type_schema(tp, defs: dict, where: str) -> dict:
    origin = typing.get_origin(tp)
    if tp in _SCALARS:
        return dict(_SCALARS[tp])
    if dataclasses.is_dataclass(tp):
        _add_def(tp, defs)
        return {"$ref": f"#/$defs/{tp.__name__}"}
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:  # X | None: the loader takes X or leaves the key out
            return _type_schema(args[0], defs, where)
        return {"anyOf": [_type_schema(a, defs, where) for a in args]}
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": _type_schema(args[0], defs, where)}
    raise SchemaGenerationError(f"{where}: no JSON Schema for type {tp!r}")


def _set_default(prop: dict, default) -> None:
    """Write the dataclass default as the YAML would spell it; leave out
    the sentinels (0 for "none"/"derived", None) the YAML cannot write."""
    if default is dataclasses.MISSING or default is None or "$ref" in prop:
        return
    if prop.get("type") == "number" and isinstance(default, int):
        if default:  # fixed point in the dataclass, a decimal in the YAML
            prop["default"] = default / C.PRICE_SCALE
        return
    if isinstance(default, tuple):
        default = list(default)
        if not default:
            return
    elif default == 0 and not isinstance(default, bool) and prop.get("minimum", 0) > 0:
        return
    prop["default"] = default


_DESCRIPTIONS = {
    "Account": "A trading account's pre-trade limits; amounts are decimals in the "
               "unit currency; max_position maps symbol to shares (a symbol without "
               "one is blocked).",
}


def _add_def(cls: type, defs: dict) -> None:
    name = cls.__name__
    if name in defs:
        return
    defs[name] = {}  # placeholder against recursion
    hints = typing.get_type_hints(cls, vars(C))
    props: dict = {}
    required: list[str] = []
    for f in dataclasses.fields(cls):
        if f.name in C.NOT_IN_YAML:
            continue
        rule = _RULES.get((name, f.name))
        if rule is not None:
            props[f.name] = dict(rule)
        else:
            props[f.name] = _type_schema(hints[f.name], defs, f"{name}.{f.name}")
        _set_default(props[f.name], f.default)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            required.append(f.name)
    out: dict = {"type": "object"}
    doc = _DESCRIPTIONS.get(name) or (cls.__doc__ or "").strip()
    if doc and not doc.startswith(f"{name}("):  # not the dataclass's generated signature
        out["description"] = " ".join(doc.split())
    out["properties"] = props
    if required:
        out["required"] = required
    out["additionalProperties"] = False
    out.update(_EXTRA.get(name, {}))
    defs[name] = out


def generate_schema() -> dict:
    """The configuration's JSON Schema (draft 2020-12)."""
    defs: dict = {}
    _add_def(C.Config, defs)
    root = defs.pop("Config")
    schema = {"$schema": DRAFT, "$id": SCHEMA_ID,
              "title": "OMS appliance configuration",
              "description": "The YAML configuration read by control/config.py "
                             "(omsctl config check); unknown keys are errors."}
    schema.update({k: v for k, v in root.items() if k != "description"})
    schema["$defs"] = dict(sorted(defs.items()))
    return schema


# --------------------------------------------------------------------------
# A validator for the keywords generate_schema() uses
# --------------------------------------------------------------------------

_JSON_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool)
    or isinstance(v, float) and v.is_integer(),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "null": lambda v: v is None,
}
SUPPORTED_KEYWORDS = frozenset({
    "$schema", "$id", "$ref", "$defs", "title", "description", "default", "type", "enum",
    "properties", "required", "additionalProperties", "propertyNames", "dependentRequired",
    "items", "minItems", "maxItems", "uniqueItems", "minimum", "maximum",
    "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "pattern", "format",
    "anyOf",
})


def iter_errors(instance, schema: dict, root: dict | None = None, path: str = ""):
    """Yield "path: problem" for each way `instance` breaks `schema` (the
    subset of draft 2020-12 in SUPPORTED_KEYWORDS; "format" is not
    asserted, as the draft's default)."""
    root = schema if root is None else root
    where = path or "(root)"
    unknown = set(schema) - SUPPORTED_KEYWORDS
    if unknown:
        raise ValueError(f"{where}: unsupported schema keywords {sorted(unknown)}")
    if "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith("#/$defs/"):
            raise ValueError(f"{where}: unsupported $ref {ref}")
        yield from iter_errors(instance, root["$defs"][ref[len("#/$defs/"):]], root, path)
    if "type" in schema and not _JSON_TYPES[schema["type"]](instance):
        yield f"{where}: {instance!r} is not of type {schema['type']}"
        return
    if "enum" in schema and instance not in schema["enum"]:
        yield f"{where}: {instance!r} is not one of {schema['enum']}"
    if "anyOf" in schema and not any(
            not list(iter_errors(instance, s, root, path)) for s in schema["anyOf"]):
        yield f"{where}: {instance!r} matches none of anyOf"
    if isinstance(instance, (int, float)) and not isinstance(instance, bool):
        if "minimum" in schema and instance < schema["minimum"]:
            yield f"{where}: {instance} is less than {schema['minimum']}"
        if "maximum" in schema and instance > schema["maximum"]:
            yield f"{where}: {instance} is more than {schema['maximum']}"
        if "exclusiveMinimum" in schema and instance <= schema["exclusiveMinimum"]:
            yield f"{where}: {instance} is not more than {schema['exclusiveMinimum']}"
        if "exclusiveMaximum" in schema and instance >= schema["exclusiveMaximum"]:
            yield f"{where}: {instance} is not less than {schema['exclusiveMaximum']}"
    if isinstance(instance, str):
        if "pattern" in schema and not re.search(schema["pattern"], instance):
            yield f"{where}: {instance!r} does not match {schema['pattern']}"
        if "minLength" in schema and len(instance) < schema["minLength"]:
            yield f"{where}: {instance!r} is shorter than {schema['minLength']}"
        if "maxLength" in schema and len(instance) > schema["maxLength"]:
            yield f"{where}: {instance!r} is longer than {schema['maxLength']}"
    if isinstance(instance, list):
        if "minItems" in schema and len(instance) < schema["minItems"]:
            yield f"{where}: fewer than {schema['minItems']} items"
        if "maxItems" in schema and len(instance) > schema["maxItems"]:
            yield f"{where}: more than {schema['maxItems']} items"
        if schema.get("uniqueItems") and len({json.dumps(i, sort_keys=True)
                                              for i in instance}) != len(instance):
            yield f"{where}: items are not unique"
        if "items" in schema:
            for i, item in enumerate(instance):
                yield from iter_errors(item, schema["items"], root, f"{path}[{i}]")
    if isinstance(instance, dict):
        props = schema.get("properties", {})
        for key in schema.get("required", ()):
            if key not in instance:
                yield f"{where}: {key!r} is a required property"
        for key, deps in schema.get("dependentRequired", {}).items():
            if key in instance:
                for dep in deps:
                    if dep not in instance:
                        yield f"{where}: {key!r} needs {dep!r}"
        for key, value in instance.items():
            here = f"{path}.{key}" if path else str(key)
            if "propertyNames" in schema:
                yield from iter_errors(key, schema["propertyNames"], root, here)
            if key in props:
                yield from iter_errors(value, props[key], root, here)
            elif schema.get("additionalProperties") is False:
                yield f"{where}: additional property {key!r} is not allowed"
            elif isinstance(schema.get("additionalProperties"), dict):
                yield from iter_errors(value, schema["additionalProperties"], root, here)


def validate_yaml_file(path: str | Path, schema: dict | None = None) -> list[str]:
    """Schema errors of the YAML file at `path` (read as plain data)."""
    import yaml

    data = yaml.safe_load(Path(path).read_text())
    return list(iter_errors(data, schema or generate_schema()))


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--out", metavar="FILE",
                   help="write the schema here instead of to stdout")


def run(args: argparse.Namespace) -> int:
    text = json.dumps(generate_schema(), indent=2) + "\n"
    if args.out:
        Path(args.out).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def add_subparser(config_sub) -> argparse.ArgumentParser:
    """Register ``schema`` on omsctl's ``config`` sub-command parsers."""
    p = config_sub.add_parser("schema", help="print the configuration's JSON Schema "
                                             "(draft 2020-12), for editors")
    add_arguments(p)
    p.set_defaults(func=run)
    return p


def schema_main(argv: list[str] | None = None) -> int:
    """``omsctl config schema`` on its own (also ``python -m control.schema``)."""
    p = argparse.ArgumentParser(prog="omsctl config schema", description=__doc__.split("\n\n")[0])
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(schema_main())
