"""Port of Go 1.14's runtime/mgcscavenge_test.go.

TestPageAllocScavenge runs each case twice, as Go does: ``Name`` with the
heap lock free (scavenge takes it itself) and ``NameLocked`` with the caller
holding it (``with p.heap_lock:``).  The model is linux/amd64: 4 KiB physical
pages (so the scavenger's minimum is one 8 KiB page) and 2 MiB huge pages.
TestFillAligned has no subtests in Go; here it has one case per alignment m,
with Go's fixed values and its random ones drawn from a seeded generator.
"""

from __future__ import annotations

import random

import pytest

from pagealloc import BASE_CHUNK_IDX as B
from pagealloc import PAGE_SIZE as PS
from pagealloc import PALLOC_CHUNK_PAGES as P
from pagealloc import PHYS_PAGE_SIZE, SCAVENGE_ALL, LockError, PageAlloc, page_base
from pagealloc.runtime.malloc import PHYS_HUGE_PAGE_SIZE
from pagealloc.runtime.mgcscavenge import LOCK, UNLOCKED, fill_aligned, find_scavenge_candidate
from pagealloc.runtime.mpagealloc_64bit import MIN_SCAV_ADDR
from pagealloc.runtime.mpallocbits import PallocData

# Every table runs on both engines, the compiled core and the Python mirror (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("engine")

W = (1 << 64) - 1


def make_palloc_data(alloc, scavenged) -> PallocData:
    """Go: makePallocData (empty ranges are skipped, as there)."""
    d = PallocData()
    for i, n in alloc:
        if n:
            d.alloc_range(i, n)
    for i, n in scavenged:
        if n:
            d.scavenged_set_range(i, n)
    return d


# --- TestFillAligned -----------------------------------------------------------------


def fill_aligned_slow(x: int, m: int) -> int:
    if m == 1:
        return x
    out = 0
    for i in range(0, 64, m):
        if x >> i & ((1 << m) - 1):
            out |= ((1 << m) - 1) << i
    return out


FILL_ALIGNED_FIXED = [
    0x0000000000000000,
    0x00000000FFFFFFFF,
    0xFFFFFFFF00000000,
    0x8000000000000001,
    0xF00000000000000F,
    0xF00000010050000F,
    0xFFFFFFFFFFFFFFFF,
    0x0000000000000001,
    0x0000000000000002,
    0x0000000000000008,
    # 1 << (m - 1) and 1 << m are added per m.
    0xB02B9EFFCF137016,
    0x3975A076A9FBFF18,
    0x0F8C88EC3B81506E,
    0x60F14D80EF2FA0E6,
]
ALIGNMENTS = [1, 2, 4, 8, 16, 32, 64]


@pytest.mark.parametrize("m", ALIGNMENTS, ids=[f"m={m}" for m in ALIGNMENTS])
def test_fill_aligned(m):
    rng = random.Random(0xF111 + m)
    values = FILL_ALIGNED_FIXED[:10] + [(1 << (m - 1)) & W, (1 << m) & W] + FILL_ALIGNED_FIXED[10:]
    for _ in range(1000):
        values.append(rng.getrandbits(64))
        if m > 1:
            # Each m-bit group is either left zero or filled at random.
            val = 0
            for n in range(0, 64, m):
                if rng.getrandbits(64) % 2 == 0:
                    val |= (rng.getrandbits(64) & ((1 << m) - 1)) << n
            values.append(val)
    bad = [x for x in values if fill_aligned(x, m) != fill_aligned_slow(x, m)]
    assert not bad, [f"bad fillAligned({x:016x}, {m}): got {fill_aligned(x, m):064b}" for x in bad[:5]]


# --- TestPallocDataFindScavengeCandidate ---------------------------------------------


def _find_scavenge_candidate_cases() -> dict:
    # name: (alloc, scavenged, min, max, want (start, npages))
    t = {
        "MixedMin1": ([(0, 40), (42, P - 42)], [(0, 41), (42, P - 42)], 1, P, (41, 1)),
        "MultiMin1": ([(0, 63), (65, 20), (87, P - 87)], [(86, 1)], 1, P, (85, 1)),
    }
    for m in ALIGNMENTS:
        sfx = f"Min{m}"
        t["AllFree" + sfx] = ([], [], m, P, (0, P))
        t["AllScavenged" + sfx] = ([], [(0, P)], m, P, (0, 0))
        t["NoneFree" + sfx] = ([(0, P)], [(P // 2, P // 2)], m, P, (0, 0))
        t["StartFree" + sfx] = ([(m, P - m)], [], m, P, (0, m))
        t["EndFree" + sfx] = ([(0, P - m)], [], m, P, (P - m, m))
        t["Straddle64" + sfx] = ([(0, 64 - m), (64 + m, P - (64 + m))], [], m, 2 * m, (64 - m, 2 * m))
        t["BottomEdge64WithFull" + sfx] = (
            [(64, 64), (128 + 3 * m, P - (128 + 3 * m))], [(1, 10)], m, 3 * m, (128, 3 * m)
        )
        t["BottomEdge64WithPocket" + sfx] = (
            [(64, 62), (127, 1), (128 + 3 * m, P - (128 + 3 * m))], [(1, 10)], m, 3 * m, (128, 3 * m)
        )
        t["Max0" + sfx] = ([], [(0, P - m)], m, 0, (P - m, m))
        if m <= 8:
            # Go names these without the suffix, so each m overwrites the
            # last and only the m = 8 variant runs; the same happens here.
            t["OneFree"] = ([(0, 40), (40 + m, P - (40 + m))], [], m, P, (40, m))
            t["OneScavenged"] = ([(0, 40), (40 + m, P - (40 + m))], [(40, 1)], m, P, (0, 0))
        if m > 1:
            t["MaxUnaligned" + sfx] = ([], [(0, P - (m * 2 - 1))], m, m - 2, (P - m, m))
            t["SkipSmall" + sfx] = ([(0, 64 - m), (64, 5), (70, 11), (82, P - 82)], [], m, m, (64 - m, m))
            t["SkipMisaligned" + sfx] = ([(0, 64 - m), (64, 63), (127 + m, P - (127 + m))], [], m, m, (64 - m, m))
            t["MaxLessThan" + sfx] = ([], [(0, P - m)], m, 1, (P - m, m))
    if PHYS_HUGE_PAGE_SIZE > PS:
        bits = PHYS_HUGE_PAGE_SIZE // PS  # pages per huge page: 256
        t["PreserveHugePageBottom"] = ([(bits + 2, P - (bits + 2))], [], 1, 3, (0, bits + 2))
        if 3 * bits < P:  # false with 2 MiB huge pages: Go does not run this case either
            t["PreserveHugePageMiddle"] = (
                [(0, bits - 10), (2 * bits + 10, P - (2 * bits + 10))], [], 1, 12, (bits, bits + 10)
            )
        t["PreserveHugePageTop"] = ([(0, P - bits)], [], 1, 1, (P - bits, bits))
    return t


FIND_SCAVENGE_CANDIDATE = _find_scavenge_candidate_cases()


@pytest.mark.parametrize(
    ("alloc", "scavenged", "min_pages", "max_pages", "want"),
    list(FIND_SCAVENGE_CANDIDATE.values()),
    ids=list(FIND_SCAVENGE_CANDIDATE),
)
def test_palloc_data_find_scavenge_candidate(alloc, scavenged, min_pages, max_pages, want):
    b = make_palloc_data(alloc, scavenged)
    got = b.find_scavenge_candidate(P - 1, min_pages, max_pages)
    if not (got[1] == 0 and want[1] == 0):
        assert got == want, f"candidate mismatch: got {got}, want {want}"


def test_palloc_data_find_scavenge_candidate_preserve_huge_page_middle():
    """Not a Go case: Go's PreserveHugePageMiddle needs 3 huge pages per chunk, so
    it is run here with 1 MiB huge pages (128 pages), passed explicitly."""
    bits = 128
    b = make_palloc_data([(0, bits - 10), (2 * bits + 10, P - (2 * bits + 10))], [])
    assert find_scavenge_candidate(b, P - 1, 1, 12, bits * PS, PHYS_PAGE_SIZE) == (bits, bits + 10)


# --- TestPageAllocScavenge -----------------------------------------------------------

MIN_PAGES = max(1, PHYS_PAGE_SIZE // PS)
MP = MIN_PAGES

# name: (beforeAlloc, beforeScav, [(request, expect), ...], afterScav)
SCAVENGE = {
    "AllFreeUnscavExhaust": (
        {B: [], B + 1: [], B + 2: []},
        {B: [], B + 1: [], B + 2: []},
        [(SCAVENGE_ALL, 3 * P * PS)],
        {B: [(0, P)], B + 1: [(0, P)], B + 2: [(0, P)]},
    ),
    "NoneFreeUnscavExhaust": (
        {B: [(0, P)], B + 1: [], B + 2: [(0, P)]},
        {B: [], B + 1: [(0, P)], B + 2: []},
        [(SCAVENGE_ALL, 0)],
        {B: [], B + 1: [(0, P)], B + 2: []},
    ),
    "ScavHighestPageFirst": (
        {B: []},
        {B: [(MP, P - 2 * MP)]},
        [(1, MP * PS)],
        {B: [(MP, P - MP)]},
    ),
    "ScavMultiple": (
        {B: []},
        {B: [(MP, P - 2 * MP)]},
        [(MP * PS, MP * PS), (MP * PS, MP * PS)],
        {B: [(0, P)]},
    ),
    "ScavMultiple2": (
        {B: [], B + 1: []},
        {B: [(MP, P - 2 * MP)], B + 1: [(0, P - 2 * MP)]},
        [(2 * MP * PS, 2 * MP * PS), (MP * PS, MP * PS), (MP * PS, MP * PS)],
        {B: [(0, P)], B + 1: [(0, P)]},
    ),
    "ScavDiscontiguous": (
        {B: [], B + 0xE: []},
        {B: [(MP, P - 2 * MP)], B + 0xE: [(2 * MP, P - 2 * MP)]},
        [(2 * MP * PS, 2 * MP * PS), (SCAVENGE_ALL, 2 * MP * PS), (SCAVENGE_ALL, 0)],
        {B: [(0, P)], B + 0xE: [(0, P)]},
    ),
    "ScavAllVeryDiscontiguous": (
        {B: [], B + 0x1000: []},
        {B: [], B + 0x1000: []},
        [(SCAVENGE_ALL, 2 * P * PS), (SCAVENGE_ALL, 0)],
        {B: [(0, P)], B + 0x1000: [(0, P)]},
    ),
}


def _scavenge_cases():
    for name, case in SCAVENGE.items():
        yield pytest.param(*case, False, id=name)
        yield pytest.param(*case, True, id=name + "Locked")


@pytest.mark.parametrize(("before_alloc", "before_scav", "expect", "after_scav", "locked"), list(_scavenge_cases()))
def test_page_alloc_scavenge(go, before_alloc, before_scav, expect, after_scav, locked):
    b = PageAlloc.for_test(before_alloc, before_scav)
    lock = b.heap_lock
    for k, (request, want) in enumerate(expect, 1):
        taken = lock.acquisitions
        if locked:
            with lock:
                got = b.scavenge(request, locked=True)
            assert lock.acquisitions == taken + 1, "locked scavenge took the heap lock itself"
        else:
            got = b.scavenge(request, locked=False)
            assert lock.acquisitions > taken, "unlocked scavenge never took the heap lock"
        assert got == want, f"bad scavenge #{k}: want {want}, got {got}"
        assert not lock.held
    go.assert_page_alloc(PageAlloc.for_test(before_alloc, after_scav), b)


# --- the lock contract of CL 195699 (not a Go test: Go does not check it) -------------


def test_scavenge_lock_contract():
    b = PageAlloc.for_test({B: []})
    with pytest.raises(LockError):
        b.scavenge(PS, locked=True)
    with b.heap_lock, pytest.raises(LockError):
        b.scavenge(PS, locked=False)
    assert not b.heap_lock.held


def _run_to(steps, want_point):
    """Advance a scavenge_one_steps generator to its next yield, which must be want_point."""
    assert next(steps) == want_point


@pytest.mark.parametrize("taken", [P, P - 100], ids=["FooledWholeChunk", "FooledPartly"])
def test_scavenge_one_unlocked_fooled_by_mutator(taken):
    """Not a Go test: Go 1.14's slow path sees a candidate without the lock, and the
    mutator allocates it before the scavenger locks to take it."""
    b = PageAlloc.for_test({B: [], B + 1: [(0, P)]}, {B: [], B + 1: []})
    lock = b.heap_lock
    steps = b.scavenge_one_steps(P * PS, locked=False)
    _run_to(steps, LOCK)  # fast path: chunk B+1 is full
    _run_to(steps, UNLOCKED)  # slow path lets go of the lock
    _run_to(steps, LOCK)  # it saw chunk B's free pages and is about to lock
    with lock:
        assert b.alloc(taken) == (page_base(B, 0), 0)
    with pytest.raises(StopIteration) as done:
        while True:
            assert next(steps) in (LOCK, UNLOCKED)
    left = P - taken
    assert done.value.value == left * PS
    assert not lock.held
    if left == 0:
        assert b.stats_scav_fooled == 1
        assert b.scav_addr == MIN_SCAV_ADDR
    else:
        assert b.chunk_bits(B) == ((1 << taken) - 1, ((1 << left) - 1) << taken)
        assert b.scav_addr == page_base(B, taken) - 1


def test_scavenge_one_locked_has_no_lock_points():
    b = PageAlloc.for_test({B: [], B + 2: []})
    with b.heap_lock:
        steps = b.scavenge_one_steps(SCAVENGE_ALL, locked=True)
        with pytest.raises(StopIteration) as done:
            next(steps)
    assert done.value.value == P * PS  # one run: the top chunk


@pytest.mark.parametrize(
    ("name", "want"),
    [
        # Fast path on each chunk from the top, then "below the heap" at B-1.
        ("AllFreeUnscavExhaust", [4]),
        # Fast path skipped (B+2 full); slow path unlocks to walk the range and
        # relocks at its end; nothing found, so the walk stops.
        ("NoneFreeUnscavExhaust", [2]),
        # #1: fast path on B+0xE.  #2: slow path finds page 511 of B (2 acquisitions),
        # fast path finds page 0, then "below the heap".  #3: below the heap at once.
        ("ScavDiscontiguous", [1, 4, 1]),
    ],
)
def test_scavenge_unlocked_lock_points(name, want):
    """Not a Go test: the heap-lock acquisitions of unlocked scavenging, per request,
    counted by hand from Go 1.14's scavengeOne (lockHeap / unlockHeap calls)."""
    before_alloc, before_scav, expect, _ = SCAVENGE[name]
    b = PageAlloc.for_test(before_alloc, before_scav)
    got = []
    for request, _ in expect:
        before = b.heap_lock.acquisitions
        b.scavenge(request, locked=False)  # HeapLock raises on a lock/unlock out of order
        assert not b.heap_lock.held
        got.append(b.heap_lock.acquisitions - before)
    assert got == want
