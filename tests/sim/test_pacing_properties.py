"""Property tests of the GC pacing of the scavenger and of the three mode presets (hypothesis).

Pacing (pagealloc.runtime.mheap.MHeap.gc_done, gc_pace_scavenger), over
random sequences of GCs, each with the heap as it is then (heap_inuse,
heap_sys, heap_released) and the new heap goal (next_gc):

* every scavenge goal equals a direct transcription of Go 1.14.6's
  gcPaceScavenger (mgcscavenge.go), in uint64 and float64 arithmetic (numpy),
  run in Go's order: gcMarkTermination sets last_next_gc = next_gc (the goal
  of the cycle that ended) and last_heap_inuse = heap_inuse (now) before
  gcSetTriggerRatio sets the new next_gc and paces -- starting from gcinit's
  goal;
* a goal is a physical page multiple, at least last_heap_inuse scaled by
  next_gc / last_next_gc, and at least a page below what is retained; no
  goal means retained is within a page of the would-be goal;
* a GC without a heap goal (a trace's gc row with value 0) gets Go 1.14's own
  goal for the heap in use, max(heap_inuse * (1 + GOGC/100), 4 MiB).

Presets (pagealloc.MODES, pagealloc.sim.replay.LOCKED_SITES), on small
generated traces replayed with pagealloc.replay:

* go1.14 and locked hold the heap lock through a FreeOSMemory row: one
  mutator lock acquisition, one critical section covering the whole release;
  unlocked takes it once per scavenge step, and holds it less long;
* the background scavenger drops the lock in go1.14 and unlocked and holds it
  in locked: without FreeOSMemory rows go1.14 replays exactly as unlocked,
  without GCs (so with the background scavenger idle) exactly as locked, and
  on the constructed trace of test_replay.py go1.14 is fooled as unlocked is;
* the three release the same bytes through FreeOSMemory on the same trace
  while the background scavenger is idle, and every replay is deterministic.
"""

from __future__ import annotations

import dataclasses
from contextlib import contextmanager

import numpy as np
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from test_replay import (  # the constructed trace, and user-style trace frames
    FOOLED,
    SLOW_SCANS,
    frame,
)

import pagealloc
from pagealloc.runtime.malloc import MASK64
from pagealloc.runtime.mheap import DEFAULT_HEAP_MINIMUM, MHeap, initial_next_gc
from pagealloc.runtime.engines import page_alloc_class
from pagealloc.sim.costmodel import CostModel
from pagealloc.sim.replay import BASELINE_MODE, LOCKED_SITES

MiB = 1 << 20
PHYS_PAGE_SIZES = st.sampled_from([4096, 16384, 65536])
PACING = settings(deadline=None, max_examples=300)
TRACES = settings(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow])

# --- pacing -------------------------------------------------------------------------------


def go_uint64(x):
    """uint64(x) of a float64 as Go 1.14.6 compiles it on amd64: CVTTSD2SQ below 2**63, else of x - 2**63
    with bit 63 ORed in; what int64 cannot hold converts to 1 << 63 (numpy's own cast of such a value
    is undefined: it gave 0)."""
    cutoff = np.float64(2**63)
    if x < cutoff:
        return np.uint64(int(x))
    return np.uint64(int(x - cutoff) | (1 << 63)) if x - cutoff < cutoff else np.uint64(1 << 63)


def test_float64_to_uint64_is_go_1_14s_on_amd64():
    """The values Go 1.14.6 printed on linux/amd64 for ``uint64(x)`` of each (a ``//go:noinline``
    function converting its argument), out-of-range ones included."""
    from pagealloc.runtime.mheap import float64_to_uint64

    printed = {1e18: 1_000_000_000_000_000_000, 9.3e18: 9_300_000_000_000_000_000,
               1.7e19: 17_000_000_000_000_000_000, 1.8446744073709552e19: 9_223_372_036_854_775_808,
               2e19: 9_223_372_036_854_775_808, 1e30: 9_223_372_036_854_775_808, -1.5: 18_446_744_073_709_551_615}
    assert {x: float64_to_uint64(x) for x in printed} == printed
    assert {x: int(go_uint64(np.float64(x))) for x in printed if x >= 0} == {x: v for x, v in printed.items() if x >= 0}


def go_gc_pace_scavenger(next_gc, last_next_gc, last_heap_inuse, heap_sys, heap_released, phys):
    """Go 1.14.6's gcPaceScavenger, line by line (retainExtraPercent = 10): the goal it sets."""
    u64, f64 = np.uint64, np.float64
    if last_next_gc == 0:
        return MASK64
    goal_ratio = f64(u64(next_gc)) / f64(u64(last_next_gc))
    retained_goal = go_uint64(f64(u64(last_heap_inuse)) * goal_ratio)
    # retainedGoal / (1.0 / (retainExtraPercent / 100.0)): an untyped constant divisor, 10
    retained_goal += retained_goal // u64(10)
    retained_goal = (retained_goal + u64(phys) - u64(1)) & ~(u64(phys) - u64(1))
    retained_now = u64(heap_sys) - u64(heap_released)
    if retained_now <= retained_goal or retained_now - retained_goal < u64(phys):
        return MASK64
    return int(retained_goal)


@st.composite
def heap_at_gc(draw):
    """(heap_inuse, heap_sys, heap_released, next_gc) at one GC: in use <= retained <= mapped."""
    heap_sys = draw(st.integers(0, 1 << 46))
    retained = draw(st.integers(0, heap_sys))
    heap_inuse = draw(st.one_of(st.integers(0, retained), st.integers(0, min(retained, 64 * MiB))))
    next_gc = draw(st.one_of(st.integers(1, 1 << 47), st.integers(DEFAULT_HEAP_MINIMUM, DEFAULT_HEAP_MINIMUM + 4 * heap_inuse)))
    return heap_inuse, heap_sys, heap_sys - retained, next_gc


def gc(heap: MHeap, heap_inuse: int, heap_sys: int, heap_released: int, next_gc: int) -> bool:
    heap.heap_inuse, heap.heap_sys, heap.heap_released = heap_inuse, heap_sys, heap_released
    return heap.gc_done(next_gc)


@PACING
@given(phys=PHYS_PAGE_SIZES, gcs=st.lists(heap_at_gc(), min_size=1, max_size=12))
# a goal past 2**64 (next_gc / last_next_gc ~1.7e12): Go's conversion makes it 1 << 63, so no goal
@example(phys=4096, gcs=[(0, 0, 0, 1), (0, 0, 0, 1), (10785334, 10785334, 0, 1_710_354_456_683)])
def test_goal_is_gos_formula_in_gos_order(phys, gcs):
    heap = MHeap(phys_page_size=phys)
    last_next_gc = initial_next_gc()  # gcinit's goal: the first GC already paces
    for heap_inuse, heap_sys, heap_released, next_gc in gcs:
        gc(heap, heap_inuse, heap_sys, heap_released, next_gc)
        want = go_gc_pace_scavenger(next_gc, last_next_gc, heap_inuse, heap_sys, heap_released, phys)
        assert (heap.last_next_gc, heap.last_heap_inuse, heap.next_gc) == (last_next_gc, heap_inuse, next_gc)
        assert heap.scavenge_goal == want
        event("goal set" if want != MASK64 else "no goal")
        last_next_gc = next_gc


@PACING
@given(phys=PHYS_PAGE_SIZES, gcs=st.lists(heap_at_gc(), min_size=1, max_size=12))
def test_goal_bounds(phys, gcs):
    heap = MHeap(phys_page_size=phys)
    for g in gcs:
        gc(heap, *g)
        scaled = int(heap.last_heap_inuse * (heap.next_gc / heap.last_next_gc))
        retained = heap.heap_retained()
        if heap.scavenge_goal == MASK64:
            # the would-be goal, scaled plus 10% and page-rounded, is within a page of retained
            would_be = -(-(scaled + scaled // 10) // phys) * phys
            assert retained < would_be + phys
        else:
            assert heap.scavenge_goal % phys == 0
            assert heap.scavenge_goal >= scaled
            assert retained - heap.scavenge_goal >= phys


@PACING
@given(heap_inuse=st.integers(0, 1 << 44), previous=st.one_of(st.none(), heap_at_gc()))
def test_gc_without_goal_derives_gos(heap_inuse, previous):
    heap = MHeap()
    if previous is not None:
        gc(heap, *previous)
    before = heap.next_gc
    assert gc(heap, heap_inuse, heap_inuse + 64 * MiB, 0, 0) is True
    assert heap.next_gc == max(heap_inuse * 2, 4 * MiB)  # heap_marked x (1 + GOGC/100), GOGC=100
    assert heap.last_next_gc == before
    assert gc(heap, heap_inuse, heap_inuse + 64 * MiB, 0, 5 * MiB) is False  # a given goal is kept
    assert heap.next_gc == 5 * MiB


# --- presets -------------------------------------------------------------------------------

# Only releasing memory costs time: a critical section lasts as long as the madvise calls in
# it, and a FreeOSMemory row, the only thing that releases while the background scavenger is
# idle, lasts exactly its release.
COST = CostModel(**{f.name: 0 for f in dataclasses.fields(CostModel) if not f.name.startswith("madvise")})


@st.composite
def traces(draw, gcs: bool, free_os_memory: bool):
    """A small trace: allocs of 1-1500 pages, frees of live spans, and (if asked) gc rows
    (value 0 among them: no goal given) and FreeOSMemory rows, with gaps of up to 20 ms."""
    kinds = ["alloc", "alloc", "free"] + ["gc"] * gcs + ["free_os_memory"] * free_os_memory
    rows, live, ts, span = [], [], 0, 0
    for _ in range(draw(st.integers(4, 40))):
        ts += draw(st.sampled_from([0, 1, 1000, 50_000, 2_000_000, 20_000_000]))
        kind = draw(st.sampled_from(kinds))
        if kind == "alloc" or (kind == "free" and not live):
            span += 1
            n = draw(st.one_of(st.integers(1, 15), st.integers(16, 1500)))
            rows.append((ts, "alloc", span, n, 0))
            live.append((span, n))
        elif kind == "free":
            rows.append((ts, "free", *live.pop(draw(st.integers(0, len(live) - 1))), 0))
        elif kind == "gc":
            rows.append((ts, "gc", 0, 0, draw(st.sampled_from([0, 4 * MiB, 16 * MiB, 64 * MiB, 1 << 30]))))
        else:
            rows.append((ts, "free_os_memory", 0, 0, 0))
    return rows


def replay(rows, mode):
    return pagealloc.replay(frame(rows), mode, cost_model=COST)


def same_replay(a, b) -> bool:
    da, db = a.deterministic(), b.deterministic()
    da.pop("mode"), db.pop("mode")
    return da == db


@contextmanager
def scavenge_steps():
    """The results of every PageAlloc.scavenge_one call made meanwhile (the replay's engine's PageAlloc)."""
    PageAlloc = page_alloc_class()
    calls, orig = [], PageAlloc.scavenge_one

    def counted(self, *args, **kwargs):
        calls.append(orig(self, *args, **kwargs))
        return calls[-1]

    PageAlloc.scavenge_one = counted
    try:
        yield calls
    finally:
        PageAlloc.scavenge_one = orig


def test_presets():
    """The presets the rest of this file checks by behaviour."""
    assert pagealloc.MODES == ("go1.14", "unlocked", "locked") and BASELINE_MODE == "go1.14"
    # (background scavenger holds the lock, FreeOSMemory holds the lock)
    assert LOCKED_SITES == {"go1.14": (False, True), "unlocked": (False, False), "locked": (True, True)}


@TRACES
@given(rows=traces(gcs=False, free_os_memory=False))
def test_free_os_memory_lock_sections(rows):
    """A FreeOSMemory row, the background scavenger idle (no GC has paced it): go1.14 and
    locked take the lock once and hold it over the whole release; unlocked takes it once
    for the reset and then once per scavenge step, each a critical section of its own."""
    frees = [r for r in rows if r[1] == "free"]
    base = {m: replay(rows, m) for m in pagealloc.MODES}
    ts = rows[-1][0] + 1
    with_fos = rows + [(ts, "free_os_memory", 0, 0, 0)]
    with scavenge_steps() as steps:
        unlocked = replay(with_fos, "unlocked")
    fos = {"go1.14": replay(with_fos, "go1.14"), "locked": replay(with_fos, "locked"), "unlocked": unlocked}
    released = fos["go1.14"].released_forced_bytes
    assert {r.released_forced_bytes for r in fos.values()} == {released}
    assert all(r.released_background_bytes == 0 for r in fos.values())
    for m in ("go1.14", "locked"):
        assert fos[m].lock_acquisitions_mutator - base[m].lock_acquisitions_mutator == 1
    assert same_replay(fos["go1.14"], fos["locked"])
    releasing = sum(1 for r in steps if r)
    assert steps and steps[-1] == 0 and releasing == len(steps) - 1  # steps until one finds nothing
    assert fos["unlocked"].lock_acquisitions_mutator - base["unlocked"].lock_acquisitions_mutator >= 1 + len(steps)
    start = max(ts, base["go1.14"].makespan_ns)  # when the mutator gets to the row
    release_ns = fos["go1.14"].makespan_ns - start  # nothing but releasing takes time
    assert fos["unlocked"].makespan_ns - start == release_ns  # the same madvise calls, in steps
    assert (release_ns > 0) == (released > 0)
    assert fos["go1.14"].lock_hold_max_ns == release_ns  # one critical section: the whole release
    if releasing >= 2:
        assert fos["unlocked"].lock_hold_max_ns < release_ns
    event(f"FreeOSMemory released in {min(releasing, 3)}{'+' if releasing > 3 else ''} steps")
    assert frees or released == 0


@TRACES
@given(rows=traces(gcs=True, free_os_memory=False))
def test_background_scavenger_unlocked_in_go114(rows):
    """Without FreeOSMemory rows, go1.14 and unlocked differ in nothing: both scavenge in the
    background with the lock dropped.  (Goals are derived for the gc rows without one.)"""
    go114, unlocked = replay(rows, "go1.14"), replay(rows, "unlocked")
    assert same_replay(go114, unlocked)
    assert go114.gc_goal_derived == sum(1 for r in rows if r[1] == "gc" and r[4] == 0)
    event("background released" if go114.released_background_bytes else "background idle")


@TRACES
@given(rows=traces(gcs=False, free_os_memory=True))
def test_idle_background_scavenger_go114_is_locked(rows):
    """Without GCs the background scavenger never runs, and go1.14 and locked, which differ
    only in it, differ in nothing; all three presets release the same through FreeOSMemory."""
    results = {m: replay(rows, m) for m in pagealloc.MODES}
    assert same_replay(results["go1.14"], results["locked"])
    assert len({r.released_forced_bytes for r in results.values()}) == 1
    assert all(r.released_background_bytes == 0 and r.lock_acquisitions_scavenger == 0 for r in results.values())


def test_background_scavenger_fooled_in_go114_not_in_locked():
    """test_replay.py's constructed trace: the background scavenger's slow path, unlocked, is
    fooled by an allocation in its window under go1.14 (as under unlocked); locked is not."""
    results = {m: pagealloc.replay(frame(FOOLED), m, cost_model=SLOW_SCANS) for m in pagealloc.MODES}
    assert results["go1.14"].scavenger_fooled == results["unlocked"].scavenger_fooled == 1
    assert results["locked"].scavenger_fooled == 0
    assert same_replay(results["go1.14"], results["unlocked"])


@TRACES
@given(rows=traces(gcs=True, free_os_memory=True), mode=st.sampled_from(pagealloc.MODES))
def test_replays_are_deterministic(rows, mode):
    first, second = replay(rows, mode), replay(rows, mode)
    assert first.deterministic() == second.deterministic()
    assert first.mode == mode
