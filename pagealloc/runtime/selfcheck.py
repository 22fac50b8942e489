"""The model's self-check: a seeded random stream checked against naive first fit.

Not a Go file.  Used by ``pagealloc selfcheck`` and by the tests.
"""

from __future__ import annotations

import random

from pagealloc.runtime.invariants import check_page_alloc, naive_first_fit
from pagealloc.runtime.mpagealloc import PageAlloc
from pagealloc.runtime.mpagealloc_64bit import BASE_CHUNK_IDX, PALLOC_CHUNK_BYTES, chunk_base


class SelfCheckError(AssertionError):
    pass


def run_selfcheck(ops: int = 20_000, seed: int = 1, chunks: int = 8) -> str:
    rng = random.Random(seed)
    p = PageAlloc()
    with p.heap_lock:
        p.grow(chunk_base(BASE_CHUNK_IDX), chunks * PALLOC_CHUNK_BYTES)
    live: list[tuple[int, int]] = []
    allocs = frees = scavenges = 0
    for n in range(ops):
        roll = rng.random()
        if roll < 0.02:
            p.scavenge(rng.choice([4096, 65536, 1 << 20]), False)
            scavenges += 1
        elif roll < 0.50 and live:
            base, npages = live.pop(rng.randrange(len(live)))
            with p.heap_lock:
                p.free(base, npages)
            frees += 1
        else:
            npages = rng.randint(1, 16) if rng.random() < 0.95 else rng.randint(17, 1200)
            want = naive_first_fit(p, npages) if n % 7 == 0 else None
            with p.heap_lock:
                addr, _ = p.alloc(npages)
            if want is not None and addr != want:
                raise SelfCheckError(f"op {n}: alloc({npages}) = {addr:#x}, first fit says {want:#x}")
            if addr:
                live.append((addr, npages))
            allocs += 1
        if n % 1000 == 0:
            check_page_alloc(p)
    check_page_alloc(p)
    return (
        f"selfcheck ok: {ops} ops ({allocs} allocs, {frees} frees, {scavenges} scavenges), "
        f"seed {seed}: first fit and invariants hold"
    )
