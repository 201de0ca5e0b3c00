"""The exporter's histogram buckets: every log-linear C bucket is counted
under the smallest Prometheus bound that holds its highest value, so a
count under `le` is never for a value above it, and no tighter bound would
do."""
from __future__ import annotations

import numpy as np
import pytest

from control.metrics import LE_SECONDS, BucketMap
from dataplane.core import ffi, lib


@pytest.mark.parametrize("units_per_second", [1e9, 2.6e9, 3.1e9])
def test_each_c_bucket_goes_under_the_tightest_bound_that_holds_it(units_per_second):
    m = BucketMap(lib, units_per_second)
    n = lib.oms_lat_buckets()
    bounds = np.array(LE_SECONDS) * units_per_second
    for b in range(n - 1):
        low, high = lib.oms_lat_bucket_low(b), lib.oms_lat_bucket_low(b + 1) - 1
        i = m.index[b]
        if i < len(bounds):
            assert high <= bounds[i]  # never above its bound
        if i > 0:
            assert high > bounds[i - 1]  # and no tighter bound holds it all
        assert low <= high


def test_counts_sum_the_buckets_of_every_worker():
    m = BucketMap(lib, 1e9)
    hists = [ffi.new("struct lat_hist *") for _ in range(2)]
    # worker 0: 20, 30, 30 ns; worker 1: 30 ns and 2 s
    for h, values in zip(hists, ([20, 30, 30], [30, 2_000_000_000]), strict=True):
        for v in values:
            b = next(b for b in range(lib.oms_lat_buckets() - 1)
                     if lib.oms_lat_bucket_low(b) <= v < lib.oms_lat_bucket_low(b + 1))
            h.bucket[b] += 1
            h.sum += v
            h.count += 1
    counts, sum_s = m.counts(ffi, hists)
    assert counts.tolist()[0] == 1  # 20 ns <= 25 ns
    assert counts.tolist()[1] == 3  # 30 ns three times <= 50 ns
    assert counts.tolist()[-1] == 1  # 2 s: only +Inf
    assert counts.sum() == 5 and sum_s == pytest.approx(2.00000011)
