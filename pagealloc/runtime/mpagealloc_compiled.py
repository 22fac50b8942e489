"""The compiled engine's PageAlloc: the compiled core plus what stays Python.

Not a Go file by itself: Go's pageAlloc, with its hot paths compiled in
``_core`` (see _core.pyx: one .pxi per Go file) and, here, the parts that
yield or call back into Python: ``grow`` (it adds to the in-use address
ranges, an ``mranges.AddrRanges``), ``scavenge_one_steps`` (the generator
that yields at Go's lock points; its chunk walk and candidate search are
compiled) and ``scavenge_range_locked`` (it calls the heap's ``sys_unused``).
Lock contracts are Go's and the mirror's (mpagealloc, mgcscavenge).

A drop-in for ``mpagealloc.PageAlloc``: same constructor, methods, fields
and counters, same results and state after every operation
(tests/runtime/test_engines_agree.py).  ``pagealloc.runtime.page_alloc_class``
picks the engine.
"""

from __future__ import annotations

import copy
from collections.abc import Generator

from pagealloc.runtime._core import PageAllocCore, PageCache  # noqa: F401  (PageCache: the compiled one)
from pagealloc.runtime.lock_futex import HeapLock, LockError
from pagealloc.runtime.malloc import PAGE_SIZE, PHYS_HUGE_PAGE_SIZE, PHYS_PAGE_SIZE
from pagealloc.runtime.mgcscavenge import LOCK, UNLOCKED, Scavenger
from pagealloc.runtime.mpagealloc_64bit import (
    MIN_SCAV_ADDR,
    PALLOC_CHUNK_BYTES,
    PALLOC_CHUNK_PAGES,
    chunk_base,
    chunk_index,
    chunk_page_index,
)
from pagealloc.runtime.mranges import AddrRange, AddrRanges


class PageAlloc(PageAllocCore, Scavenger):
    """Go's pageAlloc, compiled.  Scavenger supplies scavenge / scavenge_one (they drive scavenge_one_steps)."""

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

    def scavenge_one_steps(self, max_bytes: int, locked: bool) -> Generator[str, None, int]:
        """scavenge_one as a generator; yields LOCK / UNLOCKED at Go's lock points.

        Go: pageAlloc.scavengeOne; the mirror's scavenge_one_steps, line for
        line, with the chunk walk (_scan_for_candidate) and the candidate
        search (_find_scavenge_candidate) compiled.
        """
        lock = self.heap_lock
        if locked and not lock.held:
            raise LockError("scavenge(locked=True) called without the heap lock")
        if not locked and lock.held:
            raise LockError("scavenge(locked=False) called with the heap lock held")

        max_pages = -(-max_bytes // PAGE_SIZE)
        min_pages = max(1, self.phys_page_size // PAGE_SIZE)

        if not locked:
            yield LOCK
            lock.lock()
        ci = chunk_index(self.scav_addr)
        if ci < self.start:
            if not locked:
                lock.unlock()
                yield UNLOCKED
            return 0

        # Fast path: the chunk holding scavAddr, searched from scavAddr down.
        if self.in_use_ranges.contains(self.scav_addr) and self.leaf_max(ci) >= min_pages:
            base, npages = self._find_scavenge_candidate(ci, chunk_page_index(self.scav_addr), min_pages, max_pages)
            if npages:
                self.scavenge_range_locked(ci, base, npages)
                if not locked:
                    lock.unlock()
                    yield UNLOCKED
                return npages * PAGE_SIZE

        # Slow path: walk the in-use ranges downward from scavAddr.
        while True:
            r = self._in_use_range_below(self.scav_addr)
            if r.size() == 0:
                break
            if not locked:
                lock.unlock()
                yield UNLOCKED
            bot, top = chunk_index(r.base), chunk_index(r.limit - 1)
            # Optimistic, unlocked reads: may be stale by the time we lock.
            i = self._scan_for_candidate(top, bot, min_pages)
            if i >= bot:
                if not locked:
                    yield LOCK
                    lock.lock()
                base, npages = self._find_scavenge_candidate(i, PALLOC_CHUNK_PAGES - 1, min_pages, max_pages)
                if npages > 0:
                    self.scavenge_range_locked(i, base, npages)
                    if not locked:
                        lock.unlock()
                        yield UNLOCKED
                    return npages * PAGE_SIZE
                # Fooled: the chunk was allocated under us.  Skip past it and
                # look the range up again (we hold the lock now).
                self.stats_scav_fooled += 1
                self.scav_addr = chunk_base(i - 1) + PALLOC_CHUNK_PAGES * PAGE_SIZE - 1
                continue
            if not locked:
                yield LOCK
                lock.lock()
            self.scav_addr = r.base - 1
        self.scav_addr = MIN_SCAV_ADDR
        if not locked:
            lock.unlock()
            yield UNLOCKED
        return 0

    def scavenge_range_locked(self, ci: int, base: int, npages: int) -> None:
        """Mark pages [base, base+npages) of chunk ci scavenged and release them.

        Go: pageAlloc.scavengeRangeLocked.  Heap lock must be held.  Moves
        scavAddr to just below the range.
        """
        addr = self._scavenge_range_bits(ci, base, npages)
        if self.test:
            return
        if self.sys_unused is not None:
            self.sys_unused(addr, npages * PAGE_SIZE)

    # -- test-facing API (Go: export_test.go) --

    @classmethod
    def for_test(cls, chunks: dict, scav: dict | None = None, **kwargs) -> "PageAlloc":
        """Go: NewPageAlloc; the mirror's for_test, with the same arguments and result."""
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

    def in_use(self) -> list[tuple[int, int]]:
        """[(base, limit), ...] of grown address space.  Go: PageAlloc.InUse."""
        return [(r.base, r.limit) for r in self.in_use_ranges.ranges]
