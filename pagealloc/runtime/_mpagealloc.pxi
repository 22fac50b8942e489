# Compiled core, part 2 of 4 (included by _core.pyx).
#
# Go counterpart: runtime/mpagealloc.go and mpagealloc_64bit.go (pallocSum,
# packPallocSum, mergeSummaries, pageAlloc's grow/update/allocRange/find/
# alloc/free, chunkIndex/chunkBase/chunkPageIndex) and the Python mirror
# pagealloc/runtime/mpagealloc.py.
#
# Lock contract, as in Go: every function here that reads or writes the
# bitmaps, the summaries or the search address requires the heap lock; the
# scavenger's optimistic reads are in _mgcscavenge.pxi.  Nothing checks the
# lock (Go doesn't either); PageAlloc.scavenge does, as in the mirror.
#
# Layout, as in Go: one flat array of packed pallocSums per radix level over
# the whole 48-bit address space, reserved with mmap(MAP_NORESERVE) so that
# only the pages holding entries of grown memory are ever committed (Go's
# sysReserve + sysGrow), and a two-level sparse array of chunks (Go's
# chunks [1 << pallocChunksL1Bits]*[1 << pallocChunksL2Bits]pallocData),
# whose second-level blocks are allocated on grow.  Summaries are updated
# eagerly, by update, as Go does.

from libc.stdlib cimport calloc, free as c_free
from libc.string cimport memset

cdef extern from "<sys/mman.h>" nogil:
    void* mmap(void* addr, size_t length, int prot, int flags, int fd, long offset)
    int munmap(void* addr, size_t length)
    int PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_ANONYMOUS, MAP_NORESERVE
    void* MAP_FAILED

cdef enum:
    PAGE_SHIFT = 13
    PAGE_SIZE = 8192
    HEAP_ADDR_BITS = 48
    LOG_PALLOC_CHUNK_PAGES = 9
    LOG_PALLOC_CHUNK_BYTES = 22
    SUMMARY_LEVELS = 5
    SUMMARY_LEVEL_BITS = 3
    SUMMARY_L0_BITS = 14
    LEAF = 4
    LOG_MAX_PACKED_VALUE = 21
    MAX_PACKED_VALUE = 1 << 21
    CHUNK_TO_L0_SHIFT = 12  # levelShift[0] - levelShift[leaf]
    PALLOC_CHUNKS_L1_BITS = 13
    PALLOC_CHUNKS_L2_BITS = 13
    MAX_CHUNKS_LOG = 26  # HEAP_ADDR_BITS - LOG_PALLOC_CHUNK_BYTES

cdef int LEVEL_BITS[5]
cdef int LEVEL_SHIFT[5]
cdef int LEVEL_LOG_PAGES[5]
LEVEL_BITS[:] = [14, 3, 3, 3, 3]
LEVEL_SHIFT[:] = [34, 31, 28, 25, 22]
LEVEL_LOG_PAGES[:] = [21, 18, 15, 12, 9]

cdef uint64_t PALLOC_CHUNK_BYTES = <uint64_t>1 << LOG_PALLOC_CHUNK_BYTES
cdef uint64_t ARENA_BASE_OFFSET = <uint64_t>1 << 47
cdef uint64_t MAX_SEARCH_ADDR = ALL_ONES - ARENA_BASE_OFFSET  # "no free memory"
cdef uint64_t MIN_SCAV_ADDR = <uint64_t>0 - ARENA_BASE_OFFSET  # "scavenger is done"
cdef uint64_t FIELD_MASK = MAX_PACKED_VALUE - 1
cdef uint64_t SUM_ALL_FREE = <uint64_t>1 << 63


# --- addresses (Go: chunkIndex, chunkBase, chunkPageIndex) --------------------

cdef inline uint64_t linear(uint64_t addr) noexcept nogil:
    return addr + ARENA_BASE_OFFSET


cdef inline uint64_t chunk_index(uint64_t addr) noexcept nogil:
    return (addr + ARENA_BASE_OFFSET) >> LOG_PALLOC_CHUNK_BYTES


cdef inline uint64_t chunk_base(uint64_t ci) noexcept nogil:
    return (ci << LOG_PALLOC_CHUNK_BYTES) - ARENA_BASE_OFFSET


cdef inline int chunk_page_index(uint64_t addr) noexcept nogil:
    return <int>((addr % PALLOC_CHUNK_BYTES) >> PAGE_SHIFT)


# --- pallocSum ----------------------------------------------------------------

cdef inline uint64_t pack_palloc_sum(uint64_t start, uint64_t max_, uint64_t end) noexcept nogil:
    """Go: packPallocSum."""
    if max_ == MAX_PACKED_VALUE:
        return SUM_ALL_FREE
    return (start & FIELD_MASK) | ((max_ & FIELD_MASK) << LOG_MAX_PACKED_VALUE) | ((end & FIELD_MASK) << (2 * LOG_MAX_PACKED_VALUE))


cdef inline uint64_t sum_start(uint64_t p) noexcept nogil:
    """Go: pallocSum.start."""
    if p & SUM_ALL_FREE:
        return MAX_PACKED_VALUE
    return p & FIELD_MASK


cdef inline uint64_t sum_max(uint64_t p) noexcept nogil:
    """Go: pallocSum.max."""
    if p & SUM_ALL_FREE:
        return MAX_PACKED_VALUE
    return (p >> LOG_MAX_PACKED_VALUE) & FIELD_MASK


cdef inline uint64_t sum_end(uint64_t p) noexcept nogil:
    """Go: pallocSum.end."""
    if p & SUM_ALL_FREE:
        return MAX_PACKED_VALUE
    return (p >> (2 * LOG_MAX_PACKED_VALUE)) & FIELD_MASK


cdef inline uint64_t merge_summaries(const uint64_t* sums, int n, int log_max_pages_per_sum) noexcept nogil:
    """Merge n consecutive summaries of 2**log pages each.  Go: mergeSummaries."""
    cdef uint64_t full = <uint64_t>1 << log_max_pages_per_sum
    cdef uint64_t start = sum_start(sums[0]), max_ = sum_max(sums[0]), end = sum_end(sums[0])
    cdef uint64_t si, mi, ei
    cdef int i
    for i in range(1, n):
        si = sum_start(sums[i])
        mi = sum_max(sums[i])
        ei = sum_end(sums[i])
        if start == <uint64_t>i * full:  # everything so far is free: the run continues
            start += si
        if end + si > max_:
            max_ = end + si
        if mi > max_:
            max_ = mi
        end = end + full if ei == full else ei
    return pack_palloc_sum(start, max_, end)


# --- pageAlloc ------------------------------------------------------------------

ctypedef struct chunkL2:
    pallocData data[1 << PALLOC_CHUNKS_L2_BITS]
    uint8_t grown[1 << PALLOC_CHUNKS_L2_BITS]  # ours: Go asks its in-use ranges


ctypedef struct pageAlloc:
    uint64_t* summary[SUMMARY_LEVELS]  # Go: summary [summaryLevels][]pallocSum
    chunkL2* chunks[1 << PALLOC_CHUNKS_L1_BITS]  # Go: chunks
    uint64_t search_addr  # Go: searchAddr
    uint64_t scav_addr  # Go: scavAddr
    uint64_t start  # Go: start, end (chunk indices)
    uint64_t end
    uint64_t phys_page_size
    uint64_t phys_huge_page_size
    int64_t stats_chunks_scanned  # ours: chunks the scavenger's slow path inspected


cdef inline size_t summary_bytes(int level) noexcept nogil:
    return (<size_t>1 << (SUMMARY_L0_BITS + SUMMARY_LEVEL_BITS * level)) * sizeof(uint64_t)


cdef int page_alloc_init(pageAlloc* s) except -1:
    """Go: pageAlloc.init (sysReserve of every summary level)."""
    cdef int l
    cdef void* m
    memset(s, 0, sizeof(pageAlloc))
    for l in range(SUMMARY_LEVELS):
        m = mmap(NULL, summary_bytes(l), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        if m == MAP_FAILED:
            page_alloc_release(s)
            raise MemoryError("cannot reserve the summary levels")
        s.summary[l] = <uint64_t*>m
    s.search_addr = MAX_SEARCH_ADDR
    s.scav_addr = MIN_SCAV_ADDR
    return 0


cdef void page_alloc_release(pageAlloc* s) noexcept nogil:
    cdef int l
    for l in range(SUMMARY_LEVELS):
        if s.summary[l] != NULL:
            munmap(s.summary[l], summary_bytes(l))
            s.summary[l] = NULL
    for l in range(1 << PALLOC_CHUNKS_L1_BITS):
        if s.chunks[l] != NULL:
            c_free(s.chunks[l])
            s.chunks[l] = NULL


cdef inline pallocData* chunk_of(pageAlloc* s, uint64_t ci) noexcept nogil:
    """The chunk's bitmaps, or NULL when ci was never grown.  Go: chunkOf."""
    if ci >> MAX_CHUNKS_LOG:
        return NULL
    cdef chunkL2* l2 = s.chunks[ci >> PALLOC_CHUNKS_L2_BITS]
    if l2 == NULL:
        return NULL
    cdef size_t k = ci & ((1 << PALLOC_CHUNKS_L2_BITS) - 1)
    if not l2.grown[k]:
        return NULL
    return &l2.data[k]


cdef int require_chunks(pageAlloc* s, uint64_t base, uint64_t npages) except -1:
    """KeyError (what the mirror's chunks dict raises) unless every chunk of [base, base+npages) was grown.

    Ours: Go would fault on such an address; the model's callers get an exception instead."""
    cdef uint64_t ci
    for ci in range(chunk_index(base), chunk_index(base + npages * PAGE_SIZE - 1) + 1):
        if chunk_of(s, ci) == NULL:
            raise KeyError(ci)
    return 0


cdef inline int compare_search_addr_to(pageAlloc* s, uint64_t addr) noexcept nogil:
    """Go: compareSearchAddrTo."""
    cdef uint64_t a = linear(addr), b = linear(s.search_addr)
    return -1 if a < b else (1 if a > b else 0)


cdef int grow_chunks(pageAlloc* s, uint64_t start, uint64_t end) except -1:
    """Go: the chunk half of pageAlloc.grow: new chunks are free and scavenged."""
    cdef uint64_t c
    cdef chunkL2* l2
    cdef size_t k
    cdef int w
    for c in range(start, end):
        l2 = s.chunks[c >> PALLOC_CHUNKS_L2_BITS]
        if l2 == NULL:
            l2 = <chunkL2*>calloc(1, sizeof(chunkL2))
            if l2 == NULL:
                raise MemoryError()
            s.chunks[c >> PALLOC_CHUNKS_L2_BITS] = l2
        k = c & ((1 << PALLOC_CHUNKS_L2_BITS) - 1)
        l2.grown[k] = 1
        for w in range(WORDS):
            l2.data[k].palloc_bits[w] = 0
            l2.data[k].scavenged[w] = ALL_ONES
    return 0


cdef void update(pageAlloc* s, uint64_t base, uint64_t npages) noexcept nogil:
    """Recompute the summaries of [base, base+npages) up to the root.  Go: pageAlloc.update.

    Go's contig and alloc flags only pick shortcuts (an interior chunk of a
    contiguous update is all free or all in use); the values are the ones a
    summarize of every chunk gives, which is what is done here.  As Go, it
    stops where nothing changed: a one-chunk update whose summary is the same,
    or a level none of whose summaries changed (the levels above are merged
    from it, so they stay what they are).
    """
    cdef uint64_t sc = chunk_index(base), ec = chunk_index(base + npages * PAGE_SIZE - 1)
    cdef uint64_t ci, lo, hi, p, sum_
    cdef uint64_t a, m, e
    cdef pallocData* c
    cdef uint64_t* leaf = s.summary[LEAF]
    cdef int level
    cdef bint changed = True
    for ci in range(sc, ec + 1):
        c = chunk_of(s, ci)
        if c == NULL:
            sum_ = 0
        else:
            palloc_summarize(c.palloc_bits, &a, &m, &e)
            sum_ = pack_palloc_sum(a, m, e)
        if sc == ec and leaf[ci] == sum_:  # Go's fast path: one chunk, summary unchanged
            return
        leaf[ci] = sum_
    lo, hi = sc, ec
    for level in range(LEAF - 1, -1, -1):
        if not changed:
            break
        changed = False
        lo >>= LEVEL_BITS[level + 1]
        hi >>= LEVEL_BITS[level + 1]
        for p in range(lo, hi + 1):
            sum_ = merge_summaries(
                &s.summary[level + 1][p << LEVEL_BITS[level + 1]], 1 << LEVEL_BITS[level + 1], LEVEL_LOG_PAGES[level + 1])
            if s.summary[level][p] != sum_:
                changed = True
                s.summary[level][p] = sum_


cdef uint64_t alloc_range(pageAlloc* s, uint64_t base, uint64_t npages) noexcept nogil:
    """Mark [base, base+npages) in use; return how many of those pages were scavenged.

    Go: pageAlloc.allocRange (which returns bytes; the caller multiplies).
    Heap lock must be held.  Does not update the summaries (Go's callers do).
    """
    cdef uint64_t limit = base + npages * PAGE_SIZE - 1
    cdef uint64_t sc = chunk_index(base), ec = chunk_index(limit), c
    cdef int si = chunk_page_index(base), ei = chunk_page_index(limit), w
    cdef uint64_t scav = 0
    cdef pallocData* chunk
    if sc == ec:
        chunk = chunk_of(s, sc)
        scav += bits_popcnt_range(chunk.scavenged, si, ei + 1 - si)
        bits_set_range(chunk.palloc_bits, si, ei + 1 - si)
        bits_clear_range(chunk.scavenged, si, ei + 1 - si)
        return scav
    chunk = chunk_of(s, sc)
    scav += bits_popcnt_range(chunk.scavenged, si, PALLOC_CHUNK_PAGES - si)
    bits_set_range(chunk.palloc_bits, si, PALLOC_CHUNK_PAGES - si)
    bits_clear_range(chunk.scavenged, si, PALLOC_CHUNK_PAGES - si)
    for c in range(sc + 1, ec):
        chunk = chunk_of(s, c)
        for w in range(WORDS):
            scav += pa_popcount64(chunk.scavenged[w])
            chunk.palloc_bits[w] = ALL_ONES
            chunk.scavenged[w] = 0
    chunk = chunk_of(s, ec)
    scav += bits_popcnt_range(chunk.scavenged, 0, ei + 1)
    bits_set_range(chunk.palloc_bits, 0, ei + 1)
    bits_clear_range(chunk.scavenged, 0, ei + 1)
    return scav


cdef uint64_t find_search_addr(pageAlloc* s) noexcept nogil:
    """The searchAddr find hands back: the first free page of searchAddr's chunk.

    Ours, the Python mirror's rule (mpagealloc.PageAlloc.find), kept so that
    both engines hold the same searchAddr.  Go hands back the first free
    address its walk saw, which may be lower; both keep every page below
    searchAddr in use, and no result depends on which one is used.
    """
    cdef pallocData* c = chunk_of(s, chunk_index(s.search_addr))
    cdef int w
    if c != NULL:
        for w in range(WORDS):
            if c.palloc_bits[w] != ALL_ONES:
                return chunk_base(chunk_index(s.search_addr)) + ((w << 6) + pa_ctz64(~c.palloc_bits[w])) * PAGE_SIZE
    return s.search_addr


cdef uint64_t find(pageAlloc* s, uint64_t npages) except? 1:
    """Address-ordered first fit for npages at or above searchAddr, by Go's radix walk; 0 if none.

    Go: pageAlloc.find.  Heap lock must be held.  Two departures, neither
    changing what is found: a searchAddr whose chunk lies above the heap
    finds nothing (Go's callers never search from there), and the level-0
    scan stops at the last entry that covers grown memory (the entries above
    are zero and cannot hold a run).  The new searchAddr is find_search_addr.
    """
    cdef uint64_t search_lin = linear(s.search_addr)
    cdef uint64_t i = 0, j, j0, jend, entries_per_block, search_idx, sm, size, base, addr, ss
    cdef uint64_t* entries
    cdef int level, log_max_pages, shift, descended
    cdef uint64_t sidx
    if chunk_index(s.search_addr) >= s.end:
        return 0
    for level in range(SUMMARY_LEVELS):
        entries_per_block = <uint64_t>1 << LEVEL_BITS[level]
        log_max_pages = LEVEL_LOG_PAGES[level]
        shift = LEVEL_SHIFT[level]
        i <<= LEVEL_BITS[level]
        entries = &s.summary[level][i]
        j0 = 0
        search_idx = search_lin >> shift
        if search_idx & ~(entries_per_block - 1) == i:
            j0 = search_idx & (entries_per_block - 1)
        jend = entries_per_block
        if level == 0:
            jend = ((s.end - 1) >> CHUNK_TO_L0_SHIFT) + 1
        base = 0
        size = 0
        descended = 0
        j = j0
        while j < jend:
            sm = entries[j]
            if sm == 0:
                size = 0
                j += 1
                continue
            ss = sum_start(sm)
            if size + ss >= npages:
                if size == 0:
                    base = j << log_max_pages
                size += ss
                break
            if sum_max(sm) >= npages:
                i += j
                descended = 1
                break
            if size == 0 or ss < (<uint64_t>1 << log_max_pages):
                size = sum_end(sm)
                base = ((j + 1) << log_max_pages) - size
                j += 1
                continue
            size += <uint64_t>1 << log_max_pages
            j += 1
        if descended:
            continue
        if size >= npages:
            return (i << shift) - ARENA_BASE_OFFSET + base * PAGE_SIZE
        if level == 0:
            return 0
        raise RuntimeError(f"bad summary data at level {level}, npages={npages}")
    palloc_find(chunk_of(s, i).palloc_bits, <int>npages, 0, &j, &sidx)
    if j == NOT_FOUND_U:
        raise RuntimeError(f"bad summary data: chunk {i:#x} has no run of {npages} pages")
    return chunk_base(i) + j * PAGE_SIZE


cdef uint64_t alloc(pageAlloc* s, uint64_t npages, uint64_t* scav) except? 1:
    """Allocate npages; return the address (0 if nothing fits) and set *scav to the scavenged bytes.

    Go: pageAlloc.alloc.  Heap lock must be held.
    """
    cdef uint64_t ci = chunk_index(s.search_addr), addr = 0, new_search = 0, j, sidx
    cdef int page_idx
    scav[0] = 0
    if ci >= s.end:
        return 0
    page_idx = chunk_page_index(s.search_addr)
    if PALLOC_CHUNK_PAGES - page_idx >= npages and sum_max(s.summary[LEAF][ci]) >= npages:
        palloc_find(chunk_of(s, ci).palloc_bits, <int>npages, page_idx, &j, &sidx)
        if j != NOT_FOUND_U:
            addr = chunk_base(ci) + j * PAGE_SIZE
            new_search = chunk_base(ci) + sidx * PAGE_SIZE
    if addr == 0:
        new_search = find_search_addr(s)
        addr = find(s, npages)
        if addr == 0:
            if npages == 1:
                # Not even one page: the heap is exhausted.
                s.search_addr = MAX_SEARCH_ADDR
            return 0
    scav[0] = alloc_range(s, addr, npages) * PAGE_SIZE
    update(s, addr, npages)
    if compare_search_addr_to(s, new_search) > 0:
        s.search_addr = new_search
    return addr


cdef void free_pages(pageAlloc* s, uint64_t base, uint64_t npages) noexcept nogil:
    """Return [base, base+npages) to the heap.  Go: pageAlloc.free.  Heap lock must be held."""
    cdef uint64_t limit = base + npages * PAGE_SIZE - 1
    cdef uint64_t sc = chunk_index(base), ec = chunk_index(limit), c
    cdef int si = chunk_page_index(base), ei = chunk_page_index(limit), w
    cdef pallocData* chunk
    if compare_search_addr_to(s, base) < 0:
        s.search_addr = base
    if sc == ec:
        bits_clear_range(chunk_of(s, sc).palloc_bits, si, ei + 1 - si)
    else:
        bits_clear_range(chunk_of(s, sc).palloc_bits, si, PALLOC_CHUNK_PAGES - si)
        for c in range(sc + 1, ec):
            chunk = chunk_of(s, c)
            for w in range(WORDS):
                chunk.palloc_bits[w] = 0
        bits_clear_range(chunk_of(s, ec).palloc_bits, 0, ei + 1)
    update(s, base, npages)
