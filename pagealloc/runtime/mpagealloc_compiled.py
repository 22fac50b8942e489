"""The compiled engine's PageAlloc: the compiled core plus what stays Python.

Not a Go file by itself: Go's pageAlloc, with its hot paths compiled in
``_core`` (see _core.pyx: one .pxi per Go file) and, here, the parts that
yield or keep Python objects: ``grow`` (it adds to the in-use address ranges,
an ``mranges.AddrRanges``) and ``scavenge_one_steps``, the generator that
yields at Go's lock points, the mirror's (mgcscavenge.Scavenger, its compiled
copy when that is fresh), calling the core's compiled chunk walk and candidate
search.  ``scavenge`` and ``scavenge_one``, run to their end, are the core's
(a C loop; they call the heap's ``sys_unused`` hook set here).
Lock contracts are Go's and the mirror's (mpagealloc, mgcscavenge).

A drop-in for ``mpagealloc.PageAlloc``: same constructor, methods, fields
and counters, same results and state after every operation
(tests/runtime/test_engines_agree.py).  ``pagealloc.runtime.page_alloc_class``
picks the engine.
"""

from __future__ import annotations

import copy

from pagealloc.runtime._core import PageAllocCore, PageCache  # noqa: F401  (PageCache: the compiled one)
from pagealloc.runtime import mgcscavenge, mpagealloc, mranges
from pagealloc.runtime.lock_futex import HeapLock
from pagealloc.runtime.malloc import PAGE_SIZE, PHYS_HUGE_PAGE_SIZE, PHYS_PAGE_SIZE
from pagealloc.runtime.mpagealloc_64bit import PALLOC_CHUNK_BYTES, chunk_index


def _fresh_copy(readable, name: str):
    """The replay core's compiled copy ``name`` of module ``readable`` when it was built from this
    checkout's sources, else ``readable`` itself: the same code either way."""
    from importlib import import_module

    from pagealloc.runtime.replay_sources import is_fresh

    try:
        compiled = import_module(f"pagealloc.runtime.{name}")
    except ImportError:
        return readable
    return compiled if is_fresh(compiled) else readable


# The scavenger's search (mgcscavenge.Scavenger, the mixin below) and the in-use address ranges it asks
# once or twice per scavengeOne, compiled when they can be.
_scavenging = _fresh_copy(mgcscavenge, "_mgcscavenge_compiled")
_ranges = _fresh_copy(mranges, "_mranges_compiled")
AddrRange, AddrRanges = _ranges.AddrRange, _ranges.AddrRanges


# PageAllocCore's fields that hold Python objects (the rest are copied by _copy_core_from)
CORE_FIELDS = ("heap_lock", "in_use_ranges", "sys_unused", "test")


class PageAlloc(PageAllocCore, _scavenging.Scavenger):
    """Go's pageAlloc, compiled.  Scavenger supplies scavenge_one_steps (the core, scavenge / scavenge_one)."""

    def __init__(
        self,
        heap_lock: HeapLock | None = None,
        *,
        phys_page_size: int = PHYS_PAGE_SIZE,
        phys_huge_page_size: int = PHYS_HUGE_PAGE_SIZE,
        test: bool = False,
    ):
        # Go: pageAlloc.init (the summary levels are reserved by the core).
        self.heap_lock = heap_lock if heap_lock is not None else HeapLock()
        self.phys_page_size = phys_page_size
        self.phys_huge_page_size = phys_huge_page_size
        self.test = test  # Go's s.test: scavenging skips sysUnused
        self.scav_released = 0
        self.in_use_ranges = AddrRanges()
        self.sys_unused = None  # the heap's sysUnused hook, as in the mirror
        self.stats_scav_fooled = 0

    def __deepcopy__(self, memo):
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        new._copy_core_from(self)
        for name in CORE_FIELDS:  # the core's object fields, deep-copied as the mirror's __dict__ is
            setattr(new, name, copy.deepcopy(getattr(self, name), memo))
        new.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return new

    def grow(self, base: int, size: int) -> None:
        """Make [base, base+size) known to the allocator as free, scavenged memory.

        Go: pageAlloc.grow.  Heap lock must be held.
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
        self._grow_chunks(start, end)
        self.update(base, (limit - base) // PAGE_SIZE, True, False)

    # -- test-facing API (Go: export_test.go) --

    # The mirror's, unchanged: they use only methods both engines have.
    for_test = mpagealloc.PageAlloc.__dict__["for_test"]
    in_use = mpagealloc.PageAlloc.in_use
