"""The page heap around pageAlloc: span allocation, heap growth, accounting.

Go counterpart: runtime/mheap.go as of Go 1.14 (mheap.allocSpan, grow,
freeSpan/freeSpanLocked, scavengeAll), mheap.sysAlloc's arena hints from
malloc.go, and the memstats fields the scavenger paces on (heap_sys,
heap_released, heap_inuse, next_gc, last_next_gc, last_heap_inuse).

Lock contract, as in Go: ``alloc_span`` takes the heap lock itself except
for a page-cache hit on a small-object span with an mspan struct at hand
while the GC is not marking; ``grow`` runs with it held; ``free_span`` and
``scavenge_all`` take it; ``gc_start`` and ``gc_done`` run with the world
stopped and take nothing.  Every acquisition goes through
``self.lock`` (a HeapLock) so the replay engine can attribute it and time it;
the per-event paths call its lock() and unlock() as Go does, not ``with``
(which the compiled copy would run as Python attribute lookups).

What is modelled: a span is just (base, npages); there are no size classes
or sweeping, and of the mspan structs only how many each P has cached
(which decides when allocSpan must lock to refill).  Spans of the trace are keyed by the trace's span id.
What is accounted: heap_sys grows by whole 64 MiB arenas; new arena memory
counts as released (Go adds it to heap_released in grow); allocating
scavenged pages un-releases them (sysUsed) and costs page faults;
scavenging releases (sysUnused).  retained = heap_sys - heap_released.

Costs: model code adds virtual nanoseconds to ``self.meter_ns`` as it does
work that the cost model prices (madvise, page faults, arena maps); the
replay engine drains the meter at each scheduling point.  The prices come
from the ``cost`` object given (the simulation's ``CostModel``: any object
with its ``*_ns`` attributes); without one nothing is priced, which is all
a test of the heap alone needs.  The runtime so never imports the
simulation.
"""

from __future__ import annotations

from fractions import Fraction

from pagealloc.runtime.lock_futex import SCAVENGER, HeapLock
from pagealloc.runtime.malloc import (
    ARENA_HINT_BASE,
    HEAP_ARENA_BYTES,
    MASK64,
    PAGE_SIZE,
    PHYS_HUGE_PAGE_SIZE,
    PHYS_PAGE_SIZE,
)
from pagealloc.runtime.mem_linux import MADV_DONTNEED, MADV_FREE, MADV_HUGEPAGE, sys_unused, sys_used
from pagealloc.runtime.mgcscavenge import SCAVENGE_ALL
from pagealloc.runtime.engines import page_alloc_class
from pagealloc.runtime.mpagealloc_64bit import PALLOC_CHUNK_BYTES, PALLOC_CHUNK_PAGES, chunk_index, chunk_page_index
from pagealloc.runtime.mpagecache import PAGE_CACHE_PAGES, PageCache
from pagealloc.runtime.mpallocbits import CHUNK_MASK
from pagealloc.runtime.time_nofake import Clock

def span_kind_args(kind: int) -> tuple[bool, bool]:
    """alloc_span's (small_object, manual) for a span of Go kind ``kind``
    (the trace's kind column: span class << 1 | manual).

    Go: a manual span (allocManual: stacks, GC work buffers) has kind & 1;
    otherwise sizeclass = spanclass >> 1 = kind >> 2, and size class 0 is a
    large object.  small_object only matters below SMALL_SPAN_PAGES.
    """
    manual = bool(kind & 1)
    return manual or bool(kind >> 2), manual


# The model keeps a Python object per 4 MiB chunk, so a heap of terabytes
# costs gigabytes and minutes; beyond this, sys_alloc fails as an OS would.
MAX_HEAP_SYS = 4 << 40
SMALL_SPAN_PAGES = PAGE_CACHE_PAGES // 4  # allocSpan uses the P's page cache below this
MSPAN_CACHE_SLOTS = 128  # Go: len(p.mspancache.buf)
MSPAN_REFILL = MSPAN_CACHE_SLOTS // 2  # allocMSpanLocked refills half of it
PHYS_4K = 4096  # madvise and page-fault costs are per 4 KiB OS page

GOGC = 100  # Go: readgogc's default
DEFAULT_HEAP_MINIMUM = 4 << 20  # Go: defaultHeapMinimum (heapminimum at GOGC=100)
TRIGGER_RATIO_INIT = 7 / 8.0  # Go: gcinit's memstats.triggerRatio
RETAIN_EXTRA_PERCENT = 10  # Go: retainExtraPercent (mgcscavenge.go)
START_CYCLE_MIN_DISTANCE = 1 << 20  # Go: startCycle keeps next_gc >= heap_live + 1 MiB


def whole_huge_page(addr: int, nbytes: int, huge: int) -> bool:
    """Whether [addr, addr+nbytes) holds a whole (aligned) huge page of ``huge`` bytes.  A background
    release does when findScavengeCandidate grew its one page to the free, unscavenged huge page around
    it (Go 1.14 does not break a huge page it can release whole): 256 Go pages at once, so a few such
    releases decide a run's background bytes."""
    return huge > 0 and -(-addr // huge) * huge + huge <= addr + nbytes


def float64_to_uint64(x: float) -> int:
    """Go's ``uint64(x)`` for a float64 on amd64, out-of-range values included (the spec leaves them to
    the implementation).  The compiler converts below 2**63 with CVTTSD2SQ; above, it converts x - 2**63
    and ORs in bit 63; CVTTSD2SQ gives 1 << 63 for what int64 cannot hold.  So 2**64 and up become 1 << 63,
    and -1.5 becomes 2**64 - 1 (Go 1.14.6, printed by a program converting each)."""
    if x < _TWO63:
        return _cvttsd2sq(x) & MASK64
    return (_cvttsd2sq(x - _TWO63) | (1 << 63)) & MASK64


_TWO63 = 9223372036854775808.0


def _cvttsd2sq(v: float) -> int:
    """amd64's float64 to int64: truncated; 1 << 63 (as a negative int64) where that cannot hold it."""
    return int(v) if -_TWO63 <= v < _TWO63 else -(1 << 63)  # NaN fails both comparisons


def heap_minimum(gogc: int = GOGC) -> int:
    """Go: heapminimum = defaultHeapMinimum * gcpercent / 100 (setGCPercent)."""
    return DEFAULT_HEAP_MINIMUM * gogc // 100


def gc_goal(heap_marked: int, gogc: int = GOGC) -> int:
    """next_gc for a heap_marked.  Go: gcSetTriggerRatio's goal.

    goal = heap_marked + heap_marked*GOGC/100, raised to the trigger when
    that is higher.  The trigger ratio is capped at 0.95*GOGC/100, so only
    the trigger's floor, heapminimum, can be: the goal is at least 4 MiB
    (at GOGC=100).  (Go's other floor, heap_live + sweepMinHeapDistance
    while sweeping, needs heap_live, which the model does not have.)
    """
    return max(heap_marked + heap_marked * gogc // 100, heap_minimum(gogc))


def initial_next_gc(gogc: int = GOGC) -> int:
    """next_gc after gcinit: 4,473,924 bytes at GOGC=100.

    Go: gcinit sets heap_marked = uint64(float64(heapminimum) / (1 +
    triggerRatio)) with triggerRatio = 7/8, then setGCPercent ->
    gcSetTriggerRatio computes the goal from it.
    """
    return gc_goal(int(heap_minimum(gogc) / (1 + TRIGGER_RATIO_INIT)), gogc)


# The cost table's fields the heap charges (see Prices).
PRICES = (
    "alloc_ns", "free_ns", "cache_alloc_ns", "cache_refill_ns", "mspan_refill_ns", "sys_alloc_ns",
    "grow_chunk_ns", "gc_ns", "chunk_scan_ns", "page_fault_ns", "page_retouch_free_ns", "madvise_call_ns",
    "madvise_page_ns", "madvise_free_call_ns", "madvise_free_page_ns", "madvise_free_first_page_ns",
    "madvise_hugepage_ns", "vma_split_ns", "tlb_shootdown_ns", "memory_traffic_ns", "scavenge_heap_ns",
)


class Prices:
    """The prices of PRICES, copied once from the heap's cost table (a CostModel is frozen), so that the
    per-event paths read fields, not names on the table (C fields in the compiled copy)."""

    def __init__(self, cost) -> None:
        for name in PRICES:
            setattr(self, name, getattr(cost, name))


class Unpriced:
    """The cost table of a heap used without the simulation: every step is free."""

    def __getattr__(self, name: str) -> int:
        if name.endswith("_ns"):
            return 0
        raise AttributeError(name)


def mark_pages(marks: dict, base: int, npages: int, among: dict | None = None) -> int:
    """Mark pages [base, base+npages) in ``marks`` (chunk index -> bitmap of the chunk's pages); return
    how many of them were not marked before (and, with ``among``, are marked there)."""
    ci, lo = chunk_index(base), chunk_page_index(base)
    first = 0
    while npages > 0:  # chunk by chunk: the range's part in chunk ci starts at page lo
        n = min(PALLOC_CHUNK_PAGES - lo, npages)
        had = marks.get(ci, 0)
        if had != CHUNK_MASK:  # a chunk marked whole has nothing to count or mark (the common case)
            mask = ((1 << n) - 1) << lo
            new = mask & ~had
            if among is not None:
                new &= among.get(ci, 0)
            first += new.bit_count()
            marks[ci] = had | mask
        ci, lo, npages = ci + 1, 0, npages - n
    return first


class MHeap:
    """Go's mheap_, reduced to what the page allocator and scavenger see."""

    def __init__(
        self,
        cost=None,
        *,
        phys_page_size: int = PHYS_PAGE_SIZE,
        phys_huge_page_size: int = PHYS_HUGE_PAGE_SIZE,
        madvdontneed: bool = False,
        gogc: int = GOGC,
        retain_extra_percent=RETAIN_EXTRA_PERCENT,
        engine: str | None = None,
    ) -> None:
        self.cost = cost if cost is not None else Unpriced()
        self.price = Prices(self.cost)
        self.clock = Clock()  # Go: nanotime(); the simulation advances it
        self.lock = HeapLock()
        # engine: "compiled" or "python" (pagealloc.runtime.engines; None: the default).
        self.pages = page_alloc_class(engine)(
            self.lock, phys_page_size=phys_page_size, phys_huge_page_size=phys_huge_page_size
        )
        self.pages.sys_unused = self._sys_unused
        self.phys_page_size = phys_page_size
        self.phys_huge_page_size = phys_huge_page_size
        self.madvdontneed = madvdontneed  # GODEBUG=madvdontneed=1
        self.madvise_calls = 0  # every madvise the model made, advice of any kind
        # what the background scavenger's madvise calls were priced, all told (the syscalls' part of its
        # crit, which sysmon's in-run release probe measures in a recording: replay.in_run_costs)
        self.scavenger_madvise_ns = 0
        self.touched: dict[int, int] = {}  # chunk index -> bitmap of pages ever allocated
        # chunk index -> bitmap of pages released with MADV_FREE at least once (not in Go: the kernel's
        # lazyfree LRU; no memory pressure is modelled, so a page stays there once it is on it)
        self.lazyfree: dict[int, int] = {}
        # huge pages (address // phys_huge_page_size) whose mapping carries MADV_NOHUGEPAGE (not in Go: the
        # kernel's VMA flags).  sysUnused setting it on a huge page without it splits the VMA there.
        self.nohugepage: set[int] = set()
        # Other CPUs running threads of this process (not in Go: the kernel's mm_cpumask).  A madvise that
        # unmaps pages waits for their TLBs to be shot down (CostModel.tlb_shootdown_ns), whoever makes
        # it: the background scavenger, a heap growth's scavenge, FreeOSMemory.  ``tlb_probe``: the Ps'
        # schedule the simulation follows (``others_running(p, t)``), asked at each such madvise about
        # P ``tlb_p``, the one making the heap's current operation, which took the lock at ``op_ns``.
        # Without a probe, ``tlb_peers`` is the answer (0: none; tests set it).
        self.tlb_probe = None
        self.tlb_p = 0
        self.op_ns = 0
        self.tlb_peers = 0
        # The other CPUs the last MADV_FREE / MADV_DONTNEED shot down (the answer above at that call): what
        # sorts the background scavenger's releases into the classes sysmon's in-run probe is read by
        # (no other P running, or some; replay.in_run_costs)
        self.release_peers = 0
        # The program's allocation traffic (not in Go: the machine's caches; sim/traffic.AllocTraffic):
        # a release made while it is heavy pays CostModel.memory_traffic_ns on top of the shootdown.
        # None: not followed (the heap used without a replay of a trace, or the cost is 0).
        self.traffic = None
        # How that price follows the Ps running (session 15; _traffic_ns): where the recording's probe read
        # allocprobe at two widths, its narrow reading (per mille of the wide one) applies with up to
        # ``traffic_narrow_n`` other Ps running, the wide one with ``traffic_wide_n``, linearly between.
        # traffic_wide_n <= traffic_narrow_n: one width, the wide price always.
        self.traffic_narrow_permille = 1000
        self.traffic_narrow_n = 0
        self.traffic_wide_n = 0
        # What the background scavenger's next release adds for the caches and TLBs its sleep let go
        # cold (CostModel.cold_ns); set by the simulation when it wakes, spent by its first madvise.
        self.cold_ns = 0
        # not in Go: an iterator of recorded crits the background scavenger's pacing uses instead of its
        # own (ReplayConfig.scavenger_crit = "recorded", a diagnostic); None: its own
        self.recorded_crits = None
        # memstats
        self.heap_sys = 0
        self.heap_released = 0
        self.heap_inuse = 0
        self.manual_inuse = 0  # bytes of live manual spans (Go moves them to stacks_inuse etc.)
        # gcinit fakes heap_marked = heapminimum / (1 + 7/8), so next_gc
        # starts at GOGC=100's goal for it: the first GC already paces.
        self.next_gc = initial_next_gc(gogc)
        self.last_next_gc = 0
        self.last_heap_inuse = 0
        self.gogc = gogc
        self.retain_extra_percent = Fraction(retain_extra_percent)
        self.scavenge_goal = MASK64  # Go: ^uint64(0) = no scavenging wanted
        # arena reservation: the current arena's unused tail, and the hint
        self.cur_arena_base = 0
        self.cur_arena_end = 0
        self.arena_hint = ARENA_HINT_BASE
        self.pcache: dict[int, PageCache] = {}
        self.mspancache: dict[int, int] = {}  # P -> mspan structs in its cache (Go: p.mspancache.len)
        self.gc_blacken_enabled = False  # Go: gcBlackenEnabled, from a GC's mark start to its termination
        # statistics for the replay's metrics
        self.growths = 0
        self.arenas = 0
        self.scav_alloc_bytes = 0  # bytes handed out from scavenged memory
        self.released_by = {"background": 0, "growth": 0, "forced": 0}
        self.releases_by = {"background": 0, "growth": 0, "forced": 0}  # sysUnused calls (scavengeRangeLocked)
        self.whole_huge_releases = 0  # background releases that took a whole huge page (whole_huge_page)
        self.forced = False  # inside scavenge_all
        self.meter_ns = 0
        self.after_unlock_ns = 0  # part of meter_ns spent after the op released the lock
        self._scanned_charged = 0  # scavenger chunk scans already charged

    # -- memstats --

    def heap_retained(self) -> int:
        """Mapped arena bytes not released: heap_sys - heap_released, manual spans included."""
        return self.heap_sys - self.heap_released

    def go_heap_retained(self) -> int:
        """Go: heapRetained, with Go's heap_sys, which live manual spans have left."""
        return self.heap_sys - self.manual_inuse - self.heap_released

    def _sys_unused(self, addr: int, nbytes: int) -> None:
        """pageAlloc released [addr, addr+nbytes): madvise, and heap_released grows.

        The only place retained (heap_sys - heap_released) can go down, so
        "retained is never negative" is checked here, off the per-event path.
        """
        self.heap_released += nbytes
        if self.heap_released > self.heap_sys:
            from pagealloc.runtime.invariants import InvariantError

            raise InvariantError(f"retained went negative: released {self.heap_released} > heap_sys {self.heap_sys}")
        first_free = 0 if self.madvdontneed else self._first_lazyfree(addr, nbytes // PAGE_SIZE)
        before = self.meter_ns
        for call in sys_unused(addr, nbytes, self.phys_huge_page_size, self.madvdontneed):
            self.meter_ns += self._madvise_ns(call, first_free)
        path = "forced" if self.forced else "background" if self.lock.holder == SCAVENGER else "growth"
        if path == "background":
            self.scavenger_madvise_ns += self.meter_ns - before
            self.meter_ns += self.price.scavenge_heap_ns  # the rest of its scavengeOne (CostModel)
        self.released_by[path] += nbytes
        self.releases_by[path] += 1
        if path == "background" and whole_huge_page(addr, nbytes, self.phys_huge_page_size):
            self.whole_huge_releases += 1

    # -- allocation --

    def alloc_span(self, npages: int, p: int = 0, small_object: bool = True, manual: bool = False) -> int:
        """Allocate a span of npages for P p (-1: no P); return its base address.

        Go: mheap.allocSpan.  With a P, spans under 16 pages come from its
        page cache (refilled under the heap lock), and the span struct from
        its mspan cache (tryAllocMSpan).  The heap lock is skipped only when
        all of these hold, as in Go: the page cache had the pages, the mspan
        cache had a struct, the GC is not marking (gcBlackenEnabled == 0),
        and the span is for small objects (sizeclass != 0) or manual.
        Otherwise, under the heap lock: pageAlloc.alloc if the cache could
        not serve it, growing the heap on failure, and allocMSpanLocked
        (which refills the P's mspan cache, 64 at a time) if no struct was
        taken.  A manual span (stacks, GC work buffers: Go's allocManual)
        does not count in heap_inuse, and Go moves its bytes out of heap_sys
        (into stacks_inuse and the like): the model keeps heap_sys as the
        mapped arena bytes, and the pacing subtracts them (go_heap_retained).  Returns 0 only if the heap
        cannot grow (address space or MAX_HEAP_SYS exhausted).
        """
        base = scav = 0
        have_mspan = False
        price = self.price
        if npages < SMALL_SPAN_PAGES and p >= 0:
            c = self.pcache.get(p)
            if c is None or c.cache == 0:  # Go: c.empty()
                lock = self.lock
                lock.lock()
                try:
                    self.pcache[p] = c = self.pages.alloc_to_cache()
                finally:
                    lock.unlock()
                self.meter_ns += price.cache_refill_ns
            base, scav = c.alloc(npages)
            self.meter_ns += price.cache_alloc_ns
            self.after_unlock_ns += price.cache_alloc_ns
            if base:
                have_mspan = self._try_alloc_mspan(p)
                if have_mspan and small_object and not self.gc_blacken_enabled:
                    if scav or manual:
                        self._account_alloc(npages, scav, base, manual)
                    else:
                        self.heap_inuse += npages * PAGE_SIZE
                    return base
        lock = self.lock  # Go: lock(&h.lock)
        lock.lock()
        try:
            if base == 0:
                base, scav = self.pages.alloc(npages)
                self.meter_ns += price.alloc_ns
                if base == 0:
                    if not self.grow(npages):
                        return 0
                    base, scav = self.pages.alloc(npages)
                    if base == 0:
                        raise RuntimeError("grew heap, but no adequate free space found")
            if not have_mspan:
                self._alloc_mspan_locked(p)
            self._account_alloc(npages, scav, base, manual)
        finally:
            lock.unlock()
        return base

    def _try_alloc_mspan(self, p: int) -> bool:
        """Take a span struct from P p's mspan cache, if it has one.  Go: mheap.tryAllocMSpan."""
        n = self.mspancache.get(p, 0)
        if n == 0:
            return False
        self.mspancache[p] = n - 1
        return True

    def _alloc_mspan_locked(self, p: int) -> None:
        """A span struct, refilling P p's mspan cache when empty.  Go: mheap.allocMSpanLocked.

        Heap lock must be held.  Without a P the struct comes straight from
        h.spanalloc.
        """
        if p < 0:
            return
        n = self.mspancache.get(p, 0)
        if n == 0:
            n = MSPAN_REFILL
            self.meter_ns += self.price.mspan_refill_ns
        self.mspancache[p] = n - 1

    def _free_mspan_locked(self, p: int) -> None:
        """Return a span struct to P p's mspan cache if it has room.  Go: mheap.freeMSpanLocked.

        Heap lock must be held.
        """
        if p >= 0:
            n = self.mspancache.get(p, 0)
            if n < MSPAN_CACHE_SLOTS:
                self.mspancache[p] = n + 1

    def _first_touch(self, base: int, npages: int) -> int:
        """Bytes of [base, base+npages) never allocated before; marks them touched.

        Not in Go (the OS knows): memory fresh from sysMap faults in a zeroed
        page on first touch whatever the advice; memory released with
        MADV_FREE and reused before the kernel reclaims it does not.  Only
        called for spans that hold released pages.
        """
        return mark_pages(self.touched, base, npages) * PAGE_SIZE

    def _first_lazyfree(self, base: int, npages: int) -> int:
        """Bytes of [base, base+npages) resident (ever allocated) and never released with MADV_FREE
        before; marks the whole range released.

        Not in Go (the kernel knows): MADV_FREE moves each resident page it meets for the first time
        to the lazyfree LRU list (~190 ns per 4 KiB page here, ``scripts/madvise-crit``); a page
        already there, written again since, costs a fraction of that, and one never touched nothing.
        """
        return mark_pages(self.lazyfree, base, npages, self.touched) * PAGE_SIZE

    def _madvise_ns(self, call: tuple[str, int, int], first_free: int = 0) -> int:
        """The price of one madvise call (advice, addr, bytes) from the cost table; ``first_free``:
        bytes of an MADV_FREE range that go to the lazyfree list for the first time."""
        advice, addr, nbytes = call
        if advice == MADV_FREE or advice == MADV_DONTNEED:
            return self._release_ns(advice == MADV_DONTNEED, nbytes, first_free)
        if advice == MADV_HUGEPAGE:
            return self._hugepage_ns(addr, nbytes)
        return self._nohugepage_ns(addr, nbytes)

    def _release_ns(self, dontneed: bool, nbytes: int, first_free: int) -> int:
        """_madvise_ns of a release: MADV_DONTNEED (``dontneed``) or MADV_FREE of nbytes, with the TLB
        shootdown while another CPU runs the process and the background scavenger's cold start."""
        price = self.price
        self.madvise_calls += 1
        extra = 0
        peers = self.release_peers = self._tlb_peers_now()
        if peers:
            extra = price.tlb_shootdown_ns
            if self.traffic is not None and self.traffic.heavy(self.op_ns + self.meter_ns):
                extra += self._traffic_ns(peers)
        if self.cold_ns and self.lock.holder == SCAVENGER:
            extra += self.cold_ns  # the background scavenger's first release since it woke
            self.cold_ns = 0
        if dontneed:
            return price.madvise_call_ns + price.madvise_page_ns * (nbytes // PHYS_4K) + extra
        again = (nbytes - first_free) // PHYS_4K
        return (price.madvise_free_call_ns + price.madvise_free_page_ns * again
                + price.madvise_free_first_page_ns * (first_free // PHYS_4K) + extra)

    def _traffic_ns(self, peers: int) -> int:
        """What heavy allocation adds to a release with ``peers`` other Ps running: the probe's price
        (CostModel.memory_traffic_ns, read beside GOMAXPROCS - 1 allocating goroutines), or, where the
        probe also read it beside one per other CPU, that narrow price up to as many Ps running, rising
        linearly to the full one at ``traffic_wide_n``.  Past one thread per CPU the probe's own thread
        shares its CPU, and a release pays that only while as many Ps run (docs/fidelity-log.md,
        "Session 15").  Integer arithmetic, the same in both engines."""
        wide = self.price.memory_traffic_ns
        span = self.traffic_wide_n - self.traffic_narrow_n
        if span <= 0:
            return wide
        narrow = wide * self.traffic_narrow_permille // 1000
        over = min(max(peers - self.traffic_narrow_n, 0), span)
        return narrow + (wide - narrow) * over // span

    def _tlb_peers_now(self) -> int:
        """How many other CPUs run this process's threads as the current operation's madvise is made
        (``op_ns`` plus the operation's cost so far), by the simulation's Ps' schedule."""
        probe = self.tlb_probe
        if probe is None:
            return self.tlb_peers
        return probe.others_running(self.tlb_p, self.op_ns + self.meter_ns)

    # MADV_HUGEPAGE / MADV_NOHUGEPAGE: a flag on the mapping.  Setting NOHUGEPAGE where it is not set yet
    # splits the VMA (sysUsed's HUGEPAGE on whole huge pages clears it again, merging them back).  Huge
    # page by huge page, in loops the compiled copy runs in C.

    def _hugepage_ns(self, addr: int, nbytes: int) -> int:
        """_madvise_ns of MADV_HUGEPAGE on [addr, addr+nbytes): the flag cleared on each huge page."""
        self.madvise_calls += 1
        first = addr // self.phys_huge_page_size
        for h in range(first, first + nbytes // self.phys_huge_page_size):
            self.nohugepage.discard(h)
        return self.price.madvise_hugepage_ns

    def _nohugepage_ns(self, addr: int, nbytes: int) -> int:
        """_madvise_ns of MADV_NOHUGEPAGE on [addr, addr+nbytes): the flag set on each huge page, a VMA
        split where one had not had it yet."""
        self.madvise_calls += 1
        first = addr // self.phys_huge_page_size
        split = False
        for h in range(first, first + nbytes // self.phys_huge_page_size):
            if h not in self.nohugepage:
                self.nohugepage.add(h)
                split = True
        return self.price.madvise_hugepage_ns + (self.price.vma_split_ns if split else 0)

    def _account_alloc(self, npages: int, scav: int, base: int = 0, manual: bool = False) -> None:
        """Memstats of a new span; if it holds released pages, Go's sysUsed.

        sysUsed (MADV_HUGEPAGE on the span's whole huge pages) and touching
        the released pages again come after allocSpan unlocks the heap, so
        their cost is also counted in after_unlock_ns.  Touching memory
        released with MADV_DONTNEED faults in a zeroed page; memory
        released with MADV_FREE that the kernel has not reclaimed yet is
        still there (the model assumes no memory pressure).
        """
        if scav:
            self.heap_released -= scav
            self.scav_alloc_bytes += scav
            price = self.price
            fresh = self._first_touch(base, npages)
            released = scav - fresh
            touch = price.page_fault_ns if self.madvdontneed else price.page_retouch_free_ns
            after_ns = price.page_fault_ns * (fresh // PHYS_4K) + touch * (released // PHYS_4K)
            for call in sys_used(base, npages * PAGE_SIZE, self.phys_huge_page_size):
                after_ns += self._madvise_ns(call)
            self.meter_ns += after_ns
            self.after_unlock_ns += after_ns
        if manual:  # not heap_inuse: Go counts it in stacks_inuse and the like
            self.manual_inuse += npages * PAGE_SIZE
        else:
            self.heap_inuse += npages * PAGE_SIZE

    def sys_alloc(self, n: int) -> tuple[int, int]:
        """Reserve and map whole arenas for n bytes at the arena hint.  Go: mheap.sysAlloc.

        The model's address space never collides, so every reservation
        succeeds at the hint, which grows upward from 0x00c0 << 32 as Go's
        first amd64 hint does, until heap_sys would pass MAX_HEAP_SYS (4 TiB).
        heap_sys grows by the arena size.
        """
        n = -(-n // HEAP_ARENA_BYTES) * HEAP_ARENA_BYTES
        v = self.arena_hint
        if v + n > 1 << 47 or self.heap_sys + n > MAX_HEAP_SYS:
            return 0, 0
        self.arena_hint = v + n
        self.heap_sys += n
        self.arenas += n // HEAP_ARENA_BYTES
        self.meter_ns += self.price.sys_alloc_ns
        return v, n

    def grow(self, npage: int) -> bool:
        """Add at least npage pages of address space to the page heap.  Go: mheap.grow.

        Heap lock must be held.  Grows in whole chunks from the current arena,
        reserving a new arena when it is used up; new memory is released
        memory.  Then, if retained + growth exceeds the scavenge goal,
        scavenges the overage (at most the growth) with the lock held.
        """
        ask = -(-npage // PALLOC_CHUNK_PAGES) * PALLOC_CHUNK_PAGES * PAGE_SIZE
        total_growth = 0
        n_base = self._align_phys(self.cur_arena_base + ask)
        if n_base > self.cur_arena_end:
            av, asize = self.sys_alloc(ask)
            if av == 0:
                return False
            if av == self.cur_arena_end:
                self.cur_arena_end = av + asize
            else:
                size = self.cur_arena_end - self.cur_arena_base
                if size:
                    self._pages_grow(self.cur_arena_base, size)
                    total_growth += size
                self.cur_arena_base, self.cur_arena_end = av, av + asize
            self.heap_released += asize
            n_base = self._align_phys(self.cur_arena_base + ask)
        v = self.cur_arena_base
        self.cur_arena_base = n_base
        self._pages_grow(v, n_base - v)
        total_growth += n_base - v
        self.growths += 1
        retained = self.go_heap_retained()
        if retained + total_growth > self.scavenge_goal:
            todo = min(total_growth, retained + total_growth - self.scavenge_goal)
            self.pages.scavenge(todo, True)
        return True

    def _align_phys(self, x: int) -> int:
        return -(-x // self.phys_page_size) * self.phys_page_size

    def _pages_grow(self, base: int, size: int) -> None:
        self.pages.grow(base, size)
        self.meter_ns += self.price.grow_chunk_ns * max(1, size // PALLOC_CHUNK_BYTES)

    # -- free --

    def free_span(self, base: int, npages: int, p: int = 0, manual: bool = False) -> None:
        """Return a span freed on P p (-1: no P) to the page heap.

        Go: mheap.freeSpan: takes the heap lock, freeSpanLocked (pageAlloc.free),
        and its span struct goes back to the P's mspan cache (freeMSpanLocked).
        A manual span is Go's freeManual: its bytes go back to heap_sys.
        """
        lock = self.lock  # Go: lock(&h.lock)
        lock.lock()
        try:
            if manual:
                self.manual_inuse -= npages * PAGE_SIZE
            else:
                self.heap_inuse -= npages * PAGE_SIZE
            self.pages.free(base, npages)
            self._free_mspan_locked(p)
            self.meter_ns += self.price.free_ns
        finally:
            lock.unlock()

    def gc_start(self, heap_live: int = 0) -> None:
        """A GC's mark phase starts.  Go: gcStart (world stopped): startCycle, then gcBlackenEnabled.

        gcControllerState.startCycle keeps the goal at least 1 MiB above the
        live heap: next_gc = max(next_gc, heap_live + 1 MiB), and that raised
        goal is what mark termination records as last_next_gc.  ``heap_live``
        0 means not known: heap_inuse stands in for it (the bytes of in-use
        spans, an upper bound of heap_live).  From now until gc_done, a
        page-cache hit still takes the heap lock (allocSpan's
        gcBlackenEnabled check).
        """
        live = heap_live or self.heap_inuse
        if self.next_gc < live + START_CYCLE_MIN_DISTANCE:
            self.next_gc = live + START_CYCLE_MIN_DISTANCE
        self.gc_blacken_enabled = True
        self.meter_ns += self.price.gc_ns

    # -- scavenger entry points --

    def scavenge_all(self, locked: bool = True) -> int:
        """Release every free page.  Go: mheap.scavengeAll (debug.FreeOSMemory).

        Go holds the heap lock throughout (locked=True).  locked=False is the
        replay's "unlocked" mode: scavenge_all_steps run to the end.
        """
        if not locked:
            steps = self.scavenge_all_steps()
            while True:
                try:
                    next(steps)
                except StopIteration as done:
                    return done.value
        self.forced = True
        try:
            with self.lock:
                self.pages.reset_scavenge_addr()
                return self.pages.scavenge(SCAVENGE_ALL, True)
        finally:
            self.forced = False

    def scavenge_all_steps(self):
        """scavenge_all(locked=False), one critical section per resumption: a generator.

        First the scavenge-address reset under the lock, then each
        scavenge_one(^0, false) step (which takes and drops the lock itself),
        the last being the one that finds nothing.  It yields after each
        section, so the simulation can time it and let other actors run in
        between; what is released counts as FreeOSMemory's only while it
        runs.  Returns the bytes released.
        """
        self.forced = True
        try:
            with self.lock:
                self.pages.reset_scavenge_addr()
        finally:
            self.forced = False
        yield
        total = 0
        while True:
            self.forced = True
            try:
                released = self.pages.scavenge_one(SCAVENGE_ALL, False)
            finally:
                self.forced = False
            total += released
            yield
            if released == 0:
                return total

    def gc_pace_scavenger(self) -> None:
        """Set the scavenge goal for the cycle that starts.  Go: gcPaceScavenger.

        Go calls it from gcSetTriggerRatio, with the heap lock held or the
        world stopped.  Disabled before the first GC (last_next_gc == 0);
        otherwise the goal is last_heap_inuse (the heap in use at the GC
        that just ended) scaled by next_gc / last_next_gc, plus
        retainExtraPercent, rounded up to a physical page; disabled when
        retained is within one physical page of it; otherwise the
        scavenge address is reset.
        """
        if self.last_next_gc == 0:
            self.scavenge_goal = MASK64
            return
        goal_ratio = self.next_gc / self.last_next_gc
        retained_goal = float64_to_uint64(self.last_heap_inuse * goal_ratio)
        # Go: retainedGoal / (1.0 / (retainExtraPercent / 100.0)), a constant
        # divisor (10 for 10%); exact for any percent Go could compile.  uint64: wraps.
        extra = self.retain_extra_percent
        retained_goal = (retained_goal + retained_goal * extra.numerator // (100 * extra.denominator)) & MASK64
        phys = self.phys_page_size
        retained_goal = ((retained_goal + phys - 1) & MASK64) & ~(phys - 1)
        retained_now = self.go_heap_retained()
        if retained_now <= retained_goal or retained_now - retained_goal < phys:
            self.scavenge_goal = MASK64
            return
        self.scavenge_goal = retained_goal
        self.pages.reset_scavenge_addr()

    def gc_done(self, next_gc: int) -> bool:
        """A GC cycle's mark termination, with the next heap goal next_gc.

        Go: gcMarkTermination records last_next_gc = next_gc (the goal of
        the cycle that ended) and last_heap_inuse = heap_inuse (now), and only
        then gcSetTriggerRatio sets the new next_gc and calls
        gcPaceScavenger.  The world is stopped, and the heap lock is not
        taken.  ``next_gc`` 0 means the trace does not give the goal: it is
        derived as Go 1.14 would (gc_goal, with heap_inuse standing in for
        heap_marked).  Returns whether the goal was derived.
        """
        self.gc_blacken_enabled = False  # Go: gcMarkDone clears it before termination
        derived = next_gc == 0
        if derived:
            next_gc = gc_goal(self.heap_inuse, self.gogc)
        self.last_next_gc = self.next_gc
        self.last_heap_inuse = self.heap_inuse
        self.next_gc = next_gc
        self.gc_pace_scavenger()
        self.meter_ns += self.price.gc_ns
        return derived

    def drain_meter(self) -> int:
        """Virtual ns of model work since the last drain (see the module docstring),
        including the scavenger's chunk scans counted by PageAlloc."""
        scanned = self.pages.stats_chunks_scanned
        ns = self.meter_ns
        if scanned != self._scanned_charged:  # most drains follow no scan: no price to look up
            ns += (scanned - self._scanned_charged) * self.price.chunk_scan_ns
            self._scanned_charged = scanned
        self.meter_ns = self.after_unlock_ns = 0
        return ns
