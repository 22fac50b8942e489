"""The compiled PageAlloc and the Python mirror agree, operation by operation.

Hypothesis generates op streams — alloc (1 to 1,500 pages), free of whole or
partial allocations, grow at random chunk-aligned spots (below, between and
above what is grown), allocToCache with allocations from and flushes of the
caches, scavenge locked and unlocked (driven step by step, with the mutator
allocating and freeing at the unlocked points, so the scavenger can be
fooled; or, with nothing to interleave, run to its end: the compiled core's
C loop, with the same lock acquisitions), resetScavengeAddr — and runs each on both engines.  After every op
the returns and the whole state must be identical: every chunk's bitmaps,
every summary level, searchAddr, scavAddr, bounds, in-use ranges, the page
caches and the counters the replay prices (stats_chunks_scanned,
stats_scav_fooled).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pagealloc import BASE_CHUNK_IDX, PAGE_SIZE, PALLOC_CHUNK_BYTES, chunk_base
from pagealloc.runtime.engines import mpagealloc_compiled, page_alloc_class
from pagealloc.runtime.invariants import check_page_alloc
from pagealloc.runtime.mgcscavenge import UNLOCKED

pytestmark = pytest.mark.skipif(mpagealloc_compiled is None, reason="the compiled core was not built")

SPAN = 48  # chunks grow within [BASE_CHUNK_IDX, BASE_CHUNK_IDX + SPAN)


def state(p) -> dict:
    p.sync_summaries()
    return {
        "chunks": {ci: p.chunk_bits(ci) for ci in p.chunks},
        "order": list(p.chunks),
        "summary": [{k: v for k, v in level.items() if v} for level in p.summary],
        "search_addr": p.search_addr,
        "scav_addr": p.scav_addr,
        "bounds": p.bounds(),
        "in_use": p.in_use(),
        "stats_chunks_scanned": p.stats_chunks_scanned,
        "stats_scav_fooled": p.stats_scav_fooled,
    }


class Twin:
    """One PageAlloc per engine, fed the same ops; ``do`` returns what both returned."""

    def __init__(self, phys: int, huge: int, first: int, nchunks: int):
        self.ps = [page_alloc_class(e)(phys_page_size=phys, phys_huge_page_size=huge) for e in ("python", "compiled")]
        self.released = [[], []]
        for k, p in enumerate(self.ps):
            p.sys_unused = lambda addr, n, k=k: self.released[k].append((addr, n))
        self.grown: set[int] = set()
        self.live: list[tuple[int, int]] = []
        self.caches: list[list] = []  # [python cache, compiled cache]
        self.grow(first, nchunks)

    def both(self, f):
        out = [f(p, k) for k, p in enumerate(self.ps)]
        assert out[0] == out[1], out
        return out[0]

    def grow(self, first: int, n: int) -> None:
        new = [BASE_CHUNK_IDX + c for c in range(first, min(first + n, SPAN))]
        new = new[: next((i for i, c in enumerate(new) if c in self.grown), len(new))]
        if not new:
            return
        self.grown.update(new)

        def grow(p, k):
            with p.heap_lock:
                p.grow(chunk_base(new[0]), len(new) * PALLOC_CHUNK_BYTES)

        self.both(grow)

    def alloc(self, n: int) -> None:
        def alloc(p, k):
            with p.heap_lock:
                return p.alloc(n)

        addr, _ = self.both(alloc)
        if addr:
            self.live.append((addr, n))

    def free(self, k: int, m: int, top: bool) -> None:
        if not self.live:
            return
        base, n = self.live.pop(k % len(self.live))
        m = n if m == 0 or m >= n else m
        fbase = base + (n - m) * PAGE_SIZE if top else base
        if m < n:
            self.live.append((base, n - m) if top else (base + m * PAGE_SIZE, n - m))

        def free(p, _):
            with p.heap_lock:
                p.free(fbase, m)

        self.both(free)

    def cache(self) -> None:
        def to_cache(p, k):
            with p.heap_lock:
                return p.alloc_to_cache()

        got = [to_cache(p, k) for k, p in enumerate(self.ps)]
        assert [(c.base, c.cache, c.scav) for c in got[0:1]] == [(c.base, c.cache, c.scav) for c in got[1:2]]
        if got[0].cache:
            self.caches.append(got)

    def cache_alloc(self, k: int, n: int) -> None:
        if not self.caches:
            return
        pair = self.caches[k % len(self.caches)]
        out = [c.alloc(n) for c in pair]
        assert out[0] == out[1], out
        if out[0][0]:
            self.live.append((out[0][0], n))
        if pair[0].cache == 0:
            self.caches.remove(pair)

    def cache_flush(self, k: int) -> None:
        if not self.caches:
            return
        pair = self.caches.pop(k % len(self.caches))
        for c, p in zip(pair, self.ps):
            with p.heap_lock:
                c.flush(p)

    def scavenge(self, nbytes: int, locked: bool, interleave: list[tuple[int, int]]) -> None:
        if locked:
            def scav(p, k):
                with p.heap_lock:
                    return p.scavenge(nbytes, True)

            self.both(scav)
            return
        if not interleave:  # nothing runs at the unlocked points: scavenge to its end (the core's C loop)
            self.both(lambda p, k: (p.scavenge(nbytes, False), p.heap_lock.acquisitions))
            return
        # Unlocked: step both scavengers in lock step; at each unlocked point
        # the mutator runs one op from ``interleave`` (an alloc or a free).
        gens = [p.scavenge_one_steps(nbytes, False) for p in self.ps]
        todo = list(interleave)
        while True:
            steps = []
            for g in gens:
                try:
                    steps.append(("step", next(g)))
                except StopIteration as done:
                    steps.append(("done", done.value))
            assert steps[0] == steps[1], steps
            if steps[0][0] == "done":
                return
            if steps[0][1] == UNLOCKED and todo:
                kind, x = todo.pop()
                if kind:
                    self.alloc(x)
                else:
                    self.free(x, 0, False)

    def reset_scav(self) -> None:
        def reset(p, k):
            with p.heap_lock:
                p.reset_scavenge_addr()

        self.both(reset)

    def check(self) -> None:
        a, b = (state(p) for p in self.ps)
        for key in a:
            assert a[key] == b[key], f"{key} differs"
        assert self.released[0] == self.released[1]
        assert [(c.base, c.cache, c.scav) for c, _ in self.caches] == [(c.base, c.cache, c.scav) for _, c in self.caches]


sizes = st.one_of(st.integers(1, 16), st.integers(17, 300), st.integers(301, 1500))
ops = st.one_of(
    st.tuples(st.just("alloc"), sizes),
    st.tuples(st.just("alloc"), st.integers(1, 8)),
    st.tuples(st.just("free"), st.integers(0, 1 << 16), st.integers(0, 40), st.booleans()),
    st.tuples(st.just("grow"), st.integers(0, SPAN - 1), st.integers(1, 6)),
    st.tuples(st.just("cache")),
    st.tuples(st.just("cache_alloc"), st.integers(0, 1 << 16), st.integers(1, 12)),
    st.tuples(st.just("cache_flush"), st.integers(0, 1 << 16)),
    st.tuples(st.just("scavenge"), st.sampled_from([1, PAGE_SIZE, 1 << 20, 8 << 20, (1 << 64) - 1]), st.booleans(),
              st.lists(st.tuples(st.booleans(), st.integers(1, 600)), max_size=4)),
    st.tuples(st.just("reset_scav")),
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(
    phys=st.sampled_from([4096, 8192, 65536]),
    huge=st.sampled_from([0, 2 << 20]),
    first=st.integers(0, SPAN - 1),
    nchunks=st.integers(1, 6),
    stream=st.lists(ops, min_size=20, max_size=150),
)
def test_compiled_and_python_page_alloc_agree_op_by_op(_invariants_always_on, phys, huge, first, nchunks, stream):
    t = Twin(phys, huge, first, nchunks)
    t.check()
    for op in stream:
        getattr(t, op[0])(*op[1:])
        t.check()
    for p in t.ps:  # the invariants, now rather than when the test ends: 500 examples' heaps need not be kept
        check_page_alloc(p)
        _invariants_always_on.remove(p)
