"""Port of Go 1.14's runtime/mpallocbits_test.go.

Every table and subtest name of the Go file is here; BenchmarkPallocBitsSummarize
is a benchmark, not a test, and is not ported.  Bitmaps are 512-bit ints
(bit i = page i), so Go's ``want[k] = w`` (word k) becomes ``w << (64 * k)``.
"""

from __future__ import annotations

import random

import pytest

from pagealloc import PALLOC_CHUNK_PAGES as P
from pagealloc.runtime.mpagealloc import pack_palloc_sum, unpack_palloc_sum
from pagealloc.runtime.mpallocbits import CHUNK_MASK, NOT_FOUND, PallocBits, find_bit_range64

# Every table runs on both engines, the compiled core and the Python mirror (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("engine")

W = (1 << 64) - 1  # ^uint64(0)


def words(by_index: dict[int, int]) -> int:
    """A bitmap from its 64-bit words, {word index: value} (Go: want[k] = value)."""
    return sum(v << (64 * k) for k, v in by_index.items())


def invert(bits: int) -> int:
    """Go: invertPallocBits."""
    return CHUNK_MASK ^ bits


# --- TestPallocBitsAllocRange -------------------------------------------------

ALLOC_RANGE = {
    "OneLow": (0, 1, words({0: 0x1})),
    "OneHigh": (P - 1, 1, words({P // 64 - 1: 1 << 63})),
    "Inner": (129, 5, words({2: 0x3E})),
    "Aligned": (128, 128, words({2: W, 3: W})),
    "Begin": (0, 321, words({0: W, 1: W, 2: W, 3: W, 4: W, 5: 0x1})),
    "End": (P - (64 * 3 + 1), 64 * 3 + 1, words({P // 64 - 1: W, P // 64 - 2: W, P // 64 - 3: W, P // 64 - 4: 1 << 63})),
    "All": (0, P, words({k: W for k in range(P // 64)})),
}


@pytest.mark.parametrize(("i", "n", "want"), list(ALLOC_RANGE.values()), ids=list(ALLOC_RANGE))
def test_palloc_bits_alloc_range(go, i, n, want):
    b = PallocBits()
    b.alloc_range(i, n)
    go.assert_bits(b.bits, want)


# --- TestMallocBitsPopcntRange ------------------------------------------------

POPCNT_RANGE = {
    "None": (
        [],
        [(0, 1, 0), (5, 3, 0), (2, 11, 0), (P // 4 + 1, P // 2, 0), (0, P, 0)],
    ),
    "All": (
        [(0, P)],
        [(0, 1, 1), (5, 3, 3), (2, 11, 11), (P // 4 + 1, P // 2, P // 2), (0, P, P)],
    ),
    "Half": (
        [(P // 2, P // 2)],
        [
            (0, 1, 0),
            (5, 3, 0),
            (2, 11, 0),
            (P // 2 - 1, 1, 0),
            (P // 2, 1, 1),
            (P // 2 + 10, 1, 1),
            (P // 2 - 1, 2, 1),
            (P // 4, P // 4, 0),
            (P // 4, P // 4 + 1, 1),
            (P // 4 + 1, P // 2, P // 4 + 1),
            (0, P, P // 2),
        ],
    ),
    "OddBound": (
        [(0, 111)],
        [
            (0, 1, 1),
            (5, 3, 3),
            (2, 11, 11),
            (110, 2, 1),
            (99, 50, 12),
            (110, 1, 1),
            (111, 1, 0),
            (99, 1, 1),
            (120, 1, 0),
            (P // 2, P // 2, 0),
            (0, P, 111),
        ],
    ),
    "Scattered": (
        [
            (1, 3), (5, 1), (7, 1), (10, 2), (13, 1), (15, 4),
            (21, 1), (23, 1), (26, 2), (30, 5), (36, 2), (40, 3),
            (44, 6), (51, 1), (53, 2), (58, 3), (63, 1), (67, 2),
            (71, 10), (84, 1), (89, 7), (99, 2), (103, 1), (107, 2),
            (111, 1), (113, 1), (115, 1), (118, 1), (120, 2), (125, 5),
        ],  # fmt: skip
        [(0, 11, 6), (0, 64, 39), (13, 64, 40), (64, 64, 34), (0, 128, 73), (1, 128, 74), (0, P, 75)],
    ),
}


@pytest.mark.parametrize(("init", "checks"), list(POPCNT_RANGE.values()), ids=list(POPCNT_RANGE))
def test_malloc_bits_popcnt_range(go, init, checks):
    b = PallocBits(go.make_bits(init))
    got = [(i, n, b.popcnt_range(i, n)) for i, n, _ in checks]
    assert got == checks


# --- TestPallocBitsSummarizeRandom / TestPallocBitsSummarize --------------------


def summarize_slow(bits: int) -> tuple[int, int, int]:
    """Go (export_test.go): SummarizeSlow, a page-by-page reference."""
    used = [bits >> i & 1 for i in range(P)]
    start = next((i for i, u in enumerate(used) if u), P)
    end = next((i for i, u in enumerate(reversed(used)) if u), P)
    best = run = 0
    for u in used:
        run = 0 if u else run + 1
        best = max(best, run)
    return start, best, end


def sum_fields(start: int, max_: int, end: int) -> tuple[int, int, int]:
    """Start/Max/End as read back from the packed pallocSum (Go: checkPallocSum)."""
    return unpack_palloc_sum(pack_palloc_sum(start, max_, end))


def test_palloc_bits_summarize_random():
    rng = random.Random(0x5EED_1114)
    for _ in range(1000):
        bits = rng.getrandbits(P)
        assert sum_fields(*PallocBits(bits).summarize()) == sum_fields(*summarize_slow(bits)), hex(bits)


SUMMARIZE = {
    "NoneFree": ([], (0, 0, 0)),
    "OnlyStart": ([(0, 10)], (10, 10, 0)),
    "OnlyEnd": ([(P - 40, 40)], (0, 40, 40)),
    "StartAndEnd": ([(0, 11), (P - 23, 23)], (11, 23, 23)),
    "StartMaxEnd": ([(0, 4), (50, 100), (P - 4, 4)], (4, 100, 4)),
    "OnlyMax": ([(1, 20), (35, 241), (P - 50, 30)], (0, 241, 0)),
    "MultiMax": ([(35, 2), (40, 5), (100, 5)], (0, 5, 0)),
    "One": ([(2, 1)], (0, 1, 0)),
    "AllFree": ([(0, P)], (P, P, P)),
}


@pytest.mark.parametrize(("free", "want"), list(SUMMARIZE.values()), ids=list(SUMMARIZE))
def test_palloc_bits_summarize(go, free, want):
    # The ranges name free pages; the bitmap marks used ones.
    b = PallocBits(invert(go.make_bits(free)))
    assert sum_fields(*b.summarize()) == sum_fields(*want)


# --- TestPallocBitsAlloc --------------------------------------------------------

NF = NOT_FOUND  # Go's ^uint(0)
ALLOC = {
    "AllFree1": ([], 1, [0, 1, 2, 3, 4, 5], [(0, 6)]),
    "AllFree2": ([], 2, [0, 2, 4, 6, 8, 10], [(0, 12)]),
    "AllFree5": ([], 5, [0, 5, 10, 15, 20], [(0, 25)]),
    "AllFree64": ([], 64, [0, 64, 128], [(0, 192)]),
    "AllFree65": ([], 65, [0, 65, 130], [(0, 195)]),
    "SomeFree64": ([(0, 32), (64, 32), (100, P - 100)], 64, [NF], [(0, 32), (64, 32), (100, P - 100)]),
    "NoneFree1": ([(0, P)], 1, [NF, NF], [(0, P)]),
    "NoneFree2": ([(0, P)], 2, [NF, NF], [(0, P)]),
    "NoneFree5": ([(0, P)], 5, [NF, NF], [(0, P)]),
    "NoneFree65": ([(0, P)], 65, [NF, NF], [(0, P)]),
    "ExactFit1": ([(0, P // 2 - 3), (P // 2 - 2, P // 2 + 2)], 1, [P // 2 - 3, NF], [(0, P)]),
    "ExactFit2": ([(0, P // 2 - 3), (P // 2 - 1, P // 2 + 1)], 2, [P // 2 - 3, NF], [(0, P)]),
    "ExactFit5": ([(0, P // 2 - 3), (P // 2 + 2, P // 2 - 2)], 5, [P // 2 - 3, NF], [(0, P)]),
    "ExactFit65": ([(0, P // 2 - 31), (P // 2 + 34, P // 2 - 34)], 65, [P // 2 - 31, NF], [(0, P)]),
    "SomeFree161": ([(0, 185), (331, 1)], 161, [332], [(0, 185), (331, 162)]),
}


@pytest.mark.parametrize(("before", "npages", "hits", "after"), list(ALLOC.values()), ids=list(ALLOC))
def test_palloc_bits_alloc(go, before, npages, hits, after):
    b = PallocBits(go.make_bits(before))
    for k, want in enumerate(hits, 1):
        a, _ = b.find(npages, 0)
        assert a == want, f"find #{k} picked wrong index: want {want}, got {a}"
        if want != NF:
            b.alloc_range(a, npages)
    go.assert_bits(b.bits, go.make_bits(after))


# --- TestPallocBitsFree ---------------------------------------------------------

FREE = {
    "SomeFree": ([(0, 32), (64, 32), (100, 1)], 1, [32], [(0, 33), (64, 32), (100, 1)]),
    "NoneFree1": ([], 1, [0, 1, 2, 3, 4, 5], [(0, 6)]),
    "NoneFree2": ([], 2, [0, 2, 4, 6, 8, 10], [(0, 12)]),
    "NoneFree5": ([], 5, [0, 5, 10, 15, 20], [(0, 25)]),
    "NoneFree64": ([], 64, [0, 64, 128], [(0, 192)]),
    "NoneFree65": ([], 65, [0, 65, 130], [(0, 195)]),
}


@pytest.mark.parametrize(("before_inv", "npages", "frees", "after_inv"), list(FREE.values()), ids=list(FREE))
def test_palloc_bits_free(go, before_inv, npages, frees, after_inv):
    b = PallocBits(invert(go.make_bits(before_inv)))
    for i in frees:
        b.free(i, npages)
    go.assert_bits(b.bits, invert(go.make_bits(after_inv)))


# --- TestFindBitRange64 ----------------------------------------------------------
# Go runs these as plain checks without subtests; each becomes one case here.
# want None: no run exists, so any result >= 64 is right.

FIND_BIT_RANGE64 = (
    [(W, n, 0) for n in range(65)]
    + [(0, 0, 0)]
    + [(0, n, None) for n in range(1, 65)]
    + [
        (0x8000000000000000, 1, 63),
        (0xC000010001010000, 2, 62),
        (0xC000010001030000, 2, 16),
        (0xE000030001030000, 3, 61),
        (0xE000030001070000, 3, 16),
        (0xFFFF03FF01070000, 16, 48),
        (0xFFFF03FF0107FFFF, 16, 0),
        (0x0FFF03FF01079FFF, 16, None),
    ]
)


@pytest.mark.parametrize(
    ("x", "n", "want"), FIND_BIT_RANGE64, ids=[f"{x:016x},{n}" for x, n, _ in FIND_BIT_RANGE64]
)
def test_find_bit_range64(x, n, want):
    got = find_bit_range64(x, n)
    if want is None:
        assert got >= 64, f"case ({x:016x}, {n}): got {got}, want failure"
    else:
        assert got == want, f"case ({x:016x}, {n}): got {got}, want {want}"
