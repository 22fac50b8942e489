"""The scavenger's half of the page allocator: finding free, unscavenged
memory from the top of the heap down and returning it to the OS.

Go counterpart: runtime/mgcscavenge.go as of Go 1.14 (CL 195699):
fillAligned, pallocData.hasScavengeCandidate / findScavengeCandidate,
pageAlloc.scavenge / scavengeOne / scavengeRangeLocked / resetScavengeAddr.
bgscavenge's pacing loop is here as a generator (the simulation runs it as
the background scavenger actor); gcPaceScavenger is MHeap.gc_pace_scavenger
in mheap.

Lock contract (the point of CL 195699):
  * scavenge(nbytes, locked=True) / scavenge_one(max, locked=True): the
    caller holds the heap lock throughout (heap growth, FreeOSMemory).
  * locked=False: the caller must NOT hold it; scavenge_one takes it and
    drops it itself, exactly where Go 1.14 does: around the fast path, then
    around each chunk of the slow path that looks promising.  Between those
    points it reads summaries and bitmaps without the lock ("optimistic"),
    so it can be fooled by a concurrent allocation and has to move on.

scavenge_one_steps is the same algorithm as a generator that yields LOCK
just before each lock acquisition and UNLOCKED just after each release; the
replay engine drives it to interleave the mutator at those points.
scavenge_one simply runs it to completion.
"""

from __future__ import annotations

from collections.abc import Generator

from pagealloc.runtime.lock_futex import LockError
from pagealloc.runtime.malloc import MAX_PHYS_PAGE_SIZE, PAGE_SIZE
from pagealloc.runtime.mpagealloc_64bit import (
    MIN_SCAV_ADDR,
    PALLOC_CHUNK_PAGES,
    chunk_base,
    chunk_index,
    chunk_page_index,
)
from pagealloc.runtime.mpallocbits import CHUNK_MASK, PallocData, range_mask
from pagealloc.runtime.mranges import AddrRange

MAX_PAGES_PER_PHYS_PAGE = MAX_PHYS_PAGE_SIZE // PAGE_SIZE  # 64
SCAVENGE_ALL = (1 << 64) - 1  # Go: ^uintptr(0)

# Yielded by scavenge_one_steps.
LOCK = "lock"  # about to take the heap lock
UNLOCKED = "unlocked"  # has just released it

_WORD = (1 << 64) - 1
# Per alignment m, a mask with every bit of each m-bit group set except its top bit.
_FILL_CONST = {
    2: 0x5555555555555555,
    4: 0x7777777777777777,
    8: 0x7F7F7F7F7F7F7F7F,
    16: 0x7FFF7FFF7FFF7FFF,
    32: 0x7FFFFFFF7FFFFFFF,
    64: 0x7FFFFFFFFFFFFFFF,
}
_FILL_CONST_512 = {m: sum(c << (64 * w) for w in range(PALLOC_CHUNK_PAGES // 64)) for m, c in _FILL_CONST.items()}


def _fill(x: int, m: int, c: int, mask: int) -> int:
    # Go's branch-free trick: a group becomes all ones iff any bit in it is set.
    x = mask & ~((((x & c) + c) | x) | c)  # top bit of each all-zero group
    return mask & ~((x - (x >> (m - 1))) | x)


def fill_aligned(x: int, m: int) -> int:
    """Set every m-aligned group of bits of uint64 x that has any bit set.  Go: fillAligned.

    m must be a power of two in [1, 64].
    """
    if m == 1:
        return x
    if m not in _FILL_CONST:
        raise ValueError("bad m value")
    return _fill(x, m, _FILL_CONST[m], _WORD)


def fill_aligned512(x: int, m: int) -> int:
    """fill_aligned applied to each of the eight words of a chunk bitmap at once."""
    if m == 1:
        return x
    return _fill(x, m, _FILL_CONST_512[m], CHUNK_MASK)


def _check_min(min_pages: int) -> None:
    if min_pages <= 0 or min_pages & (min_pages - 1):
        raise ValueError(f"min must be a non-zero power of 2 (min = {min_pages})")
    if min_pages > MAX_PAGES_PER_PHYS_PAGE:
        raise ValueError(f"min too large (min = {min_pages})")


def has_scavenge_candidate(m: PallocData, min_pages: int) -> bool:
    """Whether the chunk has a free, unscavenged, min-aligned run of min pages.

    Go: pallocData.hasScavengeCandidate.  Safe without the heap lock (the
    scavenger calls it optimistically); the answer may be stale.
    """
    _check_min(min_pages)
    return fill_aligned512(m.scavenged | m.bits, min_pages) != CHUNK_MASK


def find_scavenge_candidate(
    m: PallocData, search_idx: int, min_pages: int, max_pages: int, phys_huge_page_size: int = 2 << 20,
    phys_page_size: int = 4096,
) -> tuple[int, int]:
    """Highest free, unscavenged run at or below the word of search_idx: (start, npages).

    Go: pallocData.findScavengeCandidate.  The run is min-aligned, at most
    max pages (max rounded up to a multiple of min; 0 means min) unless that
    would split a huge page that the run otherwise covers, in which case it
    is extended down to the huge-page boundary.  (0, 0) when there is none.
    Heap lock must be held.
    """
    _check_min(min_pages)
    max_pages = min_pages if max_pages == 0 else -(-max_pages // min_pages) * min_pages
    filled = fill_aligned512(m.scavenged | m.bits, min_pages)
    window = range_mask(0, (search_idx // 64 + 1) * 64)
    cand = ~filled & window
    if not cand:
        return 0, 0
    end = cand.bit_length()  # one past the highest candidate page
    run = end - (filled & range_mask(0, end)).bit_length()
    size = min(run, max_pages)
    start = end - size
    if phys_huge_page_size > PAGE_SIZE and phys_huge_page_size > phys_page_size:
        # Don't break up a huge page that the free run covers entirely:
        # scavenge down to its bottom instead.
        per_huge = phys_huge_page_size // PAGE_SIZE
        huge_above = -(-start // per_huge) * per_huge
        if huge_above <= end:
            huge_below = start // per_huge * per_huge
            if huge_below >= end - run:
                size += start - huge_below
                start = huge_below
    return start, size


class Scavenger:
    """PageAlloc's scavenger methods (mixed into PageAlloc)."""

    stats_scav_fooled = 0  # slow-path chunks that looked promising unlocked but were not

    def reset_scavenge_addr(self) -> None:
        """Restart scavenging from the top of the heap.  Go: resetScavengeAddr.  Heap lock held."""
        self.scav_released = 0
        self.scav_addr = chunk_base(self.end) - 1

    def scavenge(self, nbytes: int, locked: bool) -> int:
        """Release up to nbytes (at least one physical page at a time); return bytes released.

        Go: pageAlloc.scavenge.  nbytes may be SCAVENGE_ALL.  See the module
        docstring for the lock contract.
        """
        released = 0
        while released < nbytes:
            r = self.scavenge_one(nbytes - released, locked)
            if r == 0:
                break
            released += r
        return released

    def scavenge_one(self, max_bytes: int, locked: bool) -> int:
        """Release one run of at most max_bytes (rounded up to whole pages); return bytes released.

        Go: pageAlloc.scavengeOne.  See the module docstring for the lock contract.
        """
        steps = self.scavenge_one_steps(max_bytes, locked)
        try:
            while True:
                next(steps)
        except StopIteration as done:
            return done.value

    def scavenge_one_steps(self, max_bytes: int, locked: bool) -> Generator[str, None, int]:
        """scavenge_one as a generator; yields LOCK / UNLOCKED at Go's lock points."""
        lock = self.heap_lock
        if locked and not lock.held:
            raise LockError("scavenge(locked=True) called without the heap lock")
        if not locked and lock.held:
            raise LockError("scavenge(locked=False) called with the heap lock held")

        max_pages = -(-max_bytes // PAGE_SIZE)
        min_pages = max(1, self.phys_page_size // PAGE_SIZE)

        if not locked:
            yield LOCK
            lock.lock()
        ci = chunk_index(self.scav_addr)
        if ci < self.start:
            if not locked:
                lock.unlock()
                yield UNLOCKED
            return 0

        # Fast path: the chunk holding scavAddr, searched from scavAddr down.
        if self.in_use_ranges.contains(self.scav_addr) and self.leaf_max(ci) >= min_pages:
            base, npages = self._find_scavenge_candidate(ci, chunk_page_index(self.scav_addr), min_pages, max_pages)
            if npages:
                self.scavenge_range_locked(ci, base, npages)
                if not locked:
                    lock.unlock()
                    yield UNLOCKED
                return npages * PAGE_SIZE

        # Slow path: walk the in-use ranges downward from scavAddr.
        while True:
            r = self._in_use_range_below(self.scav_addr)
            if r.size() == 0:
                break
            if not locked:
                lock.unlock()
                yield UNLOCKED
            bot, top = chunk_index(r.base), chunk_index(r.limit - 1)
            i = self._scan_for_candidate(top, bot, min_pages)
            if i >= bot:
                if not locked:
                    yield LOCK
                    lock.lock()
                base, npages = self._find_scavenge_candidate(i, PALLOC_CHUNK_PAGES - 1, min_pages, max_pages)
                if npages > 0:
                    self.scavenge_range_locked(i, base, npages)
                    if not locked:
                        lock.unlock()
                        yield UNLOCKED
                    return npages * PAGE_SIZE
                # Fooled: the chunk was allocated under us.  Skip past it and
                # look the range up again (we hold the lock now).
                self.stats_scav_fooled += 1
                self.scav_addr = chunk_base(i - 1) + PALLOC_CHUNK_PAGES * PAGE_SIZE - 1
                continue
            if not locked:
                yield LOCK
                lock.lock()
            self.scav_addr = r.base - 1
        self.scav_addr = MIN_SCAV_ADDR
        if not locked:
            lock.unlock()
            yield UNLOCKED
        return 0

    def _scan_for_candidate(self, top: int, bot: int, min_pages: int) -> int:
        """The highest chunk in [bot, top] that looks scavengeable, or bot-1: scavengeOne's slow-path
        loop (Go: the loop over the in-use range's chunks).  Optimistic, unlocked reads: they may be
        stale by the time the caller locks.  Counts every chunk it looks at in stats_chunks_scanned."""
        for i in range(top, bot - 1, -1):
            self.stats_chunks_scanned += 1
            if self.leaf_max(i) < min_pages:
                continue
            chunk = self.chunks.get(i)
            if chunk is not None and has_scavenge_candidate(chunk, min_pages):
                return i
        return bot - 1

    def _find_scavenge_candidate(self, ci: int, search_idx: int, min_pages: int, max_pages: int) -> tuple[int, int]:
        """(start, npages) of chunk ci's candidate.  Go: pallocData.findScavengeCandidate.  Heap lock held."""
        return find_scavenge_candidate(self.chunks[ci], search_idx, min_pages, max_pages,
                                       self.phys_huge_page_size, self.phys_page_size)

    def _in_use_range_below(self, addr: int) -> AddrRange:
        """The in-use range holding or below addr, clipped to end at addr+1 (Go: getInUseRange)."""
        ranges = self.in_use_ranges
        top = ranges.find_succ(addr)
        if top == 0:
            return AddrRange(0, 0)
        r = ranges.ranges[top - 1]
        if r.limit > addr + 1:
            r = AddrRange(r.base, addr + 1)
        return r

    def scavenge_range_locked(self, ci: int, base: int, npages: int) -> None:
        """Mark pages [base, base+npages) of chunk ci scavenged and release them.

        Go: pageAlloc.scavengeRangeLocked.  Heap lock must be held (in Go the
        madvise happens under it, which is what makes locked scavenging stall
        allocators).  Moves scavAddr to just below the range.
        """
        self.chunks[ci].scavenged |= range_mask(base, npages)
        addr = chunk_base(ci) + base * PAGE_SIZE
        self.scav_addr = addr - 1
        if self.test:
            return
        if self.sys_unused is not None:
            self.sys_unused(addr, npages * PAGE_SIZE)


# --- the background scavenger goroutine --------------------------------------

SLEEP = "sleep"  # (SLEEP, ns): sleep; the engine sends back the ns actually slept
PARK = "park"  # park until woken (by a GC's pacing update)

SCAVENGE_PERCENT = 1  # of one CPU
APPROX_CRIT_NS_PER_PHYSICAL_PAGE = 10_000
MAX_CRIT_NS = 10_000_000
# Go writes ``const minFraction = 1 / 1000``: an untyped integer constant
# division, so it is 0 and the floor never applies (golang/go fixed it later).
MIN_FRACTION = 1 // 1000
EWMA_ALPHA = 0.5


def bgscavenge(heap, locked: bool, scavenge_percent=SCAVENGE_PERCENT):
    """The background scavenger's loop, as a generator.  Go: bgscavenge.

    heap is a pagealloc.runtime.mheap.MHeap; heap.clock.nanotime() is the
    time (Go: nanotime()), which the simulation keeps current.
    Yields LOCK / UNLOCKED around heap-lock critical sections, (SLEEP, ns,
    crit) and PARK; the engine sends the ns actually slept back for SLEEP.

    Each iteration releases one physical page (more when a free huge page
    can go whole), timing it as crit, then sleeps so that crit is 1% of a
    CPU, corrected by an EWMA of the fraction achieved (Go's pacing,
    including the 10 us-per-page fallback when crit reads 0 and the 10 ms cap).

    locked=False is Go 1.14: scavenge_one(physPageSize, false) takes and
    drops the lock itself.  locked=True is the comparison mode: the
    scavenger holds the lock around a locked scavenge_one.
    ``scavenge_percent`` is Go's scavengePercent (1, % of one CPU), a knob
    for sweeps.  Go's scavengeCostRatio is 0 on linux, so crit is not scaled.
    """
    lock, pages, nanotime = heap.lock, heap.pages, heap.clock.nanotime
    ideal_fraction = scavenge_percent / 100.0
    ewma = ideal_fraction
    yield PARK  # started parked, woken by the first pacing update
    while True:
        yield LOCK
        lock.lock()
        if heap.go_heap_retained() <= heap.scavenge_goal:
            lock.unlock()
            yield UNLOCKED
            yield PARK
            continue
        lock.unlock()
        yield UNLOCKED
        start = nanotime()
        if locked:
            yield LOCK
            lock.lock()
            released = pages.scavenge_one(heap.phys_page_size, True)
            lock.unlock()
            yield UNLOCKED
        else:
            released = yield from pages.scavenge_one_steps(heap.phys_page_size, False)
        crit = float(nanotime() - start)
        if released == 0:
            yield PARK
            continue
        if heap.recorded_crits is not None:  # not Go: the diagnostic replay's recorded crit
            crit = float(next(heap.recorded_crits, crit))
        if crit <= 0:
            crit = APPROX_CRIT_NS_PER_PHYSICAL_PAGE * (released // heap.phys_page_size)
        crit = min(crit, MAX_CRIT_NS)
        adjust = ewma / ideal_fraction
        slept = yield (SLEEP, int(adjust * crit / ideal_fraction), int(crit))  # crit: for the simulation's figures
        fraction = max(crit / (crit + slept), MIN_FRACTION)
        ewma = EWMA_ALPHA * fraction + (1 - EWMA_ALPHA) * ewma


# Go declares these two as methods of pallocData in mgcscavenge.go, not in
# mpallocbits.go.  Binding them here keeps Go's split and keeps the imports
# one way (mgcscavenge -> mpallocbits).  runtime/__init__ imports this
# module, so the methods exist whenever PallocData does.
PallocData.has_scavenge_candidate = has_scavenge_candidate
PallocData.find_scavenge_candidate = find_scavenge_candidate
