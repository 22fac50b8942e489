# The heap the compiled replay runs on (included by _replay_core.pyx).
#
# Go counterpart: none of its own.  ReplayHeap is the compiled copy of runtime/mheap.py's MHeap (Go's
# mheap_) with the kernel's page state the model keeps beside it -- ``touched`` (pages ever allocated)
# and ``lazyfree`` (pages released with MADV_FREE at least once) -- as eight uint64 words per chunk in C
# instead of mheap.py's dicts of 512-bit ints, and the methods that read and write them ported line by
# line: _first_touch and _first_lazyfree (mheap.py's mark_pages), and _sys_unused, the release every
# scavenge makes (Go's sysUnused, mem_linux.py, its calls priced by mheap.py's _nohugepage_ns and
# _release_ns, in C: no list of call tuples).  Everything else is MHeap's, and MHeap's compiled code and the compiled core
# call these through MHeap's vtable and _sys_unused's wrapper.  Lock contract: mheap.py's (_first_touch
# runs after allocSpan unlocks; _first_lazyfree and _sys_unused under the lock, in scavengeRangeLocked).

cdef extern from *:
    int __builtin_popcountll(unsigned long long) nogil

cdef enum:
    MARK_WORDS = 8  # a chunk's 512 pages, 64 a word (mpallocbits' layout)
    MARK_L2_BITS = 13  # chunk indices are below 1 << 26 (48-bit addresses, 4 MiB chunks): two levels of 13 bits

cdef long long CHUNK_PAGES = _PALLOC_CHUNK_PAGES, LOG_CHUNK_BYTES = _LOG_PALLOC_CHUNK_BYTES, PAGE_SIZE = _PAGE_SIZE
cdef unsigned long long ARENA_BASE_OFFSET = _ARENA_BASE_OFFSET
cdef unsigned long long WORD_ONES = 0xFFFFFFFFFFFFFFFFULL


cdef struct ChunkMarks:  # one chunk's entries of mheap.py's touched and lazyfree
    unsigned long long touched[MARK_WORDS]
    unsigned long long lazyfree[MARK_WORDS]


cdef class ReplayHeap(MHeap):
    """MHeap (runtime/mheap.py, compiled) with ``touched`` and ``lazyfree`` as C bitmaps (see above); the
    dicts of the same names stay empty."""
    cdef ChunkMarks **marks  # chunk index >> MARK_L2_BITS -> a block of 1 << MARK_L2_BITS chunks, or NULL

    def __cinit__(self, *args, **kwargs):
        self.marks = <ChunkMarks **> calloc(1 << MARK_L2_BITS, sizeof(ChunkMarks *))
        if self.marks is NULL:
            raise MemoryError()

    def __dealloc__(self):
        cdef Py_ssize_t i
        if self.marks is not NULL:
            for i in range(1 << MARK_L2_BITS):
                free(self.marks[i])
            free(self.marks)

    cdef ChunkMarks *_chunk(self, unsigned long long ci) except NULL:
        """Chunk ci's marks, zeroed (mheap.py's ``marks.get(ci, 0)``) when first asked for."""
        cdef unsigned long long hi = ci >> MARK_L2_BITS
        if hi >= (1 << MARK_L2_BITS):
            raise OverflowError(f"chunk index {ci} beyond the 48-bit address space")
        if self.marks[hi] is NULL:
            self.marks[hi] = <ChunkMarks *> calloc(1 << MARK_L2_BITS, sizeof(ChunkMarks))
            if self.marks[hi] is NULL:
                raise MemoryError()
        return &self.marks[hi][ci & ((1 << MARK_L2_BITS) - 1)]

    cdef long long _mark_pages(self, bint lazyfree, unsigned long long base, long long npages) except -1:
        """mheap.py's mark_pages on ``touched`` (lazyfree False) or on ``lazyfree`` among ``touched``: mark
        pages [base, base+npages); return how many of them were not marked before (and are touched)."""
        cdef unsigned long long ci = ((base + ARENA_BASE_OFFSET) & WORD_ONES) >> LOG_CHUNK_BYTES  # chunk_index
        cdef long long lo = (base % (1ULL << LOG_CHUNK_BYTES)) >> PAGE_SHIFT  # chunk_page_index
        cdef long long first = 0, n, w, end, a, b
        cdef unsigned long long mask, new
        cdef unsigned long long *marks
        cdef ChunkMarks *c
        while npages > 0:  # chunk by chunk: the range's part in chunk ci starts at page lo
            n = CHUNK_PAGES - lo if CHUNK_PAGES - lo < npages else npages
            c = self._chunk(ci)
            marks = &c.lazyfree[0] if lazyfree else &c.touched[0]
            end = lo + n
            for w in range(lo >> 6, ((end - 1) >> 6) + 1):  # the words pages [lo, end) lie in
                a = lo - (w << 6) if lo > (w << 6) else 0
                b = end - (w << 6) if end < ((w + 1) << 6) else 64
                mask = (WORD_ONES >> (64 - (b - a))) << a
                new = mask & ~marks[w]
                if lazyfree:
                    new &= c.touched[w]
                first += __builtin_popcountll(new)
                marks[w] |= mask
            ci, lo, npages = ci + 1, 0, npages - n
        return first

    cpdef long long _first_touch(self, long long base, long long npages) except? -1:
        """mheap.py's _first_touch: bytes of [base, base+npages) never allocated before; marks them touched."""
        return self._mark_pages(False, base, npages) * PAGE_SIZE

    cpdef long long _first_lazyfree(self, long long base, long long npages) except? -1:
        """mheap.py's _first_lazyfree: bytes of [base, base+npages) touched and never released with
        MADV_FREE before; marks the whole range released."""
        return self._mark_pages(True, base, npages) * PAGE_SIZE

    cpdef _sys_unused(self, long long addr, long long nbytes):
        """mheap.py's _sys_unused: pageAlloc released [addr, addr+nbytes): madvise (mem_linux.sys_unused's
        calls, each priced and counted by MHeap's _nohugepage_ns and _release_ns), and heap_released grows."""
        cdef long long huge = self.phys_huge_page_size, head = 0, tail = 0, first_free = 0, before = self.meter_ns
        self.heap_released += nbytes
        if self.heap_released > self.heap_sys:
            raise InvariantError(f"retained went negative: released {self.heap_released} > heap_sys {self.heap_sys}")
        if not self.madvdontneed:
            first_free = self._first_lazyfree(addr, nbytes // PAGE_SIZE)
        if huge != 0:  # sysUnused: MADV_NOHUGEPAGE on the partial huge pages at the head and the tail
            if addr & (huge - 1):
                head = addr & ~(huge - 1)
            if (addr + nbytes) & (huge - 1):
                tail = (addr + nbytes - 1) & ~(huge - 1)
            if head != 0 and head + huge == tail:  # adjacent: one call for both
                self.meter_ns += self._nohugepage_ns(head, 2 * huge)
            else:
                if head != 0:
                    self.meter_ns += self._nohugepage_ns(head, huge)
                if tail != 0 and tail != head:
                    self.meter_ns += self._nohugepage_ns(tail, huge)
        self.meter_ns += self._release_ns(self.madvdontneed, nbytes, first_free)  # MADV_FREE, or MADV_DONTNEED
        path = "forced" if self.forced else "background" if self.lock.holder == SCAVENGER else "growth"
        if path == "background":
            self.scavenger_madvise_ns += self.meter_ns - before
            self.meter_ns += self.price.scavenge_heap_ns  # the rest of its scavengeOne (CostModel)
        self.released_by[path] += nbytes
        self.releases_by[path] += 1
        if path == "background" and huge != 0 and ((addr + huge - 1) & ~(huge - 1)) + huge <= addr + nbytes:  # mheap.whole_huge_page
            self.whole_huge_releases += 1
