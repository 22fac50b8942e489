# Compiled core, part 4 of 4 (included by _core.pyx).
#
# Go counterpart: runtime/mgcscavenge.go as of Go 1.14 (CL 195699):
# fillAligned, pallocData.hasScavengeCandidate / findScavengeCandidate, the
# chunk walk of pageAlloc.scavengeOne and the bookkeeping of
# scavengeRangeLocked; the Python mirror is pagealloc/runtime/mgcscavenge.py.
#
# Lock contract: find_scavenge_candidate and scavenge_range_bits need the
# heap lock held; has_scavenge_candidate and scan_for_candidate are the
# scavenger's optimistic reads, made with or without it (Go 1.14's unlocked
# scavenger makes them without it).  scavengeOne and scavenge run to their
# end, and scavengeRangeLocked with its call of the heap's sysUnused hook, are
# PageAllocCore's methods (_core.pyx), built on these; what yields at the lock
# points (scavenge_one_steps) stays Python, the mirror's generator
# (pagealloc/runtime/mpagealloc_compiled.py).

cdef uint64_t fill_aligned(uint64_t x, int m) noexcept nogil:
    """Set every m-aligned group of bits of x that has any bit set.  Go: fillAligned.

    m is a power of two in [1, 64] (the caller checks).
    """
    cdef uint64_t c
    if m == 1:
        return x
    if m == 2:
        c = 0x5555555555555555
    elif m == 4:
        c = 0x7777777777777777
    elif m == 8:
        c = 0x7F7F7F7F7F7F7F7F
    elif m == 16:
        c = 0x7FFF7FFF7FFF7FFF
    elif m == 32:
        c = 0x7FFFFFFF7FFFFFFF
    else:
        c = 0x7FFFFFFFFFFFFFFF
    # Go's branch-free trick: a group becomes all ones iff any bit in it is set.
    x = ~((((x & c) + c) | x) | c)  # top bit of each all-zero group
    return ~((x - (x >> (m - 1))) | x)


cdef int check_min(uint64_t min_pages) except -1:
    if min_pages == 0 or min_pages & (min_pages - 1):
        raise ValueError(f"min must be a non-zero power of 2 (min = {min_pages})")
    if min_pages > 64:  # Go: maxPagesPerPhysPage
        raise ValueError(f"min too large (min = {min_pages})")
    return 0


cdef inline bint has_scavenge_candidate(const pallocData* m, int min_pages) noexcept nogil:
    """Whether the chunk has a free, unscavenged, min-aligned run of min pages.

    Go: pallocData.hasScavengeCandidate.  An optimistic read: safe without the
    heap lock, the answer may be stale.
    """
    cdef int w
    for w in range(WORDS - 1, -1, -1):
        if fill_aligned(m.scavenged[w] | m.palloc_bits[w], min_pages) != ALL_ONES:
            return True
    return False


cdef void find_scavenge_candidate(const pallocData* m, int search_idx, int min_pages, uint64_t max_pages,
                                  uint64_t phys_huge_page_size, uint64_t phys_page_size,
                                  int* out_start, int* out_size) noexcept nogil:
    """Highest free, unscavenged run at or below the word of search_idx: (start, npages).

    Go: pallocData.findScavengeCandidate (the mirror's find_scavenge_candidate
    has the rules).  max_pages is already rounded up to a multiple of
    min_pages (0 meaning min_pages).  (0, 0) when there is none.  Heap lock
    must be held.
    """
    cdef uint64_t filled[WORDS]
    cdef int w, top = search_idx >> 6, end = -1, run = 0, pos, k, start, size, per_huge, huge_above, huge_below
    cdef uint64_t cand, below
    for w in range(WORDS):
        filled[w] = fill_aligned(m.scavenged[w] | m.palloc_bits[w], min_pages)
    for w in range(top, -1, -1):
        cand = ~filled[w]
        if cand:
            end = (w << 6) + 64 - pa_clz64(cand)  # one past the highest candidate page
            break
    if end < 0:
        out_start[0] = 0
        out_size[0] = 0
        return
    # The run of unfilled pages that ends at end, counted downward.
    pos = end
    while pos > 0:
        w = (pos - 1) >> 6
        k = (pos - 1) & 63
        below = filled[w] & (ALL_ONES >> (63 - k))  # filled pages at or below page k of the word
        if below == 0:
            run += k + 1
            pos -= k + 1
            continue
        run += k - (63 - pa_clz64(below))
        break
    size = run if <uint64_t>run < max_pages else <int>max_pages
    start = end - size
    if phys_huge_page_size > PAGE_SIZE and phys_huge_page_size > phys_page_size:
        # Don't break up a huge page that the free run covers entirely:
        # scavenge down to its bottom instead.
        per_huge = <int>(phys_huge_page_size // PAGE_SIZE)
        huge_above = (start + per_huge - 1) // per_huge * per_huge
        if huge_above <= end:
            huge_below = start // per_huge * per_huge
            if huge_below >= end - run:
                size += start - huge_below
                start = huge_below
    out_start[0] = start
    out_size[0] = size


cdef int64_t scan_for_candidate(pageAlloc* s, int64_t top, int64_t bot, int min_pages) noexcept nogil:
    """The chunk walk of scavengeOne's slow path: the highest chunk in [bot, top]
    that looks like it has a candidate (summary max, then hasScavengeCandidate), or bot-1.

    Go: the inner loop of pageAlloc.scavengeOne.  Optimistic reads.  Counts
    every chunk it inspects in stats_chunks_scanned, as the mirror does.
    """
    cdef int64_t i
    cdef pallocData* c
    for i in range(top, bot - 1, -1):
        s.stats_chunks_scanned += 1
        if sum_max(s.summary[LEAF][i]) < <uint64_t>min_pages:
            continue
        c = chunk_of(s, i)
        if c == NULL or not has_scavenge_candidate(c, min_pages):
            continue
        return i
    return bot - 1


cdef uint64_t scavenge_range_bits(pageAlloc* s, uint64_t ci, int base, int npages) noexcept nogil:
    """Mark pages [base, base+npages) of chunk ci scavenged, move scavAddr below them; return their address.

    Go: the bookkeeping half of pageAlloc.scavengeRangeLocked (the caller
    releases the memory).  Heap lock must be held.
    """
    bits_set_range(chunk_of(s, ci).scavenged, base, npages)
    cdef uint64_t addr = chunk_base(ci) + <uint64_t>base * PAGE_SIZE
    s.scav_addr = addr - 1
    return addr
