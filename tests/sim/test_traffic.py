"""sim/traffic.py: the program's allocation traffic, and what it adds to a release's price."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from pagealloc.sim.costmodel import CostModel
from pagealloc.sim.replay import replay
from pagealloc.sim.traffic import BUCKET_NS, HEAVY_BYTES, PAGE_BYTES, WINDOW_NS, AllocTraffic
from pagealloc.trace import OP_ALLOC, OP_FREE

TRACES = Path(__file__).resolve().parents[2] / "traces"


def _batch(rows):
    """(ts, op, npages) columns of (ts, op, npages) rows."""
    ts, op, npages = zip(*rows)
    return np.array(ts, np.int64), np.array(op, np.int8), np.array(npages, np.uint32)


def test_heavy_counts_the_allocated_bytes_in_the_window_before_t():
    half = HEAVY_BYTES // 2 // PAGE_BYTES  # pages in half the threshold
    traffic = AllocTraffic()
    traffic.add(*_batch([(1_000_000, OP_ALLOC, half), (1_050_000, OP_FREE, 10 * half),
                         (2_000_000, OP_ALLOC, half - 1)]))
    assert not traffic.heavy(999_999)  # before anything
    assert not traffic.heavy(1_000_000)  # half: frees are no traffic
    assert not traffic.heavy(2_000_000)  # one page short
    traffic.add(*_batch([(2_050_000, OP_ALLOC, 1)]))
    assert traffic.heavy(2_050_000) and traffic.heavy(1_000_000 + WINDOW_NS - 1)
    # the window ends: the first allocation's bucket leaves it
    assert not traffic.heavy(1_000_000 + WINDOW_NS + BUCKET_NS)


def test_forget_before_drops_only_what_no_later_question_reaches():
    traffic = AllocTraffic()
    traffic.add(*_batch([(t, OP_ALLOC, HEAVY_BYTES // PAGE_BYTES) for t in (0, 5_000_000, 10_000_000)]))
    traffic.forget_before(5_000_000 + WINDOW_NS - 1)
    assert sorted(traffic.buckets) == [5_000_000 // BUCKET_NS, 10_000_000 // BUCKET_NS]
    assert traffic.heavy(5_000_000 + WINDOW_NS - 1) and traffic.heavy(10_000_000)


def test_heavy_allocation_makes_the_releases_dearer_only_where_it_happens():
    """churn-p2 allocates 2 MiB or more in the 1.5 ms before nearly every release: priced with the
    traffic, crit is longer, Go's pacing sleeps longer and the scavenger releases less often.  png-decode
    never allocates that fast: every figure is the same with the traffic priced or not."""
    plain = replace(CostModel(), memory_traffic_ns=0)
    churn = TRACES / "go114-churn-p2.parquet"
    priced, unpriced = replay(churn, "go1.14"), replay(churn, "go1.14", cost_model=plain)
    assert priced.memory_traffic_ns == CostModel().memory_traffic_ns and unpriced.memory_traffic_ns == 0
    assert priced.scavenger_crit_p50_ns > unpriced.scavenger_crit_p50_ns
    assert priced.released_background_count < 0.9 * unpriced.released_background_count
    png = TRACES / "go114-png-decode-p2.parquet"
    a, b = replay(png, "go1.14"), replay(png, "go1.14", cost_model=plain)
    assert a.released_background_count == b.released_background_count and a.p_stall_ns == b.p_stall_ns
    assert a.released_bytes == b.released_bytes
