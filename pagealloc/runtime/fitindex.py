"""A byte-per-chunk index that lets first fit skip chunks at C speed.

Not a Go file.  Go makes pageAlloc.find fast with its radix tree of
summaries, walked in native code.  Walked in Python, that tree (or a loop
over the leaf summaries) costs microseconds per chunk, and first fit on a
fragmented heap visits many chunks.  This index keeps, for every grown chunk
in address order, two bytes that are *upper bounds* (capped at 255):

  max_bound[k]       longest free run inside chunk k
  straddle_bound[k]  free pages at the top of chunk k-1 plus at the bottom of
                     chunk k (0 when k-1 is not the adjacent chunk)

and finds the first chunk whose bound admits npages with a compiled
byte-class regex, which scans in C.  A candidate is then verified against
the real bitmap; a bound found stale is made exact and the scan resumes.
Allocation only shrinks free runs, so bounds stay valid without any work;
frees raise them (PageAlloc calls ``freed`` / ``touched``).  The index only
decides which chunks are worth verifying, never what is found, so the
result is the same first fit Go's tree walk yields.  Requests above 255
pages are rare and use PageAlloc's plain scan.
"""

from __future__ import annotations

import re
from bisect import bisect_left

from pagealloc.runtime.malloc import ARENA_BASE_OFFSET, MASK64, PAGE_SIZE
from pagealloc.runtime.mpagealloc_64bit import LOG_PALLOC_CHUNK_BYTES, PALLOC_CHUNK_PAGES, chunk_base
from pagealloc.runtime.mpallocbits import CHUNK_MASK, longest_run, run_starts

MAX_INDEXED = 255
_AT_LEAST = [None] + [re.compile(b"[\\x%02x-\\xff]" % n) for n in range(1, MAX_INDEXED + 1)]


def _bottom_free(bits: int) -> int:
    """Free pages at the bottom of a chunk (a summary's start)."""
    return (bits & -bits).bit_length() - 1 if bits else PALLOC_CHUNK_PAGES


def _top_free(bits: int) -> int:
    """Free pages at the top of a chunk (a summary's end)."""
    return PALLOC_CHUNK_PAGES - bits.bit_length()


class FitIndex:
    """Upper bounds on free runs per chunk, for PageAlloc.find.

    The bounds are interleaved in one bytearray in address order:
    bounds[2k] is the straddle bound into the k-th grown chunk and
    bounds[2k+1] its max bound, so one regex search finds the first
    candidate: a run inside chunk k comes before one crossing from k into k+1.
    """

    __slots__ = ("chunks", "order", "pos", "bounds")

    def __init__(self, chunks: dict) -> None:
        self.chunks = chunks  # PageAlloc.chunks, shared
        self.order: list[int] = []  # chunk indices, ascending
        self.pos: dict[int, int] = {}
        self.bounds = bytearray()

    def grown(self, first: int, end: int) -> None:
        """Chunks [first, end) were just grown (they are free).

        Growth is almost always above every existing chunk (arenas are
        handed out upward), which appends; anything else rebuilds.
        """
        if self.order and first <= self.order[-1]:
            self.rebuild()
            return
        k0 = len(self.order)
        self.order.extend(range(first, end))
        for k in range(k0, len(self.order)):
            self.pos[self.order[k]] = k
        self.bounds.extend(bytes(2 * (end - first)))
        for k in range(k0, len(self.order)):
            self._exact(k)

    def rebuild(self) -> None:
        """Recompute everything from the bitmaps."""
        self.order = sorted(self.chunks)
        self.pos = {ci: k for k, ci in enumerate(self.order)}
        self.bounds = bytearray(2 * len(self.order))
        for k in range(len(self.order)):
            self._exact(k)

    def max_bound(self, ci: int) -> int:
        return self.bounds[2 * self.pos[ci] + 1]

    def _exact(self, k: int) -> None:
        """Make both bounds of position k exact."""
        run = longest_run(CHUNK_MASK ^ self.chunks[self.order[k]].bits)
        self.bounds[2 * k + 1] = run if run < MAX_INDEXED else MAX_INDEXED
        self._exact_straddle(k)

    def _exact_straddle(self, k: int) -> None:
        order = self.order
        if k >= len(order):
            return
        if k == 0 or order[k - 1] != order[k] - 1:
            self.bounds[2 * k] = 0
            return
        both = _top_free(self.chunks[order[k - 1]].bits) + _bottom_free(self.chunks[order[k]].bits)
        self.bounds[2 * k] = both if both < MAX_INDEXED else MAX_INDEXED

    def freed(self, ci: int, run_lo: int, run_hi: int) -> None:
        """Pages were freed in chunk ci; they now lie in the free run [run_lo, run_hi)."""
        k = self.pos[ci]
        run = run_hi - run_lo
        if run > self.bounds[2 * k + 1]:
            self.bounds[2 * k + 1] = run if run < MAX_INDEXED else MAX_INDEXED
        if run_lo == 0:
            self._exact_straddle(k)
        if run_hi == PALLOC_CHUNK_PAGES:
            self._exact_straddle(k + 1)

    def touched(self, ci: int) -> None:
        """Chunk ci's bitmap changed in some way: recompute its bounds."""
        k = self.pos.get(ci)
        if k is None:
            return
        self._exact(k)
        self._exact_straddle(k + 1)

    def next_large_candidate(self, k: int) -> int | None:
        """First position >= k where a run of more than 255 pages may start, or None.

        Such a run either lies inside one chunk (max bound 255) or crosses
        into the next chunk (straddle bound 255 there, or the next chunk is
        entirely free), so it always touches a saturated bound.
        """
        m = _AT_LEAST[MAX_INDEXED].search(self.bounds, 2 * k + 1)
        if m is None:
            return None
        x = m.start()
        return x >> 1 if x & 1 else (x >> 1) - 1

    def first_fit(self, npages: int, from_ci: int) -> int:
        """Address of the first run of npages (<= 255) free pages starting in a chunk >= from_ci, or 0.

        Runs starting in the chunk below from_ci are not considered: the
        caller guarantees that chunk has no free pages (it is below searchAddr).
        """
        pattern = _AT_LEAST[npages]
        order, chunks, bounds = self.order, self.chunks, self.bounds
        x = 2 * bisect_left(order, from_ci) + 1
        while True:
            m = pattern.search(bounds, x)
            if m is None:
                return 0
            x = m.start()
            k = x >> 1
            if x & 1:  # inside chunk k: Go's pallocBits.find from page 0
                starts = run_starts(CHUNK_MASK ^ chunks[order[k]].bits, npages)
                if starts:  # chunk_base, inline
                    return ((order[k] << LOG_PALLOC_CHUNK_BYTES) - ARENA_BASE_OFFSET + ((starts & -starts).bit_length() - 1) * PAGE_SIZE) & MASK64
                bounds[x] = npages - 1  # stale bound: no run of npages here
            else:  # crossing from chunk k-1 into chunk k
                below = _top_free(chunks[order[k - 1]].bits)
                if below + _bottom_free(chunks[order[k]].bits) >= npages:
                    return chunk_base(order[k]) - below * PAGE_SIZE
                self._exact_straddle(k)
