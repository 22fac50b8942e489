"""runtime/fitindex.py: the byte-per-chunk index first fit consults.

The index may only decide which chunks are worth verifying, never what is
found: whatever its bounds say (exact, stale after allocations it was not
told about, tightened by an earlier search, raised by a free), the address
first_fit returns must be the first fit a plain page-by-page scan finds,
and next_large_candidate must never skip a chunk where a run of more than
255 pages starts.  The plain scan here reads the bitmaps as text: one
character a page, '|' between chunks that are not adjacent, and
str.find for the first run.
"""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from pagealloc import BASE_CHUNK_IDX as B
from pagealloc import PAGE_SIZE as PS
from pagealloc import PALLOC_CHUNK_PAGES as P
from pagealloc import PageAlloc, chunk_base, chunk_index
from pagealloc.runtime.fitindex import MAX_INDEXED, FitIndex
from pagealloc.runtime.mpallocbits import CHUNK_MASK, PallocData

FULL = CHUNK_MASK
PROPS = settings(deadline=None, max_examples=150)


def ones(i: int, n: int) -> int:
    return ((1 << n) - 1) << i


def page_text(bits: int) -> str:
    """'.' for a free page, 'x' for an allocated one, page 0 first."""
    return format(bits, f"0{P}b")[::-1].translate(str.maketrans("01", ".x"))


def plain_scan(chunks: dict, from_ci: int = 0) -> tuple[str, list]:
    """The pages of chunks >= from_ci as text, and each character's address (None for a gap)."""
    text, addrs, prev = [], [], None
    for ci in sorted(c for c in chunks if c >= from_ci):
        if prev is not None and ci != prev + 1:
            text.append("|")
            addrs.append(None)
        prev = ci
        text.append(page_text(chunks[ci].bits))
        addrs.extend(chunk_base(ci) + i * PS for i in range(P))
    return "".join(text), addrs


def plain_first_fit(chunks: dict, npages: int, from_ci: int = 0) -> int:
    text, addrs = plain_scan(chunks, from_ci)
    at = text.find("." * npages)
    return 0 if at < 0 else addrs[at]


def exact_bounds(chunks: dict, order: list) -> list[tuple[int, int]]:
    """(straddle, max) per position, as the index defines them, capped at 255."""
    out = []
    for k, ci in enumerate(order):
        text = page_text(chunks[ci].bits)
        longest = max(len(run) for run in text.split("x"))
        straddle = 0
        if k and order[k - 1] == ci - 1:
            below = page_text(chunks[ci - 1].bits)
            straddle = (len(below) - len(below.rstrip("."))) + (len(text) - len(text.lstrip(".")))
        out.append((min(straddle, MAX_INDEXED), min(longest, MAX_INDEXED)))
    return out


def assert_upper_bounds(fi: FitIndex) -> None:
    """What makes the index safe: no bound ever below the truth (capped at 255)."""
    assert fi.order == sorted(fi.chunks)
    for k, (straddle, longest) in enumerate(exact_bounds(fi.chunks, fi.order)):
        assert fi.bounds[2 * k] >= straddle, f"straddle bound into chunk {fi.order[k]:#x} below the truth"
        assert fi.bounds[2 * k + 1] >= longest, f"max bound of chunk {fi.order[k]:#x} below the truth"


def index_of(bits_by_offset: dict, grow_order=None) -> FitIndex:
    """An index over chunks B + offset, grown one chunk at a time as PageAlloc.grow does."""
    chunks: dict = {}
    fi = FitIndex(chunks)
    for off in grow_order if grow_order is not None else sorted(bits_by_offset):
        chunks[B + off] = PallocData(bits_by_offset[off])
        fi.grown(B + off, B + off + 1)
    return fi


# -- strategies --------------------------------------------------------------------------------

RUN = st.tuples(st.integers(0, P - 1), st.one_of(st.integers(1, 24), st.integers(1, P)))
# Runs at a chunk's bottom or top as often as anywhere: those are the ones that move straddle bounds.
EDGE_RUN = st.one_of(RUN, st.integers(1, P).map(lambda n: (0, n)), st.integers(1, P).map(lambda n: (P - n, n)))


@st.composite
def chunk_bits(draw) -> int:
    """A bitmap built from a few allocated (or freed) runs, often reaching an edge."""
    bits = draw(st.sampled_from([0, FULL]))
    for i, n in draw(st.lists(RUN, max_size=6)):
        if draw(st.booleans()):
            i = P - min(n, P) if draw(st.booleans()) else 0  # a run at the top or the bottom
        mask = ones(i, min(n, P - i))
        bits = bits | mask if draw(st.booleans()) else bits & ~mask
    return bits


@st.composite
def layouts(draw) -> dict:
    """{chunk offset: bits}: one to five chunks among B .. B + 7, so with and without gaps."""
    offsets = draw(st.sets(st.integers(0, 7), min_size=1, max_size=5))
    return {off: draw(chunk_bits(), label=f"bits of B+{off}") for off in sorted(offsets)}


NPAGES = st.one_of(st.integers(1, 16), st.integers(1, MAX_INDEXED), st.sampled_from([64, 200, 254, 255]))


# -- first fit ---------------------------------------------------------------------------------


@PROPS
@given(layout=layouts(), data=st.data())
def test_first_fit_is_the_plain_scans_first_fit(layout, data):
    """Grown in any order (growth below a chunk rebuilds), the index answers every size as the scan does."""
    grow_order = data.draw(st.permutations(sorted(layout)), label="grow order")
    fi = index_of(layout, grow_order)
    assert_upper_bounds(fi)
    for npages in data.draw(st.lists(NPAGES, min_size=1, max_size=8), label="npages"):
        assert fi.first_fit(npages, B) == plain_first_fit(fi.chunks, npages), npages
        assert_upper_bounds(fi)  # a search only ever tightens a bound to the truth or above


@PROPS
@given(layout=layouts(), data=st.data())
def test_first_fit_starts_at_the_search_chunk(layout, data):
    """Every chunk below from_ci is full (it lies below searchAddr): the fit is the scan's from there."""
    from_ci = B + data.draw(st.integers(0, max(layout) + 1), label="from offset")
    layout = {off: FULL if B + off < from_ci else bits for off, bits in layout.items()}
    fi = index_of(layout)
    for npages in data.draw(st.lists(NPAGES, min_size=1, max_size=6), label="npages"):
        assert fi.first_fit(npages, from_ci) == plain_first_fit(fi.chunks, npages, from_ci), npages


def ops(offsets: list[int]):
    on = st.sampled_from(offsets)  # a grown chunk
    return st.lists(
        st.one_of(
            st.tuples(st.just("alloc"), on, EDGE_RUN),  # the index is not told
            st.tuples(st.just("free"), on, EDGE_RUN),  # freed(ci, run_lo, run_hi), as PageAlloc.free
            st.tuples(st.just("free across"), on, RUN),  # top of ci and bottom of ci+1: touched, both
            st.tuples(st.just("rewrite"), on, EDGE_RUN),  # any change, then touched(ci) alone
            st.tuples(st.just("find"), NPAGES),
        ),
        max_size=30,
    )


@settings(deadline=None, max_examples=400)
@given(layout=layouts(), data=st.data())
def test_stale_bounds_never_change_what_first_fit_finds(layout, data):
    """Allocations leave bounds stale (too high), frees raise them, searches tighten them: after
    any sequence, every bound is still at least the truth and every search finds the scan's fit."""
    fi = index_of(layout)
    chunks = fi.chunks
    for op in data.draw(ops(sorted(layout)), label="ops"):
        if op[0] == "find":
            npages = op[1]
            assert fi.first_fit(npages, B) == plain_first_fit(chunks, npages), npages
            assert_upper_bounds(fi)
            continue
        ci, (i, n) = B + op[1], op[2]
        n = min(n, P - i)
        chunk = chunks[ci]
        if op[0] == "alloc":
            chunk.bits |= ones(i, n)
        elif op[0] == "free":
            chunk.bits &= ~ones(i, n)
            text = page_text(chunk.bits)
            lo = len(text[:i].rstrip("."))  # the free run holding [i, i+n)
            hi = P - len(text[i:].lstrip("."))
            fi.freed(ci, lo, hi)
        elif op[0] == "rewrite":
            chunk.bits ^= ones(i, n)
            fi.touched(ci)
        elif ci + 1 in chunks:  # a free of the top n pages of ci and the bottom i+1 of ci+1
            chunk.bits &= ~ones(P - n, n)
            chunks[ci + 1].bits &= ~ones(0, i + 1)
            fi.touched(ci)
            fi.touched(ci + 1)
        assert_upper_bounds(fi)


def test_a_stale_bound_is_tightened_and_the_fit_still_found():
    fi = index_of({0: FULL & ~ones(100, 50), 1: FULL & ~ones(300, 40)})
    assert fi.max_bound(B) == 50
    fi.chunks[B].bits |= ones(100, 20)  # allocated behind the index's back: 30 free left, bound says 50
    assert fi.first_fit(40, B) == chunk_base(B + 1) + 300 * PS  # chunk B verified and skipped
    assert fi.max_bound(B) == 39  # what that search learnt: no run of 40 there
    assert fi.first_fit(30, B) == chunk_base(B) + 120 * PS  # the bound still admits the 30 that remain


def test_a_free_raises_the_bound_so_the_run_is_found():
    fi = index_of({0: FULL, 1: FULL})
    assert fi.first_fit(1, B) == 0
    fi.chunks[B + 1].bits &= ~ones(200, 60)
    fi.freed(B + 1, 200, 260)
    assert fi.max_bound(B + 1) == 60
    assert fi.first_fit(60, B) == chunk_base(B + 1) + 200 * PS
    assert fi.first_fit(61, B) == 0


def test_touched_makes_a_chunks_bounds_and_the_straddle_above_it_exact():
    fi = index_of({0: FULL, 1: FULL & ~ones(0, 20)})
    straddle_into_upper = lambda: fi.bounds[2 * fi.pos[B + 1]]  # noqa: E731
    fi.chunks[B].bits = FULL & ~ones(50, 30) & ~ones(P - 15, 15)
    fi.touched(B)
    assert (fi.max_bound(B), straddle_into_upper()) == (30, 15 + 20)
    assert fi.first_fit(35, B) == chunk_base(B + 1) - 15 * PS
    fi.chunks[B].bits = FULL  # touched also lowers them: the bounds are exact again
    fi.touched(B)
    assert (fi.max_bound(B), straddle_into_upper()) == (0, 20)


# -- runs that straddle two chunks -------------------------------------------------------------


def test_a_run_straddling_two_adjacent_chunks_is_found():
    fi = index_of({0: ones(0, P - 100), 1: FULL & ~ones(0, 100)})  # 100 free at the top of B, 100 at the bottom of B+1
    assert fi.first_fit(150, B) == chunk_base(B + 1) - 100 * PS
    assert fi.first_fit(200, B) == chunk_base(B + 1) - 100 * PS
    assert fi.first_fit(201, B) == 0


def test_a_gap_between_chunks_breaks_the_run():
    fi = index_of({0: ones(0, P - 100), 2: FULL & ~ones(0, 100)})  # B+1 was never grown
    assert fi.first_fit(100, B) == chunk_base(B) + (P - 100) * PS
    assert fi.first_fit(101, B) == 0


def test_a_run_inside_a_chunk_comes_before_one_leaving_it():
    # B: 30 free in the middle, 10 at the top; B+1: 20 at the bottom (30 straddling, higher up).
    fi = index_of({0: FULL & ~ones(100, 30) & ~ones(P - 10, 10), 1: FULL & ~ones(0, 20)})
    assert fi.first_fit(30, B) == chunk_base(B) + 100 * PS
    assert fi.first_fit(25, B) == chunk_base(B) + 100 * PS


def test_a_straddling_run_comes_before_one_inside_the_upper_chunk():
    # B: 10 free at the top; B+1: 10 at the bottom and 40 in the middle.
    fi = index_of({0: FULL & ~ones(P - 10, 10), 1: FULL & ~ones(0, 10) & ~ones(200, 40)})
    assert fi.first_fit(20, B) == chunk_base(B + 1) - 10 * PS
    assert fi.first_fit(21, B) == chunk_base(B + 1) + 200 * PS


def test_straddle_bounds_follow_frees_at_the_chunk_edges():
    fi = index_of({0: FULL, 1: FULL})
    fi.chunks[B].bits &= ~ones(P - 5, 5)
    fi.freed(B, P - 5, P)  # the run reaches the top: the straddle into B+1 is recomputed
    fi.chunks[B + 1].bits &= ~ones(0, 7)
    fi.freed(B + 1, 0, 7)  # the run starts at the bottom: the straddle into B+1 again
    assert fi.bounds[2 * fi.pos[B + 1]] == 12
    assert fi.first_fit(12, B) == chunk_base(B + 1) - 5 * PS


# -- requests above 255 pages ------------------------------------------------------------------


def allocated_runs(bits: int) -> list[tuple[int, int]]:
    """The (first page, npages) runs of allocated pages: PageAlloc.for_test's way to say a bitmap."""
    return [(m.start(), m.end() - m.start()) for m in re.finditer("x+", page_text(bits))]


def first_large_run_position(fi: FitIndex, k: int, npages: int) -> int | None:
    """Position (in fi.order) of the chunk where the first run of npages starting at or above chunk k starts."""
    addr = plain_first_fit(fi.chunks, npages, fi.order[k])
    return None if addr == 0 else fi.pos[chunk_index(addr)]


@PROPS
@given(layout=layouts(), allocs=st.lists(st.tuples(st.integers(0, 7), RUN), max_size=6))
def test_next_large_candidate_never_skips_a_run_above_255_pages(layout, allocs):
    """Also with bounds left stale by allocations the index was not told about."""
    fi = index_of(layout)
    for off, (i, n) in allocs:
        if B + off in fi.chunks:
            fi.chunks[B + off].bits |= ones(i, min(n, P - i))
    for k in range(len(fi.order)):
        want = first_large_run_position(fi, k, MAX_INDEXED + 1)
        got = fi.next_large_candidate(k)
        if want is not None:
            assert got is not None and k <= got <= want, (k, got, want)


@settings(deadline=None, max_examples=60)
@given(layout=layouts(), npages=st.one_of(st.integers(MAX_INDEXED + 1, 600), st.sampled_from([256, 511, 512, 513, 1024])))
def test_requests_above_255_pages_find_the_plain_scans_first_fit(layout, npages):
    """The index does not answer these (PageAlloc scans, led by next_large_candidate); the fit is still the scan's."""
    alloc = {B + off: allocated_runs(bits) for off, bits in layout.items()}
    p = PageAlloc.for_test(alloc)
    want = plain_first_fit(p.chunks, npages)
    with p.heap_lock:
        addr, _ = p.alloc(npages)
    assert addr == want
