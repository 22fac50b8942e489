"""The background scavenger's first release after a sleep is slower the longer it slept (CostModel.cold_ns)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pagealloc.sim.costmodel import CostModel
from pagealloc.sim.replay import replay

ROOT = Path(__file__).resolve().parents[2]
US, MS = 1_000, 1_000_000


def test_cold_ns_follows_the_recordings_curve():
    """Nothing under the floor, cold_per_doubling_ns per doubling past it, capped at cold_max_ns."""
    c = CostModel()
    assert c.cold_ns(0) == c.cold_ns(c.cold_floor_ns) == 0
    assert c.cold_ns(2 * c.cold_floor_ns) == c.cold_per_doubling_ns
    assert c.cold_ns(8 * c.cold_floor_ns) == 3 * c.cold_per_doubling_ns
    assert c.cold_ns(3 * c.cold_floor_ns) == c.cold_per_doubling_ns * 3 // 2  # linear between powers of two
    assert c.cold_ns(10**12) == c.cold_max_ns
    # the idle-machine recordings' one-page crit with no other P running: 2.0-3.0 us up to 2 ms, 4.8 at
    # 2-5 ms, 6.2 at 5-10, 28 at 10-50; calibrate's MADV_FREE after 4 / 8 / 32 ms: 4.9 / 5.1 / 32 us
    base = 2_400
    assert c.cold_ns(1500 * US) == 0
    assert 4_000 < base + c.cold_ns(4 * MS) < 9_000
    assert 5_000 < base + c.cold_ns(8 * MS) < 15_000
    assert 18_000 < base + c.cold_ns(30 * MS) < 35_000
    assert replace(c, cold_floor_ns=0).cold_ns(10 * MS) == 0  # disabled


@given(st.integers(0, 10**10), st.integers(0, 10**10))
def test_cold_ns_is_monotone_in_the_sleep(a, b):
    c = CostModel()
    lo, hi = sorted((a, b))
    assert 0 <= c.cold_ns(lo) <= c.cold_ns(hi) <= c.cold_max_ns


def test_the_scavenger_pays_it_on_its_first_release_after_each_wake_up():
    """Same trace, cold costs off and on: Go's crit grows, and as Go sleeps 100x crit, it releases less often.
    (Mean CPU per release: fewer than a tenth of the releases follow a sleep past the floor, so p90 is the
    shootdown's price either way.)"""
    trace = ROOT / "traces" / "go114-burst-idle-p2.parquet"
    warm = replay(trace, "go1.14", cost_model=replace(CostModel(), cold_max_ns=0, cold_busy_max_ns=0))
    cold = replay(trace, "go1.14")
    per_release = lambda r: r.scavenger_cpu_ns / r.released_background_count
    assert per_release(cold) > per_release(warm)
    assert cold.released_background_count < warm.released_background_count
    # the P-driven releases (growth, FreeOSMemory) do not sleep: theirs do not change
    assert cold.released_growth_bytes == warm.released_growth_bytes


def test_a_wake_up_that_releases_nothing_leaves_it_cold():
    """Go's scavenger parks, and each GC wakes it; a wake-up that finds nothing to release touches none
    of what its next MADV_FREE needs, so that release pays for the time since the scavenger's last
    release, not since its wake-up.  go114-freeosmemory-p8 releases once per FreeOSMemory cycle, woken
    by a GC every few ms in between: Go's one-page crit there is 23-38 us, and it sleeps 100x that."""
    trace = ROOT / "traces" / "go114-freeosmemory-p8.parquet"
    warm = replay(trace, "go1.14", cost_model=replace(CostModel(), cold_max_ns=0, cold_busy_max_ns=0))
    cold = replay(trace, "go1.14")
    # measured: 26.6 against 16.9 us; its 8 Ps keep the 2 CPUs busy, so the busy curve, at most 7 us (35.3
    # against 13.6 with the idle CPUs' curve, before "Session 23")
    assert cold.scavenger_crit_p50_ns - warm.scavenger_crit_p50_ns > 5 * US
    assert cold.released_background_count < warm.released_background_count  # measured: 11 against 14 (Go: 11)


def test_beside_busy_cpus_the_curve_starts_later_and_levels_off():
    """Go 1.14.6's one-page crit on fresh service runs, whose two CPU-bound goroutines keep both CPUs busy
    ("Session 23"): flat up to 3 ms, +2.0-2.5 us at 3-4 ms, +4.5-6.5 at 4-6, +6-7.5 beyond."""
    c = CostModel()
    assert c.cold_ns(2_500 * US, busy=True) == 0 < c.cold_ns(2_500 * US)
    assert 0 < c.cold_ns(3_500 * US, busy=True) < 2_500
    assert 3_000 < c.cold_ns(5 * MS, busy=True) < 6_500
    assert c.cold_ns(16 * MS, busy=True) == c.cold_ns(10**12, busy=True) == c.cold_busy_max_ns == 7_000
    assert c.cold_ns(30 * MS, busy=True) < c.cold_ns(30 * MS)  # the idle CPUs' curve goes on rising


@given(st.integers(0, 10**10), st.integers(0, 10**10))
def test_the_busy_curve_is_monotone_and_never_above_the_idle_one(a, b):
    c = CostModel()
    lo, hi = sorted((a, b))
    assert 0 <= c.cold_ns(lo, busy=True) <= c.cold_ns(hi, busy=True) <= c.cold_busy_max_ns
    assert c.cold_ns(lo, busy=True) <= c.cold_ns(lo)


@pytest.mark.parametrize("engine", ["python", "compiled"])
def test_the_scavenger_takes_the_busy_curve_where_the_other_ps_fill_the_cpus(engine, tmp_path):
    """A fresh-style recording (generator.cpu_wait.cpus: the machine's CPUs) of a program whose other Ps
    take every CPU as the scavenger wakes: its cold starts are the busy curve's, so the same replay with
    the busy curve set to the idle one's prices them higher; without the CPU count (0: unknown) the idle
    curve is used throughout, whatever the busy curve says.  Both engines agree."""
    from tracefiles import rewrite_metadata

    src = ROOT / "traces" / "go114-service-p4.parquet"  # two CPU-bound goroutines at GOMAXPROCS 4
    assert replay(src, "go1.14").gomaxprocs == 4
    as_idle = replace(CostModel(), cold_busy_floor_ns=CostModel().cold_floor_ns, cold_busy_max_ns=CostModel().cold_max_ns)
    mean = lambda r: r.scavenger_one_page_crit_mean_ns
    busy, idle = replay(src, "go1.14", engine=engine), replay(src, "go1.14", cost_model=as_idle, engine=engine)
    assert mean(busy) < mean(idle)
    unknown = rewrite_metadata(src, tmp_path / "unknown.parquet",
                               lambda doc: doc.setdefault("generator", {}).pop("cpu_wait", None))
    assert replay(unknown, "go1.14", engine=engine).deterministic() == replay(unknown, "go1.14", cost_model=as_idle,
                                                                             engine=engine).deterministic()
    python = replay(src, "go1.14", engine="python").deterministic()
    assert python == replay(src, "go1.14", engine="compiled").deterministic()
