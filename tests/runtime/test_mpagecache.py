"""Port of Go 1.14's runtime/mpagecache_test.go.

Go's ``NewPageCache(base, cache, scav)`` is ``PageCache(base, cache, scav)``.
TestPageCacheFlush has no subtests in Go; its fixed cases and its 100 random
ones (drawn here from a seeded generator) become one case each.
"""

from __future__ import annotations

import random

import pytest

from pagealloc import BASE_CHUNK_IDX as B
from pagealloc import PAGE_SIZE as PS
from pagealloc import PALLOC_CHUNK_PAGES as P
from pagealloc import PHYS_PAGE_SIZE, PageAlloc, PageCache, page_base

# Every table runs on both engines, the compiled core and the Python mirror (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("engine")

W = (1 << 64) - 1  # ^uint64(0)
PALLOC_SUM_BYTES = 8  # Go: pallocSumBytes
CHUNK_IDX_BIG_JUMP = 0x100000


def assert_page_cache(got: PageCache, want: PageCache) -> None:
    """Go: checkPageCache."""
    assert got.base == want.base, f"bad pageCache base: got {got.base:#x}, want {want.base:#x}"
    assert got.cache == want.cache, f"bad pageCache bits: got {got.cache:016x}, want {want.cache:016x}"
    assert got.scav == want.scav, f"bad pageCache scav: got {got.scav:016x}, want {want.scav:016x}"


# --- TestPageCacheAlloc ------------------------------------------------------------

BASE = page_base(B, 0)

# name: ((cache, scav), [(npages, base, scav bytes), ...])
CACHE_ALLOC = {
    "Empty": ((0, 0), [(n, 0, 0) for n in (1, 2, 3, 4, 5, 11, 12, 16, 27, 32, 43, 57, 64, 121)]),
    "Lo1": ((0x1, 0x1), [(1, BASE, PS), (1, 0, 0), (10, 0, 0)]),
    "Hi1": ((0x1 << 63, 0x1), [(1, BASE + 63 * PS, 0), (1, 0, 0), (10, 0, 0)]),
    "Swiss1": (
        (0x20005555, 0x5505),
        [
            (2, 0, 0),
            (1, BASE, PS),
            (1, BASE + 2 * PS, PS),
            (1, BASE + 4 * PS, 0),
            (1, BASE + 6 * PS, 0),
            (1, BASE + 8 * PS, PS),
            (1, BASE + 10 * PS, PS),
            (1, BASE + 12 * PS, PS),
            (1, BASE + 14 * PS, PS),
            (1, BASE + 29 * PS, 0),
            (1, 0, 0),
            (10, 0, 0),
        ],
    ),
    "Lo2": ((0x3, 0x2 << 62), [(2, BASE, 0), (2, 0, 0), (1, 0, 0)]),
    "Hi2": ((0x3 << 62, 0x3 << 62), [(2, BASE + 62 * PS, 2 * PS), (2, 0, 0), (1, 0, 0)]),
    "Swiss2": (
        (0x3333 << 31, 0x3030 << 31),
        [
            (2, BASE + 31 * PS, 0),
            (2, BASE + 35 * PS, 2 * PS),
            (2, BASE + 39 * PS, 0),
            (2, BASE + 43 * PS, 2 * PS),
            (2, 0, 0),
        ],
    ),
    "Hi53": (
        (((1 << 53) - 1) << 10, ((1 << 16) - 1) << 10),
        [(53, BASE + 10 * PS, 16 * PS), (53, 0, 0), (1, 0, 0)],
    ),
    "Full53": ((W, ((1 << 16) - 1) << 10), [(53, BASE, 16 * PS), (53, 0, 0), (1, BASE + 53 * PS, 0)]),
    "Full64": ((W, W), [(64, BASE, 64 * PS), (64, 0, 0), (1, 0, 0)]),
    "FullMixed": (
        (W, W),
        [
            (5, BASE, 5 * PS),
            (7, BASE + 5 * PS, 7 * PS),
            (1, BASE + 12 * PS, 1 * PS),
            (23, BASE + 13 * PS, 23 * PS),
            (63, 0, 0),
            (3, BASE + 36 * PS, 3 * PS),
            (3, BASE + 39 * PS, 3 * PS),
            (3, BASE + 42 * PS, 3 * PS),
            (12, BASE + 45 * PS, 12 * PS),
            (11, 0, 0),
            (4, BASE + 57 * PS, 4 * PS),
            (4, 0, 0),
            (6, 0, 0),
            (36, 0, 0),
            (2, BASE + 61 * PS, 2 * PS),
            (3, 0, 0),
            (1, BASE + 63 * PS, 1 * PS),
            (4, 0, 0),
            (2, 0, 0),
            (62, 0, 0),
            (1, 0, 0),
        ],
    ),
}


@pytest.mark.parametrize(("bits", "hits"), list(CACHE_ALLOC.values()), ids=list(CACHE_ALLOC))
def test_page_cache_alloc(bits, hits):
    c = PageCache(BASE, *bits)
    for k, (npages, base, scav) in enumerate(hits):
        b, s = c.alloc(npages)
        assert b == base, f"bad alloc base #{k}: got {b:#x}, want {base:#x}"
        assert s == scav, f"bad alloc scav #{k}: got {s}, want {scav}"


# --- TestPageCacheFlush ------------------------------------------------------------


def bits64_to_bit_ranges(bits: int, base: int) -> list[tuple[int, int]]:
    """The runs of set bits of a uint64 as (base + first bit, length)."""
    ranges, start, size = [], 0, 0
    for i in range(64):
        if bits >> i & 1:
            if size == 0:
                start = i + base
            size += 1
        elif size:
            ranges.append((start, size))
            size = 0
    if size:
        ranges.append((start, size))
    return ranges


def _flush_cases():
    cases = [pytest.param(0, 0, 0, id="Empty"), pytest.param(0, W, W, id="Full")]
    rng = random.Random(0x9A6E_CAC4)
    for k in range(100):
        base = rng.randrange(P // 64) * 64
        cache = rng.getrandbits(64)
        scav = rng.getrandbits(64) & cache
        cases.append(pytest.param(base, cache, scav, id=f"Random{k}"))
    return cases


@pytest.mark.parametrize(("base", "cache", "scav"), _flush_cases())
def test_page_cache_flush(go, base, cache, scav):
    b = PageAlloc.for_test({B: [(base, 64)]}, {B: []})
    c = PageCache(page_base(B, base), cache, scav)
    c.flush(b)
    assert c.empty(), "pageCache flush did not clear cache"
    want = PageAlloc.for_test(
        {B: bits64_to_bit_ranges(~cache & W, base)},
        {B: bits64_to_bit_ranges(scav, base)},
    )
    go.assert_page_alloc(want, b)


# --- TestPageAllocAllocToCache -----------------------------------------------------

SUMS_PER_PHYS_PAGE = PHYS_PAGE_SIZE // PALLOC_SUM_BYTES
BOUNDARY_CI = B & ~(SUMS_PER_PHYS_PAGE - 1)
LOW_CI, HIGH_CI = BOUNDARY_CI + SUMS_PER_PHYS_PAGE - 1, BOUNDARY_CI + CHUNK_IDX_BIG_JUMP

# name: (before, scav, [expected PageCache, ...], after)
ALLOC_TO_CACHE = {
    "AllFree": (
        {B: []},
        {B: [(1, 1), (64, 64)]},
        [
            PageCache(page_base(B, 0), W, 0x2),
            PageCache(page_base(B, 64), W, W),
            PageCache(page_base(B, 128), W, 0),
            PageCache(page_base(B, 192), W, 0),
        ],
        {B: [(0, 256)]},
    ),
    "ManyArena": (
        {B: [(0, P)], B + 1: [(0, P)], B + 2: [(0, P - 64)]},
        {B: [(0, P)], B + 1: [(0, P)], B + 2: []},
        [PageCache(page_base(B + 2, P - 64), W, 0)],
        {B: [(0, P)], B + 1: [(0, P)], B + 2: [(0, P)]},
    ),
    "NotContiguous": (
        {B: [(0, P)], B + 0xFF: [(0, 0)]},
        {B: [(0, P)], B + 0xFF: [(31, 67)]},
        [PageCache(page_base(B + 0xFF, 0), W, ((1 << 33) - 1) << 31)],
        {B: [(0, P)], B + 0xFF: [(0, 64)]},
    ),
    "First": (
        {B: [(0, 32), (33, 31), (96, 32)]},
        {B: [(1, 4), (31, 5), (66, 2)]},
        [PageCache(page_base(B, 0), 1 << 32, 1 << 32), PageCache(page_base(B, 64), (1 << 32) - 1, 0x3 << 2)],
        {B: [(0, 128)]},
    ),
    "Fail": (
        {B: [(0, P)]},
        None,
        [PageCache(0, 0, 0), PageCache(0, 0, 0), PageCache(0, 0, 0)],
        {B: [(0, P)]},
    ),
    "DiscontiguousMappedSumBoundary": (
        {LOW_CI: [(0, P - 1)], HIGH_CI: [(1, P - 1)]},
        {LOW_CI: [], HIGH_CI: []},
        [PageCache(page_base(LOW_CI, P - 64), 1 << 63, 0), PageCache(page_base(HIGH_CI, 0), 1, 0), PageCache(0, 0, 0)],
        {LOW_CI: [(0, P)], HIGH_CI: [(0, P)]},
    ),
}


@pytest.mark.parametrize(("before", "scav", "hits", "after"), list(ALLOC_TO_CACHE.values()), ids=list(ALLOC_TO_CACHE))
def test_page_alloc_alloc_to_cache(go, before, scav, hits, after):
    b = PageAlloc.for_test(before, scav)
    for expect in hits:
        assert_page_cache(b.alloc_to_cache(), expect)
    go.assert_page_alloc(PageAlloc.for_test(after, scav), b)
