"""Sharded mode's configuration (dataplane/sharding.py, control/config.py):
what each worker's core takes, and the loader's checks that every session,
venue and account has exactly one worker."""
from __future__ import annotations

from dataclasses import replace

import pytest
import test_risk as R
from test_risk import REASON, Harness, verdict

from control.config import (
    DEFAULT_CONFIG_PATH,
    ConfigError,
    Instrument,
    Route,
    Shard,
    load_config_text,
)
from dataplane.core import Core
from dataplane.reference_model import ReferenceCore
from dataplane.sharding import shard_config


def two_shards():
    cfg = replace(R.config(), routes=(Route(venue=2, symbol="NOREF"),),
                  instruments=R.INSTRUMENTS + (Instrument("ONLY2", venues=(2,)),))
    return cfg, shard_config(cfg, Shard(sessions=(1,), venues=(1,), accounts=(1, 2, 3, 6))), \
        shard_config(cfg, Shard(sessions=(2,), venues=(2,), accounts=(4, 5)))


@pytest.mark.parametrize("impl", [Core, ReferenceCore])
def test_a_worker_knows_only_its_accounts_and_venues(impl):
    cfg, w0, w1 = two_shards()
    assert [s.id for s in w0.sessions] == [1] and [v.id for v in w0.venues] == [1]
    assert w1.routing.default_venue == 2  # the configured default is worker 0's
    h = Harness(impl, w0)
    assert verdict(h.new(1, account=6)) == "sent"
    # account 4 is worker 1's: this worker's core has never heard of it
    assert verdict(h.new(2, account=4)) == REASON["UNKNOWN_ACCOUNT"]
    # a rule to another worker's venue does not apply here: the default does
    out = h.new(3, account=6, symbol="NOREF")
    assert out[0]["to"] == "venue" and out[0]["venue"] == 1
    # a symbol tradable only on another worker's venue is restricted here
    assert next(i for i in w0.instruments if i.symbol == "ONLY2").restricted
    assert not next(i for i in w1.instruments if i.symbol == "ONLY2").restricted


def sharded_yaml(workers: str) -> str:
    return DEFAULT_CONFIG_PATH.read_text() + f"""
dataplane:
  threading:
    mode: sharded
    workers:
{workers}
"""


def test_every_session_venue_and_account_has_one_worker():
    accts = list(range(1, 10))
    ok = sharded_yaml(f"      - {{sessions: [1], venues: [1], accounts: {accts[:4]}}}\n"
                      f"      - {{sessions: [2], venues: [2], accounts: {accts[4:]}}}")
    cfg = load_config_text(ok, "s.yaml")
    assert cfg.dataplane.threading.workers[1] == Shard((2,), (2,), tuple(accts[4:]))
    bad = sharded_yaml(f"      - {{sessions: [1], venues: [1, 2], accounts: {accts[:4]}}}\n"
                       f"      - {{sessions: [2], venues: [2], accounts: {accts[5:]}}}\n"
                       "      - {sessions: [1], venues: [9]}")
    with pytest.raises(ConfigError) as e:
        load_config_text(bad, "s.yaml")
    text = str(e.value)
    assert "session 1 is already worker 0's" in text
    assert "venue 2 is already worker 0's" in text
    assert "session 2 belongs to no worker" in text
    assert "account 5 belongs to no worker" in text
