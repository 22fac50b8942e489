"""Differential tests: the pagealloc model against the real Go runtime's page allocator.

Each test generates a family of random op streams (goracle_lib.generate),
runs them through the model and, in one process, through the Go runtime's own
test export (pagealloc_oracle_test.go), and requires every result line to be
identical: every address and scav byte count returned by Alloc and
PageCache.Alloc, every AllocToCache cache, every Scavenge total, the bitmaps
of every chunk every 500 ops and at the end, Bounds and InUse.  README.md
says what is (and is not) compared for Scavenge and why.
"""

from __future__ import annotations

import random

import pytest

import goracle_lib as lib
from pagealloc import BASE_CHUNK_IDX as B
from pagealloc import PAGE_SIZE, SCAVENGE_ALL, PageAlloc, chunk_base

pytestmark = pytest.mark.goracle

MIB = 1 << 20
HUGE_SIZES = (0, 16 << 10, 1 * MIB, 2 * MIB, 4 * MIB)  # physHugePageSize per stream: off, 2 to 512 pages

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
]
GAP_OFFSETS = (-0x1000, -2, -1, 0, 1, 2, 3, 7, 8, 9, 0x10, 0x3F, 0x40, 0x41, 0x200, 0xFFF, 0x1000, 0x1001, 0x2000, 0x100000)


def check(goracle, streams: list[lib.Stream]) -> None:
    reports = goracle.check(streams)
    assert not reports, "model and Go runtime disagree:\n\n" + "\n\n".join(reports)


def test_random_contiguous(goracle):
    """Fresh contiguous heaps of 1-16 chunks; allocs of 1-2000 pages, frees of whole and
    partial live spans, page caches, occasional scavenges."""
    streams = []
    for seed in range(100):
        rng = random.Random(seed)
        n = rng.choice((1, 2, 3, 4, 4, 8, 16))
        streams.append(lib.generate(
            "contig", seed, goracle.phys_page_size, [B + i for i in range(n)], nops=3000,
            huge=HUGE_SIZES[seed % len(HUGE_SIZES)], p_scavenge=0.01, p_cache=0.05,
        ))
    check(goracle, streams)


def test_gap_layouts(goracle):
    """Heaps with holes in the address space: fixed layouts and random subsets of
    offsets from BaseChunkIdx, some pre-populated and partly scavenged."""
    streams = []
    for seed in range(80):
        rng = random.Random(seed)
        if seed < 2 * len(GAP_LAYOUTS):
            layout = GAP_LAYOUTS[seed % len(GAP_LAYOUTS)]
        else:
            layout = sorted(B + o for o in rng.sample(GAP_OFFSETS, rng.randint(2, 6)))
        streams.append(lib.generate(
            "gaps", seed, goracle.phys_page_size, layout, nops=2500, huge=HUGE_SIZES[seed % len(HUGE_SIZES)],
            init_density=rng.choice((0.0, 0.3, 0.7)), scav_mode=rng.choice(("nil", "empty", "partial", "full")),
            p_scavenge=0.02, p_cache=0.05,
        ))
    check(goracle, streams)


def test_prepopulated_partly_scavenged(goracle):
    """NewPageAlloc with allocated ranges and scavenged ranges (overlapping ones
    included, which NewPageAlloc clears), then a mixed stream with more scavenging."""
    streams = []
    for seed in range(80):
        rng = random.Random(seed)
        n = rng.choice((1, 2, 3, 5, 8))
        streams.append(lib.generate(
            "prepop", seed, goracle.phys_page_size, [B + i for i in range(n)], nops=2500,
            huge=HUGE_SIZES[seed % len(HUGE_SIZES)], init_density=rng.uniform(0.1, 0.9),
            scav_mode=rng.choice(("partial", "partial", "full", "empty")), p_scavenge=0.03, p_cache=0.04,
        ))
    check(goracle, streams)


def test_scavenge_sequences(goracle):
    """Scavenge(n) for n from one byte to ^uintptr(0), interleaved only with allocations.

    Without frees no free-and-unscavenged run ever lies above Go 1.14's scavAddr,
    so the model's scavenger runs exactly as Go 1.14 leaves it, with no reset,
    and must agree with Go 1.27's scavenger op for op (README.md).
    """
    streams = []
    for seed in range(150):
        rng = random.Random(seed)
        n = rng.choice((2, 4, 8, 16))
        layout = [B + i for i in range(n)] if seed % 2 else rng.choice(GAP_LAYOUTS)
        streams.append(lib.generate(
            "scavseq", seed, goracle.phys_page_size, layout, nops=400, huge=HUGE_SIZES[seed % len(HUGE_SIZES)],
            init_density=rng.choice((0.0, 0.2, 0.5)), scav_mode=rng.choice(("nil", "partial", "empty")),
            p_scavenge=0.7, p_scavenge_all=0.005, max_scavenge_pages=rng.choice((16, 64, 256)),
            mutate=False, dump_every=50, stop_when_scavenged_out=True,
        ))
    check(goracle, streams)
    resets = sum(s.totals.scav_reset for s in streams)
    assert resets == 0, "a stream without frees needed resetScavengeAddr: README.md's claim is wrong"


def test_page_cache_heavy(goracle):
    """Many AllocToCache / PageCache.Alloc / Flush ops among allocs and frees."""
    streams = []
    for seed in range(40):
        rng = random.Random(seed)
        n = rng.choice((1, 2, 4))
        streams.append(lib.generate(
            "cache", seed, goracle.phys_page_size, [B + i for i in range(n)], nops=2500,
            huge=HUGE_SIZES[seed % len(HUGE_SIZES)], init_density=rng.choice((0.0, 0.5)),
            scav_mode=rng.choice(("nil", "partial")), p_scavenge=0.02, p_cache=0.4,
        ))
    check(goracle, streams)


def test_large_heaps(goracle):
    """65-200 contiguous chunks, across 64-chunk blocks and a level-0 entry boundary,
    with some allocations of up to 60000 pages (many chunks each)."""
    streams = []
    for seed in range(16):
        rng = random.Random(seed)
        first = B + rng.choice((0, 0x3F, 0xFC0))
        layout = [first + i for i in range(rng.randint(65, 200))]
        streams.append(lib.generate(
            "large", seed, goracle.phys_page_size, layout, nops=1500, huge=HUGE_SIZES[seed % len(HUGE_SIZES)],
            init_density=rng.choice((0.0, 0.3)), scav_mode=rng.choice(("nil", "partial")),
            p_scavenge=0.01, p_cache=0.03, p_big=0.15, max_big=min(60000, 512 * len(layout)),
        ))
    check(goracle, streams)


def test_exhaustion(goracle):
    """Small heaps driven to (and past) full: allocs and AllocToCache that fail,
    searchAddr at maxSearchAddr, then frees that make room again."""
    streams = []
    for seed in range(50):
        rng = random.Random(seed)
        layout = rng.choice(([B], [B, B + 1], [B, B + 2], [B + 0xFFF, B + 0x1000]))
        streams.append(lib.generate(
            "full", seed, goracle.phys_page_size, layout, nops=1500, huge=HUGE_SIZES[seed % len(HUGE_SIZES)],
            init_density=rng.choice((0.0, 0.6, 0.95)), scav_mode=rng.choice(("nil", "partial")),
            p_scavenge=0.02, p_cache=0.08, target_occupancy=rng.uniform(0.97, 1.2),
        ))
    check(goracle, streams)


def test_documented_scavenger_difference(goracle):
    """The one place Go 1.27 and Go 1.14 are known to part: memory freed after
    Go 1.14's scavenger has passed it.  Go 1.14 does not see it until
    resetScavengeAddr; Go 1.27 (whose free raises its search cursor) does."""
    s = lib.Stream(name="documented-0", huge=0, chunks={B: []}, scav=None,
                   ops=["s 18446744073709551615", "a 10", "f 0 0", "s 18446744073709551615", "end"])
    base = chunk_base(B)
    assert goracle.run(s)[:4] == [f"s {512 * PAGE_SIZE}", f"a {base:#x} {10 * PAGE_SIZE}", f"f {base:#x} 10",
                                  f"s {10 * PAGE_SIZE}"]
    p = PageAlloc.for_test({B: []}, phys_page_size=goracle.phys_page_size, phys_huge_page_size=0)
    assert p.scavenge(SCAVENGE_ALL, False) == 512 * PAGE_SIZE
    with p.heap_lock:
        addr, scav = p.alloc(10)
        p.free(addr, 10)
    assert scav == 10 * PAGE_SIZE
    assert p.scavenge(SCAVENGE_ALL, False) == 0  # Go 1.14: scavAddr is past it
    p.reset_scavenge_addr()
    assert p.scavenge(SCAVENGE_ALL, False) == 10 * PAGE_SIZE  # as Go 1.27 after the reset

