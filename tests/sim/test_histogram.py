"""sim/histogram.py: the fixed-memory histogram behind every max and p99."""

import random

import pytest

from pagealloc.sim.histogram import Histogram, _lower_bound


def test_exact_below_64_and_empty_is_zero():
    h = Histogram()
    assert h.quantile(0.99) == 0 and h.max == 0
    for v in range(64):
        h.add(v)
    assert h.n == 64 and h.total == sum(range(64)) and h.max == 63
    assert h.quantile(0.5) == 31 and h.quantile(1.0) == 63 and h.quantile(0.0) == 0


@pytest.mark.parametrize("seed", range(5))
def test_quantiles_within_the_bucket_error(seed):
    """Log-linear buckets, 64 per power of two: a quantile is at most 1/64 below the exact one, never above max."""
    rng = random.Random(seed)
    values = [int(rng.lognormvariate(10, 3)) for _ in range(5000)]
    h = Histogram()
    for v in values:
        h.add(v)
    values.sort()
    for q in (0.5, 0.9, 0.99, 1.0):
        exact = values[max(0, int(q * len(values) + 0.999999) - 1)]
        got = h.quantile(q)
        assert exact * (1 - 1 / 64) - 1 <= got <= exact
    assert h.max == values[-1] and h.total == sum(values)


def test_bucket_bounds_cover_every_64_bit_value():
    h = Histogram()
    for v in (2**63 - 1, 2**64 - 1, 1 << 40):
        h.add(v)
    assert h.max == 2**64 - 1 and (2**64 - 1) * (1 - 1 / 64) <= h.quantile(1.0) <= 2**64 - 1  # its bucket's lower edge
    assert h.quantile(0.1) == _lower_bound(next(b for b, c in enumerate(h.counts) if c)) == 1 << 40
