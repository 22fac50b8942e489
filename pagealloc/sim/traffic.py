"""The program's allocation traffic, which makes its releases slower.

Not a Go file: the machine's side of a release.  While a Go program
allocates heavily, its CPUs stream through memory (zeroing and writing new
objects, the GC marking them), and a MADV_FREE made meanwhile takes longer:
its page walk, its page structs and the IPI that shoots down the other
CPU's TLB miss in caches and TLBs that the traffic keeps cold.  Measured
three ways (docs/fidelity-log.md, "Session 9"): on a scratch Go 1.14.6 runtime
that kept each P's allocation bytes beside every background release, the
one-page crit was 14 us with no allocation in the 1-2 ms before it and
18-24 us once the program had allocated 2 MiB or more there, in the
service and churn programs alike; with other threads of the process
streaming through 64 MiB instead of hashing, MADV_FREE of one page takes
2.5-3.2 us more (trace.shootdown's probe: CostModel.memory_traffic_ns);
and the trace's own span allocations follow the bytes the Ps took into
their mcaches (correlation 0.81-0.98 over those windows), so they stand
for the traffic here.

``AllocTraffic`` counts the trace's span-allocation bytes per 100 us of
recorded time as the replay reads its batches, and ``heavy(t)`` says
whether the bytes in (t - WINDOW_NS, t] reach HEAVY_BYTES.  The replay asks
it at virtual time t, which follows recorded time up to the Ps' stalls.
Its state is only the buckets a later question can reach: the simulation's
clock never goes back, so ``forget_before`` drops the older ones.

No lock contract: it reads nothing of the heap.
"""

from __future__ import annotations

import numpy as np

from pagealloc.trace import OP_ALLOC

BUCKET_NS = 100_000
WINDOW_NS = 1_500_000  # the windows the scratch runtime measured over were 1-2 ms
HEAVY_BYTES = 2 << 20  # from 1 to 4 MiB, the corpus's figures move by under 0.05x (ARCHITECTURE.md)
PAGE_BYTES = 8192


class AllocTraffic:
    """Span-allocation bytes per BUCKET_NS of recorded time (a dict of the buckets that had any)."""

    def __init__(self) -> None:
        self.buckets: dict[int, int] = {}

    def add(self, ts: np.ndarray, op: np.ndarray, npages: np.ndarray) -> None:
        """Count one batch's allocations (its ``ts``, ``op`` and ``npages`` columns)."""
        alloc = op == OP_ALLOC
        if not alloc.any():
            return
        keys, at = np.unique(ts[alloc] // BUCKET_NS, return_inverse=True)
        sums = np.bincount(at, weights=npages[alloc].astype(np.float64)).astype(np.int64) * PAGE_BYTES
        buckets = self.buckets
        for k, b in zip(keys.tolist(), sums.tolist()):
            buckets[k] = buckets.get(k, 0) + b

    def heavy(self, t: int) -> bool:
        """Whether the program allocated HEAVY_BYTES or more in (t - WINDOW_NS, t] (by bucket)."""
        get, last = self.buckets.get, t // BUCKET_NS
        total = 0
        for k in range(last - WINDOW_NS // BUCKET_NS + 1, last + 1):
            total += get(k, 0)
        return total >= HEAVY_BYTES

    def forget_before(self, t: int) -> None:
        """Drop the buckets no question at t or later reaches."""
        first = (t - WINDOW_NS) // BUCKET_NS
        stale = [k for k in self.buckets if k < first]
        for k in stale:
            del self.buckets[k]
