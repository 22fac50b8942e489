"""pagealloc: replay Go heap traces against a faithful model of Go 1.14's
page allocator and scavenger, and measure locked vs unlocked scavenging.

The names exported here form the stable, test-facing API (mirroring Go's
runtime/export_test.go); README.md documents them.

The packages, in pipeline order (each may import only those before it):

- ``pagealloc.runtime``: the Go 1.14 mirror (one module per Go file);
- ``pagealloc.trace``: the trace format, validation, import, record, synth;
- ``pagealloc.sim``: the replay engine, cost model, metrics;
- ``pagealloc.results``: asv results, the gate's rules, the report;
- ``pagealloc.sweep``: parameter sweeps on Dask, their results and report;
- ``pagealloc.cli``: the ``pagealloc`` command.

``pagealloc.errors`` (``UserError``) is shared by all but the runtime.
"""

from pagealloc.runtime.lock_futex import HeapLock, LockError
from pagealloc.runtime.malloc import PAGE_SIZE, PHYS_PAGE_SIZE
from pagealloc.runtime.mgcscavenge import SCAVENGE_ALL, fill_aligned
from pagealloc.runtime.mpagealloc import PageAlloc
from pagealloc.runtime.mpagealloc_64bit import (
    BASE_CHUNK_IDX,
    PALLOC_CHUNK_BYTES,
    PALLOC_CHUNK_PAGES,
    chunk_base,
    chunk_index,
    page_base,
)
from pagealloc.runtime.mpagecache import PAGE_CACHE_PAGES, PageCache
from pagealloc.runtime.mpallocbits import PallocBits, PallocData, find_bit_range64

# pagealloc.replay(trace, mode=...) is the replay API (the engine's other
# names: ``from pagealloc.sim.replay import ...``).
from pagealloc.sim.replay import MODES, ReplayResult, replay

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
