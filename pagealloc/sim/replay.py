"""Deterministic replay of a heap trace against the Go 1.14 heap model.

Not a Go file: this is the simulation around mheap.py and mgcscavenge.py.

Two simulated threads share one heap lock, in virtual nanoseconds:

* the mutator replays the trace's events at their recorded timestamps (open
  loop: an event starts at its ts, or when the previous one finished if that
  is later; ``closed_loop`` runs them back to back).  Each event is one model
  operation (mheap.alloc_span, free_span, the GC pacing update, scavenge_all),
  executed atomically at its start time; its cost comes from the cost model,
  and if it takes the heap lock while the scavenger holds it, it waits: that
  wait is the mutator's stall.
* the background scavenger runs mgcscavenge.bgscavenge, a generator that
  yields at every heap-lock acquisition and release (and to sleep or park).
  The engine resumes it only when its virtual clock is the earliest pending
  time, so everything the mutator did before that instant is visible to it —
  which is how its unlocked, optimistic reads go stale in ``unlocked`` mode.

Lock waits are resolved with a "busy until" time: an actor asking for the
lock at t gets it at max(t, the holder's release time).  On equal times the
background scavenger goes first (its pending steps up to t run before the
mutator's event at t).  Nothing reads the wall clock except the
WALL_CLOCK_FIELDS.

Modes (presets), named for what they do with the heap lock:

* ``go1.14``, as shipped: the background scavenger calls
  scavengeOne(…, false), dropping the lock between steps; heap growth and
  FreeOSMemory (scavengeAll: lock, resetScavengeAddr, scavenge(^0, true),
  unlock) hold it throughout.  The baseline the others are compared with.
* ``unlocked``: every site that can drop the lock does: the background
  scavenger and FreeOSMemory step with it dropped.
* ``locked``: every site holds it throughout, the background scavenger too.

Heap growth scavenges inside alloc with the lock held in all three.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

from pagealloc.sim.costmodel import CostModel
from pagealloc.errors import UserError
from pagealloc.sim.histogram import Histogram
from pagealloc.sim.reference import reference_fields
from pagealloc.runtime.invariants import InvariantError, check_heap
from pagealloc.runtime.malloc import ARENA_HINT_BASE, PAGE_SHIFT
from pagealloc.runtime.mgcscavenge import LOCK, PARK, SCAVENGE_ALL, SCAVENGE_PERCENT, SLEEP, UNLOCKED, bgscavenge
from pagealloc.runtime.mheap import MAX_HEAP_SYS, RETAIN_EXTRA_PERCENT, SMALL_SPAN_PAGES, MHeap
from pagealloc.trace.format import OP_ALLOC, OP_FREE, OP_FREE_OS_MEMORY, OP_GC, OP_GC_START

MODES = ("go1.14", "unlocked", "locked")
BASELINE_MODE = "go1.14"
# (background scavenger holds the lock, FreeOSMemory holds the lock) per mode
LOCKED_SITES = {"go1.14": (False, True), "unlocked": (False, False), "locked": (True, True)}
TIMINGS = ("recorded", "closed")
_INF = float("inf")

# Scavenger states
_RESUME, _ACQUIRE, _SLEEPING, _PARKED = range(4)


@dataclass
class ReplayResult:
    """Metrics of one replay of one trace in one mode.

    Times ending in _ns are virtual nanoseconds; the WALL_CLOCK_FIELDS
    (the simulator's own speed) are the only non-deterministic fields.
    """

    trace: str
    mode: str
    events: int = 0
    wall_seconds: float = 0.0
    replay_events_per_wall_second: float = 0.0
    released_bytes: int = 0
    released_background_bytes: int = 0
    released_growth_bytes: int = 0
    released_forced_bytes: int = 0
    retained_peak_bytes: int = 0
    retained_final_bytes: int = 0
    heap_sys_bytes: int = 0
    heap_growths: int = 0
    scavenged_alloc_bytes: int = 0
    lock_acquisitions_mutator: int = 0
    lock_acquisitions_scavenger: int = 0
    lock_hold_max_ns: int = 0
    lock_hold_p99_ns: int = 0
    mutator_stall_ns: int = 0
    mutator_stall_max_ns: int = 0
    mutator_stall_p99_ns: int = 0
    scavenger_fooled: int = 0
    makespan_ns: int = 0
    address_agreement: float = 0.0
    skipped_events: int = 0
    timing: str = "recorded"
    gc_goal_derived: int = 0  # gc rows without a heap goal, whose goal was derived as Go 1.14 would
    retain_extra_percent: float = 10
    scavenge_percent: float = 1
    madvise_advice: str = "MADV_FREE"  # how sysUnused released: MADV_FREE (Go 1.14's default) or MADV_DONTNEED
    madvise_calls: int = 0
    retained_timeline: list = field(default_factory=list)  # [(virtual ns, retained bytes)] at each GC, FreeOSMemory and the end
    # What the real Go 1.14.6 runtime did, on go1.14-runtime traces (else None); _ratio = model / real.
    # Filled by pagealloc.sim.reference.reference_fields.
    reference_released_bytes: int | None = None
    reference_released_bytes_ratio: float | None = None
    reference_released_background_bytes: int | None = None
    reference_released_background_bytes_ratio: float | None = None
    reference_released_growth_bytes: int | None = None
    reference_released_growth_bytes_ratio: float | None = None
    reference_released_forced_bytes: int | None = None
    reference_released_forced_bytes_ratio: float | None = None
    reference_retained_final_bytes: int | None = None
    reference_retained_final_bytes_ratio: float | None = None
    reference_heap_sys_bytes: int | None = None
    reference_heap_sys_bytes_ratio: float | None = None
    reference_heap_growths: int | None = None
    reference_heap_growths_ratio: float | None = None
    reference_scavenged_alloc_bytes: int | None = None
    reference_scavenged_alloc_bytes_ratio: float | None = None
    reference_retained_timeline: list | None = None  # [(ns, retained bytes)] of the real runtime, as retained_timeline

    WALL_CLOCK_FIELDS = ("wall_seconds", "replay_events_per_wall_second")

    def to_dict(self) -> dict:
        return asdict(self)

    def to_row(self):
        """One pandas DataFrame row (the timeline stays a list in its cell)."""
        import pandas as pd

        return pd.DataFrame([self.to_dict()])

    def deterministic(self) -> dict:
        """Every field except the wall-clock ones."""
        d = self.to_dict()
        for k in self.WALL_CLOCK_FIELDS:
            d.pop(k)
        return d


class Replay:
    """One replay: the heap, both threads' clocks, and the metrics being gathered."""

    def __init__(
        self,
        mode: str,
        cost: CostModel,
        *,
        timing: str = "recorded",
        closed_loop: bool = False,
        lenient: bool = False,
        kinds_known: bool = False,
        retain_extra_percent=RETAIN_EXTRA_PERCENT,
        scavenge_percent=SCAVENGE_PERCENT,
        madvdontneed: bool = False,
    ):
        if mode not in MODES:
            raise UserError(f"unknown mode {mode!r} (choose from {', '.join(MODES)})")
        if closed_loop:
            timing = "closed"
        if timing not in TIMINGS:
            raise UserError(f"unknown timing {timing!r} (choose from {', '.join(TIMINGS)})")
        check_knob("retain_extra_percent", retain_extra_percent, 0, 1000)
        check_knob("scavenge_percent", scavenge_percent, 1e-6, 100)
        self.mode = mode
        self.bg_locked, self.forced_locked = LOCKED_SITES[mode]
        self.cost = cost
        self.timing = timing
        self.closed_loop = timing == "closed"
        self.lenient = lenient
        self.kinds_known = kinds_known  # the trace's kind column is Go's (a recorded trace)
        self.retain_extra_percent, self.scavenge_percent = retain_extra_percent, scavenge_percent
        self.madvdontneed = bool(madvdontneed)
        self.heap = heap = MHeap(cost, retain_extra_percent=retain_extra_percent, madvdontneed=self.madvdontneed)
        heap.now = 0
        self.spans: dict[int, tuple[int, int]] = {}  # trace span id -> (base, npages)
        # mutator
        self.m_time = 0  # when the mutator is free again
        self.lock_busy_until = 0
        self.stalls = Histogram()
        self.holds = Histogram()
        # scavenger
        self.gen = bgscavenge(heap, locked=self.bg_locked, scavenge_percent=scavenge_percent)
        self.s_state = _RESUME
        self.s_time = 0
        self.s_send = None
        self.s_hold_start = 0
        self.s_sleep_start = 0
        self._step_scavenger()  # runs up to its first PARK
        # metrics
        self.events = 0
        self.skipped = 0
        self.agree = 0
        self.allocs = 0
        self.retained_peak = 0
        self.goals_derived = 0
        self.timeline: list[tuple[int, int]] = []

    # -- the background scavenger --

    def _advance_scavenger(self, until: float) -> None:
        while self.s_time <= until:
            self._step_scavenger()

    def _step_scavenger(self) -> None:
        heap, cost = self.heap, self.cost
        if self.s_state == _ACQUIRE:
            acquire = max(self.s_time, self.lock_busy_until)
            self.s_time = self.s_hold_start = acquire
            self.s_state = _RESUME
            return
        if self.s_state == _SLEEPING:
            self.s_send = self.s_time - self.s_sleep_start
        heap.now = self.s_time
        heap.lock.actor = "scavenger"
        req = self.gen.send(self.s_send)
        self.s_send = None
        spent = heap.drain_meter()
        self.s_time += spent
        if req == LOCK:
            self.s_state = _ACQUIRE
        elif req == UNLOCKED:
            self.s_time += cost.lock_ns
            self.holds.add(self.s_time - self.s_hold_start)
            self.lock_busy_until = self.s_time
            self.s_state = _RESUME
            self._note_retained()
        elif req == PARK:
            self.s_state = _PARKED
            self.s_time = _INF
        else:
            assert req[0] == SLEEP
            self.s_sleep_start = self.s_time
            self.s_time += req[1]
            self.s_state = _SLEEPING

    def _wake_scavenger(self, t: int) -> None:
        """Go: wakeScavenger — ends a park or a sleep early."""
        if self.s_state == _PARKED:
            self.s_time, self.s_state = t, _RESUME
        elif self.s_state == _SLEEPING and t < self.s_time:
            self.s_time = t  # _step_scavenger sends t - sleep start as the time slept

    # -- the mutator --

    def _finish_op(self, start: int, acquisitions: int) -> int:
        """Time the operation just executed at ``start``; return when it ends.

        An operation that took the heap lock (``acquisitions`` changed) is
        timed as asking for it at ``start`` and holding it for all of its
        work but the part done after the release (page faults, cache hits);
        if the scavenger holds the lock then, it waits (a stall).
        """
        heap = self.heap
        after = heap.after_unlock_ns
        spent = heap.drain_meter()
        if heap.lock.acquisitions == acquisitions:
            return start + spent
        lock_ns = self.cost.lock_ns
        stall = self.lock_busy_until - start if self.lock_busy_until > start else 0
        stalls = self.stalls
        if stall:
            stalls.add(stall)
        else:  # the common case, without the call
            stalls.counts[0] += 1
            stalls.n += 1
        hold = spent - after + lock_ns
        self.holds.add(hold)
        self.lock_busy_until = start + stall + hold
        return start + stall + spent + lock_ns

    def _scavenge_all_unlocked(self, start: int) -> int:
        """FreeOSMemory in unlocked mode: mheap.scavenge_all(locked=False), timed per lock section.

        Each scavenge_one step is its own critical section (its hold is its
        madvise cost).  The steps run back to back within this one mutator
        operation, so the background scavenger does not run between them.
        """
        heap = self.heap
        pages = heap.pages
        acquisitions = heap.lock.acquisitions
        heap.forced = True
        try:
            with heap.lock:
                pages.reset_scavenge_addr()
            t = self._finish_op(start, acquisitions)
            while True:
                acquisitions = heap.lock.acquisitions
                released = pages.scavenge_one(SCAVENGE_ALL, False)
                t = self._finish_op(t, acquisitions)
                if released == 0:
                    return t
        finally:
            heap.forced = False

    def _note_retained(self) -> None:
        r = self.heap.heap_retained()
        if r > self.retained_peak:
            self.retained_peak = r

    def run_batch(self, ts, op, span, npages, value, p, kind=None, *, first_row: int, label: str) -> None:
        """Replay one batch of events (lists, as from EventBatch columns' tolist()).

        ``kind`` (Go's span kind: span class << 1 | manual) is used when the
        engine was told the trace's kinds are real (``kinds_known``): a span
        under 16 pages for a large object (size class 0, not manual) takes the
        heap lock even when the page cache serves it, as in Go's allocSpan.
        Otherwise every such span is taken to be a small-object span.

        The hot loop: hot attributes live in locals and are written back at
        the end; the common case (a lock-free page-cache hit while the
        scavenger sleeps) touches nothing else.
        """
        heap, spans = self.heap, self.spans
        kinds = kind if self.kinds_known else None
        lock = heap.lock
        lock.actor = "mutator"  # the scavenger's steps set it to itself
        alloc_span, free_span = heap.alloc_span, heap.free_span
        forced_locked = self.forced_locked
        closed = self.closed_loop
        m_time = self.m_time
        peak = self.retained_peak
        allocs = agree = events = 0
        for i in range(len(ts)):
            start = m_time if closed or ts[i] < m_time else ts[i]
            if self.s_time <= start:
                self._advance_scavenger(start)
                lock.actor = "mutator"
            acquisitions = lock.acquisitions
            code = op[i]
            if code == OP_ALLOC:
                sid = span[i]
                if sid in spans:
                    if self.lenient:
                        self.skipped += 1
                        continue
                    raise UserError(f"{label}: row {first_row + i}: alloc of span {sid}, which is already live")
                n = npages[i]
                pid = p[i]
                if kinds is not None and n < SMALL_SPAN_PAGES:
                    k = kinds[i]
                    base = alloc_span(n, pid, bool(k & 1 or k >> 2))
                else:
                    base = alloc_span(n, pid)  # P -1: no P, so no page cache (Go: pp == nil)
                if base == 0:
                    raise UserError(
                        f"{label}: row {first_row + i}: allocating span {sid} of {n} pages would grow the heap "
                        f"past {MAX_HEAP_SYS >> 40} TiB, the most the replay models"
                    )
                spans[sid] = (base, n)
                allocs += 1
                if (base - ARENA_HINT_BASE) >> PAGE_SHIFT == sid:
                    agree += 1
            elif code == OP_FREE:
                got = spans.pop(span[i], None)
                if got is None or got[1] != npages[i]:
                    if got is not None:  # not skippable, even with --lenient
                        raise UserError(f"{label}: row {first_row + i}: free of span {span[i]} with npages "
                                        f"{npages[i]}, but it was allocated with npages {got[1]}")
                    if self.lenient:
                        self.skipped += 1
                        continue
                    raise UserError(f"{label}: row {first_row + i}: free of unknown span {span[i]}")
                free_span(got[0], got[1], p[i])
            elif code == OP_GC_START:  # world stopped: no heap lock (Go: gcStart)
                heap.gc_start()
            elif code == OP_GC:  # world stopped: no heap lock (Go: gcMarkTermination)
                if heap.gc_done(value[i]):
                    self.goals_derived += 1
            elif code == OP_FREE_OS_MEMORY:
                if forced_locked:
                    heap.scavenge_all(locked=True)
                else:
                    m_time = self._scavenge_all_unlocked(start)
                    acquisitions = lock.acquisitions  # already timed
            else:
                raise UserError(f"{label}: row {first_row + i}: unknown op code {code}")
            if lock.acquisitions != acquisitions:
                m_time = self._finish_op(start, acquisitions)
            elif code == OP_FREE_OS_MEMORY:
                pass  # unlocked FreeOSMemory was timed step by step
            else:  # no lock taken, so no scavenging: the meter is all there is
                m_time = start + heap.meter_ns
                heap.meter_ns = heap.after_unlock_ns = 0
            events += 1
            retained = heap.heap_sys - heap.heap_released
            if retained > peak:
                peak = retained
            if code == OP_GC or code == OP_FREE_OS_MEMORY:  # sample the timeline
                self.timeline.append((m_time, retained))
                if code == OP_GC:
                    self._wake_scavenger(m_time)
        self.m_time = m_time
        self.events += events
        self.retained_peak = max(peak, self.retained_peak)
        self.allocs += allocs
        self.agree += agree

    def finish(self, label: str, wall: float) -> ReplayResult:
        self._advance_scavenger(self.m_time)
        heap = self.heap
        self.timeline.append((self.m_time, heap.heap_retained()))
        by = heap.released_by
        return ReplayResult(
            trace=label,
            mode=self.mode,
            events=self.events,
            wall_seconds=wall,
            replay_events_per_wall_second=self.events / wall if wall > 0 else 0.0,
            released_bytes=sum(by.values()),
            released_background_bytes=by["background"],
            released_growth_bytes=by["growth"],
            released_forced_bytes=by["forced"],
            retained_peak_bytes=self.retained_peak,
            retained_final_bytes=heap.heap_retained(),
            heap_sys_bytes=heap.heap_sys,
            heap_growths=heap.growths,
            scavenged_alloc_bytes=heap.scav_alloc_bytes,
            lock_acquisitions_mutator=heap.lock.by_actor["mutator"],
            lock_acquisitions_scavenger=heap.lock.by_actor["scavenger"],
            lock_hold_max_ns=self.holds.max,
            lock_hold_p99_ns=self.holds.quantile(0.99),
            mutator_stall_ns=self.stalls.total,
            mutator_stall_max_ns=self.stalls.max,
            mutator_stall_p99_ns=self.stalls.quantile(0.99),
            scavenger_fooled=heap.pages.stats_scav_fooled,
            makespan_ns=self.m_time,
            address_agreement=self.agree / self.allocs if self.allocs else 0.0,
            skipped_events=self.skipped,
            timing=self.timing,
            gc_goal_derived=self.goals_derived,
            retain_extra_percent=self.retain_extra_percent,
            scavenge_percent=self.scavenge_percent,
            madvise_advice="MADV_DONTNEED" if self.madvdontneed else "MADV_FREE",
            madvise_calls=heap.madvise_calls,
            retained_timeline=self.timeline,
        )


def _label(trace) -> str:
    if isinstance(trace, (str, bytes)) or hasattr(trace, "__fspath__"):
        from pathlib import Path

        return Path(trace).stem
    return "<table>" if type(trace).__name__ == "Table" else "<dataframe>"  # as the trace reader names them


def replay(
    trace,
    mode: str = BASELINE_MODE,
    *,
    cost_model: CostModel | str | None = None,
    timing: str = "recorded",
    closed_loop: bool = False,
    retain_extra_percent=RETAIN_EXTRA_PERCENT,
    scavenge_percent=SCAVENGE_PERCENT,
    madvdontneed: bool = False,
    check: bool = False,
    lenient: bool = False,
    label: str | None = None,
    progress=None,
) -> ReplayResult:
    """Replay ``trace`` (a path, pyarrow Table or pandas DataFrame) in ``mode`` (a preset of MODES).

    ``timing`` (TIMINGS): ``recorded`` starts each event at its timestamp
    or when the mutator is free; ``closed`` runs them back to back
    (``closed_loop=True`` is the same).  ``retain_extra_percent`` and
    ``scavenge_percent`` are Go 1.14's retainExtraPercent (10) and
    scavengePercent (1): knobs for parameter studies.  ``madvdontneed`` is
    GODEBUG=madvdontneed=1: release with MADV_DONTNEED instead of MADV_FREE.
    Raises UserError for bad input.  ``check`` verifies the model's
    invariants after the replay (pagealloc.runtime.invariants.check_heap).
    ``lenient`` skips frees of unknown spans and allocs of live spans and
    counts them in ``skipped_events``.  ``progress(n)`` is called with the
    number of events done after each batch.
    """
    from pagealloc.trace.read import iter_event_batches, trace_metadata

    if isinstance(cost_model, str) or hasattr(cost_model, "__fspath__"):
        cost_model = CostModel.load(cost_model)
    label = label or _label(trace)
    where = str(trace) if isinstance(trace, str) or hasattr(trace, "__fspath__") else label  # for messages
    # Only a trace recorded from Go carries Go's span kinds; elsewhere kind 0
    # means "not given", not "large scan object".
    metadata = trace_metadata(trace)
    kinds_known = metadata.get("source") in ("go-trace", "go1.14-runtime")
    engine = Replay(
        mode,
        cost_model or CostModel(),
        timing=timing,
        closed_loop=closed_loop,
        lenient=lenient,
        kinds_known=kinds_known,
        retain_extra_percent=retain_extra_percent,
        scavenge_percent=scavenge_percent,
        madvdontneed=madvdontneed,
    )
    t0 = time.perf_counter()
    row = 0
    try:
        for batch in iter_event_batches(trace, spans=not lenient):
            cols = [a.tolist() for a in batch]
            engine.run_batch(*cols, first_row=row, label=where)
            row += len(cols[0])
            if progress is not None:
                progress(row)
        if row == 0:
            raise UserError(f"{where}: the trace has no events")
        result = engine.finish(label, time.perf_counter() - t0)
        for name, value in reference_fields(metadata, result, where).items():  # go1.14-runtime traces
            setattr(result, name, value)
        if check:
            check_heap(engine.heap, engine.spans)
    except InvariantError as e:  # a bug in the model (also raised mid-replay: retained < 0)
        raise InvariantError(f"{where} ({mode}): {e}") from e
    return result


def check_knob(name: str, value, low, high) -> None:
    """A model knob must be a number in [low, high]; UserError otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise UserError(f"{name} must be a number in [{low:g}, {high:g}], got {value!r}")


__all__ = ["BASELINE_MODE", "MODES", "TIMINGS", "Replay", "ReplayResult", "replay"]
