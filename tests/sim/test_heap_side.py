"""The heap side of a background release (CostModel.scavenge_heap_ns): the rest of Go's scavengeOne beyond
its madvise calls, priced per background release only, and at the level the machine's state sets."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from pagealloc.runtime.lock_futex import MUTATOR, SCAVENGER
from pagealloc.runtime.mheap import MHeap
from pagealloc.sim.costmodel import RELEASE_PRICES, CostModel
from pagealloc.sim.replay import replay

ROOT = Path(__file__).resolve().parents[2]
B = 0xC000000000  # huge-page aligned
HEAP = 50_000  # far above the calls' variation, so a replay's crit shows it plainly


def _release_ns(holder, forced: bool = False, cost: CostModel | None = None) -> tuple[int, int]:
    """(meter_ns, scavenger_madvise_ns) after one sysUnused of one page by ``holder``."""
    heap = MHeap(cost=cost or replace(CostModel(), scavenge_heap_ns=HEAP))
    heap.heap_sys = 64 << 20
    heap.lock.running(holder)
    heap.forced = forced
    heap.meter_ns = 0
    with heap.lock:
        heap._sys_unused(B + 8192, 8192)
    return heap.meter_ns, heap.scavenger_madvise_ns


def test_only_the_background_scavengers_release_pays_it_and_not_as_a_madvise_call():
    """A growth's or FreeOSMemory's scavenge holds the lock through many releases with the heap warm (and
    runs no bgscavenge iteration): it pays the calls only.  The background release pays the calls and the
    heap side, and the heap side is not counted with the calls (what sysmon's probe is compared with)."""
    background, calls = _release_ns(SCAVENGER)
    by_a_p, none = _release_ns(MUTATOR)
    forced, _ = _release_ns(MUTATOR, forced=True)
    assert background - by_a_p == HEAP
    assert forced == by_a_p and none == 0
    assert calls == by_a_p  # the calls alone
    unpriced, _ = _release_ns(SCAVENGER, cost=replace(CostModel(), scavenge_heap_ns=0))
    assert unpriced == by_a_p


@pytest.mark.parametrize("engine", ["python", "compiled"])
def test_it_lengthens_each_crit_and_so_each_sleep(engine):
    """Both engines (the compiled ReplayHeap has its own _sys_unused): every background release's crit
    takes the heap side more, the calls stay what they were priced, and as Go sleeps ~100x its crit the
    scavenger releases less often; the releases heap growth makes do not move."""
    trace = ROOT / "traces" / "go114-churn-p2.parquet"
    alone = replace(CostModel(), unlock_wake_ns=0)  # the unlocks' wakes, which move with the timing, apart
    base = replay(trace, "go1.14", cost_model=replace(alone, scavenge_heap_ns=0), engine=engine)
    priced = replay(trace, "go1.14", cost_model=replace(alone, scavenge_heap_ns=HEAP), engine=engine)
    rest = lambda r: r.scavenger_one_page_crit_mean_ns - r.scavenger_one_page_madvise_mean_ns
    assert abs(rest(priced) - rest(base) - HEAP) < 1_000
    assert priced.released_background_count < base.released_background_count
    assert priced.released_growth_bytes == base.released_growth_bytes > 0


def test_engines_agree_with_it_priced():
    trace = ROOT / "traces" / "go114-service-p4.parquet"
    cost = replace(CostModel(), scavenge_heap_ns=3_000)
    python = replay(trace, "go1.14", cost_model=cost, engine="python").deterministic()
    assert python == replay(trace, "go1.14", cost_model=cost, engine="compiled").deterministic()


def test_it_follows_the_level_the_machine_sets(tmp_path):
    """It is one of the prices of a release the machine sets: the level modes scale it with the calls, and
    a recording's probes around the run scale it by their one-page MADV_FREE over the defaults' price of
    that call (go114-crit-parts: the rest rises with the calls' level run to run, "Session 23")."""
    from pagealloc.sim.calibrate import probed_costs
    from pagealloc.trace import trace_metadata
    from test_calibrate import _with_probe

    assert "scavenge_heap_ns" in RELEASE_PRICES
    c = CostModel()
    assert c.releases_scaled(2.0).scavenge_heap_ns == 2 * c.scavenge_heap_ns
    src = ROOT / "traces" / "go114-churn-p2.parquet"
    assert probed_costs(trace_metadata(src)).scavenge_heap_ns == c.scavenge_heap_ns  # no probe: the default
    probed = _with_probe(src, tmp_path / "probed.parquet", 1_000, 3_000)  # its calls alone: 2,300 and 2,400 ns
    alone_default = c.madvise_free_call_ns + 2 * c.madvise_free_first_page_ns
    assert probed_costs(trace_metadata(probed)).scavenge_heap_ns == round(c.scavenge_heap_ns * 2_350 / alone_default)
    # the replay says what it priced (its header line, `pagealloc replay`)
    assert replay(probed, "go1.14").scavenge_heap_ns == probed_costs(trace_metadata(probed)).scavenge_heap_ns
