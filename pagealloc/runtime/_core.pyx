# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The compiled page allocator core: Go's pageAlloc in machine words.

Not a Go file by itself: it is the four .pxi files it includes, each the
compiled side of one Go file (and of the mirror module of the same name):

- _mpallocbits.pxi  runtime/mpallocbits.go   pallocBits as eight uint64 words
- _mpagealloc.pxi   runtime/mpagealloc.go    packed pallocSums per radix level,
                    the chunk arrays, grow/update/allocRange/find/alloc/free
- _mpagecache.pxi   runtime/mpagecache.go    pageCache, allocToCache
- _mgcscavenge.pxi  runtime/mgcscavenge.go   fillAligned, the candidate
                    searches, scavengeOne's chunk walk, scavengeRangeLocked's bookkeeping

``PageAllocCore`` here is the Python face of Go's ``pageAlloc`` struct; the
engine's ``PageAlloc`` (pagealloc/runtime/mpagealloc_compiled.py) subclasses
it with what stays Python: the generator that yields at the scavenger's lock
points and grow's in-use address ranges.  scavenge / scavenge_one run to
their end, calling the heap's sysUnused hook per release, are here (a C
loop).  Lock contract: as in Go and the mirror, every method needs the heap
lock held by the caller unless its docstring says otherwise; nothing here
checks it but scavenge / scavenge_one, as the mirror's do.

Results are identical to the Python mirror (pagealloc/runtime/mpagealloc.py)
operation by operation, state included (bitmaps, summaries, searchAddr,
scavAddr, counters); tests/runtime/test_engines_agree.py checks it.
"""

# The hash of the sources this module was built from (setup.py; see engines).
SOURCES_HASH = CORE_SOURCES_HASH

import operator

from pagealloc.runtime.lock_futex import LockError

include "_mpallocbits.pxi"
include "_mpagealloc.pxi"
include "_mpagecache.pxi"
include "_mgcscavenge.pxi"


cdef class ChunkView:
    """One grown chunk's bitmaps as 512-bit Python ints (the mirror's PallocData fields).

    Writing ``bits`` recomputes the chunk's summaries (the mirror's are
    recomputed lazily from whatever the bitmap holds, so they always agree).
    """

    cdef PageAllocCore owner
    cdef readonly uint64_t ci

    def __cinit__(self, PageAllocCore owner, uint64_t ci):
        self.owner = owner
        self.ci = ci

    cdef pallocData* _data(self) except NULL:
        cdef pallocData* d = chunk_of(&self.owner.s, self.ci)
        if d == NULL:
            raise KeyError(self.ci)
        return d

    @property
    def bits(self):
        return words_to_int(self._data().palloc_bits)

    @bits.setter
    def bits(self, value):
        int_to_words(value, self._data().palloc_bits)
        update(&self.owner.s, chunk_base(self.ci), PALLOC_CHUNK_PAGES)

    @property
    def scavenged(self):
        return words_to_int(self._data().scavenged)

    @scavenged.setter
    def scavenged(self, value):
        int_to_words(value, self._data().scavenged)

    def alloc_range(self, int i, int n):
        """Go: pallocData.allocRange."""
        cdef pallocData* d = self._data()
        bits_set_range(d.palloc_bits, i, n)
        bits_clear_range(d.scavenged, i, n)
        update(&self.owner.s, chunk_base(self.ci), PALLOC_CHUNK_PAGES)

    def free(self, int i, int n):
        """Go: pallocBits.free."""
        bits_clear_range(self._data().palloc_bits, i, n)
        update(&self.owner.s, chunk_base(self.ci), PALLOC_CHUNK_PAGES)

    def scavenged_set_range(self, int i, int n):
        """Go: pageBits.setRange on scavenged."""
        bits_set_range(self._data().scavenged, i, n)


cdef class ChunksView:
    """The grown chunks as a read-only mapping ci -> ChunkView, in growth order (the mirror's ``chunks`` dict)."""

    cdef PageAllocCore owner

    def __cinit__(self, PageAllocCore owner):
        self.owner = owner

    def __len__(self):
        return len(self.owner._order)

    def __contains__(self, ci):
        try:
            ci = operator.index(ci)  # any integer (numpy's too), as a dict key would match
        except TypeError:
            return False
        return 0 <= ci < (1 << MAX_CHUNKS_LOG) and chunk_of(&self.owner.s, ci) != NULL

    def __getitem__(self, ci):
        if ci not in self:
            raise KeyError(ci)
        return ChunkView(self.owner, ci)

    def get(self, ci, default=None):
        return self[ci] if ci in self else default

    def __iter__(self):
        return iter(list(self.owner._order))

    def keys(self):
        return list(self.owner._order)

    def values(self):
        return [ChunkView(self.owner, ci) for ci in self.owner._order]

    def items(self):
        return [(ci, ChunkView(self.owner, ci)) for ci in self.owner._order]


cdef class SummaryLevel:
    """One radix level of a PageAllocCore as a live mapping index -> packed pallocSum.

    Its keys are the entries that cover grown chunks (the mirror's dict keys);
    reads and writes go to the core's array (a test corrupting a summary
    corrupts the core's, as with the mirror's dicts)."""

    cdef PageAllocCore owner
    cdef int level

    def __cinit__(self, PageAllocCore owner, int level):
        self.owner = owner
        self.level = level

    def keys(self):
        shift = SUMMARY_LEVEL_BITS * (LEAF - self.level)
        return list(dict.fromkeys(ci >> shift for ci in self.owner._order))

    def __iter__(self):
        return iter(self.keys())

    def __len__(self):
        return len(self.keys())

    def __contains__(self, idx):
        return idx in self.keys()

    def __getitem__(self, idx):
        if idx not in self.keys():
            raise KeyError(idx)
        return self.owner.s.summary[self.level][<uint64_t>idx]

    def get(self, idx, default=None):
        return self[idx] if idx in self.keys() else default

    def __setitem__(self, idx, uint64_t value):
        if idx not in self.keys():
            raise KeyError(idx)
        self.owner.s.summary[self.level][<uint64_t>idx] = value

    def items(self):
        return [(k, self[k]) for k in self.keys()]

    def values(self):
        return [self[k] for k in self.keys()]

    def update(self, other):
        for k, v in dict(other).items():
            self[k] = v


cdef class PageAllocCore:
    """Go's pageAlloc struct and its hot methods, compiled.  See the module docstring."""

    cdef pageAlloc s
    cdef list _order  # grown chunk indices, in growth order (the mirror's dict order)
    # What scavenging asks per scavengeOne, as C fields rather than the subclass's __dict__ (set by
    # mpagealloc_compiled.PageAlloc): the heap lock, the in-use address ranges, the heap's sysUnused hook,
    # Go's s.test (scavenging skips sysUnused).
    cdef public object heap_lock, in_use_ranges, sys_unused
    cdef public bint test

    def __cinit__(self, *args, **kwargs):
        page_alloc_init(&self.s)
        self._order = []

    def __dealloc__(self):
        page_alloc_release(&self.s)

    # -- fields (Go: pageAlloc's) --

    @property
    def search_addr(self):
        return self.s.search_addr

    @search_addr.setter
    def search_addr(self, uint64_t v):
        self.s.search_addr = v

    @property
    def scav_addr(self):
        return self.s.scav_addr

    @scav_addr.setter
    def scav_addr(self, uint64_t v):
        self.s.scav_addr = v

    @property
    def start(self):
        return self.s.start

    @start.setter
    def start(self, uint64_t v):
        self.s.start = v

    @property
    def end(self):
        return self.s.end

    @end.setter
    def end(self, uint64_t v):
        self.s.end = v

    @property
    def phys_page_size(self):
        return self.s.phys_page_size

    @phys_page_size.setter
    def phys_page_size(self, uint64_t v):
        self.s.phys_page_size = v

    @property
    def phys_huge_page_size(self):
        return self.s.phys_huge_page_size

    @phys_huge_page_size.setter
    def phys_huge_page_size(self, uint64_t v):
        self.s.phys_huge_page_size = v

    @property
    def stats_chunks_scanned(self):
        """Chunks inspected by the scavenger's slow path (priced by the replay as chunk scans)."""
        return self.s.stats_chunks_scanned

    @stats_chunks_scanned.setter
    def stats_chunks_scanned(self, int64_t v):
        self.s.stats_chunks_scanned = v

    @property
    def chunks(self):
        """Grown chunk index -> ChunkView (bits / scavenged as 512-bit ints)."""
        return ChunksView(self)

    @property
    def summary(self):
        """The radix levels, each a live mapping {index: packed pallocSum} over the entries of grown chunks
        (the mirror's ``summary``, a list of dicts)."""
        return [SummaryLevel(self, level) for level in range(SUMMARY_LEVELS)]

    def _copy_core_from(self, PageAllocCore other):
        """Copy every bitmap, summary and address of other (for deepcopy)."""
        cdef uint64_t ci
        cdef pallocData* d
        self.s.search_addr = other.s.search_addr
        self.s.scav_addr = other.s.scav_addr
        self.s.start = other.s.start
        self.s.end = other.s.end
        self.s.phys_page_size = other.s.phys_page_size
        self.s.phys_huge_page_size = other.s.phys_huge_page_size
        self.s.stats_chunks_scanned = other.s.stats_chunks_scanned
        for c in other._order:
            ci = c
            grow_chunks(&self.s, ci, ci + 1)
            d = chunk_of(&self.s, ci)
            d[0] = chunk_of(&other.s, ci)[0]
            update(&self.s, chunk_base(ci), PALLOC_CHUNK_PAGES)
        self._order = list(other._order)

    # -- Go: mpagealloc.go --

    def chunk_of(self, ci):
        """Go: chunkOf."""
        return self.chunks[ci]

    def compare_search_addr_to(self, uint64_t addr):
        """Go: compareSearchAddrTo."""
        return compare_search_addr_to(&self.s, addr)

    def _grow_chunks(self, uint64_t start, uint64_t end):
        """The chunks [start, end) exist, free and scavenged (the chunk half of Go's grow)."""
        cdef uint64_t c
        for c in range(start, end):
            if chunk_of(&self.s, c) == NULL:
                self._order.append(c)
        grow_chunks(&self.s, start, end)

    def update(self, uint64_t base, uint64_t npages, contig=False, alloc=False):
        """Recompute the summaries of [base, base+npages).  Go: pageAlloc.update."""
        update(&self.s, base, npages)

    def leaf(self, uint64_t ci):
        """Unpacked (start, max, end) summary of grown chunk ci.  Go: s.summary[len-1][ci]."""
        if chunk_of(&self.s, ci) == NULL:
            raise KeyError(ci)
        cdef uint64_t p = self.s.summary[LEAF][ci]
        return sum_start(p), sum_max(p), sum_end(p)

    def sync_summaries(self):
        """Nothing to do: the compiled core updates its summaries eagerly, as Go does."""

    def leaf_max(self, uint64_t ci):
        """Longest free run of chunk ci per its summary.  Go: s.summary[len-1][ci].max()."""
        if chunk_of(&self.s, ci) == NULL:
            return 0
        return sum_max(self.s.summary[LEAF][ci])

    def alloc_range(self, uint64_t base, uint64_t npages):
        """Mark [base, base+npages) in use; return the scavenged bytes in it.  Go: pageAlloc.allocRange.

        Also updates the summaries (the mirror's are always current)."""
        require_chunks(&self.s, base, npages)
        cdef uint64_t scav = alloc_range(&self.s, base, npages)
        update(&self.s, base, npages)
        return scav * PAGE_SIZE

    def find(self, uint64_t npages):
        """(addr, new searchAddr) of the first fit for npages; (0, MAX_SEARCH_ADDR) if none.  Go: pageAlloc.find."""
        cdef uint64_t new_search = find_search_addr(&self.s)
        cdef uint64_t addr = find(&self.s, npages)
        if addr == 0:
            return 0, MAX_SEARCH_ADDR
        return addr, new_search

    def find_radix(self, uint64_t npages):
        """Go's radix walk: find is that walk here (the mirror keeps both as a cross-check)."""
        return self.find(npages)

    cpdef tuple alloc(self, uint64_t npages):
        """Allocate npages: (addr, scavenged bytes), (0, 0) if nothing fits.  Go: pageAlloc.alloc."""
        cdef uint64_t scav
        cdef uint64_t addr = alloc(&self.s, npages, &scav)
        return addr, scav

    cpdef free(self, uint64_t base, uint64_t npages):
        """Return [base, base+npages) to the heap.  Go: pageAlloc.free."""
        require_chunks(&self.s, base, npages)
        free_pages(&self.s, base, npages)

    # -- Go: mpagecache.go --

    cpdef PageCache alloc_to_cache(self):
        """Carve the 64-page block holding the first free page into a PageCache.  Go: pageAlloc.allocToCache."""
        return alloc_to_cache(&self.s)

    # -- Go: mgcscavenge.go --

    def reset_scavenge_addr(self):
        """Restart scavenging from the top of the heap.  Go: resetScavengeAddr.  Heap lock held."""
        self.scav_released = 0
        self.s.scav_addr = chunk_base(self.s.end) - 1

    def _find_scavenge_candidate(self, uint64_t ci, int search_idx, uint64_t min_pages, uint64_t max_pages):
        """(start, npages) of chunk ci's scavenge candidate.  Go: pallocData.findScavengeCandidate.  Heap lock held."""
        cdef int start, size
        self._candidate(ci, search_idx, min_pages, max_pages, &start, &size)
        return start, size

    def _scan_for_candidate(self, int64_t top, int64_t bot, int min_pages):
        """The highest chunk in [bot, top] that looks scavengeable, or bot-1.  Optimistic reads."""
        return scan_for_candidate(&self.s, top, bot, min_pages)

    def scavenge(self, nbytes, bint locked):
        """Release up to nbytes (at least one physical page at a time); return bytes released.

        Go: pageAlloc.scavenge; the mirror's Scavenger.scavenge with its loop, and each scavengeOne,
        in C.  nbytes may be SCAVENGE_ALL.  Lock contract: the mirror's (mgcscavenge.py's docstring).
        """
        if nbytes <= 0:
            return 0
        cdef uint64_t want = nbytes, released = 0
        cdef int64_t r
        lock, release = self.heap_lock, self._release_hook()
        while released < want:
            r = self._scavenge_one(want - released, locked, lock, release)
            if r == 0:
                break
            released += r
        return released

    def scavenge_one(self, uint64_t max_bytes, bint locked):
        """Release one run of at most max_bytes (rounded up to whole pages); return bytes released.

        Go: pageAlloc.scavengeOne, run to its end with nothing between its lock points: the mirror's
        scavenge_one (which drives scavenge_one_steps so), without the generator.  What runs between
        those points (the background scavenger in the replay) drives scavenge_one_steps itself.
        """
        return self._scavenge_one(max_bytes, locked, self.heap_lock, self._release_hook())

    cdef int64_t _scavenge_one(self, uint64_t max_bytes, bint locked, lock, release) except -1:
        """scavenge_one with the heap lock and the release hook looked up by the caller
        (mgcscavenge.Scavenger.scavenge_one_steps, line by line, the yields left out)."""
        if locked and not lock.held:
            raise LockError("scavenge(locked=True) called without the heap lock")
        if not locked and lock.held:
            raise LockError("scavenge(locked=False) called with the heap lock held")

        cdef uint64_t max_pages = max_bytes // PAGE_SIZE + (max_bytes % PAGE_SIZE != 0)  # no overflow at ^0
        cdef uint64_t min_pages = self.s.phys_page_size // PAGE_SIZE
        cdef uint64_t ci, r_base, r_limit
        cdef int64_t bot, top, i
        cdef int base, npages
        if min_pages < 1:
            min_pages = 1

        if not locked:
            lock.lock()
        ci = chunk_index(self.s.scav_addr)
        if ci < self.s.start:
            if not locked:
                lock.unlock()
            return 0

        # Fast path: the chunk holding scavAddr, searched from scavAddr down.
        if self._in_use(self.s.scav_addr) and self._leaf_max(ci) >= min_pages:
            self._candidate(ci, chunk_page_index(self.s.scav_addr), min_pages, max_pages, &base, &npages)
            if npages:
                self._scavenge_range(ci, base, npages, release)
                if not locked:
                    lock.unlock()
                return npages * PAGE_SIZE

        # Slow path: walk the in-use ranges downward from scavAddr.
        while True:
            if not self._in_use_range_below(self.s.scav_addr, &r_base, &r_limit):  # r.size() == 0
                break
            if not locked:
                lock.unlock()
            bot, top = chunk_index(r_base), chunk_index(r_limit - 1)
            i = scan_for_candidate(&self.s, top, bot, <int>min_pages)
            if i >= bot:
                if not locked:
                    lock.lock()
                self._candidate(i, PALLOC_CHUNK_PAGES - 1, min_pages, max_pages, &base, &npages)
                if npages > 0:
                    self._scavenge_range(i, base, npages, release)
                    if not locked:
                        lock.unlock()
                    return npages * PAGE_SIZE
                # Fooled: the chunk was allocated under us.  Skip past it and
                # look the range up again (we hold the lock now).
                self.stats_scav_fooled += 1
                self.s.scav_addr = chunk_base(i - 1) + PALLOC_CHUNK_PAGES * PAGE_SIZE - 1
                continue
            if not locked:
                lock.lock()
            self.s.scav_addr = r_base - 1
        self.s.scav_addr = MIN_SCAV_ADDR
        if not locked:
            lock.unlock()
        return 0

    cdef bint _in_use(self, uint64_t addr) except -1:
        """in_use_ranges.contains(addr) (Go: addrRanges.contains), read in C from the ranges' list."""
        cdef uint64_t base, limit
        return self._in_use_range_below(addr, &base, &limit) and limit == addr + 1

    cdef bint _in_use_range_below(self, uint64_t addr, uint64_t* base, uint64_t* limit) except -1:
        """The mirror's _in_use_range_below without an AddrRange: the in-use range holding or below addr,
        clipped to end at addr+1, in *base, *limit (Go: findSucc, then the range before it); False (Go: a
        range of size 0) when there is none.  The ranges are sorted, disjoint and not empty."""
        cdef list ranges = self.in_use_ranges.ranges
        cdef Py_ssize_t top = 0
        for r in ranges:  # findSucc: the first range whose base is above addr
            if addr < <uint64_t> r.base:
                break
            top += 1
        if top == 0:
            return False
        r = ranges[top - 1]
        base[0] = r.base
        limit[0] = r.limit
        if limit[0] > addr + 1:
            limit[0] = addr + 1
        return True

    cdef inline uint64_t _leaf_max(self, uint64_t ci) noexcept:
        """leaf_max in C: 0 for a chunk never grown."""
        return 0 if chunk_of(&self.s, ci) == NULL else sum_max(self.s.summary[LEAF][ci])

    cdef int _candidate(self, uint64_t ci, int search_idx, uint64_t min_pages, uint64_t max_pages,
                        int* start, int* size) except -1:
        """_find_scavenge_candidate in C: max_pages rounded up to a multiple of min_pages (0 meaning
        min_pages), as the mirror's find_scavenge_candidate does.  Heap lock held."""
        check_min(min_pages)
        max_pages = min_pages if max_pages == 0 else (max_pages + min_pages - 1) // min_pages * min_pages
        cdef pallocData* d = chunk_of(&self.s, ci)
        if d == NULL:
            raise KeyError(ci)
        find_scavenge_candidate(d, search_idx, <int>min_pages, max_pages if max_pages < PALLOC_CHUNK_PAGES
                                else PALLOC_CHUNK_PAGES, self.s.phys_huge_page_size, self.s.phys_page_size,
                                start, size)
        return 0

    cdef object _release_hook(self):
        """What scavengeRangeLocked calls to release memory: the heap's sysUnused, None under test."""
        return None if self.test else self.sys_unused

    cdef int _scavenge_range(self, uint64_t ci, int base, int npages, release) except -1:
        """scavenge_range_locked with the hook looked up by the caller.  Heap lock held."""
        cdef uint64_t addr = scavenge_range_bits(&self.s, ci, base, npages)
        if release is not None:
            release(addr, <uint64_t>npages * PAGE_SIZE)
        return 0

    def scavenge_range_locked(self, uint64_t ci, int base, int npages):
        """Mark pages [base, base+npages) of chunk ci scavenged and release them (the heap's sys_unused).

        Go: pageAlloc.scavengeRangeLocked.  Heap lock must be held (in Go the madvise happens under it).
        Moves scavAddr to just below the range.
        """
        if chunk_of(&self.s, ci) == NULL:
            raise KeyError(ci)
        self._scavenge_range(ci, base, npages, self._release_hook())

    # -- test-facing API (Go: export_test.go) --

    def bounds(self):
        """(start, end) chunk indices.  Go: PageAlloc.Bounds."""
        return self.s.start, self.s.end

    def chunk_bits(self, ci):
        """(alloc bits, scavenged bits) of chunk ci as 512-bit ints, or None.  Go: PallocData."""
        if ci not in self.chunks:
            return None
        cdef pallocData* d = chunk_of(&self.s, ci)
        return words_to_int(d.palloc_bits), words_to_int(d.scavenged)


# --- the bitmap types on their own (Go: pallocBits, pallocData), for the ported Go tables ---

cdef class PallocBits:
    """A chunk's alloc bitmap in eight words.  Go: pallocBits (0 = free, 1 = in use).

    ``bits`` reads and writes it as a 512-bit int, the mirror's form."""

    cdef pallocData d

    def __init__(self, bits=0, scavenged=0):
        int_to_words(bits, self.d.palloc_bits)
        int_to_words(scavenged, self.d.scavenged)

    @property
    def bits(self):
        return words_to_int(self.d.palloc_bits)

    @bits.setter
    def bits(self, value):
        int_to_words(value, self.d.palloc_bits)

    def find(self, int npages, int search_idx):
        """Go: pallocBits.find: (start, new search index); start is NOT_FOUND on failure."""
        cdef uint64_t start, new_search
        palloc_find(self.d.palloc_bits, npages, search_idx, &start, &new_search)
        return start, new_search

    def find1(self, int search_idx):
        """Go: pallocBits.find1."""
        return self.find(1, search_idx)[0]

    def find_small_n(self, int npages, int search_idx):
        """Go: pallocBits.findSmallN (npages <= 64)."""
        assert 1 <= npages <= 64
        return self.find(npages, search_idx)

    def find_large_n(self, int npages, int search_idx):
        """Go: pallocBits.findLargeN (npages > 64)."""
        assert npages > 64
        return self.find(npages, search_idx)

    def alloc_range(self, int i, int n):
        """Go: pallocBits.allocRange (pallocData's also clears the scavenged bits)."""
        bits_set_range(self.d.palloc_bits, i, n)
        bits_clear_range(self.d.scavenged, i, n)

    def alloc_all(self):
        """Go: pallocBits.allocAll."""
        bits_set_range(self.d.palloc_bits, 0, PALLOC_CHUNK_PAGES)
        bits_clear_range(self.d.scavenged, 0, PALLOC_CHUNK_PAGES)

    def free1(self, int i):
        """Go: pallocBits.free1."""
        bits_clear_range(self.d.palloc_bits, i, 1)

    def free(self, int i, int n):
        """Go: pallocBits.free."""
        bits_clear_range(self.d.palloc_bits, i, n)

    def free_all(self):
        """Go: pallocBits.freeAll."""
        bits_clear_range(self.d.palloc_bits, 0, PALLOC_CHUNK_PAGES)

    def summarize(self):
        """(start, max, end).  Go: pallocBits.summarize (unpacked)."""
        cdef uint64_t a, m, e
        palloc_summarize(self.d.palloc_bits, &a, &m, &e)
        return a, m, e

    def pages64(self, int i):
        """Go: pallocBits.pages64."""
        return self.d.palloc_bits[i >> 6]

    def popcnt_range(self, int i, int n):
        """Go: pageBits.popcntRange."""
        return bits_popcnt_range(self.d.palloc_bits, i, n)


cdef class PallocData(PallocBits):
    """Alloc plus scavenged bitmaps of one chunk.  Go: pallocData."""

    @property
    def scavenged(self):
        return words_to_int(self.d.scavenged)

    @scavenged.setter
    def scavenged(self, value):
        int_to_words(value, self.d.scavenged)

    def scavenged_set_range(self, int i, int n):
        """Go: pageBits.setRange on scavenged."""
        bits_set_range(self.d.scavenged, i, n)

    def has_scavenge_candidate(self, uint64_t min_pages):
        """Go: pallocData.hasScavengeCandidate."""
        check_min(min_pages)
        return has_scavenge_candidate(&self.d, <int>min_pages)

    def find_scavenge_candidate(self, int search_idx, uint64_t min_pages, max_pages,
                                uint64_t phys_huge_page_size=2 << 20, uint64_t phys_page_size=4096):
        """Go: pallocData.findScavengeCandidate: (start, npages), (0, 0) when there is none."""
        check_min(min_pages)
        max_pages = min_pages if max_pages == 0 else -(-max_pages // min_pages) * min_pages
        cdef uint64_t cap = max_pages if max_pages < PALLOC_CHUNK_PAGES else PALLOC_CHUNK_PAGES
        cdef int start, size
        find_scavenge_candidate(&self.d, search_idx, <int>min_pages, cap, phys_huge_page_size, phys_page_size,
                                &start, &size)
        return start, size


def find_scavenge_candidate_of(PallocData m, int search_idx, uint64_t min_pages, max_pages,
                               uint64_t phys_huge_page_size=2 << 20, uint64_t phys_page_size=4096):
    """The mirror's module-level find_scavenge_candidate(m, ...), compiled."""
    return m.find_scavenge_candidate(search_idx, min_pages, max_pages, phys_huge_page_size, phys_page_size)


def fill_aligned_of(uint64_t x, int m):
    """Go: fillAligned, compiled (ValueError for an m that is not a power of two up to 64)."""
    if m not in (1, 2, 4, 8, 16, 32, 64):
        raise ValueError("bad m value")
    return fill_aligned(x, m)


def find_bit_range64_of(uint64_t c, int n):
    """Go: findBitRange64, compiled (64 when there is no run)."""
    return find_bit_range64(c, n)
