"""Hypothesis state machines over the heap model and the replay engine (issue 6.5).

HeapMachine drives pagealloc.runtime.mheap.MHeap as the runtime would: spans of
1-2000 pages for several Ps (small ones through the per-P page caches),
frees, GC pacing updates, FreeOSMemory (scavenge_all, locked and unlocked),
partial scavenges, and the background scavenger (mgcscavenge.bgscavenge)
stepped one lock point at a time in between, so its unlocked reads go stale
under allocation.  Heap growth happens by itself.  After every step the
whole heap must pass check_heap with the live spans.

ReplayMachine drives pagealloc.sim.replay.Replay with small generated batches
through run_batch, in both modes and both cost models, with time gaps that
let the engine run the background scavenger between events, GC rows that
wake it, FreeOSMemory rows and (in lenient runs) skippable rows.  After
every batch the engine's heap passes check_heap with the engine's spans,
which must be the model's live spans; at the end the ReplayResult must
agree with the model.
"""

from __future__ import annotations

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from pagealloc.sim.costmodel import CostModel
from pagealloc.runtime.invariants import check_heap
from pagealloc.runtime.lock_futex import MUTATOR, SCAVENGER
from pagealloc.runtime.malloc import PAGE_SIZE
from pagealloc.runtime.mgcscavenge import LOCK, PARK, SLEEP, UNLOCKED, bgscavenge
from pagealloc.runtime.mheap import MHeap
from pagealloc.runtime.mpallocbits import CHUNK_MASK
from pagealloc.sim.replay import MODES, TIMINGS, Replay
from pagealloc.trace.format import OP_ALLOC, OP_FREE, OP_FREE_OS_MEMORY, OP_GC

MiB = 1 << 20

# Mostly small spans (page-cache sized), some medium, a few that need more than a chunk.
NPAGES = st.one_of(
    st.integers(1, 15), st.integers(1, 15), st.integers(16, 600), st.integers(1, 2000)
)
P_IDS = st.integers(-1, 3)  # -1: no P (no page cache)
BG_STEPS = st.sampled_from([0, 0, 1, 2, 3])  # background scavenger steps before a mutator operation
# Cost models: the defaults, and slow chunk scans (a wide unlocked window: fooled scavengers, long stalls).
COSTS = [CostModel(), CostModel(chunk_scan_ns=200_000, page_fault_ns=0)]


def all_free_pages_scavenged(heap) -> bool:
    return all(not (~c.bits & ~c.scavenged & CHUNK_MASK) for c in heap.pages.chunks.values())


def cached_unscavenged_bytes(heap) -> int:
    return sum((c.cache & ~c.scav).bit_count() for c in heap.pcache.values()) * PAGE_SIZE


def assert_scavenged_all(heap) -> None:
    """What FreeOSMemory leaves: every free page released; retained = live spans + unreleased cached pages."""
    assert all_free_pages_scavenged(heap)
    assert heap.heap_retained() == heap.heap_inuse + cached_unscavenged_bytes(heap)


class HeapMachine(RuleBasedStateMachine):
    engine = None  # the default PageAlloc engine (PythonHeapMachine: the Python mirror)

    def __init__(self):
        super().__init__()
        self.heap = MHeap(engine=self.engine)
        self.spans: dict[int, tuple[int, int]] = {}
        self.next_id = 0
        self.bg = None  # the background scavenger, paused at its last yield
        self.sent = None  # what to send it next

    @initialize(locked=st.booleans(), warm=st.lists(st.tuples(NPAGES, P_IDS), max_size=12))
    def start(self, locked, warm):
        """Start the scavenger (parked); optionally warm the heap up: the spans in
        ``warm``, every other one freed again, and two GCs that leave retained
        above the scavenge goal, so the background scavenger has work at once."""
        self.bg = bgscavenge(self.heap, locked=locked)
        assert next(self.bg) == PARK
        for npages, p in warm:
            self.alloc(npages, p, 0)
        for sid in list(self.spans)[::2]:
            self.heap.free_span(*self.spans.pop(sid))
        if warm:
            self.gc(1.0)
            self.gc(1.0)

    # -- the mutator --

    @rule(npages=NPAGES, p=P_IDS, bg=BG_STEPS)
    def alloc(self, npages, p, bg):
        self._background(bg, 1_000_000)
        heap = self.heap
        growths = heap.growths
        base = heap.alloc_span(npages, p)
        assert base and base % PAGE_SIZE == 0
        self.spans[self.next_id] = (base, npages)
        self.next_id += 1
        if heap.growths > growths:
            event("heap grew")

    @precondition(lambda self: self.spans)
    @rule(data=st.data(), bg=BG_STEPS)
    def free(self, data, bg):
        self._background(bg, 1_000_000)
        sid = data.draw(st.sampled_from(sorted(self.spans)), label="span")
        self.heap.free_span(*self.spans.pop(sid))

    @rule(goal=st.sampled_from([0.25, 0.5, 1.0, 2.0]))
    def gc(self, goal):
        """A GC cycle ends with next_gc = goal x heap in use (small goals make the scavenger work)."""
        heap = self.heap
        with heap.lock:
            heap.gc_done(max(PAGE_SIZE, int(heap.heap_inuse * goal)))

    @rule(locked=st.booleans())
    def free_os_memory(self, locked):
        self.heap.scavenge_all(locked=locked)
        assert_scavenged_all(self.heap)

    @rule(pages=st.integers(1, 1024), locked=st.booleans())
    def scavenge_some(self, pages, locked):
        heap = self.heap
        before = heap.heap_released
        if locked:
            with heap.lock:
                released = heap.pages.scavenge(pages * PAGE_SIZE, True)
        else:
            released = heap.pages.scavenge(pages * PAGE_SIZE, False)
        assert heap.heap_released - before == released

    # -- the background scavenger, one lock point at a time --

    @rule(steps=st.integers(1, 6), dt=st.sampled_from([0, 1_000, 1_000_000, 50_000_000]))
    def background(self, steps, dt):
        self._background(steps, dt)

    def _background(self, steps, dt):
        """Resume the scavenger ``steps`` times, ``dt`` ns apart (a sleep ends early if longer)."""
        heap = self.heap
        for _ in range(steps):
            heap.clock.now += dt
            heap.lock.running(SCAVENGER)
            try:
                req = self.bg.send(self.sent)
            finally:
                heap.lock.running(MUTATOR)
            assert not heap.lock.held  # critical sections never span a yield
            self.sent = None
            if isinstance(req, tuple):
                assert req[0] == SLEEP and req[1] >= 0
                self.sent = req[1] if dt >= req[1] else dt  # slept it all, or woken early
            else:
                assert req in (LOCK, UNLOCKED, PARK)

    @invariant()
    def heap_is_consistent(self):
        check_heap(self.heap, self.spans)

    def teardown(self):
        by = self.heap.released_by
        for who in ("background", "growth", "forced"):
            if by[who]:
                event(f"released by {who}")
        if self.heap.pages.stats_scav_fooled:
            event("background scavenger fooled")


def machine_settings(examples: int, steps: int) -> settings:
    """Sized so that this file runs in ~15 s on a loaded 2-core machine."""
    return settings(deadline=None, max_examples=examples, stateful_step_count=steps,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


HeapMachine.TestCase.settings = machine_settings(150, 50)
TestHeapMachine = HeapMachine.TestCase


class PythonHeapMachine(HeapMachine):
    engine = "python"


PythonHeapMachine.TestCase.settings = machine_settings(150, 50)
TestPythonHeapMachine = PythonHeapMachine.TestCase


# --------------------------------------------------------------------------
# The replay engine

GAPS = st.sampled_from([0, 1, 1_000, 100_000, 5_000_000, 200_000_000])  # ns between events


class ReplayMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.engine = None
        self.live: dict[int, int] = {}  # span id -> npages
        self.next_id = 1
        self.ts = 0
        self.rows = 0
        self.events = 0
        self.skipped = 0
        self.m_time = 0

    @initialize(mode=st.sampled_from(MODES), cost=st.sampled_from(COSTS),
                timing=st.sampled_from(TIMINGS), lenient=st.booleans(), multi_p=st.booleans())
    def start(self, mode, cost, timing, lenient, multi_p):
        self.engine = Replay(mode, cost, timing=timing, lenient=lenient)
        self.multi_p = multi_p  # else every event runs on P 0

    @rule(data=st.data(), n=st.integers(1, 8))
    def batch(self, data, n):
        """n events, each valid for the model, plus (lenient runs) skippable ones."""
        cols = {k: [] for k in ("ts", "op", "span", "npages", "value", "p")}
        live = dict(self.live)
        expect_skips = 0

        def row(op, span=0, npages=0, value=0, p=-1):
            self.ts += data.draw(GAPS, label="gap")
            if not self.multi_p:
                p = 0
            for k, v in zip(cols, (self.ts, op, span, npages, value, p)):
                cols[k].append(v)

        for _ in range(n):
            kind = data.draw(st.sampled_from(["alloc"] * 4 + ["free"] * 3 + ["gc", "free_os_memory", "bad"]), label="op")
            if kind == "free" and live:
                sid = data.draw(st.sampled_from(sorted(live)), label="free span")
                row(OP_FREE, sid, live.pop(sid))
            elif kind == "gc":
                inuse = sum(live.values()) * PAGE_SIZE
                goal = data.draw(st.sampled_from([0.25, 0.5, 1.0, 2.0]), label="goal")
                row(OP_GC, value=max(PAGE_SIZE, int(inuse * goal)))
            elif kind == "free_os_memory":
                row(OP_FREE_OS_MEMORY)
            elif kind == "bad" and self.engine.lenient:
                if live and data.draw(st.booleans(), label="double alloc"):
                    sid = data.draw(st.sampled_from(sorted(live)), label="live span")
                    row(OP_ALLOC, sid, data.draw(NPAGES, label="npages"), p=0)
                else:
                    row(OP_FREE, 10**9 + self.next_id, 1)  # never allocated
                expect_skips += 1
            else:
                npages = data.draw(NPAGES, label="npages")
                row(OP_ALLOC, self.next_id, npages, p=data.draw(P_IDS, label="p"))
                live[self.next_id] = npages
                self.next_id += 1
        engine = self.engine
        heap = engine.heap
        released, growths = dict(heap.released_by), heap.growths
        engine.run_batch(*cols.values(), first_row=self.rows, label="stateful")
        engine.drain("stateful")
        self.rows += len(cols["ts"])
        self.events += len(cols["ts"]) - expect_skips
        self.skipped += expect_skips
        self.live = live
        if cols["op"][-1] == OP_FREE_OS_MEMORY and not self.multi_p and engine.forced_locked:
            # Nothing ran after it yet.  Not so with several Ps (earlier rows of other Ps may
            # run after it in virtual time, and free memory), nor when FreeOSMemory drops the
            # lock per step (preset unlocked): the background scavenger, stepping in between,
            # moves the shared scavenge address below memory FreeOSMemory has not reached.
            assert_scavenged_all(heap)
        if heap.released_by["background"] > released["background"]:
            event("background scavenger released memory between events")
        if heap.growths > growths:
            event("heap grew")

    @invariant()
    def engine_is_consistent(self):
        engine = self.engine
        if engine is None:
            return
        check_heap(engine.heap, engine.spans)
        assert {sid: n for sid, (_, n) in engine.spans.items()} == self.live
        assert engine.events == self.events and engine.skipped == self.skipped
        assert engine.m_time >= self.m_time  # the mutator's clock never goes back
        self.m_time = engine.m_time
        assert engine.retained_peak >= engine.heap.heap_retained() >= 0

    def teardown(self):
        engine = self.engine
        if engine is None:
            return
        r = engine.finish("stateful", 0.0)
        check_heap(engine.heap, engine.spans)
        heap = engine.heap
        assert r.events == self.events and r.skipped_events == self.skipped
        assert r.released_bytes == sum(heap.released_by.values())
        assert r.retained_final_bytes == heap.heap_retained() == r.retained_timeline[-1][1]
        assert r.retained_peak_bytes >= r.retained_final_bytes
        if not (engine.closed_loop or engine.lenient):  # (skipped rows do not move the clock)
            assert r.makespan_ns >= self.ts
        assert r.lock_acquisitions_mutator + r.lock_acquisitions_scavenger == heap.lock.acquisitions
        if r.scavenger_fooled:
            event("scavenger fooled")
        if r.p_stall_ns:
            event(f"mutator stalled ({engine.mode})")
        if r.released_forced_bytes:
            event("FreeOSMemory released memory")


ReplayMachine.TestCase.settings = machine_settings(100, 20)
TestReplayMachine = ReplayMachine.TestCase
