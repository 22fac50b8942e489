# Compiled core, part 3 of 4 (included by _core.pyx).
#
# Go counterpart: runtime/mpagecache.go (pageCache, pageAlloc.allocToCache)
# and the Python mirror pagealloc/runtime/mpagecache.py.
# Lock contract: a PageCache belongs to one P and needs no lock for alloc;
# flush and alloc_to_cache touch the page allocator and need the heap lock.

DEF PAGE_CACHE_PAGES = 64  # Go: pageCachePages, the bits of one uint64


cdef class PageCache:
    """A 64-page aligned block of a chunk.  Go: pageCache.

    cache: bit i set = page i is free in the cache; scav: bit i set = page i
    is scavenged.
    """

    cdef public uint64_t base
    cdef public uint64_t cache
    cdef public uint64_t scav

    def __init__(self, uint64_t base=0, uint64_t cache=0, uint64_t scav=0):
        self.base = base
        self.cache = cache
        self.scav = scav

    def __repr__(self):
        return f"PageCache(base={self.base}, cache={self.cache}, scav={self.scav})"

    def __eq__(self, other):
        try:
            return (self.base, self.cache, self.scav) == (other.base, other.cache, other.scav)
        except AttributeError:
            return NotImplemented

    def empty(self):
        """Go: pageCache.empty."""
        return self.cache == 0

    cpdef tuple alloc(self, uint64_t npages):
        """Take npages from the cache: (addr, scavenged bytes), (0, 0) if none fit.  Go: pageCache.alloc."""
        cdef int i
        cdef uint64_t sc
        if self.cache == 0:
            return 0, 0
        if npages == 1:
            i = pa_ctz64(self.cache)
            sc = (self.scav >> i) & 1
            self.cache &= ~(<uint64_t>1 << i)
            self.scav &= ~(<uint64_t>1 << i)
            return self.base + i * PAGE_SIZE, sc * PAGE_SIZE
        return self.alloc_n(npages)

    cpdef tuple alloc_n(self, uint64_t npages):
        """Go: pageCache.allocN."""
        cdef uint64_t i = find_bit_range64(self.cache, <int>npages if npages <= 64 else 65)
        cdef uint64_t mask, sc
        if i >= 64:
            return 0, 0
        mask = word_mask(<int>i, <int>npages)
        sc = pa_popcount64(self.scav & mask)
        self.cache &= ~mask
        self.scav &= ~mask
        return self.base + i * PAGE_SIZE, sc * PAGE_SIZE

    def flush(self, PageAllocCore s):
        """Give the cached pages back to page allocator s.  Go: pageCache.flush.  Heap lock must be held."""
        if self.cache == 0:
            return
        cdef uint64_t ci = chunk_index(self.base)
        cdef int pi = chunk_page_index(self.base)
        cdef pallocData* chunk = chunk_of(&s.s, ci)
        if chunk == NULL:
            raise KeyError(ci)
        # The block is 64-aligned, so it is one word of the chunk.
        chunk.palloc_bits[pi >> 6] &= ~self.cache
        chunk.scavenged[pi >> 6] |= self.scav
        if compare_search_addr_to(&s.s, self.base) < 0:
            s.s.search_addr = self.base
        update(&s.s, self.base, PAGE_CACHE_PAGES)
        self.base = self.cache = self.scav = 0


cdef PageCache alloc_to_cache(pageAlloc* s):
    """Carve the 64-page block holding the first free page into a cache.

    Go: pageAlloc.allocToCache.  Heap lock must be held.  An empty PageCache
    when the heap has no free page.
    """
    cdef uint64_t ci = chunk_index(s.search_addr), addr, j, sidx
    cdef pallocData* chunk
    cdef int w
    if ci >= s.end:
        return PageCache()
    chunk = chunk_of(s, ci)
    # Go tests the chunk's summary for non-zero: zero exactly when the chunk has no free page.
    if chunk != NULL and s.summary[LEAF][ci] != 0:
        palloc_find(chunk.palloc_bits, 1, chunk_page_index(s.search_addr), &j, &sidx)
        if j == NOT_FOUND_U:
            raise RuntimeError("bad summary data")
    else:
        addr = find(s, 1)
        if addr == 0:
            s.search_addr = MAX_SEARCH_ADDR
            return PageCache()
        ci = chunk_index(addr)
        chunk = chunk_of(s, ci)
        j = chunk_page_index(addr)
    # The aligned 64-page block holding page j: its free pages become the
    # cache and the whole block is in use (Go: allocRange(c.base, 64)).
    w = <int>(j >> 6)
    c = PageCache(chunk_base(ci) + (<uint64_t>w << 6) * PAGE_SIZE, ~chunk.palloc_bits[w], chunk.scavenged[w])
    chunk.palloc_bits[w] = ALL_ONES
    chunk.scavenged[w] = 0
    update(s, c.base, PAGE_CACHE_PAGES)
    s.search_addr = c.base + PAGE_SIZE * (PAGE_CACHE_PAGES - 1)
    return c
