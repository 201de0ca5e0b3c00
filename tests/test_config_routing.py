"""The routing part of the configuration (docs/semantics.md "Smart order
routing"): a route or the default names a venue or "sor", a route to the
router may exclude venues, the router's latency price, and a venue's limit
of unanswered orders; every mistake is reported with file, line and key,
and the JSON Schema accepts what the loader accepts."""
from __future__ import annotations

import pytest
from test_config import edit, error_of, line_of

from control.config import SOR, load_config_text
from control.schema import generate_schema, iter_errors

ROUTES = """\
routing:
  default_venue: sor
  latency_cost_per_us: 0.0001
  split_max_children: 3
routes:
  - symbol: AAPL
    venue: sor
    exclude: [2]
  - symbol: MSFT
    venue: 2
"""


def text(routes: str = ROUTES) -> str:
    t = edit("routing:\n  default_venue: 1\n", routes)
    return t.replace("    mac: \"02:00:00:00:02:02\"\n",
                     "    mac: \"02:00:00:00:02:02\"\n    max_unanswered: 5\n")


def test_sor_routes_exclusions_latency_price_and_unanswered_limit_load():
    cfg = load_config_text(text(), "r.yaml")
    assert cfg.routing.default_venue == SOR
    assert cfg.routing.latency_cost_per_us == 10_000  # 0.0001 in 8 decimals
    assert cfg.routing.split_max_children == 3
    assert [(r.symbol, r.venue, r.exclude) for r in cfg.routes] == [
        ("AAPL", SOR, (2,)), ("MSFT", 2, ())]
    assert [v.max_unanswered for v in cfg.venues] == [0, 5]


@pytest.mark.parametrize("old, new, key, needle, reason", [
    ("  default_venue: sor\n", "  default_venue: smart\n", "routing.default_venue",
     "smart", 'expected a venue id or "sor"'),
    ("    exclude: [2]\n", "    exclude: [3]\n", "routes[0].exclude[0]", "exclude",
     "venue 3 is not configured"),
    ("    exclude: [2]\n", "    exclude: [2, 2]\n", "routes[0].exclude[1]", "exclude",
     "listed twice"),
    ("    venue: 2\n", "    venue: 2\n    exclude: [1]\n", "routes[1].exclude", "exclude: [1]",
     "only a route to the smart router"),
    ("  latency_cost_per_us: 0.0001\n", "  latency_cost_per_us: -1\n",
     "routing.latency_cost_per_us", "latency_cost", "expected a decimal number"),
    ("  split_max_children: 3\n", "  split_max_children: 5\n",
     "routing.split_max_children", "split_max", "out of range 1..4"),
])
def test_routing_mistakes_name_line_and_key(old, new, key, needle, reason):
    t = text().replace(old, new)
    err = error_of(t)
    assert (err.key, err.line) == (key, line_of(t, needle))
    assert reason in err.reason


def test_unanswered_limit_must_be_an_integer():
    t = text().replace("max_unanswered: 5", "max_unanswered: many")
    err = error_of(t)
    assert (err.key, err.line) == ("venues[1].max_unanswered", line_of(t, "max_unanswered"))


def test_schema_accepts_what_the_loader_accepts():
    import yaml
    schema = generate_schema()
    doc = yaml.safe_load(text())
    assert list(iter_errors(doc, schema)) == []
    doc["routing"]["default_venue"] = "smart"
    assert list(iter_errors(doc, schema))
