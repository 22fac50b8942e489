"""The model's GC pacing of the scavenger against the real Go 1.14.6 runtime.

The probe (pacing_probe_test.go, run once by the ``pacing_probe`` fixture)
records, at every gcPaceScavenger of a Go 1.14.6 program that grows, shrinks,
collects and calls FreeOSMemory, what the pacing read (next_gc, last_next_gc,
heap_inuse, last_heap_inuse, heap_sys, heap_released, heap_marked) and the
goal it set (mheap_.scavengeGoal), and at each cycle's start the goal the
cycle runs with (next_gc after startCycle's raise) and heap_live.  The same
inputs go to the model's pacing, ``MHeap.gc_done(next_gc)`` with heap_inuse,
heap_sys and heap_released set to Go's, and every goal must be identical.
"""

from __future__ import annotations

import pytest

from pagealloc.runtime.malloc import MASK64
from pagealloc.runtime.mheap import (
    TRIGGER_RATIO_INIT,
    MHeap,
    gc_goal,
    heap_minimum,
    initial_next_gc,
)

pytestmark = pytest.mark.goracle

COMPARED = ("scavenge_goal", "last_next_gc", "last_heap_inuse", "next_gc")
MiB = 1 << 20


def model_heap(probe) -> MHeap:
    return MHeap(phys_page_size=probe.phys_page_size)


def pace(heap: MHeap, rec: dict) -> list[str]:
    """One GC's pacing on the model, from Go's inputs; the fields that differ from Go's."""
    heap.heap_inuse, heap.heap_sys, heap.heap_released = rec["heap_inuse"], rec["heap_sys"], rec["heap_released"]
    heap.gc_done(rec["next_gc"])
    return [f"{k}: model {getattr(heap, k)}, Go {rec[k]}" for k in COMPARED if getattr(heap, k) != rec[k]]


def describe(i: int, rec: dict, diffs: list[str]) -> str:
    inputs = ", ".join(f"{k} {rec[k]}" for k in ("next_gc", "last_next_gc", "heap_inuse", "heap_sys", "heap_released"))
    return f"GC {rec['numgc'] + 1} (record {i}; {inputs}): " + "; ".join(diffs)


def test_probe_starts_at_gcinit(pacing_probe):
    """Before the first GC: gcinit's faked heap_marked, its goal of 4,473,924 bytes and no
    scavenge goal, as the model's helpers and a fresh MHeap have them."""
    start, heap = pacing_probe.start, model_heap(pacing_probe)
    assert start["numgc"] == 0, "a GC ran before the probe started: the first GC would not be recorded"
    assert start["gcpercent"] == 100
    assert start["heap_marked"] == int(heap_minimum() / (1 + TRIGGER_RATIO_INIT)) == 2236962
    assert start["next_gc"] == initial_next_gc() == gc_goal(start["heap_marked"]) == heap.next_gc == 4473924
    assert start["gc_trigger"] == heap_minimum()
    assert start["last_next_gc"] == heap.last_next_gc == 0
    assert start["scavenge_goal"] == heap.scavenge_goal == MASK64


def test_every_gc_paces_once_in_gos_order(pacing_probe):
    """One cycle start and one pacing update per GC, from the program's first on.  Each cycle
    runs with the previous goal (gcinit's for the first) raised to heap_live + 1 MiB when it
    starts closer than that (startCycle), and paces with that goal as last_next_gc; each
    update follows the model's order (last_heap_inuse = heap_inuse now), with next_gc =
    gc_goal(heap_marked)."""
    recs, cycles = pacing_probe.records, pacing_probe.cycles
    assert [r["numgc"] for r in recs] == list(range(len(recs))), "not exactly one pacing update per GC"
    assert [c["numgc"] for c in cycles] == list(range(len(recs))), "not exactly one cycle start per GC"
    assert len(recs) >= 60, "the workload ran fewer GCs than it should"
    prev_next_gc = pacing_probe.start["next_gc"]
    for i, (c, r) in enumerate(zip(cycles, recs)):
        assert c["next_gc"] == max(prev_next_gc, c["heap_live"] + MiB), f"cycle {i}"
        assert r["last_next_gc"] == c["next_gc"], f"record {i}"
        assert r["gcpercent"] == 100
        assert r["last_heap_inuse"] == r["heap_inuse"], f"record {i}"
        assert r["next_gc"] == gc_goal(r["heap_marked"]), f"record {i}: gc_goal({r['heap_marked']})"
        prev_next_gc = r["next_gc"]
    assert recs[0]["last_next_gc"] == pacing_probe.start["next_gc"], "the first GC did not pace with gcinit's goal"


def pace_all(pacing_probe, name: str, cycle_starts) -> tuple[list[int], str]:
    """Every GC paced on one MHeap, ``cycle_starts(heap, cycle, rec)`` first; note the count
    under ``name`` for the summary; return the GCs that differ and a report of them."""
    heap, diffs, goals = model_heap(pacing_probe), [], 0
    for i, (cycle, rec) in enumerate(zip(pacing_probe.cycles, pacing_probe.records)):
        cycle_starts(heap, cycle, rec)
        d = pace(heap, rec)
        if d:
            diffs.append((i, describe(i, rec, d)))
            goals += heap.scavenge_goal != rec["scavenge_goal"]
    n = len(pacing_probe.records)
    pacing_probe.compared[name] = (n - len(diffs), n, goals)
    return [i for i, _ in diffs], f"{len(diffs)} of {n} GCs paced differently:\n" + "\n".join(d for _, d in diffs[:10])


def test_scavenge_goals_identical(pacing_probe):
    """Every GC: the model's scavenge goal, last_next_gc and last_heap_inuse are Go's, given
    the goal Go's cycle actually ran with (Go's last_next_gc; see the next tests)."""

    def run_with_gos_goal(heap, cycle, rec):
        heap.next_gc = rec["last_next_gc"]

    differ, report = pace_all(pacing_probe, "given Go's cycle goal", run_with_gos_goal)
    assert not differ, report
    goals = [r["scavenge_goal"] for r in pacing_probe.records]
    assert sum(g != MASK64 for g in goals) >= 5 and MASK64 in goals, "the workload no longer exercises both outcomes"


def raised(pacing_probe) -> list[bool]:
    """Per GC: whether startCycle raised the goal the cycle runs with (to heap_live + 1 MiB)."""
    prev = [pacing_probe.start["next_gc"]] + [r["next_gc"] for r in pacing_probe.records[:-1]]
    return [c["next_gc"] > p for c, p in zip(pacing_probe.cycles, prev)]


def test_pacing_chain_identical(pacing_probe):
    """The model's own chain, as a replay runs it: gc_start with Go's heap_live (a gc_start
    row's value), which raises the goal as startCycle does, then gc_done with Go's inputs.
    Every goal must be Go's."""
    differ, report = pace_all(pacing_probe, "along the model's own chain",
                              lambda heap, cycle, rec: heap.gc_start(cycle["heap_live"]))
    assert not differ, report
    assert sum(raised(pacing_probe)) >= 5, "the workload no longer has cycles whose goal startCycle raises"
