"""The live latency heatmap in headless Chromium, while orders flow through
the real C core (driven by a bounded traffic loop in a thread, with the
exporter and the page served beside it): the cells the page draws are the
bucket deltas its data endpoint served, and those add up to the Prometheus
histograms' deltas over the same interval.  A screenshot is kept in
out/heatmap.png."""
from __future__ import annotations

import json
import shutil
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import wire
from core_traffic import CoreTraffic
from prometheus_client.parser import text_string_to_metric_families

from control.httpd import ObservabilityServer
from control.metrics import LE_SECONDS, DataPlaneSource
from dataplane.core import Core

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="needs Debian's chromium and chromium-driver (deploy/setup.sh installs them)")

BATCHES, PER_BATCH, PAUSE_S = 8, 40, 0.4


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read()


def histograms(url: str) -> dict[tuple[str, str], np.ndarray]:
    """(metric, label) -> per-bucket counts (non-cumulative, +Inf last) of
    the stage and venue round-trip histograms."""
    cum: dict = {}
    for fam in text_string_to_metric_families(get(url + "/metrics").decode()):
        if fam.name not in ("oms_stage_latency_seconds", "oms_venue_round_trip_seconds"):
            continue
        for s in fam.samples:
            if s.name.endswith("_bucket"):
                key = (fam.name, s.labels.get("stage") or s.labels["venue"])
                cum.setdefault(key, {})[s.labels["le"]] = s.value
    out = {}
    for key, by_le in cum.items():
        les = [repr(float(le)) for le in LE_SECONDS] + ["+Inf"]
        c = np.array([by_le[le] for le in les], dtype=np.int64)
        out[key] = np.diff(c, prepend=0)
    return out


def panel_metric(panel: str) -> tuple[str, str]:
    if panel.startswith("venue_rtt_"):
        return "oms_venue_round_trip_seconds", panel[len("venue_rtt_"):]
    return "oms_stage_latency_seconds", panel


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              "--window-size=1600,1400"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


def test_heatmap_cells_equal_served_deltas_and_prometheus_deltas(browser):
    cfg = wire.config()
    core = Core(cfg)
    core.set_timing(True)
    server = ObservabilityServer(DataPlaneSource(cfg, [core]), "127.0.0.1:0", interval_s=1.0)
    server.start()
    try:
        url = server.url
        before = histograms(url)
        first = json.loads(get(url + "/api/heatmap?after=0"))["columns"]
        seq0 = first[-1]["seq"] if first else 0
        browser.get(url)

        traffic = CoreTraffic(core, cfg)
        failed: list[BaseException] = []

        def run():
            try:
                traffic.login()
                for k in range(BATCHES):
                    traffic.orders(1000 + k * PER_BATCH, PER_BATCH)
                    time.sleep(PAUSE_S)
            except BaseException as e:  # reported by the test thread
                failed.append(e)

        t = threading.Thread(target=run)
        t.start()
        t.join(timeout=30)
        assert not t.is_alive() and not failed, failed
        t_end = time.time()
        # a column sampled after the traffic stopped, drawn by the page
        deadline = time.monotonic() + 15
        while True:
            cols = json.loads(get(url + f"/api/heatmap?after={seq0}"))["columns"]
            last = next((c for c in cols if c["t0"] >= t_end), None)
            drawn = browser.execute_script("return +(document.body.dataset.drawnSeq || 0)")
            if last is not None and drawn >= last["seq"]:
                break
            assert time.monotonic() < deadline, "the page did not draw the last column"
            time.sleep(0.2)
        after = histograms(url)
        shot = ROOT / "out" / "heatmap.png"
        shot.parent.mkdir(exist_ok=True)
        browser.save_screenshot(str(shot))
        cells = browser.execute_script(
            "return [...document.querySelectorAll('rect.cell')].map(r => "
            "[r.closest('svg').dataset.panel, +r.dataset.seq, +r.dataset.bucket,"
            " +r.dataset.count])")
        counters = browser.execute_script(
            "return Object.fromEntries([...document.querySelectorAll('[data-counter]')]"
            ".map(d => [d.dataset.counter, d.querySelector('.value').textContent]))")
    finally:
        server.close()

    served = [c for c in cols if c["seq"] <= drawn]
    # 1. the cells drawn are exactly the non-zero deltas served
    expect = {(p, c["seq"], b): n for c in served for p, ds in c["deltas"].items()
              for b, n in enumerate(ds) if n}
    got = {(p, seq, b): n for p, seq, b, n in cells if seq > seq0}
    assert got == expect
    assert sum(traffic.sent.values()) > 0 and len(expect) > 10
    # 2. the served deltas add up to the Prometheus histograms' deltas
    panels = {p for c in served for p in c["deltas"]}
    assert {"rx_to_decision", "decision_to_tx", "in_to_out", "handle", "venue_rtt_1"} <= panels
    for p in panels:
        total = np.sum([c["deltas"][p] for c in served], axis=0)
        key = panel_metric(p)
        assert (total == after[key] - before.get(key, 0)).all(), p
    orders = sum(traffic.sent.values())
    assert np.sum([c["deltas"]["in_to_out"] for c in served]) == orders
    # the counters shown are the last column's
    shown = {k: int(v.replace(",", "")) for k, v in counters.items()}
    assert shown == served[-1]["counters"]
    assert shot.stat().st_size > 10_000
