"""Synthetic traces: deterministic, vectorised generators of memory shapes.

``pagealloc synth SCENARIO -o OUT --events N --seed S`` writes exactly N
events; the same arguments (with the same pagealloc, numpy and pyarrow)
give a byte-identical file.  Every scenario draws, with numpy and one
``numpy.random.Generator(PCG64(seed))``, a stream of spans -- alloc time,
free time (or never), size in pages -- and ``_assemble`` merges allocs and
frees by time, keeps the first N events, and adds a ``gc`` row whenever the
pages allocated since the last GC would have taken the heap to its goal
(GOGC=100: next goal = max(4 MiB, 2 x live heap)).  No Python loop runs per
event, so 10 M events take seconds.

Span ids are sequence numbers (unique over the whole trace), not addresses;
``kind`` is 0 (unknown); ``p`` is a random P in [0, GOMAXPROCS) for alloc
and free rows and -1 for gc and free_os_memory rows.
"""

from __future__ import annotations

import numpy as np

from pagealloc.trace.format import OP_ALLOC, OP_FREE, OP_FREE_OS_MEMORY, OP_GC, PAGE_SIZE, TraceWriter, make_metadata

MS = 1_000_000  # ns
MIN_GOAL_PAGES = (4 << 20) // PAGE_SIZE  # Go's minimum heap goal, 4 MiB
GOMAXPROCS = 4


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


SCENARIOS = {
    "churn": churn,
    "burst-idle": burst_idle,
    "fragmentation": fragmentation,
    "growth-storm": growth_storm,
    "freeosmemory": freeosmemory,
}


def synthesize(scenario: str, events: int, seed: int) -> dict[str, np.ndarray]:
    """Exactly ``events`` events of ``scenario`` as numpy columns."""
    rng = np.random.Generator(np.random.PCG64(seed))
    alloc, free, npages, fom = SCENARIOS[scenario](rng, max(events, 1))
    return _assemble(rng, events, alloc, free, npages, fom)


def _assemble(rng, n, alloc, free, npages, fom) -> dict[str, np.ndarray]:
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

    gc_at, goals = _gc_cycles(op, pages)
    ts = np.insert(ts, gc_at + 1, ts[gc_at])[:n]
    op = np.insert(op, gc_at + 1, OP_GC)[:n]
    spans = np.insert(spans, gc_at + 1, 0)[:n]
    pages = np.insert(pages, gc_at + 1, 0)[:n]
    value = np.insert(np.zeros(len(order), np.uint64), gc_at + 1, goals)[:n]
    p = rng.integers(0, GOMAXPROCS, len(ts)).astype(np.int32)
    p[(op == OP_GC) | (op == OP_FREE_OS_MEMORY)] = -1
    return {"ts": ts - ts[0] if len(ts) else ts, "op": op, "span": spans, "npages": pages, "p": p, "value": value}


def _gc_cycles(op: np.ndarray, pages: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows after which a GC ends, and the heap goal (bytes) it sets.

    A cycle ends once the pages allocated since the previous one would
    have taken the heap to its goal; the new goal is max(4 MiB, 2 x live).
    One Python iteration per GC cycle, not per event.
    """
    allocated = np.cumsum(np.where(op == OP_ALLOC, pages, 0))
    live = np.cumsum(np.where(op == OP_ALLOC, pages, 0) - np.where(op == OP_FREE, pages, 0))
    at, goals = [], []
    goal, live_then, done = MIN_GOAL_PAGES, 0, 0
    while True:
        i = int(np.searchsorted(allocated, done + max(goal - live_then, 1)))
        if i >= len(op):
            break
        live_then, done = int(live[i]), int(allocated[i])
        goal = max(MIN_GOAL_PAGES, 2 * live_then)
        at.append(i)
        goals.append(goal * PAGE_SIZE)
    return np.array(at, dtype=np.int64), np.array(goals, dtype=np.uint64)


def write_synthetic(path: str, scenario: str, events: int, seed: int, name: str | None = None) -> dict:
    """Generate and write a synthetic trace; return its metadata."""
    cols = synthesize(scenario, events, seed)
    meta = make_metadata(
        "synthetic",
        name=name or scenario,
        page_size=PAGE_SIZE,
        gomaxprocs=GOMAXPROCS,
        generator={"name": "pagealloc synth", "scenario": scenario, "events": events, "seed": seed},
    )
    with TraceWriter(path, meta) as w:
        w.write(**cols)
    return w.metadata
