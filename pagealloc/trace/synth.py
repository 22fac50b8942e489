"""Synthetic traces: deterministic, vectorised generators of memory shapes.

``pagealloc synth SCENARIO -o OUT --events N --seed S`` writes exactly N
events; the same arguments (with the same pagealloc, numpy and pyarrow)
give a byte-identical file.  Every scenario draws, with numpy and one
``numpy.random.Generator(PCG64(seed))``, a stream of spans -- alloc time,
free time (or never), size in pages -- and ``_assemble`` merges allocs and
frees by time, keeps the first N events, and adds GC cycles: a ``gc`` row
(mark termination) whenever the pages allocated since the last GC would
have taken the heap to its goal (GOGC=100: next goal = max(4 MiB, 2 x live
heap)), preceded by a ``gc_start`` row (the mark phase starts) where the
heap passed 90% of the way from the last GC's heap to the goal, roughly
Go's trigger; its ``value`` is the live heap then (Go's heap_live, which
startCycle keeps 1 MiB below the goal).  A ``free_os_memory`` row follows a GC of its own, as
``debug.FreeOSMemory`` runs one first (its gc_start and gc rows sit just
before it), so its scavenge sees that GC's pacing and scavenge-address
reset.  No Python loop runs per event, so 10 M events take seconds.

Span ids are sequence numbers (unique over the whole trace), not addresses;
``kind`` is 0 (unknown); ``p`` is a random P in [0, GOMAXPROCS) for alloc,
free and free_os_memory rows (the goroutine calling FreeOSMemory runs on a
P) and -1 for gc_start and gc rows (the runtime's own work, no P's page
cache).
"""

from __future__ import annotations

import numpy as np

from pagealloc.trace.format import (
    OP_ALLOC,
    OP_FREE,
    OP_FREE_OS_MEMORY,
    OP_GC,
    OP_GC_START,
    PAGE_SIZE,
    TraceWriter,
    make_metadata,
)

MS = 1_000_000  # ns
MIN_GOAL_PAGES = (4 << 20) // PAGE_SIZE  # Go's minimum heap goal, 4 MiB
GOMAXPROCS = 4  # the Ps of every scenario but those in SCENARIO_PROCS
TRIGGER = 0.9  # gc_start once the heap is this far from the last GC's live heap to the goal


def _npages(rng: np.random.Generator, m: int, large: float = 0.02) -> np.ndarray:
    """Span sizes: mostly 1-page small-object spans, some size-class spans of
    2-10 pages, and a ``large`` fraction of large-object spans (11-128 pages,
    log-uniform); about 3 pages on average."""
    u = rng.random(m)
    small = rng.integers(2, 11, m)
    big = np.exp(rng.uniform(np.log(11), np.log(129), m)).astype(np.int64)
    return np.where(u < 1 - large - 0.2, 1, np.where(u < 1 - large, small, big))


def churn(rng, m, live_spans=3000, gap_ns=4000):
    """Steady churn: Poisson allocs, exponential lifetimes, a flat live heap."""
    alloc = np.cumsum(rng.exponential(gap_ns, m)).astype(np.int64)
    free = alloc + 1 + rng.exponential(live_spans * gap_ns, m).astype(np.int64)
    return alloc, free, _npages(rng, m), None


def burst_idle(rng, m, burst_allocs=6000, gap_ns=1000, release_ns=20 * MS, idle_ns=300 * MS, survive=0.05):
    """Bursts that grow the heap, a release that shrinks it, then idle time
    (no events) in which only a scavenger could return memory."""
    i = np.arange(m)
    cycle, j = i // burst_allocs, i % burst_allocs
    burst_ns = burst_allocs * gap_ns
    period = burst_ns + release_ns + idle_ns
    start = cycle * period
    alloc = start + j * gap_ns + rng.integers(0, gap_ns, m)
    free = start + burst_ns + rng.integers(1, release_ns, m)
    # A few spans survive into the next cycles: a long-lived heap floor.
    survivors = rng.random(m) < survive
    later = rng.integers(1, 6, m) * period
    free = np.where(survivors, free + later, free)
    return alloc, free, _npages(rng, m), None


def fragmentation(rng, m, gap_ns=10_000, pin=0.4, life_ns=3 * MS, pin_life_ns=150 * MS):
    """Large objects (5-128 pages) with scattered lifetimes, interleaved with
    small long-lived spans that pin the holes between them."""
    alloc = np.cumsum(rng.exponential(gap_ns, m)).astype(np.int64)
    pinned = rng.random(m) < pin
    large = np.exp(rng.uniform(np.log(5), np.log(129), m)).astype(np.int64)
    npages = np.where(pinned, 1, large)
    life = rng.lognormal(np.log(life_ns), 1.0, m)
    pin_life = rng.exponential(pin_life_ns, m)
    free = alloc + 1 + np.where(pinned, pin_life, life).astype(np.int64)
    return alloc, free, npages, None


def growth_storm(rng, m, first=1000, growth=1.6, largest=10000, gap_ns=300, hold_ns=5 * MS, calm_ns=50 * MS):
    """Storms of fast allocation in which the heap balloons (each storm
    bigger than the last, up to ``largest`` spans), then collapses."""
    sizes = []
    size = float(first)
    while sum(sizes) < m:
        sizes.append(int(size))
        size = min(size * growth, largest)
    sizes = np.array(sizes, dtype=np.int64)
    ends = np.cumsum(sizes)
    storm = np.searchsorted(ends, np.arange(m), side="right")
    j = np.arange(m) - (ends - sizes)[storm]
    storm_ns = sizes * gap_ns
    starts = np.concatenate([[0], np.cumsum(storm_ns + hold_ns + calm_ns)[:-1]])
    alloc = starts[storm] + j * gap_ns + rng.integers(0, gap_ns, m)
    free = starts[storm] + storm_ns[storm] + rng.integers(1, hold_ns, m)
    return alloc, free, _npages(rng, m, large=0.04), None


def freeosmemory(rng, m, phase_allocs=6000, gap_ns=2000, release_ns=5 * MS, background=0.2):
    """Working sets built and dropped in phases; each phase ends with a
    ``debug.FreeOSMemory()``; a little steady churn runs underneath."""
    i = np.arange(m)
    phase, j = i // phase_allocs, i % phase_allocs
    phase_ns = phase_allocs * gap_ns + release_ns + 2 * MS
    alloc = phase * phase_ns + j * gap_ns + rng.integers(0, gap_ns, m)
    end = phase * phase_ns + phase_allocs * gap_ns
    free = end + rng.integers(1, release_ns, m)
    churny = rng.random(m) < background
    free = np.where(churny, alloc + 1 + rng.exponential(50 * MS, m).astype(np.int64), free)
    fom = np.arange(phase[-1] + 1) * phase_ns + phase_allocs * gap_ns + release_ns + MS
    return alloc, free, _npages(rng, m), fom


def contention(rng, m, gap_ns=2000, phase_ns=4 * MS, drop=0.85):
    """golang/go#57069's shape: 16 Ps allocate large objects (16-128 pages,
    above the page cache, so every one takes the heap lock) at a high rate
    while most of the heap dies (it shrinks) and, mid-phase, a
    ``debug.FreeOSMemory()`` releases everything free -- with the heap lock
    held throughout in Go 1.14, so every other P that allocates waits."""
    alloc = np.cumsum(rng.exponential(gap_ns, m)).astype(np.int64)
    phase = alloc // phase_ns
    dies = rng.random(m) < drop
    phase_end = (phase + 1) * phase_ns
    # Most spans die in a burst in the first half of the next phase (the heap
    # shrinks while the Ps keep allocating); the rest live one or two more.
    free = np.where(dies, phase_end + rng.integers(1, phase_ns // 2, m), phase_end + rng.integers(1, 3, m) * phase_ns)
    npages = np.exp(rng.uniform(np.log(16), np.log(65), m)).astype(np.int64)
    fom = np.arange(1, phase[-1] + 2) * phase_ns + phase_ns // 2 + MS // 2  # just after the burst of frees
    return alloc, free, npages, fom


SCENARIOS = {
    "churn": churn,
    "burst-idle": burst_idle,
    "fragmentation": fragmentation,
    "growth-storm": growth_storm,
    "freeosmemory": freeosmemory,
    "contention": contention,
}
SCENARIO_PROCS = {"contention": 16}


def synthesize(scenario: str, events: int, seed: int) -> dict[str, np.ndarray]:
    """Exactly ``events`` events of ``scenario`` as numpy columns."""
    rng = np.random.Generator(np.random.PCG64(seed))
    alloc, free, npages, fom = SCENARIOS[scenario](rng, max(events, 1))
    return _assemble(rng, events, alloc, free, npages, fom, SCENARIO_PROCS.get(scenario, GOMAXPROCS))


def _assemble(rng, n, alloc, free, npages, fom, procs=GOMAXPROCS) -> dict[str, np.ndarray]:
    m = len(alloc)
    span = np.arange(m, dtype=np.uint64)
    freed = free >= 0
    fom = np.empty(0, np.int64) if fom is None else fom
    ts = np.concatenate([alloc, free[freed], fom])
    op = np.concatenate([np.full(m, OP_ALLOC, np.uint8), np.full(int(freed.sum()), OP_FREE, np.uint8), np.full(len(fom), OP_FREE_OS_MEMORY, np.uint8)])
    spans = np.concatenate([span, span[freed], np.zeros(len(fom), np.uint64)])
    pages = np.concatenate([npages, npages[freed], np.zeros(len(fom), np.int64)])
    order = np.argsort(ts, kind="stable")[:n]  # allocs before frees before free_os_memory on ties
    ts, op, spans, pages = ts[order], op[order], spans[order], pages[order]

    start_at, gc_at, goals = _gc_cycles(op, pages)
    # Insert each cycle's gc_start after row start_at and its gc after row gc_at
    # (np.insert places rows given the same index in the order given).
    where = np.concatenate([start_at, gc_at]) + 1
    ins = np.argsort(where, kind="stable")
    where = where[ins]
    row_of = np.concatenate([start_at, gc_at])[ins]
    ts = np.insert(ts, where, ts[row_of])[:n]
    op = np.insert(op, where, np.concatenate([np.full(len(start_at), OP_GC_START), np.full(len(gc_at), OP_GC)])[ins])[:n]
    spans = np.insert(spans, where, 0)[:n]
    pages = np.insert(pages, where, 0)[:n]
    live = np.cumsum(np.where(op == OP_ALLOC, pages, 0) - np.where(op == OP_FREE, pages, 0))  # before the inserts
    heap_live = (live[start_at] * PAGE_SIZE).astype(np.uint64) if len(start_at) else np.zeros(0, np.uint64)
    value = np.insert(np.zeros(len(order), np.uint64), where, np.concatenate([heap_live, goals])[ins])[:n]
    p = rng.integers(0, procs, len(ts)).astype(np.int32)
    p[(op == OP_GC) | (op == OP_GC_START)] = -1
    return {"ts": ts - ts[0] if len(ts) else ts, "op": op, "span": spans, "npages": pages, "p": p, "value": value}


def _gc_cycles(op: np.ndarray, pages: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows after which each GC cycle's mark starts and ends, and the goal (bytes) it sets.

    A cycle ends once the pages allocated since the previous one would have
    taken the heap to its goal, or just before a free_os_memory row (its
    forced GC, which starts marking right there); the new goal is
    max(4 MiB, 2 x live).  The mark of a natural cycle starts TRIGGER of the
    way there.  One Python iteration per GC cycle, not per event.
    """
    allocated = np.cumsum(np.where(op == OP_ALLOC, pages, 0))
    live = np.cumsum(np.where(op == OP_ALLOC, pages, 0) - np.where(op == OP_FREE, pages, 0))
    forced = np.flatnonzero(op == OP_FREE_OS_MEMORY)
    starts, at, goals = [], [], []
    goal, live_then, done, k, last = MIN_GOAL_PAGES, 0, 0, 0, -1
    while True:
        distance = max(goal - live_then, 1)
        i = int(np.searchsorted(allocated, done + distance))
        while k < len(forced) and forced[k] - 1 <= last:
            k += 1  # a FreeOSMemory right after a GC ends: no second one
        if k < len(forced) and forced[k] - 1 < i:
            i = s = int(forced[k]) - 1
            k += 1
            if i < 0:
                continue  # the trace opens with FreeOSMemory: nothing to collect yet
        elif i >= len(op):
            break
        else:
            s = max(int(np.searchsorted(allocated, done + int(distance * TRIGGER))), last + 1, 0)
            s = min(s, i)
        live_then, done, last = int(live[i]), int(allocated[i]), i
        goal = max(MIN_GOAL_PAGES, 2 * live_then)
        starts.append(s)
        at.append(i)
        goals.append(goal * PAGE_SIZE)
    as_array = lambda xs, t=np.int64: np.array(xs, dtype=t)  # noqa: E731
    return as_array(starts), as_array(at), as_array(goals, np.uint64)


def write_synthetic(path: str, scenario: str, events: int, seed: int, name: str | None = None) -> dict:
    """Generate and write a synthetic trace; return its metadata."""
    cols = synthesize(scenario, events, seed)
    meta = make_metadata(
        "synthetic",
        name=name or scenario,
        page_size=PAGE_SIZE,
        gomaxprocs=SCENARIO_PROCS.get(scenario, GOMAXPROCS),
        generator={"name": "pagealloc synth", "scenario": scenario, "events": events, "seed": seed},
    )
    with TraceWriter(path, meta) as w:
        w.write(**cols)
    return w.metadata
