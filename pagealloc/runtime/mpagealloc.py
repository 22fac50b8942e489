"""The page allocator: chunk bitmaps plus a radix tree of free-run summaries.

Go counterpart: runtime/mpagealloc.go (pallocSum, packPallocSum,
mergeSummaries, pageAlloc.init/grow/update/allocRange/find/alloc/free).
Lock contract, as in Go: every PageAlloc method that reads or writes the
bitmaps, the summaries or the search address requires the heap lock
(``p.heap_lock``) — except the scavenger's optimistic reads, which are
documented in mgcscavenge.  The methods do not check the lock themselves (Go
doesn't either); ``scavenge`` does, because its lock flag is its contract.

Layout.  Go maps one flat array per summary level over the whole 48-bit
address space and a two-level sparse array of chunks.  Here both are dicts
keyed by index, holding entries only for the address space that was grown:
a missing summary entry reads as 0 (no free pages), exactly what Go's
zero-filled, never-grown memory reads as.

Summaries are maintained lazily.  ``update`` records which chunks changed;
the leaf summaries and their ancestors are recomputed (``sync_summaries``)
before anything reads them.  The values any reader sees are the ones Go's
eager ``update`` would have stored; the allocation fast path never needs
them because it searches the chunk bitmap directly (see ``alloc``).
"""

from __future__ import annotations

from bisect import bisect_left, insort

from pagealloc.runtime.fitindex import MAX_INDEXED, FitIndex
from pagealloc.runtime.lock_futex import HeapLock
from pagealloc.runtime.malloc import (
    PAGE_SHIFT,
    ARENA_BASE_OFFSET,
    HEAP_ADDR_BITS,
    MASK64,
    PAGE_SIZE,
    PHYS_HUGE_PAGE_SIZE,
    PHYS_PAGE_SIZE,
)
from pagealloc.runtime.mgcscavenge import Scavenger
from pagealloc.runtime.mpagecache import PageCacheAllocator
from pagealloc.runtime.mpagealloc_64bit import (
    LEVEL_BITS,
    LEVEL_LOG_PAGES,
    LEVEL_SHIFT,
    LOG_MAX_PACKED_VALUE,
    LOG_PALLOC_CHUNK_BYTES,
    MAX_PACKED_VALUE,
    MAX_SEARCH_ADDR,
    MIN_SCAV_ADDR,
    PALLOC_CHUNK_BYTES,
    PALLOC_CHUNK_PAGES,
    SUMMARY_LEVELS,
    chunk_base,
    chunk_index,
    linear,
)
from pagealloc.runtime.mpallocbits import CHUNK_MASK, NOT_FOUND, PallocData, find, range_mask, summarize
from pagealloc.runtime.mranges import AddrRange, AddrRanges

_FIELD_MASK = MAX_PACKED_VALUE - 1
_ALL_FREE = 1 << 63  # pallocSum of a region whose three fields all equal 2**21
LEAF = SUMMARY_LEVELS - 1
_CHUNK_TO_L0_SHIFT = LEVEL_SHIFT[0] - LEVEL_SHIFT[LEAF]


# --- pallocSum ---------------------------------------------------------------


def pack_palloc_sum(start: int, max_: int, end: int) -> int:
    """Pack three 21-bit counts into one uint64.  Go: packPallocSum."""
    if max_ == MAX_PACKED_VALUE:
        return _ALL_FREE
    return (
        (start & _FIELD_MASK)
        | ((max_ & _FIELD_MASK) << LOG_MAX_PACKED_VALUE)
        | ((end & _FIELD_MASK) << (2 * LOG_MAX_PACKED_VALUE))
    )


def unpack_palloc_sum(p: int) -> tuple[int, int, int]:
    """(start, max, end) of a packed summary.  Go: pallocSum.unpack."""
    if p & _ALL_FREE:
        return MAX_PACKED_VALUE, MAX_PACKED_VALUE, MAX_PACKED_VALUE
    return p & _FIELD_MASK, (p >> LOG_MAX_PACKED_VALUE) & _FIELD_MASK, (p >> (2 * LOG_MAX_PACKED_VALUE)) & _FIELD_MASK


FREE_CHUNK_SUM = pack_palloc_sum(PALLOC_CHUNK_PAGES, PALLOC_CHUNK_PAGES, PALLOC_CHUNK_PAGES)


def merge_summaries(sums: list[int], log_max_pages_per_sum: int) -> int:
    """Merge consecutive summaries of 2**log_max_pages_per_sum pages each.  Go: mergeSummaries."""
    full = 1 << log_max_pages_per_sum
    start, max_, end = unpack_palloc_sum(sums[0])
    for i in range(1, len(sums)):
        si, mi, ei = unpack_palloc_sum(sums[i])
        if start == i * full:  # everything so far is free: the run continues
            start += si
        if end + si > max_:
            max_ = end + si
        if mi > max_:
            max_ = mi
        end = end + full if ei == full else ei
    return pack_palloc_sum(start, max_, end)


def addrs_to_summary_range(level: int, base: int, limit: int) -> tuple[int, int]:
    """Entries [lo, hi) of ``level`` covering [base, limit).  Go: addrsToSummaryRange."""
    lo = linear(base) >> LEVEL_SHIFT[level]
    hi = (linear(limit - 1) >> LEVEL_SHIFT[level]) + 1
    return lo, hi


# --- pageAlloc ---------------------------------------------------------------


class PageAlloc(Scavenger, PageCacheAllocator):
    """Go's pageAlloc: address-ordered first-fit page allocator with a scavenger.

    Methods are split over modules as Go splits them over files: this module
    has grow/update/alloc_range/find/alloc/free; mpagecache has
    alloc_to_cache; mgcscavenge has scavenge/scavenge_one and friends.
    """

    def __init__(
        self,
        heap_lock: HeapLock | None = None,
        *,
        phys_page_size: int = PHYS_PAGE_SIZE,
        phys_huge_page_size: int = PHYS_HUGE_PAGE_SIZE,
        test: bool = False,
    ):
        # Go: pageAlloc.init.
        self.heap_lock = heap_lock if heap_lock is not None else HeapLock()
        self.phys_page_size = phys_page_size
        self.phys_huge_page_size = phys_huge_page_size
        self.test = test  # Go's s.test: scavenging skips sysUnused and heap_released
        self.summary: list[dict[int, int]] = [{} for _ in range(SUMMARY_LEVELS)]
        self.chunks: dict[int, PallocData] = {}
        self.search_addr = MAX_SEARCH_ADDR
        self.scav_addr = MIN_SCAV_ADDR
        self.scav_released = 0
        self.start = 0
        self.end = 0
        self.in_use_ranges = AddrRanges()
        # Level-0 entries that cover grown memory, sorted: find's root scan
        # visits these instead of all 2**14 entries (the others are all 0).
        self._l0_keys: list[int] = []
        # Lazily maintained summaries: each chunk's unpacked leaf summary with
        # the bitmap it was computed from (recomputed when the bitmap is no
        # longer that value), and leaves whose ancestors in self.summary are stale.
        self._leaf: dict[int, tuple[int, tuple[int, int, int]]] = {}
        self._stale_parents: set[int] = set()
        self._fit = FitIndex(self.chunks)  # see find
        # sysUnused hook: called as sys_unused(addr, nbytes) when memory is
        # returned to the OS (not in test mode).  The heap model accounts it.
        self.sys_unused = None
        self.stats_chunks_scanned = 0  # chunks inspected by the scavenger's slow path

    # -- bookkeeping --

    def chunk_of(self, ci: int) -> PallocData:
        """Go: chunkOf."""
        return self.chunks[ci]

    def compare_search_addr_to(self, addr: int) -> int:
        """Sign of addr - searchAddr in the linearised space.  Go: compareSearchAddrTo."""
        a, s = linear(addr), linear(self.search_addr)
        return -1 if a < s else (1 if a > s else 0)

    def grow(self, base: int, size: int) -> None:
        """Make [base, base+size) known to the allocator as free, scavenged memory.

        Go: pageAlloc.grow (and sysGrow, whose only effect here is that the
        new summary entries exist).  Heap lock must be held.
        """
        limit = -(-(base + size) // PALLOC_CHUNK_BYTES) * PALLOC_CHUNK_BYTES
        base = base // PALLOC_CHUNK_BYTES * PALLOC_CHUNK_BYTES
        first_growth = self.start == 0
        start, end = chunk_index(base), chunk_index(limit)
        if first_growth or start < self.start:
            self.start = start
        if end > self.end:
            self.end = end
        self.in_use_ranges.add(AddrRange(base, limit))
        if self.compare_search_addr_to(base) < 0:
            self.search_addr = base
        for c in range(start, end):
            # Never-touched memory counts as scavenged.
            self.chunks[c] = PallocData(0, CHUNK_MASK)
            l0 = c >> _CHUNK_TO_L0_SHIFT
            i = bisect_left(self._l0_keys, l0)
            if i == len(self._l0_keys) or self._l0_keys[i] != l0:
                insort(self._l0_keys, l0)
        self._fit.grown(start, end)
        self.update(base, (limit - base) // PAGE_SIZE, True, False)

    def update(self, base: int, npages: int, contig: bool, alloc: bool) -> None:
        """Note that the bitmaps of [base, base+npages) changed.  Go: pageAlloc.update.

        Go recomputes the summaries here.  This model recomputes a chunk's
        summary when it is next read and its bitmap has changed (leaf,
        sync_summaries), which yields the same values, so the only work left
        here is raising the FitIndex bounds after a free (alloc=False).
        """
        sc = chunk_index(base)
        ec = chunk_index(base + npages * PAGE_SIZE - 1)
        if not alloc:
            for ci in range(sc, ec + 1):
                self._fit.touched(ci)

    def leaf(self, ci: int) -> tuple[int, int, int]:
        """Unpacked (start, max, end) summary of grown chunk ci.  Go: s.summary[len-1][ci]."""
        bits = self.chunks[ci].bits
        cached = self._leaf.get(ci)
        if cached is not None and cached[0] == bits:
            return cached[1]
        t = summarize(bits)
        self._leaf[ci] = (bits, t)
        if cached is None or cached[1] != t:
            self._stale_parents.add(ci)
        return t

    def sync_summaries(self) -> None:
        """Bring every level of the packed radix tree (self.summary) up to date."""
        for ci in self.chunks:
            self.leaf(ci)
        if not self._stale_parents:
            return
        changed = self._stale_parents
        self._stale_parents = set()
        leaf_level = self.summary[LEAF]
        for ci in changed:
            leaf_level[ci] = pack_palloc_sum(*self._leaf[ci][1])
        for level in range(LEAF - 1, -1, -1):
            child_bits = LEVEL_BITS[level + 1]
            children_level = self.summary[level + 1]
            log_pages = LEVEL_LOG_PAGES[level + 1]
            this_level = self.summary[level]
            parents = {i >> child_bits for i in changed}
            changed = set()
            for parent in parents:
                first = parent << child_bits
                kids = [children_level.get(first + k, 0) for k in range(1 << child_bits)]
                merged = merge_summaries(kids, log_pages)
                if this_level.get(parent, 0) != merged:
                    this_level[parent] = merged
                    changed.add(parent)
            if not changed:
                break

    def leaf_max(self, ci: int) -> int:
        """Longest free run of chunk ci per its summary.  Go: s.summary[len-1][ci].max()."""
        return self.leaf(ci)[1] if ci in self.chunks else 0

    # -- allocation --

    def alloc_range(self, base: int, npages: int) -> int:
        """Mark [base, base+npages) allocated; return the scavenged bytes in it.

        Go: pageAlloc.allocRange.  Heap lock must be held.
        """
        limit = base + npages * PAGE_SIZE - 1
        sc = ((base + ARENA_BASE_OFFSET) & MASK64) >> LOG_PALLOC_CHUNK_BYTES
        ec = ((limit + ARENA_BASE_OFFSET) & MASK64) >> LOG_PALLOC_CHUNK_BYTES
        si = (base % PALLOC_CHUNK_BYTES) >> PAGE_SHIFT
        ei = (limit % PALLOC_CHUNK_BYTES) >> PAGE_SHIFT
        chunks = self.chunks
        if sc == ec:
            chunk = chunks[sc]
            mask = range_mask(si, ei + 1 - si)
            scav = (chunk.scavenged & mask).bit_count()
            chunk.bits |= mask
            chunk.scavenged &= ~mask
        else:
            chunk = chunks[sc]
            scav = (chunk.scavenged >> si).bit_count()
            chunk.alloc_range(si, PALLOC_CHUNK_PAGES - si)
            for c in range(sc + 1, ec):
                chunk = chunks[c]
                scav += chunk.scavenged.bit_count()
                chunk.alloc_all()
            chunk = chunks[ec]
            scav += (chunk.scavenged & range_mask(0, ei + 1)).bit_count()
            chunk.alloc_range(0, ei + 1)
        return scav * PAGE_SIZE

    def find(self, npages: int) -> tuple[int, int]:
        """Address-ordered first fit for npages at or above searchAddr.  Go: pageAlloc.find.

        Returns (addr, new_search_addr); addr is 0 when nothing fits.  Heap
        lock must be held.

        Go walks its radix tree from the root because a native scan of
        millions of possible chunks would be slow.  Here the same first-fit
        rule is applied to the leaf summaries of the grown chunks in address
        order — the leaf level of Go's walk, with runs carried across
        adjacent chunks and broken by gaps — which is faster in Python for
        the heaps we replay.  The address is the one Go returns (the tests
        and the differential runs against the real runtime check this, and
        find_radix is Go's walk kept as a cross-check).  The new search
        address is the first free page seen: never above it, so, like Go's
        (which may be lower), it keeps every page below searchAddr allocated;
        searchAddr is only a hint and no result depends on its exact value.

        Requests of up to 255 pages ask the FitIndex (pagealloc/fitindex.py),
        which skips chunks that cannot hold the run at C speed; larger ones
        scan the leaf summaries.
        """
        search_addr = self.search_addr
        search_ci = ((search_addr + ARENA_BASE_OFFSET) & MASK64) >> LOG_PALLOC_CHUNK_BYTES
        # New searchAddr: the first free page of searchAddr's chunk, which is
        # at or above searchAddr; if that chunk is full, leave it unchanged.
        search_chunk = self.chunks.get(search_ci)
        search_bits = CHUNK_MASK if search_chunk is None else search_chunk.bits
        if search_bits == CHUNK_MASK:
            new_search = search_addr
        else:
            lowest_free = ~search_bits & (search_bits + 1)
            new_search = chunk_base(search_ci) + (lowest_free.bit_length() - 1) * PAGE_SIZE
        if npages <= MAX_INDEXED:
            addr = self._fit.first_fit(npages, search_ci)
            return (addr, new_search) if addr else (0, MAX_SEARCH_ADDR)
        # Larger runs: scan the leaf summaries, Go's leaf-level rule, jumping
        # over chunks that the FitIndex shows cannot start such a run.
        order = self._fit.order
        carry = 0  # free pages at the top of the previous, adjacent chunk
        k = bisect_left(order, search_ci)
        while k < len(order):
            if carry == 0:
                k = self._fit.next_large_candidate(k)
                if k is None:
                    break
            ci = order[k]
            start, max_, end = self.leaf(ci)
            if carry + start >= npages:
                return chunk_base(ci) - carry * PAGE_SIZE, new_search
            if max_ >= npages:
                return chunk_base(ci) + find(self.chunks[ci].bits, npages, 0)[0] * PAGE_SIZE, new_search
            carry = carry + PALLOC_CHUNK_PAGES if start == PALLOC_CHUNK_PAGES else end
            k += 1
            if k < len(order) and order[k] != ci + 1:
                carry = 0  # a gap in the address space breaks the run
        return 0, MAX_SEARCH_ADDR

    def find_radix(self, npages: int) -> tuple[int, int]:
        """Go's pageAlloc.find, line for line: first fit by walking the radix tree.

        Returns (addr, new_search_addr) exactly as Go computes them.  Not on
        the allocation path (see find); the invariant checker and the tests
        use it to prove the summary tree finds what find finds.
        """
        self.sync_summaries()
        summary = self.summary
        search_lin = linear(self.search_addr)
        ff_base, ff_bound = 0, (1 << HEAP_ADDR_BITS) - 1  # firstFree window

        def found_free(addr: int, size: int) -> None:
            nonlocal ff_base, ff_bound
            if ff_base <= addr and addr + size - 1 <= ff_bound:
                ff_base, ff_bound = addr, addr + size - 1
            elif not (addr + size - 1 < ff_base or addr > ff_bound):
                raise RuntimeError("bad summary data: range partially overlaps the first-free window")

        i = 0
        for level in range(SUMMARY_LEVELS):
            entries_per_block = 1 << LEVEL_BITS[level]
            log_max_pages = LEVEL_LOG_PAGES[level]
            shift = LEVEL_SHIFT[level]
            i <<= LEVEL_BITS[level]
            j0 = 0
            search_idx = search_lin >> shift
            if search_idx & ~(entries_per_block - 1) == i:
                j0 = search_idx & (entries_per_block - 1)
            entries = summary[level]
            if level == 0:
                # Only grown entries can be non-zero; a gap between them is a
                # run of zero entries, which breaks any streak.
                js = self._l0_keys[bisect_left(self._l0_keys, j0) :]
            else:
                js = range(j0, entries_per_block)
            base = size = 0
            prev_j = None
            descended = False
            for j in js:
                if prev_j is not None and j != prev_j + 1:
                    size = 0
                prev_j = j
                s = entries.get(i + j, 0)
                if s == 0:
                    size = 0
                    continue
                found_free((i + j) << shift, (1 << log_max_pages) * PAGE_SIZE)
                s_start, s_max, s_end = unpack_palloc_sum(s)
                if size + s_start >= npages:
                    if size == 0:
                        base = j << log_max_pages
                    size += s_start
                    break
                if s_max >= npages:
                    i += j
                    descended = True
                    break
                if size == 0 or s_start < (1 << log_max_pages):
                    size = s_end
                    base = ((j + 1) << log_max_pages) - size
                    continue
                size += 1 << log_max_pages
            if descended:
                continue
            if size >= npages:
                addr = ((i << shift) - ARENA_BASE_OFFSET + base * PAGE_SIZE) & MASK64
                return addr, (ff_base - ARENA_BASE_OFFSET) & MASK64
            if level == 0:
                return 0, MAX_SEARCH_ADDR
            raise RuntimeError(f"bad summary data at level {level}, npages={npages}")

        ci = i
        j, search_idx = find(self.chunks[ci].bits, npages, 0)
        if j == NOT_FOUND:
            raise RuntimeError(f"bad summary data: chunk {ci} has no run of {npages} pages")
        addr = chunk_base(ci) + j * PAGE_SIZE
        search_addr = chunk_base(ci) + search_idx * PAGE_SIZE
        found_free(linear(search_addr), chunk_base(ci + 1) - search_addr)
        return addr, (ff_base - ARENA_BASE_OFFSET) & MASK64

    def alloc(self, npages: int) -> tuple[int, int]:
        """Allocate npages; return (addr, scavenged bytes), (0, 0) if nothing fits.

        Go: pageAlloc.alloc.  Heap lock must be held.  The fast path searches
        the chunk holding searchAddr directly; Go first consults that chunk's
        summary, and the two agree because a chunk whose summary max is below
        npages has no run of npages from any word, and pages below searchAddr
        are always allocated.
        """
        search_addr = self.search_addr
        ci = ((search_addr + ARENA_BASE_OFFSET) & MASK64) >> LOG_PALLOC_CHUNK_BYTES
        if ci >= self.end:
            return 0, 0
        addr = 0
        page_idx = (search_addr % PALLOC_CHUNK_BYTES) >> PAGE_SHIFT
        if PALLOC_CHUNK_PAGES - page_idx >= npages:
            # Go reads the chunk's summary max here; the FitIndex bound is the
            # cheap stand-in (an upper bound, so no fit is ever skipped).
            k = self._fit.pos.get(ci)
            bound = self._fit.bounds[2 * k + 1] if k is not None else 0
            if bound >= npages or bound == MAX_INDEXED:
                j, sidx = find(self.chunks[ci].bits, npages, page_idx)
                if j != NOT_FOUND:
                    base = chunk_base(ci)
                    addr = base + j * PAGE_SIZE
                    new_search = base + sidx * PAGE_SIZE
                elif npages <= MAX_INDEXED:
                    # The bound was stale: tighten it so find skips this chunk.
                    self._fit.bounds[2 * k + 1] = npages - 1
        if addr == 0:
            addr, new_search = self.find(npages)
            if addr == 0:
                if npages == 1:
                    # Not even one page: the heap is exhausted.
                    self.search_addr = MAX_SEARCH_ADDR
                return 0, 0
        si = (addr % PALLOC_CHUNK_BYTES) >> PAGE_SHIFT
        if si + npages <= PALLOC_CHUNK_PAGES:  # one chunk: alloc_range's common case, inline
            chunk = self.chunks[((addr + ARENA_BASE_OFFSET) & MASK64) >> LOG_PALLOC_CHUNK_BYTES]
            mask = ((1 << npages) - 1) << si
            scav = (chunk.scavenged & mask).bit_count() * PAGE_SIZE
            chunk.bits |= mask
            chunk.scavenged &= ~mask
        else:
            scav = self.alloc_range(addr, npages)
        if (new_search + ARENA_BASE_OFFSET) & MASK64 > (self.search_addr + ARENA_BASE_OFFSET) & MASK64:
            self.search_addr = new_search  # Go: compareSearchAddrTo(searchAddr) > 0
        return addr, scav

    def free(self, base: int, npages: int) -> None:
        """Return [base, base+npages) to the heap.  Go: pageAlloc.free.  Heap lock must be held."""
        if (base + ARENA_BASE_OFFSET) & MASK64 < (self.search_addr + ARENA_BASE_OFFSET) & MASK64:
            self.search_addr = base  # Go: compareSearchAddrTo(base) < 0
        # Go has a separate npages == 1 fast path; one chunk is one mask here.
        limit = base + npages * PAGE_SIZE - 1
        sc = ((base + ARENA_BASE_OFFSET) & MASK64) >> LOG_PALLOC_CHUNK_BYTES
        ec = ((limit + ARENA_BASE_OFFSET) & MASK64) >> LOG_PALLOC_CHUNK_BYTES
        si = (base % PALLOC_CHUNK_BYTES) >> PAGE_SHIFT
        ei = (limit % PALLOC_CHUNK_BYTES) >> PAGE_SHIFT
        chunks = self.chunks
        if sc == ec:
            chunk = chunks[sc]
            bits = chunk.bits & ~(((1 << (ei + 1 - si)) - 1) << si)
            chunk.bits = bits
            # Tell the FitIndex how long the free run holding them now is.
            lo = (bits & ((1 << si) - 1)).bit_length()
            above = bits >> (ei + 1)
            hi = ei + (above & -above).bit_length() if above else PALLOC_CHUNK_PAGES
            self._fit.freed(sc, lo, hi)
            return
        chunks[sc].free(si, PALLOC_CHUNK_PAGES - si)
        for c in range(sc + 1, ec):
            chunks[c].free_all()
        chunks[ec].free(0, ei + 1)
        for c in range(sc, ec + 1):
            self._fit.touched(c)

    # -- test-facing API (Go: export_test.go) --

    @classmethod
    def for_test(cls, chunks: dict, scav: dict | None = None, **kwargs) -> "PageAlloc":
        """Go: NewPageAlloc.  chunks/scav map chunk index -> [(first_page, npages), ...].

        Chunks are grown in ascending index order (Go iterates a map; the
        resulting state does not depend on the order).  Scavenged bits start
        cleared except for the ranges in ``scav``; allocated pages are never
        scavenged.  Test mode: scavenging does not call sys_unused.
        """
        kwargs.setdefault("test", True)
        p = cls(**kwargs)
        for ci in sorted(chunks):
            addr = chunk_base(ci)
            p.grow(addr, PALLOC_CHUNK_BYTES)
            chunk = p.chunks[ci]
            chunk.scavenged = 0
            if scav is not None:
                for first, n in scav.get(ci, ()):
                    if n:
                        chunk.scavenged_set_range(first, n)
            p.reset_scavenge_addr()
            for first, n in chunks[ci]:
                if n:
                    chunk.alloc_range(first, n)
            p.update(addr, PALLOC_CHUNK_PAGES, False, False)
        return p

    def bounds(self) -> tuple[int, int]:
        """(start, end) chunk indices.  Go: PageAlloc.Bounds."""
        return self.start, self.end

    def in_use(self) -> list[tuple[int, int]]:
        """[(base, limit), ...] of grown address space.  Go: PageAlloc.InUse."""
        return [(r.base, r.limit) for r in self.in_use_ranges.ranges]

    def chunk_bits(self, ci: int) -> tuple[int, int] | None:
        """(alloc bits, scavenged bits) of chunk ci as 512-bit ints, or None.  Go: PallocData."""
        c = self.chunks.get(ci)
        return None if c is None else (c.bits, c.scavenged)
