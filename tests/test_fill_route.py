"""The fill model in the router and the configuration (docs/fill-model.md
"In the router", "Configuration"): with a model, the smart router picks the
venue of the highest expected value, each decision carries the model's id
and every candidate's probability; the rules decide when the model cannot
(no model, ``off``, a market order, a feature out of its range); the C core
and the reference model agree on every frame and decision (test_sor's
rig); a configuration with a bad model file is refused with a clear error.
"""
from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
from test_sor import AAPL_BOOKS, CHOSEN, WORSE, both, config, enters, open_all, px

from control import fill_artefact as fa
from control.config import SOR, ConfigError, Routing, load_config_text
from control.fill_dataset import FEATURES
from dataplane.core import Core

Q = 1 << fa.Q
SPREAD_HI = 1000  # ticks of 0.0001: 10 cents


def model(venue_logits: dict[str, float], ioc_logit: float = 0.0) -> dict:
    """A sealed artefact whose probability depends on the venue (and TIF)
    alone: what the router does with it is then known exactly."""
    venues = sorted(venue_logits)
    feats = []
    for name in FEATURES:
        f = {"name": name, "edges": [], "lo": 0, "hi": fa.I64_MAX - 1}
        if name == "venue":
            f.update(edges=list(range(1, len(venues))), hi=len(venues) - 1)
        elif name in ("side", "tif_ioc"):
            f.update(edges=[1], hi=1)
        elif name in ("own_off_ticks", "contra_ticks", "imbalance_pct"):
            f.update(lo=-(1 << 40))
        elif name == "spread_ticks":
            f.update(hi=SPREAD_HI)
        feats.append(f)
    tables = [{"a": 0, "b": -1, "w": [round(venue_logits[v] * Q) for v in venues]},
              {"a": FEATURES.index("tif_ioc"), "b": -1, "w": [0, round(ioc_logit * Q)]}]
    return fa.seal({"format": fa.FORMAT, "version": fa.VERSION, "label": "any_fill",
                    "horizon_ms": 1000, "venues": venues, "features": feats,
                    "tables": tables, "bias": 0, "q": fa.Q, "p_q": fa.P_Q,
                    "lut": fa.logistic_lut(), "training": {}})


SPLIT = 12  # a venue given a child of a split order (OMS_RW_SPLIT)

# NASDAQ (venue 1) rarely fills, BX (2) half the time, ARCA (3) mostly
SKEWED = model({"NASDAQ": -2.0, "BX": 0.0, "ARCA": 2.0})


def with_model(doc, miss: str = "0") -> object:
    return config(routing=Routing(default_venue=SOR, model="m.json", fill_model=doc,
                                  miss_penalty=px(miss)))


def p_of(logit: float) -> float:
    return 1 / (1 + math.exp(-logit))


def test_the_router_takes_the_highest_expected_value():
    def script(rig):
        open_all(rig)  # asks: NASDAQ 150.28 x 100, BX 150.26 x 100, ARCA 150.27 x 500
        return enters(rig.order(1, 3 * 10**6, price=px("150.30"), qty=100, side=1))

    rig, sent = both(with_model(SKEWED), script)
    # improvement x p: NASDAQ 0.02 x 0.12, BX 0.04 x 0.5 = 0.02, ARCA 0.03 x 0.88 = 0.0264
    assert sent == [(3, 1, 100)]
    d = rig.core.route_decisions()[0]
    assert d["by_model"] == 1 and d["model_id"] == fa.model_id_u64(SKEWED)
    got = {s["venue"]: s["p_fill"] / (1 << fa.P_Q) for s in d["seen"]}
    for v, logit in ((1, -2.0), (2, 0.0), (3, 2.0)):
        assert abs(got[v] - p_of(logit)) < 1e-3
    assert {s["venue"]: s["why"] for s in d["seen"]} == {1: WORSE, 2: WORSE, 3: CHOSEN}
    # the rule router alone would have taken BX's better price
    rig, sent = both(config(), lambda r: (open_all(r), enters(
        r.order(1, 3 * 10**6, price=px("150.30"), qty=100, side=1)))[1])
    assert sent == [(2, 1, 100)]
    assert rig.core.route_decisions()[0]["model_id"] == 0


def test_a_miss_penalty_moves_orders_to_the_venue_likely_to_fill():
    doc = model({"NASDAQ": -5.0, "BX": 0.0, "ARCA": 0.5})

    def script(rig):
        open_all(rig)
        return enters(rig.order(1, 3 * 10**6, price=px("150.30"), qty=100, side=1))

    # BX: 0.04 x 0.5 = 0.020 beats ARCA: 0.03 x 0.62 = 0.019 ...
    _, sent = both(with_model(doc), script)
    assert sent == [(2, 1, 100)]
    # ... until a miss costs 5 cents: BX 0.020 - 0.5 x 0.05 < ARCA 0.019 - 0.38 x 0.05
    _, sent = both(with_model(doc, miss="0.05"), script)
    assert sent == [(3, 1, 100)]


def test_the_rules_decide_when_the_model_cannot():
    def script(rig):
        open_all(rig, {**AAPL_BOOKS, 1: {"AAPL": ("150.00", 300, "150.28", 100)}})
        wide = rig.order(1, 3 * 10**6, price=px("150.30"), qty=100, side=1)
        return enters(wide)

    # venue 1's spread (2,800 ticks) is beyond the model's range: the rules (BX)
    rig, sent = both(with_model(SKEWED), script)
    assert sent == [(2, 1, 100)]
    d = rig.core.route_decisions()[0]
    assert d["by_model"] == 0 and d["model_id"] == fa.model_id_u64(SKEWED)
    assert all(s["p_fill"] == -1 for s in d["seen"])

    unknown = model({"NASDAQ": -2.0, "BX": 0.0, "IEX": 2.0})  # ARCA unknown to it
    rig, sent = both(with_model(unknown), lambda r: (open_all(r), enters(
        r.order(1, 3 * 10**6, price=px("150.30"), qty=100, side=1)))[1])
    assert sent == [(2, 1, 100)] and rig.core.route_decisions()[0]["by_model"] == 0


def test_reload_swaps_the_model_and_each_decision_names_one(tmp_path):
    other = model({"NASDAQ": 3.0, "BX": 0.0, "ARCA": 0.0})
    core = Core(with_model(SKEWED))
    assert core.lib.oms_gen_fill_model_id(core.lib.oms_core_published(core._core)) == \
        fa.model_id_u64(SKEWED)
    core.reload(with_model(other))
    assert core.lib.oms_gen_fill_model_id(core.lib.oms_core_published(core._core)) == \
        fa.model_id_u64(other)
    core.reload(config())
    assert core.lib.oms_gen_fill_model_id(core.lib.oms_core_published(core._core)) == 0


YAML = """
appliance: {{mac: "02:00:00:00:00:01", ip: 10.0.0.1, strategy_port: 7000, venue_port: 7001}}
venues:
  - {{id: 1, name: NASDAQ, session: NSDQ01, ip: 10.0.1.1, port: 9000,
     mac: "02:00:00:00:01:01"}}
routing:
  default_venue: sor
  {model}
"""


def test_the_configuration_names_a_model_file_and_refuses_a_bad_one(tmp_path):
    good = tmp_path / "fill.json"
    fa.save(SKEWED, good)
    cfg_path = tmp_path / "oms.yaml"

    def load(line: str):
        cfg_path.write_text(YAML.format(model=line))
        from control.config import load_config
        return load_config(cfg_path)

    cfg = load("model: fill.json")  # relative to the configuration file
    assert cfg.routing.fill_model["model_id"] == SKEWED["model_id"]
    assert load(f"model: fill.json\n  model_id: \"{SKEWED['model_id']}\"").routing.model
    assert load("model: off").routing.fill_model is None
    doc = json.loads(good.read_text())
    doc["tables"][0]["w"][0] += 1
    (tmp_path / "changed.json").write_text(json.dumps(doc))
    for line, why in (("model: changed.json", "checksum mismatch"),
                      ("model: missing.json", "cannot read"),
                      ("model: fill.json\n  model_id: \"0123456789abcdef\"", "pins 0123"),
                      ("model: oms.yaml", "not JSON")):
        with pytest.raises(ConfigError, match=why) as e:
            load(line)
        assert "routing.model" in str(e.value)
    no_venue = model({"IEX": 1.0})
    fa.save(no_venue, tmp_path / "iex.json")
    with pytest.raises(ConfigError, match="none of the model's venues"):
        load("model: iex.json")
    with pytest.raises(ConfigError):
        load_config_text(YAML.format(model="model: [1]"))


def test_replay_report_lines_carry_the_model_and_probabilities():
    from dataplane.replay import route_line

    def script(rig):
        open_all(rig)
        return enters(rig.order(1, 3 * 10**6, price=px("150.30"), qty=100, side=1))

    rig, _ = both(with_model(SKEWED), script)
    line = route_line(rig.core.route_decisions()[0])
    assert line["model_id"] == SKEWED["model_id"] and line["by_model"] is True
    assert "expected value" in line["reason"]
    assert [round(s["p_fill"], 2) for s in line["seen"]] == [0.12, 0.5, 0.88]
    rig, _ = both(replace(with_model(SKEWED), routing=Routing(default_venue=SOR)), script)
    assert "model_id" not in route_line(rig.core.route_decisions()[0])


def test_the_metrics_name_the_model():
    from prometheus_client.parser import text_string_to_metric_families

    from control.metrics import DataPlaneSource, exposition, make_registry

    def scrape(cfg):
        text = exposition(make_registry(DataPlaneSource(cfg, [Core(cfg)]))).decode()
        return {tuple(s.labels.items()): s.value for f in text_string_to_metric_families(text)
                for s in f.samples if s.name == "oms_fill_model"}

    assert scrape(with_model(SKEWED)) == {(("model_id", SKEWED["model_id"]),): 1}
    assert scrape(config()) == {(("model_id", "none"),): 0}


def test_with_splitting_on_the_model_sizes_children_by_expected_fills():
    def script(rig):
        open_all(rig)  # asks: NASDAQ 150.28 x 100, BX 150.26 x 100, ARCA 150.27 x 500
        return enters(rig.order(1, 3 * 10**6, price=px("150.30"), qty=600, side=1))

    cfg = replace(with_model(SKEWED), routing=replace(with_model(SKEWED).routing,
                                                      split_max_children=3))
    rig, sent = both(cfg, script)
    # by expected value ARCA, BX, NASDAQ; each allotted displayed x p in whole
    # lots: ARCA 500 x 0.881 = 440, BX 100 x 0.5 = 50, NASDAQ 100 x 0.119 = 11;
    # the 99 no venue is expected to fill go to the best
    assert rig.cfg.instruments[0].lot_size == 1
    assert [(v, q) for v, _ref, q in sent] == [(3, 539), (2, 50), (1, 11)]
    d = rig.core.route_decisions()[0]
    assert d["by_model"] == 1 and d["children"] == 3
    assert {s["venue"]: (s["why"], s["alloc"]) for s in d["seen"]} == {
        3: (CHOSEN, 539), 2: (SPLIT, 50), 1: (SPLIT, 11)}
    # two children at most: NASDAQ's share goes to ARCA
    cfg2 = replace(cfg, routing=replace(cfg.routing, split_max_children=2))
    _, sent = both(cfg2, script)
    assert [(v, q) for v, _ref, q in sent] == [(3, 550), (2, 50)]
    # without a model the rules split by displayed size, best price first
    cfg3 = replace(config(), routing=replace(config().routing, split_max_children=3))
    _, sent = both(cfg3, script)
    assert [(v, q) for v, _ref, q in sent] == [(2, 100), (3, 500)]
