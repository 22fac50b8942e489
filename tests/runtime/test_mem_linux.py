"""sysUnused / sysUsed as Go 1.14 does them on linux (runtime/mem_linux.go), and their prices."""

from __future__ import annotations

import pandas as pd
import pytest

from pagealloc.runtime.mem_linux import MADV_DONTNEED, MADV_FREE, MADV_HUGEPAGE, MADV_NOHUGEPAGE, sys_unused, sys_used
from pagealloc.sim.costmodel import CostModel
from pagealloc.sim.replay import replay

HUGE = 2 << 20
B = 0xC000000000  # huge-page aligned


@pytest.mark.parametrize(
    "v, n, want",
    [
        # aligned at both ends: no huge-page flags, just the release
        (B, HUGE, [(MADV_FREE, B, HUGE)]),
        # one 8 KiB page inside a huge page: head and tail are the same huge page, one call
        (B + 8192, 8192, [(MADV_NOHUGEPAGE, B, HUGE), (MADV_FREE, B + 8192, 8192)]),
        # crossing one huge-page boundary: head and tail adjacent, one call of two huge pages
        (B + HUGE - 8192, 16384, [(MADV_NOHUGEPAGE, B, 2 * HUGE), (MADV_FREE, B + HUGE - 8192, 16384)]),
        # spanning three huge pages, unaligned at both ends: two calls
        (B + 8192, 2 * HUGE, [(MADV_NOHUGEPAGE, B, HUGE), (MADV_NOHUGEPAGE, B + 2 * HUGE, HUGE),
                              (MADV_FREE, B + 8192, 2 * HUGE)]),
        # aligned start, unaligned end: only the tail
        (B, HUGE + 8192, [(MADV_NOHUGEPAGE, B + HUGE, HUGE), (MADV_FREE, B, HUGE + 8192)]),
    ],
)
def test_sys_unused_matches_go(v, n, want):
    assert sys_unused(v, n, HUGE) == want


def test_sys_unused_without_huge_pages_and_with_madvdontneed():
    assert sys_unused(B + 8192, 8192, 0) == [(MADV_FREE, B + 8192, 8192)]
    assert sys_unused(B + 8192, 8192, 0, madvdontneed=True) == [(MADV_DONTNEED, B + 8192, 8192)]


def test_sys_used_marks_only_whole_huge_pages():
    assert sys_used(B + 8192, HUGE, HUGE) == []  # no whole huge page inside
    assert sys_used(B, HUGE, HUGE) == [(MADV_HUGEPAGE, B, HUGE)]
    assert sys_used(B + 8192, 3 * HUGE, HUGE) == [(MADV_HUGEPAGE, B + HUGE, 2 * HUGE)]
    assert sys_used(B, 3 * HUGE, 0) == []


def _trace():
    MiB = 1 << 20
    rows = [(0, "alloc", 1, 512, 0), (1_000, "alloc", 2, 512, 0), (2_000, "free", 2, 512, 0),
            (3_000, "gc", 0, 0, 64 * MiB), (4_000, "free_os_memory", 0, 0, 0), (5_000, "alloc", 3, 512, 0)]
    return pd.DataFrame(rows, columns=["ts", "op", "span", "npages", "value"]).astype(
        {"ts": "int64", "span": "uint64", "npages": "uint32", "value": "uint64"})


def test_madvdontneed_prices_the_release_and_the_retouch_differently():
    """Same heap decisions either way; only the cost of releasing and reusing memory differs."""
    free = replay(_trace(), "go1.14")
    dontneed = replay(_trace(), "go1.14", madvdontneed=True)
    assert free.madvise_advice == "MADV_FREE" and dontneed.madvise_advice == "MADV_DONTNEED"
    assert free.released_bytes == dontneed.released_bytes > 0
    assert free.scavenged_alloc_bytes == dontneed.scavenged_alloc_bytes > 0
    # FreeOSMemory releases one whole 4 MiB chunk (aligned: no huge-page flag calls) in one
    # madvise under the lock; span 3 then reuses it, re-touching its 1024 4 KiB pages.  Span 2
    # wrote them and they were never freed before: MADV_FREE puts each on the lazyfree list.
    c = CostModel()
    pages = (4 << 20) // 4096
    forced = {"free": c.madvise_free_call_ns + c.madvise_free_first_page_ns * pages,
              "dontneed": c.madvise_call_ns + c.madvise_page_ns * pages}
    assert free.madvise_calls == dontneed.madvise_calls
    assert dontneed.lock_hold_max_ns == forced["dontneed"] + c.lock_ns + c.chunk_scan_ns
    retouch = (c.page_fault_ns - c.page_retouch_free_ns) * pages
    assert dontneed.makespan_ns - free.makespan_ns == forced["dontneed"] - forced["free"] + retouch


@pytest.mark.parametrize("madvdontneed", [False, True])
def test_an_unmapping_madvise_pays_the_tlb_shootdown_while_another_cpu_runs_the_process(madvdontneed):
    """MHeap.tlb_peers > 0: each MADV_FREE / MADV_DONTNEED waits for the other CPUs' TLBs; the flag calls don't."""
    from pagealloc.runtime.mheap import MHeap

    cost = CostModel()  # tlb_shootdown_ns: calibrate's figure on an idle VM
    one_page = B + 8192, 8192  # a NOHUGEPAGE call on its huge page, then the release
    heap = MHeap(cost=cost, madvdontneed=madvdontneed)
    alone = [heap._madvise_ns(call) for call in sys_unused(*one_page, HUGE, madvdontneed)]
    heap.tlb_peers = 1
    shared = [heap._madvise_ns(call) for call in sys_unused(*one_page, HUGE, madvdontneed)]
    assert alone[0] == cost.madvise_hugepage_ns + cost.vma_split_ns  # the huge page's first NOHUGEPAGE
    assert shared[0] == cost.madvise_hugepage_ns  # set already: no split, and no shootdown either
    assert shared[1] - alone[1] == cost.tlb_shootdown_ns > 0


def test_every_release_asks_the_ps_schedule_who_else_runs_as_it_is_made():
    """With a probe (the simulation's Ps' schedule), the shootdown is priced per release whoever makes it:
    asked about the P making the operation (tlb_p), at the time it took the lock (op_ns) plus what the
    operation has cost so far.  Its own P running does not count; another one does."""
    from pagealloc.runtime.mheap import MHeap

    class Schedule:  # P 1 runs from 5,000 ns on; P 0 makes the release
        asked = []

        def others_running(self, p, t):
            self.asked.append((p, t))
            return sum(1 for q in (0, 1) if q != p and (q == 0 or t >= 5_000))

    cost = CostModel()
    heap = MHeap(cost=cost)
    heap.tlb_probe, heap.tlb_p = Schedule(), 0
    release = (MADV_FREE, B, 8192)
    heap.op_ns, heap.meter_ns = 1_000, 0
    early = heap._madvise_ns(release)
    heap.op_ns, heap.meter_ns = 1_000, 4_000  # the operation's earlier work takes it to 5,000 ns
    late = heap._madvise_ns(release)
    assert late - early == cost.tlb_shootdown_ns
    assert Schedule.asked == [(0, 1_000), (0, 5_000)]
    heap.tlb_p = 1  # P 1's own release, P 0 running
    assert heap._madvise_ns(release) == late
    heap.tlb_probe, heap.tlb_peers = None, 0  # no schedule: the fixed answer
    assert heap._madvise_ns(release) == early


def test_madv_free_prices_a_resident_page_it_meets_for_the_first_time_higher():
    """The first MADV_FREE of a written page moves it to the kernel's lazyfree list; a page freed before
    (and written since) or never written costs madvise_free_page_ns."""
    from pagealloc.runtime.malloc import PAGE_SIZE
    from pagealloc.runtime.mheap import MHeap

    cost = CostModel()
    assert cost.madvise_free_first_page_ns > cost.madvise_free_page_ns
    heap = MHeap(cost=cost)
    heap._first_touch(B, 4)  # pages 0-3 allocated (resident); 4-7 never
    free_ns = lambda npages, first: heap._madvise_ns((MADV_FREE, B, npages * PAGE_SIZE), first)
    first = heap._first_lazyfree(B, 8)
    assert first == 4 * PAGE_SIZE  # only the resident ones
    assert heap._first_lazyfree(B, 8) == 0  # all on the lazyfree list now
    per4k = PAGE_SIZE // 4096
    assert free_ns(8, first) - free_ns(8, 0) == 4 * per4k * (cost.madvise_free_first_page_ns - cost.madvise_free_page_ns)
    # under MADV_DONTNEED the heap does not track the list: every release prices the same
    dontneed = MHeap(cost=cost, madvdontneed=True)
    dontneed._first_touch(B, 4)
    assert dontneed._madvise_ns((MADV_DONTNEED, B, 8 * PAGE_SIZE)) == cost.madvise_call_ns + cost.madvise_page_ns * 8 * per4k


def test_nohugepage_splits_the_mapping_only_where_the_flag_is_not_set_yet():
    """sysUnused's MADV_NOHUGEPAGE on a huge page splits the VMA the first time; again it finds the flag
    set; sysUsed's MADV_HUGEPAGE on the whole huge page clears it, so the next release splits again."""
    from pagealloc.runtime.mheap import MHeap

    cost = CostModel()
    heap = MHeap(cost=cost)
    flag_ns = lambda calls: [heap._madvise_ns(c) for c in calls if c[0] != MADV_FREE]
    split, plain = cost.madvise_hugepage_ns + cost.vma_split_ns, cost.madvise_hugepage_ns
    assert flag_ns(sys_unused(B + 8192, 8192, HUGE)) == [split]
    assert flag_ns(sys_unused(B + 3 * 8192, 8192, HUGE)) == [plain]  # same huge page
    assert flag_ns(sys_unused(B + HUGE - 8192, 16384, HUGE)) == [split]  # one call, the second huge page new
    assert flag_ns(sys_used(B, HUGE, HUGE)) == [plain]  # reused whole: the flag goes
    assert flag_ns(sys_unused(B + 8192, 8192, HUGE)) == [split]
    assert flag_ns(sys_unused(B + HUGE + 8192, 8192, HUGE)) == [plain]  # B + HUGE kept its flag
