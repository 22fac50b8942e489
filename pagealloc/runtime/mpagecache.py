"""Per-P page cache: 64 pages handed out without the heap lock.

Go counterpart: runtime/mpagecache.go (pageCache, pageAlloc.allocToCache).
Lock contract: a PageCache belongs to one P and needs no lock for ``alloc``;
``flush`` and ``alloc_to_cache`` touch the page allocator and need the heap
lock, as in Go.
"""

from __future__ import annotations

from dataclasses import dataclass

from pagealloc.runtime.malloc import PAGE_SIZE
from pagealloc.runtime.mpagealloc_64bit import MAX_SEARCH_ADDR, chunk_base, chunk_index, chunk_page_index
from pagealloc.runtime.mpallocbits import CHUNK_MASK, NOT_FOUND, find, find_bit_range64

PAGE_CACHE_PAGES = 64  # Go: pageCachePages, the bits of one uint64
_WORD = (1 << 64) - 1


@dataclass(slots=True)
class PageCache:
    """A 64-page aligned block of a chunk.  Go: pageCache.

    cache: bit i set = page i is free in the cache; scav: bit i set = page i
    is scavenged.
    """

    base: int = 0
    cache: int = 0
    scav: int = 0

    def empty(self) -> bool:
        return self.cache == 0

    def alloc(self, npages: int) -> tuple[int, int]:
        """Take npages from the cache: (addr, scavenged bytes), (0, 0) if none fit.  Go: pageCache.alloc."""
        if self.cache == 0:
            return 0, 0
        if npages == 1:
            i = (self.cache & -self.cache).bit_length() - 1
            scav = (self.scav >> i) & 1
            self.cache &= ~(1 << i)
            self.scav &= ~(1 << i)
            return self.base + i * PAGE_SIZE, scav * PAGE_SIZE
        return self.alloc_n(npages)

    def alloc_n(self, npages: int) -> tuple[int, int]:
        """Go: pageCache.allocN."""
        i = find_bit_range64(self.cache, npages)
        if i >= 64:
            return 0, 0
        mask = (((1 << npages) - 1) << i) & _WORD
        scav = (self.scav & mask).bit_count()
        self.cache &= ~mask
        self.scav &= ~mask
        return self.base + i * PAGE_SIZE, scav * PAGE_SIZE

    def flush(self, s) -> None:
        """Give the cached pages back to page allocator s.  Go: pageCache.flush.  Heap lock must be held."""
        if self.empty():
            return
        ci = chunk_index(self.base)
        pi = chunk_page_index(self.base)
        chunk = s.chunks[ci]
        chunk.bits &= ~(self.cache << pi)
        chunk.scavenged |= self.scav << pi
        if s.compare_search_addr_to(self.base) < 0:
            s.search_addr = self.base
        s.update(self.base, PAGE_CACHE_PAGES, False, False)
        self.base = self.cache = self.scav = 0


class PageCacheAllocator:
    """PageAlloc's page-cache method (mixed into PageAlloc)."""

    def alloc_to_cache(self) -> PageCache:
        """Carve the 64-page block holding the first free page into a cache.

        Go: pageAlloc.allocToCache.  Heap lock must be held.  Returns an empty
        PageCache when the heap has no free page.
        """
        ci = chunk_index(self.search_addr)
        if ci >= self.end:
            return PageCache()
        chunk = self.chunks.get(ci)
        # Go tests the chunk's summary for non-zero; a summary is zero exactly
        # when the chunk has no free page, which the bitmap says directly.
        if chunk is not None and chunk.bits != CHUNK_MASK:
            j, _ = find(chunk.bits, 1, chunk_page_index(self.search_addr))
            if j == NOT_FOUND:
                raise RuntimeError("bad summary data")
        else:
            addr, _ = self.find(1)
            if addr == 0:
                self.search_addr = MAX_SEARCH_ADDR
                return PageCache()
            ci = chunk_index(addr)
            chunk = self.chunks[ci]
            j = chunk_page_index(addr)
        # The aligned 64-page block holding page j: its free pages become the
        # cache and the whole block is allocated (Go: allocRange(c.base, 64),
        # done here on the one word it touches).
        shift = j & ~63
        block = _WORD << shift
        c = PageCache(
            base=chunk_base(ci) + shift * PAGE_SIZE,
            cache=~(chunk.bits >> shift) & _WORD,
            scav=(chunk.scavenged >> shift) & _WORD,
        )
        chunk.bits |= block
        chunk.scavenged &= ~block
        self.search_addr = c.base + PAGE_SIZE * (PAGE_CACHE_PAGES - 1)
        return c
