"""Virtual-time cost model of the replay (nanoseconds per step).

Not a Go file.  The replay engine charges each step of the mutator and the
background scavenger a virtual duration from this table; nothing reads the
wall clock, so replays are deterministic.  Defaults (linux/amd64, a modern
x86 server; ``pagealloc calibrate`` measures the OS ones on this machine):

  alloc_ns, free_ns      pageAlloc.alloc / free under the heap lock: the real
                         Go runtime allocator does a mixed alloc/free stream at
                         ~210-310 ns per op on the reference machine
                         (../shared/reference/go114-facts.md), so 250 / 150.
  cache_alloc_ns         pageCache.alloc, lock-free bit twiddling: 20.
  cache_refill_ns        allocToCache (a find plus a 64-page allocRange): 200.
  mspan_refill_ns        allocMSpanLocked refilling a P's mspan cache: 64
                         fixalloc allocations of ~20 ns: 1,300 (an estimate).
  lock_ns                one uncontended lock+unlock pair of a futex mutex: 40.
  lock_spin_ns           how long Go's lock (lock_futex.go) spins before it
                         sleeps: 4 rounds of procyield(30) plus one osyield,
                         ~120 PAUSEs at 10-140 cycles each plus a
                         sched_yield: 2,000 (an estimate, not measured).  A
                         waiter that waits longer sleeps in futexsleep.
  futex_wake_ns          a sleeping waiter's wake-up: the holder's
                         futexwakeup, then the waiter being scheduled on its
                         core.  ``pagealloc calibrate`` measures a blocked
                         process's wake-up through a pipe ping-pong (half a
                         round trip) as a stand-in: 1,850 here (median of
                         three runs: 1,820, 1,852, 1,854).  `record`'s probe
                         reads it as Go's waiter has it: a thread that ran,
                         blocked ~30 us and was woken with a CPU free (the
                         median), 40-100 us on the 2-vCPU VM (the idle vCPU
                         woken too; trace/shootdown.wake_samples; "Session
                         16").
  grow_chunk_ns          pageAlloc.grow bookkeeping per 4 MiB chunk: 300.
  sys_alloc_ns           reserving and mapping a 64 MiB arena (mmap x2): 20,000.
  chunk_scan_ns          the scavenger's look at one chunk (summary + bitmap
                         scan for a candidate): 60.
  OS entries: medians of three runs of ``pagealloc calibrate`` on the
  development VM (2 vCPU Xeon, Linux 6.18, THP "madvise", 2 MiB huge
  pages), 2026-12-01; run it on your machine for yours.  Go 1.14 on linux
  releases with MADV_FREE unless GODEBUG=madvdontneed=1 (replay
  ``madvdontneed=True``), which selects the MADV_DONTNEED entries.
  madvise_free_call_ns   fixed cost of one madvise(MADV_FREE): 2,250.
  madvise_free_page_ns   per 4 KiB page it covers, resident pages freed
                         before and written since: 51 (``pagealloc
                         calibrate`` and ``scripts/madvise-crit`` on the
                         idle VM, 2026-12-05: 51 and 53; 29.5 us for 512).
                         It prices the whole huge pages the scavenger
                         releases at ~28 us, as the recordings' ~3.7 ms
                         sleeps after them say (burst-idle; 15, measured
                         before, released them 1.7x too fast).  One background
                         scavenger step (one 8 KiB runtime page) then costs
                         ~2.4 us plus its huge-page flag calls; Go's own
                         fallback estimate (approxCritNSPerPhysicalPage) is
                         a pessimistic 10 us per physical page.
  madvise_call_ns        fixed cost of one madvise(MADV_DONTNEED): 1,600
  madvise_page_ns        per 4 KiB page it covers (unmapping, freeing the
                         page, TLB flush): 100.
  madvise_hugepage_ns    one MADV_NOHUGEPAGE (sysUnused, on the partial huge
                         pages at each end of a released range) or
                         MADV_HUGEPAGE (sysUsed, on the whole huge pages of a
                         reused span) call, a flag change that splits or
                         merges the mapping: 420.
  tlb_shootdown_ns       what one MADV_FREE / MADV_DONTNEED of resident pages
                         adds while another CPU runs a thread of the process:
                         the kernel shoots down that CPU's TLB (an IPI; a VM
                         exit on a virtual machine) before it returns.
                         ``pagealloc calibrate`` measures it: 10,500 on an
                         idle 2-vCPU VM (12.7 us against 2.2 alone).  The Go
                         1.14.6 recordings, made on an idle machine, show it
                         in every background release: a one-page crit after
                         a sleep under 2 ms is 2.0-3.0 us with no other P
                         running a goroutine and 12.4-14.3 us with one.  On a
                         busy machine the program's other threads are often
                         off their CPUs and it mostly disappears (go-parser
                         at GOMAXPROCS 2 beside two busy loops: 2.3 us, and
                         2.7x the releases; ARCHITECTURE.md, "TLB
                         shootdowns").  Charged to every release (the
                         background scavenger's, a heap growth's,
                         FreeOSMemory's) made while the Ps' schedule has
                         another P running a goroutine: a growth's scavenge
                         of many small free ranges pays it per range (the
                         Go 1.14.6 fragmentation-p8 recording's scavenging
                         growths held the lock 43.9 ms in all; the model,
                         14.6 ms without it and 47.8 ms with it).
  madvise_free_first_page_ns
                         per 4 KiB page MADV_FREE meets resident for the
                         first time (it moves the page to the kernel's
                         lazyfree list): 190, against ~50 for a page freed
                         before and written since (``scripts/madvise-crit``:
                         512 such pages, 105 us against 29 us).  What makes
                         Go's release of a whole huge page of fresh heap
                         take 50-190 us (the Go 1.14.6 recordings' crit).
                         ``madvise_free_page_ns`` prices the other pages.
  vma_split_ns           what MADV_NOHUGEPAGE adds on a huge page whose
                         mapping does not carry the flag yet: the kernel
                         splits the VMA there (sysUnused on a huge page
                         first released, or reused whole since: sysUsed's
                         MADV_HUGEPAGE cleared the flag): 2,500 (3.0 us
                         against 0.5 us once set, ``pagealloc calibrate``).
  cold_floor_ns, cold_per_doubling_ns, cold_max_ns
                         the background scavenger's first release after
                         a long sleep is slower: what its walk and madvise
                         touch (page tables, page structs, the heap's
                         summaries) has left the caches and TLBs while its
                         CPU idled (a vCPU the host ran other work on).
                         ``pagealloc calibrate`` on the idle VM: MADV_FREE
                         of one resident Go page takes 2.2 us after sleeps up
                         to 2 ms, 4.9 after 4 ms, 5.1 after 8, 8.5 after 16,
                         32 after 32 and 35 after 64; the Go 1.14.6
                         recordings agree (with no other P running: 2.0-3.0
                         us up to 2 ms, 4.8 at 2-5 ms, 6.2 at 5-10, 28 at
                         10-50).  Added: 4,900 per doubling of the sleep past
                         2 ms, at most 32,000.
  cold_busy_floor_ns, cold_busy_max_ns
                         the same beside CPUs the program keeps busy (the
                         other Ps running as it wakes take every CPU the
                         recording machine had): no CPU idled, so less went
                         cold.  The Go 1.14.6 runtime's one-page crit on 72
                         fresh service runs (GOMAXPROCS 4, two CPU-bound
                         goroutines, 2 vCPUs), less each run's median, by
                         the sleep before it: flat up to 3 ms (-0.5 to +0.6
                         us), +2.0-2.5 at 3-4 ms, +4.5-6.5 at 4-6, +6.0-7.5
                         at 6-8, +6.6-7.4 at 8-16, +6.7-7.9 beyond
                         (docs/fidelity-log.md, "Session 23"): floor
                         3,000,000, the same 4,900 a doubling, at most 7,000.
  memory_traffic_ns      what a release's shootdown adds while the program
                         allocates heavily (sim/traffic.py: at least 2 MiB of
                         spans in the 1.5 ms before it): its CPUs stream
                         through memory, and the call and its IPI miss in
                         caches and TLBs.  `record`'s probe measures it (MADV_FREE
                         beside threads streaming through 64 MiB against
                         beside threads hashing): 2,800 on the idle VM
                         (median of five probes, 2.5-3.2 us, 2026-12-05).  The
                         Go 1.14.6 runtime's one-page crit rises 4-6 us in
                         such windows (docs/fidelity-log.md, "Session 9").
                         It is the price with every other P running: where
                         the recording's probe also read it beside one
                         goroutine per other CPU, a release with fewer Ps
                         running pays less, down to that share of it
                         (MHeap._traffic_ns; "Session 15").
  futex_wake_busy_ns     futex_wake_ns when every CPU of the recording machine
                         is busy (the other Ps running at the release are as
                         many as its CPUs; sim/heaplock.py): a waiter past the
                         spin gave up its CPU (osyield or futexsleep) and waits
                         to run again.  `record`'s probe measures it
                         (trace/shootdown.wake_samples: 0.8-2.1 ms means on
                         the 2-vCPU VM, 2026-12-06, Linux 6.18's EEVDF letting
                         the running thread finish its slice); the Go 1.14.6
                         runtime's own waits past the spin with 2 or 3 other Ps
                         running averaged 0.4-1.4 ms there (docs/fidelity-log.md,
                         "Session 16").  Default: futex_wake_ns, so recordings
                         without the probe (the bundled corpus) replay as before.
  scavenge_heap_ns       the heap side of one background scavenger release
                         beyond lock_ns and chunk_scan_ns: the rest of its
                         scavengeOne (the summaries and bitmaps it reads,
                         findScavengeCandidate, the bookkeeping, the unlock)
                         with the cache and TLB misses its madvise calls
                         leave it.  Go's crit less its lock wait and madvise
                         calls (``scripts/go114-crit-parts``, idle VM,
                         2026-12-07), means over the one-page crits under
                         1 ms: 1.0-2.8 us on 8 service runs, 0.9-1.6 on 3
                         burst-idle runs, rising with the calls' level as
                         the machine's state moves it (run to run, crit
                         22.6 -> 37.6 us, rest 1.0 -> 2.5).  So it is one of
                         the prices the machine sets: 750 at these
                         defaults' level (the runs' rest over their calls'
                         level, ~1.5-3x the defaults' price of them: 0.5-1.1
                         us; the patch's own clock reads left out), scaled
                         with the level a recording's probes read
                         (calibrate.probed_costs) and its in-run probe
                         (replay.in_run_costs).  On 67 fresh service runs it
                         brings the model's one-page crit mean from 0.935 to
                         0.986 of the runtime's ("Session 23").
  unlock_wake_ns         the holder's side of a heap-lock waiter that slept:
                         the waiter marked the lock mutex_sleeping, so the
                         holder's unlock makes the futexwakeup syscall that
                         wakes it, once a hold, after its section
                         (sim/heaplock.py).  The Go 1.14.6 runtime's
                         scavengeOne timed around its unlocks
                         (``scripts/go114-crit-parts``, 2026-12-07): on churn
                         at GOMAXPROCS 2, 30-42% of its one-page releases
                         ended with such an unlock, 6.8-9.2 us each on
                         average (three runs; p90 of all unlocks 8-15 us,
                         median 0.1); on service at GOMAXPROCS 4 almost none
                         (11.7-16.8 us when they did).  8,000.
  page_fault_ns          writing one 4 KiB page released with MADV_DONTNEED
                         again (minor fault + zeroing): 1,100.
  page_retouch_free_ns   writing one 4 KiB page released with MADV_FREE that
                         the kernel has not reclaimed yet: 285 (no memory
                         pressure is modelled, so none is reclaimed).
                         Both retouch costs and MADV_HUGEPAGE are charged to
                         the allocating P after it releases the heap lock.
  gc_ns                  the pacing update at the end of a GC cycle: 500.
  netpoll_late_ns        how late after its whole milliseconds netpoll's
                         epoll_wait fires a timer (an idle P, another busy):
                         70,000, measured on the Go 1.14.6 recordings
                         (go114-facts.md: sleeps of 1.07 / 2.13 / 3.15 ms).
  sysmon_late_ns         how late sysmon fires a timer when every P is idle:
                         80,000, measured likewise (burst-idle).

Any subset can be overridden from a TOML or JSON file (``--cost-model``).
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from pagealloc.errors import UserError


# The prices of a release that the machine sets, and that vary with its state from run to run: the
# madvise calls, the TLB shootdown beside them, the memory traffic's share, and the heap side of a background
# release, whose cache and TLB misses follow the same state (what ``scavenger_crit="level"`` scales to a
# recording's own crit level, and a release probe's level to its calls: docs/fidelity-log.md, "Session 21",
# "Session 23").
RELEASE_PRICES = ("madvise_call_ns", "madvise_page_ns", "madvise_free_call_ns", "madvise_free_page_ns",
                  "madvise_free_first_page_ns", "madvise_hugepage_ns", "vma_split_ns", "tlb_shootdown_ns",
                  "memory_traffic_ns", "scavenge_heap_ns")


@dataclass(frozen=True)
class CostModel:
    alloc_ns: int = 250
    free_ns: int = 150
    cache_alloc_ns: int = 20
    cache_refill_ns: int = 200
    mspan_refill_ns: int = 1_300
    lock_ns: int = 40
    lock_spin_ns: int = 2_000
    futex_wake_ns: int = 1_850
    grow_chunk_ns: int = 300
    sys_alloc_ns: int = 20_000
    chunk_scan_ns: int = 60
    madvise_call_ns: int = 1_600
    madvise_page_ns: int = 100
    madvise_free_call_ns: int = 2_250
    madvise_free_page_ns: int = 51
    madvise_hugepage_ns: int = 420
    page_fault_ns: int = 1_100
    page_retouch_free_ns: int = 285
    gc_ns: int = 500
    netpoll_late_ns: int = 70_000
    sysmon_late_ns: int = 80_000
    tlb_shootdown_ns: int = 10_500
    madvise_free_first_page_ns: int = 190
    vma_split_ns: int = 2_500
    cold_floor_ns: int = 2_000_000
    cold_per_doubling_ns: int = 4_900
    cold_max_ns: int = 32_000
    memory_traffic_ns: int = 2_800
    futex_wake_busy_ns: int = 1_850
    scavenge_heap_ns: int = 750
    cold_busy_floor_ns: int = 3_000_000
    cold_busy_max_ns: int = 7_000
    unlock_wake_ns: int = 8_000  # last: a seed's draws for the costs before it stay what they were

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def load(cls, path: str | Path) -> "CostModel":
        """Defaults overridden by a TOML (.toml) or JSON file; UserError on any problem."""
        path = Path(path)
        try:
            text = path.read_bytes()
        except OSError as e:
            raise UserError(f"{path}: cannot read cost model: {e.strerror or e}") from None
        try:
            if path.suffix == ".toml":
                data = tomllib.loads(text.decode())
            else:
                data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as e:
            kind = "TOML" if path.suffix == ".toml" else "JSON"
            raise UserError(f"{path}: not a valid {kind} cost model: {str(e).splitlines()[0]}") from None
        return cls.from_dict(data, str(path))

    @classmethod
    def from_dict(cls, data, label: str = "cost model") -> "CostModel":
        if not isinstance(data, dict):
            raise UserError(f"{label}: a cost model must be a table of name = nanoseconds")
        known = {f.name for f in fields(cls)}
        for key, value in data.items():
            if key not in known:
                raise UserError(f"{label}: unknown cost {key!r} (known: {', '.join(sorted(known))})")
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10**12:
                raise UserError(f"{label}: {key} must be a whole number of nanoseconds in [0, 1e12], got {value!r}")
        return cls(**{**asdict(cls()), **data})

    def releases_scaled(self, factor: float) -> "CostModel":
        """This table with the prices of a release the machine sets (RELEASE_PRICES) times ``factor``."""
        return replace(self, **{name: round(getattr(self, name) * factor) for name in RELEASE_PRICES})

    def cold_ns(self, slept_ns: int, busy: bool = False) -> int:
        """What the first release after sleeping ``slept_ns`` adds to crit: ``cold_per_doubling_ns`` per
        doubling of the sleep past ``cold_floor_ns``, at most ``cold_max_ns``; past ``cold_busy_floor_ns``,
        at most ``cold_busy_max_ns``, where the program kept the machine's CPUs ``busy`` (no CPU idled).
        Integer arithmetic (log2 linear between powers of two), so every machine gets the same figure."""
        floor, cap = (self.cold_busy_floor_ns, self.cold_busy_max_ns) if busy else (self.cold_floor_ns, self.cold_max_ns)
        if slept_ns <= floor or floor <= 0:
            return 0
        q = (slept_ns << 10) // floor  # the ratio, 10 bits of fraction
        k = q.bit_length() - 11  # whole doublings
        octave = 1 << (k + 10)
        cold = self.cold_per_doubling_ns * k + self.cold_per_doubling_ns * (q - octave) // octave
        return min(cold, cap)
