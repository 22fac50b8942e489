"""Property tests of the page allocator model (hypothesis).

Not ported from Go.  Two kinds:

* the bitmap-level functions against slow, obviously correct references
  written here from Go's documented semantics (find, summarize, merging
  summaries, findBitRange64, fillAligned, findScavengeCandidate);
* a RuleBasedStateMachine that drives one PageAlloc, grown over a few chunks
  with a gap, through random alloc / free / scavenge (locked, unlocked, and
  unlocked interleaved with the mutator at Go 1.14's lock points) /
  alloc_to_cache / cache alloc / flush / grow / resetScavengeAddr, and after
  every step checks pagealloc.runtime.invariants.check_page_alloc plus a shadow copy
  of the alloc bitmaps.  Every alloc is compared with a naive address-ordered
  first fit over the same bitmaps, and every page cache with the 64-page block
  of the first free page.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)

from pagealloc import BASE_CHUNK_IDX as B
from pagealloc import PAGE_SIZE as PS
from pagealloc import PALLOC_CHUNK_BYTES, SCAVENGE_ALL, PageAlloc, chunk_base, chunk_index
from pagealloc import PALLOC_CHUNK_PAGES as P
from pagealloc.runtime.engines import mpagealloc_compiled, page_alloc_class
from pagealloc.runtime.invariants import check_page_alloc, naive_first_fit
from pagealloc.runtime.mgcscavenge import UNLOCKED, fill_aligned, find_scavenge_candidate
from pagealloc.runtime.mpagealloc import LEAF, merge_summaries, pack_palloc_sum, unpack_palloc_sum
from pagealloc.runtime.mpagealloc_64bit import LEVEL_LOG_PAGES, chunk_page_index
from pagealloc.runtime.mpallocbits import CHUNK_MASK, NOT_FOUND, PallocData, find, find_bit_range64, summarize

W = (1 << 64) - 1
ENGINES_BUILT = ["python"] + (["compiled"] if mpagealloc_compiled is not None else [])
FAST = settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])

# --- references -----------------------------------------------------------------------


def free_runs(bits: int, width: int) -> list[str]:
    """The bitmap as a string of '0' (free) / '1' (used), page 0 first."""
    return format(bits, f"0{width}b")[::-1]


def summary_slow(bits: int, width: int) -> tuple[int, int, int]:
    s = free_runs(bits, width)
    start = len(s) - len(s.lstrip("0"))
    end = len(s) - len(s.rstrip("0"))
    return start, max((len(r) for r in s.split("1")), default=0), end


def find_slow(bits: int, npages: int, search_idx: int) -> tuple[int, int]:
    """Go's pallocBits.find contract: search from the 64-bit word holding search_idx."""
    s = free_runs(bits, P)
    lo = search_idx // 64 * 64
    first_free = s.find("0", lo)
    first_free = NOT_FOUND if first_free < 0 else first_free
    at = s.find("0" * npages, lo)
    return (NOT_FOUND if at < 0 else at), first_free


def find_scavenge_candidate_slow(alloc, scav, search_idx, min_pages, max_pages, huge_pages):
    """Go's findScavengeCandidate, page by page: the highest min-aligned free and
    unscavenged run at or below search_idx's word, cut to max (rounded up to
    min), then grown down to a huge-page boundary if that keeps it in the run."""
    used = alloc | scav
    ok = [not (used >> (g // min_pages * min_pages) & ((1 << min_pages) - 1)) for g in range(P)]
    top = (search_idx // 64 + 1) * 64
    end = next((i + 1 for i in range(top - 1, -1, -1) if ok[i]), 0)
    if end == 0:
        return 0, 0
    low = end
    while low > 0 and ok[low - 1]:
        low -= 1
    run = end - low
    want = min_pages if max_pages == 0 else -(-max_pages // min_pages) * min_pages
    size = min(run, want)
    start = end - size
    if huge_pages > 1:
        above = -(-start // huge_pages) * huge_pages
        below = start // huge_pages * huge_pages
        if above <= end and below >= low:
            size, start = size + start - below, below
    return start, size


# --- bitmap-level properties --------------------------------------------------------


def bitmaps(width: int = P):
    """Bitmaps with long runs of both kinds, not just noise."""
    noise = st.integers(0, (1 << width) - 1)
    runs = st.lists(st.tuples(st.integers(0, width - 1), st.integers(1, width)), max_size=6).map(
        lambda rs: sum(((1 << n) - 1) << i for i, n in rs) & ((1 << width) - 1)
    )
    return st.one_of(noise, runs, runs.map(lambda b: ((1 << width) - 1) ^ b), st.sampled_from([0, (1 << width) - 1]))


@FAST
@given(bitmaps(), st.integers(1, P + 1), st.integers(0, P - 1))
def test_find_matches_reference(bits, npages, search_idx):
    got = find(bits, npages, search_idx)
    want = find_slow(bits, npages, search_idx)
    if npages == 1:
        want = (want[0], want[0])
    assert got == want


@FAST
@given(bitmaps())
def test_summarize_matches_reference(bits):
    assert summarize(bits) == summary_slow(bits, P)


@FAST
@given(st.lists(bitmaps(), min_size=8, max_size=8))
def test_merge_summaries_matches_concatenation(chunks):
    merged = merge_summaries([pack_palloc_sum(*summarize(b)) for b in chunks], LEVEL_LOG_PAGES[LEAF])
    whole = sum(b << (P * k) for k, b in enumerate(chunks))
    assert unpack_palloc_sum(merged) == summary_slow(whole, 8 * P)


@settings(deadline=None, max_examples=25)
@given(st.lists(st.sampled_from([0, CHUNK_MASK, 1, 1 << (P - 1), 0xFF << 200]), min_size=64, max_size=64))
def test_merge_summaries_two_levels(chunks):
    """Merging merged summaries equals summarizing all 64 chunks at once."""
    leaf = LEVEL_LOG_PAGES[LEAF]
    lower = [
        merge_summaries([pack_palloc_sum(*summarize(b)) for b in chunks[k : k + 8]], leaf) for k in range(0, 64, 8)
    ]
    got = unpack_palloc_sum(merge_summaries(lower, LEVEL_LOG_PAGES[LEAF - 1]))
    assert got == summary_slow(sum(b << (P * k) for k, b in enumerate(chunks)), 64 * P)


@FAST
@given(st.integers(0, W), st.integers(0, 64))
def test_find_bit_range64_matches_reference(c, n):
    at = format(c, "064b")[::-1].find("1" * n)
    got = find_bit_range64(c, n)
    if at < 0:
        assert got >= 64
    else:
        assert got == at


@FAST
@given(st.integers(0, W), st.sampled_from([1, 2, 4, 8, 16, 32, 64]))
def test_fill_aligned_matches_reference(x, m):
    want = 0
    for g in range(0, 64, m):
        if x >> g & ((1 << m) - 1):
            want |= ((1 << m) - 1) << g
    assert fill_aligned(x, m) == want


@FAST
@given(
    bitmaps(),
    bitmaps(),
    st.integers(0, P - 1),
    st.sampled_from([1, 2, 4, 8, 16, 32, 64]),
    st.integers(0, P + 3),
    st.sampled_from([(2 << 20, 4096), (1 << 20, 4096), (4096, 4096), (2 << 20, 2 << 20)]),
)
def test_find_scavenge_candidate_matches_reference(alloc, scav, search_idx, min_pages, max_pages, sizes):
    huge, phys = sizes
    d = PallocData(alloc, scav & ~alloc)
    got = find_scavenge_candidate(d, search_idx, min_pages, max_pages, huge, phys)
    huge_pages = huge // PS if huge > PS and huge > phys else 1
    want = find_scavenge_candidate_slow(d.bits, d.scavenged, search_idx, min_pages, max_pages, huge_pages)
    if not (got[1] == 0 and want[1] == 0):
        assert got == want


# --- the page allocator state machine --------------------------------------------------

# Chunk layouts relative to B: always with a gap, so first fit must not run
# across it and the scavenger's slow path has several in-use ranges.
LAYOUTS = [
    (0, 1, 2, 4, 5),
    (0, 2),
    (0, 1, 3),
    (1, 2, 3, 6),
    tuple(k for k in range(14) if k not in (4, 9)),
    (0, 1, 0x1000),  # far apart: different level-1 and level-2 summary blocks
    (0, 0x100000),  # O(TiB) apart
]
GROWABLE = (3, 7, 8, 0x20)  # chunks a "grow" step may add (one fills a gap in some layouts)
SIZES = st.one_of(
    st.integers(1, 16), st.integers(1, 16), st.integers(17, 130), st.sampled_from([63, 64, 65, 511, 512, 513, 1100])
)


def _gaps_to_ranges(gaps_and_lengths):
    out, at = [], 0
    for gap, n in gaps_and_lengths:
        at += gap
        n = min(n, P - at)
        if n <= 0:
            break
        out.append((at, n))
        at += n
    return out


def disjoint_ranges():
    """Non-overlapping (first, npages) ranges within one chunk."""
    return st.lists(st.tuples(st.integers(0, 300), st.integers(1, 300)), max_size=4).map(_gaps_to_ranges)


def split_by_chunk(addr: int, npages: int):
    """(chunk index, first page, npages) pieces of [addr, addr + npages pages)."""
    while npages:
        ci, pi = chunk_index(addr), chunk_page_index(addr)
        n = min(npages, P - pi)
        yield ci, pi, n
        addr += n * PS
        npages -= n


def pop(bits: int) -> int:
    return bits.bit_count()


class PageAllocMachine(RuleBasedStateMachine):
    allocs = Bundle("allocs")  # (addr, npages) live allocations
    caches = Bundle("caches")  # outstanding PageCaches
    engine = "python"  # the PageAlloc engine driven (CompiledPageAllocMachine: the compiled core)

    def __init__(self):
        super().__init__()
        self.p = None
        self.shadow: dict[int, int] = {}  # chunk index -> alloc bits we expect
        self.inflight = None  # an unlocked scavenge_one_steps generator, paused at a lock point

    # -- setup --

    @initialize(
        target=allocs,
        layout=st.sampled_from(LAYOUTS),
        data=st.data(),
        phys=st.sampled_from([4096, 4096, 16384, 65536]),
        huge=st.sampled_from([2 << 20, 2 << 20, 1 << 20, 0]),
        via_grow=st.booleans(),
    )
    def setup(self, layout, data, phys, huge, via_grow):
        chunks = [B + k for k in layout]
        if via_grow:
            # The runtime's way: grown memory is free and fully scavenged.
            self.p = page_alloc_class(self.engine)(phys_page_size=phys, phys_huge_page_size=huge, test=True)
            with self.p.heap_lock:
                for ci in chunks:
                    self.p.grow(chunk_base(ci), PALLOC_CHUNK_BYTES)
            live = []
        else:
            alloc = {ci: data.draw(disjoint_ranges(), label=f"alloc {ci:#x}") for ci in chunks}
            scav = {ci: data.draw(disjoint_ranges(), label=f"scav {ci:#x}") for ci in chunks}
            self.p = page_alloc_class(self.engine).for_test(alloc, scav, phys_page_size=phys, phys_huge_page_size=huge)
            live = [(chunk_base(ci) + i * PS, n) for ci, rs in alloc.items() for i, n in rs if n]
        self.shadow = {ci: self.p.chunk_bits(ci)[0] for ci in chunks}
        return multiple(*live)

    # -- helpers --

    def _mark(self, addr: int, npages: int, used: bool) -> None:
        for ci, pi, n in split_by_chunk(addr, npages):
            mask = ((1 << n) - 1) << pi
            if used:
                assert not self.shadow[ci] & mask, "allocated pages handed out again"
                self.shadow[ci] |= mask
            else:
                assert self.shadow[ci] & mask == mask, "freeing pages that are not allocated"
                self.shadow[ci] &= ~mask

    def _scavenged_pages(self) -> int:
        return sum(pop(self.p.chunk_bits(ci)[1]) for ci in self.shadow)

    def _scav_bits_in(self, addr: int, npages: int) -> int:
        return sum(pop(self.p.chunk_bits(ci)[1] >> pi & ((1 << n) - 1)) for ci, pi, n in split_by_chunk(addr, npages))

    def _free_unscavenged_groups(self) -> int:
        """min-aligned groups of min pages that are wholly free and unscavenged."""
        m = max(1, self.p.phys_page_size // PS)
        count = 0
        for ci in self.shadow:
            alloc, scav = self.p.chunk_bits(ci)
            used = alloc | scav
            count += sum(1 for g in range(0, P, m) if not used >> g & ((1 << m) - 1))
        return count

    # -- mutator --

    @rule(target=allocs, npages=SIZES)
    def alloc(self, npages):
        want = naive_first_fit(self.p, npages)
        want_scav = self._scav_bits_in(want, npages) * PS if want else 0
        with self.p.heap_lock:
            addr, scav = self.p.alloc(npages)
        assert addr == want, f"alloc({npages}) = {addr:#x}, first fit is {want:#x}"
        assert scav == want_scav
        event("alloc: fits" if addr else "alloc: does not fit")
        if not addr:
            return multiple()
        self._mark(addr, npages, True)
        return (addr, npages)

    @rule(a=consumes(allocs))
    def free(self, a):
        addr, npages = a
        with self.p.heap_lock:
            self.p.free(addr, npages)
        self._mark(addr, npages, False)

    @rule(target=caches)
    def alloc_to_cache(self):
        first = naive_first_fit(self.p, 1)
        with self.p.heap_lock:
            c = self.p.alloc_to_cache()
        if not first:
            assert c.empty() and c.base == 0
            return multiple()
        base = first - (first - chunk_base(chunk_index(first))) % (64 * PS)
        ci, pi = chunk_index(base), chunk_page_index(base)
        assert c.base == base
        assert c.cache == ~(self.shadow[ci] >> pi) & W
        self._mark_block(ci, pi)
        return c

    def _mark_block(self, ci: int, pi: int) -> None:
        self.shadow[ci] |= W << pi

    @rule(target=allocs, c=caches, npages=st.sampled_from([1, 1, 2, 3, 5, 16, 64]))
    def cache_alloc(self, c, npages):
        before_scav = c.scav
        addr, scav = c.alloc(npages)
        if not addr:
            return multiple()
        i = (addr - c.base) // PS
        assert scav == pop(before_scav >> i & ((1 << npages) - 1)) * PS
        return (addr, npages)  # allocated in the page allocator since alloc_to_cache

    @rule(c=consumes(caches))
    def flush(self, c):
        ci, pi = chunk_index(c.base), chunk_page_index(c.base)
        cache = c.cache
        with self.p.heap_lock:
            c.flush(self.p)
        assert c.empty()
        self.shadow[ci] &= ~(cache << pi)

    @precondition(lambda self: any(B + k not in self.shadow for k in GROWABLE))
    @rule(k=st.sampled_from(GROWABLE))
    def grow(self, k):
        ci = B + k
        if ci in self.shadow:
            return
        with self.p.heap_lock:
            self.p.grow(chunk_base(ci), PALLOC_CHUNK_BYTES)
        assert self.p.chunk_bits(ci) == (0, CHUNK_MASK)
        self.shadow[ci] = 0

    # -- scavenger --

    @rule(nbytes=st.one_of(st.integers(1, 600 * PS), st.just(SCAVENGE_ALL)), locked=st.booleans())
    def scavenge(self, nbytes, locked):
        before = self._scavenged_pages()
        if locked:
            with self.p.heap_lock:
                released = self.p.scavenge(nbytes, locked=True)
        else:
            released = self.p.scavenge(nbytes, locked=False)
        assert not self.p.heap_lock.held
        assert released == (self._scavenged_pages() - before) * PS
        if released < nbytes:  # it gave up: nothing more until the address is reset
            assert self.p.scavenge(SCAVENGE_ALL, locked=False) == 0

    @rule()
    def reset_scavenge_addr(self):
        with self.p.heap_lock:
            self.p.reset_scavenge_addr()

    @rule(locked=st.booleans())
    def reset_and_scavenge_all(self, locked):
        """From the top of the heap, scavenging everything leaves no candidate."""
        before = self._scavenged_pages()
        with self.p.heap_lock:
            self.p.reset_scavenge_addr()
            if locked:
                released = self.p.scavenge(SCAVENGE_ALL, locked=True)
        if not locked:
            released = self.p.scavenge(SCAVENGE_ALL, locked=False)
        assert released == (self._scavenged_pages() - before) * PS
        assert self._free_unscavenged_groups() == 0

    @rule(max_pages=st.sampled_from([1, 4, 64, 300]))
    def scavenge_step(self, max_pages):
        """Advance an unlocked scavengeOne to its next lock point; the other rules
        run in between, as the mutator would while the scavenger lets go."""
        if self.inflight is None:
            self.inflight = self.p.scavenge_one_steps(max_pages * PS, False)
        try:
            point = next(self.inflight)
        except StopIteration as done:
            self.inflight = None
            assert done.value % PS == 0 and done.value >= 0
            event("interleaved scavengeOne: released" if done.value else "interleaved scavengeOne: nothing")
            return
        assert not self.p.heap_lock.held, f"paused at {point} holding the heap lock"
        assert point in ("lock", UNLOCKED)

    # -- invariants --

    @invariant()
    def consistent(self):
        if self.p is None:
            return
        check_page_alloc(self.p)
        for ci, bits in self.shadow.items():
            assert self.p.chunk_bits(ci)[0] == bits, f"chunk {ci:#x} alloc bits diverged"
        assert not self.p.heap_lock.held

    def teardown(self):
        if self.p is not None and self.p.stats_scav_fooled:
            event("scavenger fooled by the mutator")
        if self.inflight is not None:  # finish the paused scavenger
            for _ in self.inflight:
                pass
            check_page_alloc(self.p)


PageAllocMachine.TestCase.settings = settings(
    deadline=None,
    max_examples=200,
    stateful_step_count=50,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestPageAllocMachine = PageAllocMachine.TestCase


class CompiledPageAllocMachine(PageAllocMachine):
    engine = "compiled"


CompiledPageAllocMachine.TestCase.settings = PageAllocMachine.TestCase.settings
TestCompiledPageAllocMachine = pytest.mark.skipif("compiled" not in ENGINES_BUILT, reason="the compiled core was not built")(
    CompiledPageAllocMachine.TestCase)
