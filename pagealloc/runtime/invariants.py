"""Invariant checks over the page allocator model (used by --check and the tests).

Not a Go file: Go checks these piecemeal with throw(); here they are gathered
so the test suite and ``--check`` can assert them after any operation.  Call
with the heap lock free or held by the caller; nothing is modified except the
lazily maintained summaries, which are brought up to date first.
"""

from __future__ import annotations

from pagealloc.runtime.malloc import PAGE_SIZE
from pagealloc.runtime.mpagealloc import LEAF, merge_summaries, pack_palloc_sum
from pagealloc.runtime.mpagealloc_64bit import (
    LEVEL_BITS,
    LEVEL_LOG_PAGES,
    MAX_SEARCH_ADDR,
    PALLOC_CHUNK_PAGES,
    chunk_base,
    chunk_index,
    chunk_page_index,
)
from pagealloc.runtime.mpallocbits import CHUNK_MASK, summarize


class InvariantError(AssertionError):
    """The model's state is inconsistent: a bug in pagealloc."""


def recompute_summaries(p) -> list[dict[int, int]]:
    """Every summary level rebuilt from scratch from the chunk bitmaps."""
    levels = [dict() for _ in range(LEAF + 1)]
    for ci, chunk in p.chunks.items():
        levels[LEAF][ci] = pack_palloc_sum(*summarize(chunk.bits))
    for level in range(LEAF - 1, -1, -1):
        bits = LEVEL_BITS[level + 1]
        for parent in {i >> bits for i in levels[level + 1]}:
            kids = [levels[level + 1].get((parent << bits) + k, 0) for k in range(1 << bits)]
            levels[level][parent] = merge_summaries(kids, LEVEL_LOG_PAGES[level + 1])
    return levels


def check_page_alloc(p) -> None:
    """Raise InvariantError unless p's summaries, bitmaps and addresses agree."""
    p.sync_summaries()
    want = recompute_summaries(p)
    for level, (have, expect) in enumerate(zip(p.summary, want)):
        for idx in set(have) | set(expect):
            if have.get(idx, 0) != expect.get(idx, 0):
                raise InvariantError(
                    f"summary level {level} entry {idx:#x}: stored {have.get(idx, 0):#x}, "
                    f"recomputed {expect.get(idx, 0):#x}"
                )
    for ci, chunk in p.chunks.items():
        if chunk.bits & ~CHUNK_MASK or chunk.scavenged & ~CHUNK_MASK:
            raise InvariantError(f"chunk {ci:#x} has bits beyond page {PALLOC_CHUNK_PAGES - 1}")
        if chunk.bits & chunk.scavenged:
            raise InvariantError(f"chunk {ci:#x}: scavenged pages that are allocated: {chunk.bits & chunk.scavenged:#x}")
        if not p.in_use_ranges.contains(chunk_base(ci)):
            raise InvariantError(f"chunk {ci:#x} is not covered by the in-use ranges")
    for r in p.in_use_ranges.ranges:
        for ci in range(chunk_index(r.base), chunk_index(r.limit - 1) + 1):
            if ci not in p.chunks:
                raise InvariantError(f"in-use range [{r.base:#x}, {r.limit:#x}) covers missing chunk {ci:#x}")
    if p.chunks:
        if p.start != min(p.chunks) or p.end != max(p.chunks) + 1:
            raise InvariantError(f"bounds ({p.start:#x}, {p.end:#x}) do not match the chunks")
    # The radix tree finds what the leaf scan finds (Go's find vs ours).
    for npages in (1, 3, 16, 64, 65, 300, 512, 513, 1500):
        fast, radix = p.find(npages)[0], p.find_radix(npages)[0]
        if fast != radix:
            raise InvariantError(f"find({npages}) = {fast:#x} but Go's radix walk gives {radix:#x}")
    # Every page below searchAddr is allocated (what makes first fit from searchAddr correct).
    if p.search_addr != MAX_SEARCH_ADDR:
        s_ci, s_pi = chunk_index(p.search_addr), chunk_page_index(p.search_addr)
        for ci, chunk in p.chunks.items():
            below = CHUNK_MASK if ci < s_ci else ((1 << s_pi) - 1 if ci == s_ci else 0)
            if ~chunk.bits & below:
                raise InvariantError(
                    f"free page below searchAddr {p.search_addr:#x} in chunk {ci:#x}"
                )
    else:
        for ci, chunk in p.chunks.items():
            if chunk.bits != CHUNK_MASK:
                raise InvariantError(f"searchAddr says the heap is full but chunk {ci:#x} has free pages")


def naive_first_fit(p, npages: int) -> int:
    """Address of the lowest run of npages free pages over all chunks, or 0."""
    run_base, run_len = None, 0
    prev_ci = None
    for ci in sorted(p.chunks):
        if prev_ci is not None and ci != prev_ci + 1:
            run_len = 0  # a gap in the address space breaks the run
        prev_ci = ci
        bits = p.chunks[ci].bits
        for i in range(PALLOC_CHUNK_PAGES):
            if bits >> i & 1:
                run_len = 0
                continue
            if run_len == 0:
                run_base = chunk_base(ci) + i * PAGE_SIZE
            run_len += 1
            if run_len >= npages:
                return run_base
    return 0


def check_heap(heap, live_spans: dict) -> None:
    """Raise InvariantError unless the heap model (pagealloc.runtime.mheap.MHeap) is consistent.

    live_spans maps span id -> (base, npages), as the replay keeps them.
    Checks the page allocator (check_page_alloc: every summary level against
    a recomputation from the bitmaps, scavenged pages free, bounds, ranges);
    that the live spans and the page caches lie in grown chunks, are
    allocated in the bitmap and are pairwise disjoint, and that together they
    are exactly the allocated pages (no leak); that heap_inuse, heap_sys and
    heap_released equal a recount from the live spans, the grown ranges, the
    scavenged bits (bitmaps and caches) and the unused arena tail; that the
    heap lock is free and retained is not negative.
    """
    from pagealloc.runtime.malloc import HEAP_ARENA_BYTES

    p = heap.pages
    check_page_alloc(p)
    if heap.lock.held:
        raise InvariantError(f"heap lock still held by {heap.lock.holder}")
    owned: dict[int, int] = {}  # chunk -> pages of live spans and page caches

    def claim(ci: int, bits: int, what: str) -> None:
        chunk = p.chunks.get(ci)
        if chunk is None:
            raise InvariantError(f"{what} lies in chunk {ci:#x}, which was never grown")
        if ~chunk.bits & bits:
            raise InvariantError(f"{what} holds pages that are free in the bitmap of chunk {ci:#x}: {~chunk.bits & bits:#x}")
        if owned.get(ci, 0) & bits:
            raise InvariantError(f"{what} overlaps another live span or page cache in chunk {ci:#x}")
        owned[ci] = owned.get(ci, 0) | bits

    inuse_pages = 0
    for sid, (base, npages) in live_spans.items():
        if npages <= 0 or base % PAGE_SIZE:
            raise InvariantError(f"span {sid}: bad (base, npages) ({base:#x}, {npages})")
        inuse_pages += npages
        addr, left = base, npages
        while left:
            pi = chunk_page_index(addr)
            n = min(left, PALLOC_CHUNK_PAGES - pi)
            claim(chunk_index(addr), ((1 << n) - 1) << pi, f"span {sid} at {base:#x} ({npages} pages)")
            addr += n * PAGE_SIZE
            left -= n
    manual = getattr(heap, "manual_inuse", 0)  # live manual spans are not in heap_inuse
    if heap.heap_inuse + manual != inuse_pages * PAGE_SIZE:
        raise InvariantError(f"heap_inuse {heap.heap_inuse} + manual {manual} != {inuse_pages * PAGE_SIZE} bytes of live spans")
    cached_scav = 0
    for pid, c in heap.pcache.items():
        if c.scav & ~c.cache:
            raise InvariantError(f"P {pid}'s page cache has scavenged bits for pages it does not hold")
        if c.empty():
            continue
        claim(chunk_index(c.base), c.cache << chunk_page_index(c.base), f"P {pid}'s page cache at {c.base:#x}")
        cached_scav += c.scav.bit_count()
    for ci, chunk in p.chunks.items():
        leaked = chunk.bits & ~owned.get(ci, 0)
        if leaked:
            raise InvariantError(f"chunk {ci:#x}: pages allocated in the bitmap but in no live span or page cache: {leaked:#x}")
    tail = heap.cur_arena_end - heap.cur_arena_base
    grown = sum(r.limit - r.base for r in p.in_use_ranges.ranges)
    if heap.heap_sys != heap.arenas * HEAP_ARENA_BYTES or heap.heap_sys != grown + tail:
        raise InvariantError(
            f"heap_sys {heap.heap_sys} != {heap.arenas} arenas, or != grown ranges ({grown}) + unused arena tail ({tail})"
        )
    scavenged = sum(c.scavenged.bit_count() for c in p.chunks.values()) + cached_scav
    released = scavenged * PAGE_SIZE + tail
    if heap.heap_released != released:
        raise InvariantError(
            f"heap_released {heap.heap_released} != scavenged pages + unused arena tail ({released} bytes)"
        )
    if heap.heap_retained() < 0:
        raise InvariantError(f"retained is negative: {heap.heap_retained()}")
