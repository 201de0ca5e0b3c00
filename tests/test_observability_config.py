"""The observability: section: localhost by default, validated like the
rest of the configuration (file, line, key, reason), described by the JSON
Schema."""
from __future__ import annotations

from pathlib import Path

import pytest

from control import schema
from control.config import ConfigError, Observability, load_config_text, load_default_config

BASE = (Path(schema.__file__).parent / "default_config.yaml").read_text()


def test_defaults_serve_on_localhost_with_timing():
    assert load_default_config().observability == Observability(
        enabled=True, listen="127.0.0.1:9478", timing=True)


def test_a_section_sets_address_and_switches():
    cfg = load_config_text(BASE + '\nobservability: {listen: "0.0.0.0:0", timing: false}\n')
    assert cfg.observability == Observability(enabled=True, listen="0.0.0.0:0", timing=False)


@pytest.mark.parametrize("section, key, reason", [
    ('{listen: "localhost:9478"}', "observability.listen", "not an IPv4 address"),
    ('{listen: "127.0.0.1"}', "observability.listen", "is not host:port"),
    ('{listen: "127.0.0.1:70000"}', "observability.listen", "is not host:port"),
    ("{enabled: 1}", "observability.enabled", "boolean"),
    ("{listn: x}", "observability.listn", "did you mean 'listen'"),
])
def test_bad_sections_name_line_key_and_reason(section, key, reason):
    text = BASE + f"\nobservability: {section}\n"
    line = text.count("\n")  # the section is the last line
    with pytest.raises(ConfigError) as e:
        load_config_text(text, "oms.yaml")
    msg = str(e.value)
    assert msg.startswith(f"oms.yaml:{line}: {key}:") and reason in msg, msg


def test_schema_describes_the_section():
    s = schema.generate_schema()
    obs = s["$defs"]["Observability"]
    assert set(obs["properties"]) == {"enabled", "listen", "timing"}
    assert obs["additionalProperties"] is False
    assert obs["properties"]["listen"]["default"] == "127.0.0.1:9478"
