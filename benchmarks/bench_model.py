"""Microbenchmarks of the page allocator model on prepared heaps.

The PageAlloc is the default engine's (the compiled core where it was built;
pagealloc.runtime.page_alloc_class), the Python mirror on commits before it.
The heaps are built in setup (not timed) with PageAlloc.for_test (Go's
NewPageAlloc; test mode, so scavenging does not call sys_unused): CHUNKS
chunks, each with a fixed pattern of allocated runs and holes.  Mutating
benchmarks run a batch of OPS operations per sample on a fresh heap
(number = 1: setup runs before each sample).  Commits without an API skip
(NotImplementedError in setup), as asv suites do.
"""

from __future__ import annotations

import random

CHUNKS = 16
OPS = 200


def _api(*names):
    """Names from the pagealloc package, or NotImplementedError."""
    try:
        import pagealloc
    except ImportError as e:
        raise NotImplementedError(f"no pagealloc: {e}") from None
    missing = [n for n in names if not hasattr(pagealloc, n)]
    if missing:
        raise NotImplementedError(f"pagealloc has no {', '.join(missing)} in this commit")
    return [getattr(pagealloc, n) for n in names]


def _fragmented_heap(scavenged: bool = False, free_chunks: int = 0):
    """CHUNKS chunks starting at BASE_CHUNK_IDX; in each, 16-page holes
    between 16-page allocated runs (seeded sizes vary the holes a little),
    then ``free_chunks`` free chunks (room for requests no hole fits, found
    after a search past the fragmentation).  ``scavenged=False``: all free
    pages unscavenged (work for the scavenger)."""
    PageAlloc, BASE_CHUNK_IDX, PALLOC_CHUNK_PAGES = _api("PageAlloc", "BASE_CHUNK_IDX", "PALLOC_CHUNK_PAGES")
    try:  # the default engine's PageAlloc (compiled where it was built), since the compiled core exists
        from pagealloc.runtime import page_alloc_class
    except ImportError:
        pass
    else:
        PageAlloc = page_alloc_class()
    if not hasattr(PageAlloc, "for_test"):
        raise NotImplementedError("PageAlloc.for_test is missing in this commit")
    rng = random.Random(1)
    chunks, scav = {}, {}
    for ci in range(BASE_CHUNK_IDX, BASE_CHUNK_IDX + CHUNKS):
        runs, i = [], 0
        while i < PALLOC_CHUNK_PAGES:
            n = min(rng.randint(8, 24), PALLOC_CHUNK_PAGES - i)
            runs.append((i, n))
            i += n + rng.randint(8, 24)
        chunks[ci] = runs
        scav[ci] = [(0, PALLOC_CHUNK_PAGES)] if scavenged else []
    for ci in range(BASE_CHUNK_IDX + CHUNKS, BASE_CHUNK_IDX + CHUNKS + free_chunks):
        chunks[ci] = []
        scav[ci] = [(0, PALLOC_CHUNK_PAGES)] if scavenged else []
    return PageAlloc.for_test(chunks, scav)


# Free chunks after the fragmented ones: OPS allocations of the largest size asked (64 pages) fit there.
ROOM_CHUNKS = OPS * 64 // 512 + 1


class _Batch:
    """A batch of OPS mutating operations per sample, each on a fresh heap:
    setup runs before every sample, and no warmup runs on a used one."""

    number = 1
    repeat = (10, 50, 10.0)
    warmup_time = 0


class Alloc(_Batch):
    """OPS allocations of npages on a fragmented heap (first fit, lock held)."""

    params = [[1, 8, 64]]
    param_names = ["npages"]

    def setup(self, npages):
        self.p = _fragmented_heap(free_chunks=ROOM_CHUNKS)

    def time_alloc(self, npages):
        p = self.p
        with p.heap_lock:
            for _ in range(OPS):
                p.alloc(npages)


class Free(_Batch):
    """OPS frees of npages-page spans allocated in setup (lock held)."""

    params = [[1, 8, 64]]
    param_names = ["npages"]

    def setup(self, npages):
        p = self.p = _fragmented_heap(free_chunks=ROOM_CHUNKS)
        with p.heap_lock:
            self.spans = [p.alloc(npages)[0] for _ in range(OPS)]
        self.spans = [a for a in self.spans if a]

    def time_free(self, npages):
        p = self.p
        with p.heap_lock:
            for addr in self.spans:
                p.free(addr, npages)


class Find:
    """pageAlloc.find for npages on a fragmented heap (read-only)."""

    params = [[1, 16, 64, 512]]
    param_names = ["npages"]

    def setup(self, npages):
        self.p = _fragmented_heap()
        if not hasattr(self.p, "find"):
            raise NotImplementedError("PageAlloc.find is missing in this commit")

    def time_find(self, npages):
        p = self.p
        with p.heap_lock:
            p.find(npages)


class ScavengeOne(_Batch):
    """OPS scavenge_one calls of at most max_pages on a heap whose free pages
    are all unscavenged, locked (caller holds the heap lock) or unlocked
    (scavenge_one takes and drops it itself, as Go 1.14's scavengeOne)."""

    params = [["unlocked", "locked"], [1, 64]]  # the lock flag of scavenge_one, not a replay preset
    param_names = ["mode", "max_pages"]

    def setup(self, mode, max_pages):
        (PAGE_SIZE,) = _api("PAGE_SIZE")
        p = self.p = _fragmented_heap()
        if not hasattr(p, "scavenge_one"):
            raise NotImplementedError("PageAlloc.scavenge_one is missing in this commit")
        with p.heap_lock:
            p.reset_scavenge_addr()
        self.nbytes = max_pages * PAGE_SIZE

    def time_scavenge_one(self, mode, max_pages):
        p, n = self.p, self.nbytes
        if mode == "locked":
            with p.heap_lock:
                for _ in range(OPS):
                    p.scavenge_one(n, True)
        else:
            for _ in range(OPS):
                p.scavenge_one(n, False)


class FillAligned:
    """Go's BenchmarkFillAligned: fill_aligned over 1000 random uint64 words."""

    params = [[1, 2, 4, 8, 16, 32, 64]]
    param_names = ["m"]

    def setup(self, m):
        (self.fill_aligned,) = _api("fill_aligned")
        rng = random.Random(m)
        # Sparse words, as a chunk's scavenged|alloc bitmap often is.
        self.words = [rng.getrandbits(64) & rng.getrandbits(64) & rng.getrandbits(64) for _ in range(1000)]

    def time_fill_aligned(self, m):
        f = self.fill_aligned
        for x in self.words:
            f(x, m)
