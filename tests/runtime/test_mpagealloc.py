"""Port of Go 1.14's runtime/mpagealloc_test.go.

Go's ``NewPageAlloc(chunks, scav)`` is ``PageAlloc.for_test(chunks, scav)``;
``checkPageAlloc`` is the ``go.assert_page_alloc`` fixture (tests/conftest.py),
which also checks the summaries Go leaves as a TODO.  The 64-bit-only cases
(``if PageAlloc64Bit != 0``) are included: the model is linux/amd64.
"""

from __future__ import annotations

import pytest

from pagealloc import BASE_CHUNK_IDX as B
from pagealloc import PAGE_SIZE as PS
from pagealloc import PALLOC_CHUNK_PAGES as P
from pagealloc import PHYS_PAGE_SIZE, PageAlloc, page_base

# Every table runs on both engines, the compiled core and the Python mirror (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("engine")

PALLOC_SUM_BYTES = 8  # Go: pallocSumBytes, the size of one packed summary
CHUNK_IDX_BIG_JUMP = 0x100000  # a chunk index offset of O(TiB)


def pb(ci: int, i: int) -> int:
    return page_base(ci, i)


# --- TestPageAllocGrow -------------------------------------------------------------

GROW = {
    "One": ([B], [(pb(B, 0), pb(B + 1, 0))]),
    "Contiguous2": ([B, B + 1], [(pb(B, 0), pb(B + 2, 0))]),
    "Contiguous5": ([B, B + 1, B + 2, B + 3, B + 4], [(pb(B, 0), pb(B + 5, 0))]),
    "Discontiguous": (
        [B, B + 2, B + 4],
        [(pb(B, 0), pb(B + 1, 0)), (pb(B + 2, 0), pb(B + 3, 0)), (pb(B + 4, 0), pb(B + 5, 0))],
    ),
    "Mixed": ([B, B + 1, B + 2, B + 4], [(pb(B, 0), pb(B + 3, 0)), (pb(B + 4, 0), pb(B + 5, 0))]),
    "WildlyDiscontiguous": (
        [B, B + 1, B + 0x10, B + 0x21],
        [(pb(B, 0), pb(B + 2, 0)), (pb(B + 0x10, 0), pb(B + 0x11, 0)), (pb(B + 0x21, 0), pb(B + 0x22, 0))],
    ),
    # 33 ranges: more than twice the initial capacity Go gives its range slice.
    "ManyDiscontiguous": (
        [B + k for k in range(0, 65, 2)],
        [(pb(B + k, 0), pb(B + k + 1, 0)) for k in range(0, 65, 2)],
    ),
    "ExtremelyDiscontiguous": (
        [B, B + CHUNK_IDX_BIG_JUMP],
        [(pb(B, 0), pb(B + 1, 0)), (pb(B + CHUNK_IDX_BIG_JUMP, 0), pb(B + CHUNK_IDX_BIG_JUMP + 1, 0))],
    ),
}


@pytest.mark.parametrize(("chunks", "in_use"), list(GROW.values()), ids=list(GROW))
def test_page_alloc_grow(chunks, in_use):
    b = PageAlloc.for_test({c: [] for c in chunks})
    assert b.in_use() == in_use


# --- TestPageAllocAlloc ------------------------------------------------------------

# DiscontiguousMappedSumBoundary: a chunk whose summary ends a physical page
# of the summary array, and one far above it.
SUMS_PER_PHYS_PAGE = PHYS_PAGE_SIZE // PALLOC_SUM_BYTES
BOUNDARY_CI = B & ~(SUMS_PER_PHYS_PAGE - 1)

# name: (before, scav, [(npages, base, scav bytes), ...], after)
ALLOC = {
    "AllFree1": (
        {B: []},
        {B: [(0, 1), (2, 2)]},
        [(1, pb(B, 0), PS), (1, pb(B, 1), 0), (1, pb(B, 2), PS), (1, pb(B, 3), PS), (1, pb(B, 4), 0)],
        {B: [(0, 5)]},
    ),
    "ManyArena1": (
        {B: [(0, P)], B + 1: [(0, P)], B + 2: [(0, P - 1)]},
        {B: [(0, P)], B + 1: [(0, P)], B + 2: [(0, P)]},
        [(1, pb(B + 2, P - 1), PS)],
        {B: [(0, P)], B + 1: [(0, P)], B + 2: [(0, P)]},
    ),
    "NotContiguous1": (
        {B: [(0, P)], B + 0xFF: [(0, 0)]},
        {B: [(0, P)], B + 0xFF: [(0, P)]},
        [(1, pb(B + 0xFF, 0), PS)],
        {B: [(0, P)], B + 0xFF: [(0, 1)]},
    ),
    "AllFree2": (
        {B: []},
        {B: [(0, 3), (7, 1)]},
        [(2, pb(B, 0), 2 * PS), (2, pb(B, 2), PS), (2, pb(B, 4), 0), (2, pb(B, 6), PS), (2, pb(B, 8), 0)],
        {B: [(0, 10)]},
    ),
    "Straddle2": (
        {B: [(0, P - 1)], B + 1: [(1, P - 1)]},
        {B: [(P - 1, 1)], B + 1: []},
        [(2, pb(B, P - 1), PS)],
        {B: [(0, P)], B + 1: [(0, P)]},
    ),
    "AllFree5": (
        {B: []},
        {B: [(0, 8), (9, 1), (17, 5)]},
        [
            (5, pb(B, 0), 5 * PS),
            (5, pb(B, 5), 4 * PS),
            (5, pb(B, 10), 0),
            (5, pb(B, 15), 3 * PS),
            (5, pb(B, 20), 2 * PS),
        ],
        {B: [(0, 25)]},
    ),
    "AllFree64": (
        {B: []},
        {B: [(21, 1), (63, 65)]},
        [(64, pb(B, 0), 2 * PS), (64, pb(B, 64), 64 * PS), (64, pb(B, 128), 0)],
        {B: [(0, 192)]},
    ),
    "AllFree65": (
        {B: []},
        {B: [(129, 1)]},
        [(65, pb(B, 0), 0), (65, pb(B, 65), PS), (65, pb(B, 130), 0)],
        {B: [(0, 195)]},
    ),
    "ExhaustPallocChunkPages-3": (
        {B: []},
        {B: [(10, 1)]},
        [
            (P - 3, pb(B, 0), PS),
            (P - 3, 0, 0),
            (1, pb(B, P - 3), 0),
            (2, pb(B, P - 2), 0),
            (1, 0, 0),
            (P - 3, 0, 0),
        ],
        {B: [(0, P)]},
    ),
    "AllFreePallocChunkPages": (
        {B: []},
        {B: [(0, 1), (P - 1, 1)]},
        [(P, pb(B, 0), 2 * PS), (P, 0, 0), (1, 0, 0)],
        {B: [(0, P)]},
    ),
    "StraddlePallocChunkPages": (
        {B: [(0, P // 2)], B + 1: [(P // 2, P // 2)]},
        {B: [], B + 1: [(3, 100)]},
        [(P, pb(B, P // 2), 100 * PS), (P, 0, 0), (1, 0, 0)],
        {B: [(0, P)], B + 1: [(0, P)]},
    ),
    "StraddlePallocChunkPages+1": (
        {B: [(0, P // 2)], B + 1: []},
        {B: [(0, P)], B + 1: [(0, P)]},
        [(P + 1, pb(B, P // 2), (P + 1) * PS), (P, 0, 0), (1, pb(B + 1, P // 2 + 1), PS)],
        {B: [(0, P)], B + 1: [(0, P // 2 + 2)]},
    ),
    "AllFreePallocChunkPages*2": (
        {B: [], B + 1: []},
        {B: [], B + 1: []},
        [(P * 2, pb(B, 0), 0), (P * 2, 0, 0), (1, 0, 0)],
        {B: [(0, P)], B + 1: [(0, P)]},
    ),
    "NotContiguousPallocChunkPages*2": (
        {B: [], B + 0x40: [], B + 0x41: []},
        {B: [(0, P)], B + 0x40: [], B + 0x41: []},
        [(P * 2, pb(B + 0x40, 0), 0), (21, pb(B, 0), 21 * PS), (1, pb(B, 21), PS)],
        {B: [(0, 22)], B + 0x40: [(0, P)], B + 0x41: [(0, P)]},
    ),
    "StraddlePallocChunkPages*2": (
        {B: [(0, P // 2)], B + 1: [], B + 2: [(P // 2, P // 2)]},
        {B: [(0, 7)], B + 1: [(3, 5), (121, 10)], B + 2: [(P // 2 + 12, 2)]},
        [(P * 2, pb(B, P // 2), 15 * PS), (P * 2, 0, 0), (1, 0, 0)],
        {B: [(0, P)], B + 1: [(0, P)], B + 2: [(0, P)]},
    ),
    "StraddlePallocChunkPages*5/4": (
        {B: [(0, P)], B + 1: [(0, P * 3 // 4)], B + 2: [(0, P * 3 // 4)], B + 3: [(0, 0)]},
        {B: [(0, P)], B + 1: [(P // 2, P // 4 + 1)], B + 2: [(P // 3, 1)], B + 3: [(P * 2 // 3, 1)]},
        [(P * 5 // 4, pb(B + 2, P * 3 // 4), PS), (P * 5 // 4, 0, 0), (1, pb(B + 1, P * 3 // 4), PS)],
        {B: [(0, P)], B + 1: [(0, P * 3 // 4 + 1)], B + 2: [(0, P)], B + 3: [(0, P)]},
    ),
    "AllFreePallocChunkPages*7+5": (
        {B + k: [] for k in range(8)},
        {
            B: [(50, 1)],
            B + 1: [(31, 1)],
            B + 2: [(7, 1)],
            B + 3: [(200, 1)],
            B + 4: [(3, 1)],
            B + 5: [(51, 1)],
            B + 6: [(20, 1)],
            B + 7: [(1, 1)],
        },
        [(P * 7 + 5, pb(B, 0), 8 * PS), (P * 7 + 5, 0, 0), (1, pb(B + 7, 5), 0)],
        {**{B + k: [(0, P)] for k in range(7)}, B + 7: [(0, 6)]},
    ),
    "DiscontiguousMappedSumBoundary": (
        {BOUNDARY_CI + SUMS_PER_PHYS_PAGE - 1: [], BOUNDARY_CI + CHUNK_IDX_BIG_JUMP: []},
        {BOUNDARY_CI + SUMS_PER_PHYS_PAGE - 1: [], BOUNDARY_CI + CHUNK_IDX_BIG_JUMP: []},
        [
            (P - 1, pb(BOUNDARY_CI + SUMS_PER_PHYS_PAGE - 1, 0), 0),
            (1, pb(BOUNDARY_CI + SUMS_PER_PHYS_PAGE - 1, P - 1), 0),
            (1, pb(BOUNDARY_CI + CHUNK_IDX_BIG_JUMP, 0), 0),
            (P - 1, pb(BOUNDARY_CI + CHUNK_IDX_BIG_JUMP, 1), 0),
            (1, 0, 0),
        ],
        {BOUNDARY_CI + SUMS_PER_PHYS_PAGE - 1: [(0, P)], BOUNDARY_CI + CHUNK_IDX_BIG_JUMP: [(0, P)]},
    ),
}


@pytest.mark.parametrize(("before", "scav", "hits", "after"), list(ALLOC.values()), ids=list(ALLOC))
def test_page_alloc_alloc(go, before, scav, hits, after):
    b = PageAlloc.for_test(before, scav)
    for k, (npages, base, scav_bytes) in enumerate(hits, 1):
        a, s = b.alloc(npages)
        assert a == base, f"bad alloc #{k}: want base {base:#x}, got {a:#x}"
        assert s == scav_bytes, f"bad alloc #{k}: want scav {scav_bytes}, got {s}"
    go.assert_page_alloc(PageAlloc.for_test(after, scav), b)


# --- TestPageAllocExhaust ----------------------------------------------------------

EXHAUST_NPAGES = [1, 2, 3, 4, 5, 8, 16, 64, 1024, 1025, 2048, 2049]


@pytest.mark.parametrize("npages", EXHAUST_NPAGES, ids=[str(n) for n in EXHAUST_NPAGES])
def test_page_alloc_exhaust(go, npages):
    b = PageAlloc.for_test({B + k: [] for k in range(4)})
    n_alloc = P * 4 // npages
    for k in range(n_alloc):
        want = pb(B, k * npages)
        a, _ = b.alloc(npages)
        assert a == want, f"bad alloc #{k + 1}: want {want:#x}, got {a:#x}"
    a, _ = b.alloc(npages)
    assert a == 0, f"bad alloc #{n_alloc}: want 0, got {a:#x}"

    left = n_alloc * npages
    want_desc = {}
    for k in range(4):
        taken = min(left, P)
        want_desc[B + k] = [(0, taken)] if taken else []
        left -= taken
    go.assert_page_alloc(PageAlloc.for_test(want_desc), b)


# --- TestPageAllocFree -------------------------------------------------------------

# name: (npages, before, frees, after)
FREE = {
    "Free1": (1, {B: [(0, P)]}, [pb(B, i) for i in range(5)], {B: [(5, P - 5)]}),
    "ManyArena1": (
        1,
        {B: [(0, P)], B + 1: [(0, P)], B + 2: [(0, P)]},
        [pb(B, P // 2), pb(B + 1, 0), pb(B + 2, P - 1)],
        {B: [(0, P // 2), (P // 2 + 1, P // 2 - 1)], B + 1: [(1, P - 1)], B + 2: [(0, P - 1)]},
    ),
    "Free2": (2, {B: [(0, P)]}, [pb(B, i) for i in (0, 2, 4, 6, 8)], {B: [(10, P - 10)]}),
    "Straddle2": (2, {B: [(P - 1, 1)], B + 1: [(0, 1)]}, [pb(B, P - 1)], {B: [], B + 1: []}),
    "Free5": (5, {B: [(0, P)]}, [pb(B, i) for i in (0, 5, 10, 15, 20)], {B: [(25, P - 25)]}),
    "Free64": (64, {B: [(0, P)]}, [pb(B, i) for i in (0, 64, 128)], {B: [(192, P - 192)]}),
    "Free65": (65, {B: [(0, P)]}, [pb(B, i) for i in (0, 65, 130)], {B: [(195, P - 195)]}),
    "FreePallocChunkPages": (P, {B: [(0, P)]}, [pb(B, 0)], {B: []}),
    "StraddlePallocChunkPages": (
        P,
        {B: [(P // 2, P // 2)], B + 1: [(0, P // 2)]},
        [pb(B, P // 2)],
        {B: [], B + 1: []},
    ),
    "StraddlePallocChunkPages+1": (
        P + 1,
        {B: [(0, P)], B + 1: [(0, P)]},
        [pb(B, P // 2)],
        {B: [(0, P // 2)], B + 1: [(P // 2 + 1, P // 2 - 1)]},
    ),
    "FreePallocChunkPages*2": (P * 2, {B: [(0, P)], B + 1: [(0, P)]}, [pb(B, 0)], {B: [], B + 1: []}),
    "StraddlePallocChunkPages*2": (
        P * 2,
        {B: [(0, P)], B + 1: [(0, P)], B + 2: [(0, P)]},
        [pb(B, P // 2)],
        {B: [(0, P // 2)], B + 1: [], B + 2: [(P // 2, P // 2)]},
    ),
    "AllFreePallocChunkPages*7+5": (
        P * 7 + 5,
        {B + k: [(0, P)] for k in range(8)},
        [pb(B, 0)],
        {**{B + k: [] for k in range(7)}, B + 7: [(5, P - 5)]},
    ),
}


@pytest.mark.parametrize(("npages", "before", "frees", "after"), list(FREE.values()), ids=list(FREE))
def test_page_alloc_free(go, npages, before, frees, after):
    b = PageAlloc.for_test(before)
    for addr in frees:
        b.free(addr, npages)
    go.assert_page_alloc(PageAlloc.for_test(after), b)


# --- TestPageAllocAllocAndFree -----------------------------------------------------

# name: (init, [(alloc?, npages, base), ...])
ALLOC_AND_FREE = {
    "Chunks8": (
        {B + k: [] for k in range(8)},
        [
            (True, P * 8, pb(B, 0)),
            (False, P * 8, pb(B, 0)),
            (True, P * 8, pb(B, 0)),
            (False, P * 8, pb(B, 0)),
            (True, P * 8, pb(B, 0)),
            (False, P * 8, pb(B, 0)),
            (True, 1, pb(B, 0)),
            (False, 1, pb(B, 0)),
            (True, P * 8, pb(B, 0)),
        ],
    ),
}


@pytest.mark.parametrize(("init", "hits"), list(ALLOC_AND_FREE.values()), ids=list(ALLOC_AND_FREE))
def test_page_alloc_alloc_and_free(init, hits):
    b = PageAlloc.for_test(init)
    for k, (alloc, npages, base) in enumerate(hits, 1):
        if alloc:
            a, _ = b.alloc(npages)
            assert a == base, f"bad alloc #{k}: want {base:#x}, got {a:#x}"
        else:
            b.free(base, npages)
