"""The venue profiles are frozen (issue 9): their parameters were committed
before any model work and must not be tuned to suit a model.  A changed
file fails here; a different venue is a new profile, not an edit."""
from __future__ import annotations

import hashlib
from pathlib import Path

from dataplane.venue_profiles import PROFILES

FROZEN_SHA256 = "02c2cf1c220d5b800a785588c370148195149533ce88d649576c0786b391ca42"


def test_profiles_file_is_frozen():
    path = Path(__file__).resolve().parent.parent / "dataplane" / "venue_profiles.py"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == FROZEN_SHA256


def test_profiles_named_as_keyed():
    assert sorted(PROFILES) == ["busy", "dark", "fade", "iceberg", "jitter", "plain"]
    assert all(name == p.name for name, p in PROFILES.items())
