"""pagealloc: replay Go heap traces against a faithful model of Go 1.14's
page allocator and scavenger, and measure locked vs unlocked scavenging.

The names exported here form the stable, test-facing API (mirroring Go's
runtime/export_test.go); README.md documents them.
"""

from pagealloc.lock_futex import HeapLock, LockError
from pagealloc.malloc import PAGE_SIZE, PHYS_PAGE_SIZE
from pagealloc.mgcscavenge import SCAVENGE_ALL, fill_aligned
from pagealloc.mpagealloc import PageAlloc
from pagealloc.mpagealloc_64bit import (
    BASE_CHUNK_IDX,
    PALLOC_CHUNK_BYTES,
    PALLOC_CHUNK_PAGES,
    chunk_base,
    chunk_index,
    page_base,
)
from pagealloc.mpagecache import PAGE_CACHE_PAGES, PageCache
from pagealloc.mpallocbits import PallocBits, PallocData, find_bit_range64

# pagealloc.replay(trace, mode=...) is the replay API; this rebinds the name
# from the submodule to its function (import names from the submodule with
# ``from pagealloc.replay import ...``).
from pagealloc.replay import MODES, ReplayResult, replay  # noqa: E402

__all__ = [
    "BASE_CHUNK_IDX",
    "HeapLock",
    "LockError",
    "MODES",
    "PAGE_CACHE_PAGES",
    "PAGE_SIZE",
    "PALLOC_CHUNK_BYTES",
    "PALLOC_CHUNK_PAGES",
    "PHYS_PAGE_SIZE",
    "PageAlloc",
    "PageCache",
    "PallocBits",
    "PallocData",
    "ReplayResult",
    "SCAVENGE_ALL",
    "chunk_base",
    "chunk_index",
    "fill_aligned",
    "find_bit_range64",
    "page_base",
    "replay",
]
