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
from collections import deque
from dataclasses import asdict, dataclass, field
from heapq import heappop, heappush

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
AUTO_TIMING = "auto"  # replay(): ordered for a go1.14-runtime trace, recorded for any other
TIMINGS = (AUTO_TIMING, "recorded", "ordered", "shifted", "closed")
_ORDER = "order"  # Actor.blocked_on while it waits for its turn in the trace's row order
_INF = float("inf")
CLOSED_QUEUE_LIMIT = 4_000_000  # events queued at once under closed timing before giving up

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
    # The modelled program, GOMAXPROCS Ps contending for the heap lock (virtual time):
    gomaxprocs: int = 1
    p_stall_ns: int = 0  # P-time spent waiting for the heap lock, summed over Ps (= mutator_stall_ns)
    p_stall_max_ns: int = 0  # the longest single wait
    p_stall_p99_ns: int = 0  # over every heap-lock acquisition of a P
    p_stall_by_p: list = field(default_factory=list)  # P-stall of P 0 .. gomaxprocs-1
    runtime_stall_ns: int = 0  # waits of events with no P (p -1), in p_stall_ns but not in p_stall_by_p
    order_wait_ns: int = 0  # ordered timing: P-time spent waiting for an earlier row of another P to run (not in p_stall_ns)
    alloc_latency_p99_ns: int = 0  # request to span in hand, lock wait included
    alloc_latency_max_ns: int = 0
    recorded_duration_ns: int = 0  # last timestamp - first timestamp of the trace
    throughput_events_per_vsec: float = 0.0  # events per virtual second (events / makespan)
    slowdown: float = 0.0  # makespan / recorded duration
    scavenger_cpu_ns: int = 0  # virtual CPU time of the background scavenger
    released_bytes_per_scavenger_cpu_sec: float = 0.0
    retained_timeline: list = field(default_factory=list)  # [(virtual ns, retained bytes)] at each GC, FreeOSMemory and the end
    p_stall_timeline: list = field(default_factory=list)  # [(virtual ns, P-stall so far)] at the same points
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


class Actor:
    """A P replaying its own events in order, or the runtime actor (P -1, no page cache).

    ``queue`` holds its events not yet executed, in trace order, as
    (row, ts, op, span, npages, value, kind) tuples; ``free_at`` is when it
    is done with its last operation; ``delay`` is the lock-wait time that
    has accumulated on it (the ``shifted`` timing moves its later events
    by that much).  ``version`` invalidates its stale entries in the
    engine's schedule.
    """

    __slots__ = ("pid", "queue", "free_at", "delay", "stall_ns", "steps", "scheduled", "blocked_on", "version")

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.queue: deque = deque()
        self.free_at = 0
        self.delay = 0
        self.stall_ns = 0
        self.steps = None  # the rest of a multi-step operation (unlocked FreeOSMemory)
        self.scheduled = False
        self.blocked_on = None  # a span id whose earlier op (on another actor) must run first
        self.version = 0


class Replay:
    """One replay: the heap, every actor's clock, and the metrics being gathered.

    The actors are the trace's Ps (one per ``p`` value; P -1 is the runtime
    actor, which has no P and so no page cache) and the background
    scavenger.  A schedule (a heap of (time, tie, row, actor)) always runs
    the earliest pending step: the scavenger's next step, or the next event
    of a P.  Ties go to the scavenger, then to the event earliest in the
    trace.  Events are queued per P as batches are read; the schedule only
    runs steps before the horizon (the timestamp of the last event read),
    because an event not yet read cannot start before its timestamp.
    """

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
        gomaxprocs: int | None = None,
    ):
        if mode not in MODES:
            raise UserError(f"unknown mode {mode!r} (choose from {', '.join(MODES)})")
        if closed_loop:
            timing = "closed"
        if timing == AUTO_TIMING:  # the engine alone does not know where the trace came from
            timing = "recorded"
        if timing not in TIMINGS:
            raise UserError(f"unknown timing {timing!r} (choose from {', '.join(TIMINGS)})")
        check_knob("retain_extra_percent", retain_extra_percent, 0, 1000)
        check_knob("scavenge_percent", scavenge_percent, 1e-6, 100)
        self.mode = mode
        self.bg_locked, self.forced_locked = LOCKED_SITES[mode]
        self.cost = cost
        self.timing = timing
        self.closed_loop = timing == "closed"
        self.ordered = timing == "ordered"
        self.next_row = 0  # ordered timing: the row whose turn it is
        self.order_waiters: dict[int, tuple[Actor, int]] = {}  # row -> (its actor, when it asked to run)
        self.order_wait_ns = 0
        self.lenient = lenient
        self.kinds_known = kinds_known  # the trace's kind column is Go's (a recorded trace)
        self.retain_extra_percent, self.scavenge_percent = retain_extra_percent, scavenge_percent
        self.madvdontneed = bool(madvdontneed)
        self.gomaxprocs = gomaxprocs  # from the metadata; None: as many as the trace's p column shows
        self.heap = heap = MHeap(cost, retain_extra_percent=retain_extra_percent, madvdontneed=self.madvdontneed)
        heap.now = 0
        self.spans: dict[int, tuple[int, int]] = {}  # trace span id -> (base, npages)
        self.manual_spans: set[int] = set()  # the live ones among them that are manual (kind & 1)
        # A span's ops run in trace order: each queued op carries the row of the
        # span's previous op (or -1), and may run once that row has completed.
        self.span_last: dict[int, int] = {}  # span id -> row of its last queued op
        self.span_done: dict[int, tuple[int, int]] = {}  # span id -> (row, end) of its last completed op, until the clock passes it
        self.waiting: dict[int, list[Actor]] = {}  # span id -> actors blocked on it
        self.actors: dict[int, Actor] = {}
        self.schedule: list = []
        self.horizon = 0
        self.now = 0  # time of the step running now
        self.pending = 0  # events queued and not yet completed
        self.trace_done = False
        self.log = None  # a list to get (pid, row, op, start, end) per event run (tests)
        self.lock_busy_until = 0
        self.stalls = Histogram()
        self.holds = Histogram()
        self.latency = Histogram()
        # scavenger
        self.gen = bgscavenge(heap, locked=self.bg_locked, scavenge_percent=scavenge_percent)
        self.s_state = _RESUME
        self.s_time = 0
        self.s_version = 0
        self.s_send = None
        self.s_hold_start = 0
        self.s_sleep_start = 0
        self.s_cpu_ns = 0
        self._step_scavenger()  # runs up to its first PARK
        heap.lock.actor = "mutator"  # every step but the scavenger's is a P's
        # metrics
        self.events = 0
        self.skipped = 0
        self.agree = 0
        self.allocs = 0
        self.retained_peak = 0
        self.goals_derived = 0
        self.first_ts = None
        self.last_ts = 0
        self.timeline: list[tuple[int, int]] = []
        self.stall_timeline: list[tuple[int, int]] = []

    # -- the background scavenger --

    def _schedule_scavenger(self) -> None:
        self.s_version += 1
        if self.s_time != _INF:
            heappush(self.schedule, (self.s_time, 0, 0, self.s_version, None))

    def _step_scavenger(self) -> None:
        heap, cost = self.heap, self.cost
        if self.s_state == _ACQUIRE:
            busy = self.lock_busy_until
            acquire = self.s_time
            if busy > acquire:
                acquire = busy + (cost.futex_wake_ns if busy - acquire > cost.lock_spin_ns else 0)
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
        self.s_cpu_ns += spent
        if req == LOCK:
            self.s_state = _ACQUIRE
        elif req == UNLOCKED:
            self.s_time += cost.lock_ns
            self.s_cpu_ns += cost.lock_ns
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
        else:
            return
        self._schedule_scavenger()

    # -- the Ps --

    def _actor(self, pid: int, row: int, label: str) -> Actor:
        g = self.gomaxprocs
        if g is not None and pid >= g:
            raise UserError(f"{label}: row {row}: p {pid} is not below the trace's gomaxprocs {g}")
        a = self.actors[pid] = Actor(pid)
        if self.timing == "closed":  # a P first seen late starts now, not at 0 in the past
            a.free_at = self.now
        return a

    def _start_of(self, a: Actor) -> int:
        """When actor a's next event starts, by the timing policy."""
        ts = a.queue[0][1]
        timing = self.timing
        if timing == "recorded" or timing == "ordered":
            return ts if ts > a.free_at else a.free_at
        if timing == "shifted":
            ts += a.delay
            return ts if ts > a.free_at else a.free_at
        return a.free_at  # closed: back to back

    def _schedule(self, a: Actor) -> None:
        a.version += 1
        a.scheduled = True
        row = a.queue[0][0] if a.steps is None else -1
        t = a.free_at if a.steps is not None else self._start_of(a)
        heappush(self.schedule, (t, 1, row, a.version, a))

    def _lock_op(self, a: Actor, start: int, acquisitions: int) -> int:
        """Time the operation actor a just executed at ``start``; return when it ends.

        An operation that took the heap lock (``acquisitions`` changed) is
        timed as asking for it at ``start`` and holding it for all of its
        work but the part done after the release (page faults, cache hits);
        if another actor holds the lock then, it waits (a stall).  A wait
        longer than Go's spin (lock_spin_ns) sleeps in the futex, and waking
        it costs the waiter futex_wake_ns more.
        """
        heap = self.heap
        after = heap.after_unlock_ns
        spent = heap.drain_meter()
        if heap.lock.acquisitions == acquisitions:
            return start + spent
        cost = self.cost
        lock_ns = cost.lock_ns
        busy = self.lock_busy_until
        stalls = self.stalls
        if busy > start:
            wait = busy - start
            # Past the spin the waiter sleeps, and waking it costs futex_wake_ns.  The
            # lock is not idle meanwhile (Go's lock has no handoff: a P spinning for it
            # takes it), so only the waiter pays: its section is timed from the release.
            stall = wait + cost.futex_wake_ns if wait > cost.lock_spin_ns else wait
            stalls.add(stall)
            a.stall_ns += stall
            a.delay += stall
        else:  # the common case, without the call
            wait = stall = 0
            stalls.counts[0] += 1
            stalls.n += 1
        hold = spent - after + lock_ns
        self.holds.add(hold)
        self.lock_busy_until = start + wait + hold
        return start + stall + spent + lock_ns

    def _forced_steps(self, a: Actor):
        """FreeOSMemory dropping the lock per step (mode ``unlocked``): mheap.scavenge_all(locked=False).

        A generator the engine resumes once per critical section, each at
        the time the previous one ended, so other actors interleave: first
        the scavenge-address reset under the lock, then each scavenge_one
        step (its hold is its madvise).  Yields each section's end time.
        """
        heap = self.heap
        pages, lock = heap.pages, heap.lock
        first = True
        while True:
            start = a.free_at
            acquisitions = lock.acquisitions
            heap.forced = True
            try:
                if first:
                    with lock:
                        pages.reset_scavenge_addr()
                    released = 1
                else:
                    released = pages.scavenge_one(SCAVENGE_ALL, False)
            finally:
                heap.forced = False
            yield self._lock_op(a, start, acquisitions)
            first = False
            if released == 0:
                return

    def _note_retained(self) -> None:
        r = self.heap.heap_retained()
        if r > self.retained_peak:
            self.retained_peak = r

    def run_batch(self, ts, op, span, npages, value, p, kind=None, *, first_row: int, label: str) -> None:
        """Queue one batch of events on their actors (lists, as from EventBatch columns'
        tolist()), then run the schedule up to this batch's last timestamp.

        ``kind`` (Go's span kind: span class << 1 | manual) is used when the
        engine was told the trace's kinds are real (``kinds_known``): a span
        under 16 pages for a large object (size class 0, not manual) takes the
        heap lock even when the page cache serves it, as in Go's allocSpan.
        Otherwise every such span is taken to be a small-object span.
        """
        n = len(ts)
        if not n:
            return
        if kind is None or not self.kinds_known:
            kind = [0] * n if kind is None else kind
        now = self.now  # forget completions the clock has passed: they hold nothing back
        self.span_done = {sid: d for sid, d in self.span_done.items() if d[1] > now or sid in self.span_last}
        actors, span_last, schedule = self.actors, self.span_last, self.schedule
        closed = self.timing == "closed"
        shifted = self.timing == "shifted"
        for i in range(n):
            pid = p[i]
            a = actors.get(pid)
            if a is None:
                a = self._actor(pid, first_row + i, label)
            code = op[i]
            row = first_row + i
            prev = -1
            if code <= OP_FREE:  # a span op: its span's ops must run in trace order
                sid = span[i]
                prev = span_last.get(sid, -1)
                span_last[sid] = row
            if closed and pid < 0 and not a.queue and a.free_at < self.now:
                a.free_at = self.now  # the runtime actor has no program of its own to run back to back
            a.queue.append((row, ts[i], code, span[i], npages[i], value[i], kind[i], prev))
            self.pending += 1
            if not closed and i + 1 < n and not a.scheduled and a.blocked_on is None and a.steps is None \
                    and len(a.queue) == 1:
                # The fast path: an idle P whose event starts no later than the next row's
                # timestamp can run it now, once whatever is due before it has run (no row
                # not read yet can start earlier).  Same order as through the schedule.
                t = ts[i] + a.delay if shifted else ts[i]
                if t < a.free_at:
                    t = a.free_at
                if t <= ts[i + 1]:
                    if self.horizon <= t:  # no row not read yet starts before ts[i + 1] >= t
                        self.horizon = t + 1
                    if schedule and self._due(schedule[0], t, row):
                        self._run(label, t, row)
                    self.now = t
                    self._execute(a, t, label)
                    if a.queue and a.blocked_on is None and not a.scheduled:
                        self._schedule(a)
                    continue
            if not a.scheduled and a.blocked_on is None:
                if a.steps is None and not closed:  # _schedule, inline: its start is max(ts, free_at) (+ delay)
                    t = ts[i] + a.delay if shifted else ts[i]
                    a.version += 1
                    a.scheduled = True
                    heappush(schedule, (t if t > a.free_at else a.free_at, 1, row, a.version, a))
                else:
                    self._schedule(a)
        if self.first_ts is None:
            self.first_ts = ts[0]
        self.last_ts = ts[-1]
        if closed:
            # A P whose queue is empty may get events starting at its free_at.
            self.horizon = min((x.free_at for x in actors.values() if not x.queue and x.pid >= 0), default=_INF)
            if self.pending > CLOSED_QUEUE_LIMIT:
                raise UserError(f"{label}: row {first_row + n - 1}: closed timing queued {self.pending:,} events waiting for "
                                "a P that has none in this part of the trace; replay it with --timing recorded or shifted")
        else:
            self.horizon = ts[-1]  # an event not read yet starts no earlier than its timestamp
        self._run(label)

    def drain(self, label: str) -> None:
        """Run every queued event now, as if the trace ended here (tests drive batches this way)."""
        horizon, done = self.horizon, self.trace_done
        self.horizon, self.trace_done = _INF, True
        try:
            self._run(label)
        finally:
            self.horizon, self.trace_done = horizon, done

    @property
    def m_time(self) -> int:
        """When the last P is done with its last operation."""
        return max((a.free_at for a in self.actors.values()), default=0)

    @staticmethod
    def _due(entry, t: int, row: int) -> bool:
        """Whether a schedule entry runs before a P's event (row) starting at t."""
        return entry[0] < t or (entry[0] == t and (entry[1] == 0 or entry[2] < row))

    def _run(self, label: str, until: int | None = None, row: int = 0) -> None:
        """Run every scheduled step that starts before the horizon (with ``until``:
        every step due before a P's event at that time, the fast path's).

        After an actor's event, its next one runs at once, without a trip
        through the schedule, while it is still the earliest step (the
        common case: one P runs a stretch of events between the
        scavenger's steps).
        """
        schedule = self.schedule
        closed = self.timing == "closed"
        recorded = self.timing in ("recorded", "ordered")
        execute = self._execute
        due, until_row = self._due, row
        while schedule and schedule[0][0] < self.horizon and (until is None or due(schedule[0], until, until_row)):
            t, tie, _, version, a = heappop(schedule)
            self.now = t
            if a is None:
                if version == self.s_version:
                    if not self.pending:  # the program has ended: finish() runs the rest to its end
                        heappush(schedule, (t, tie, 0, version, None))
                        return
                    self._step_scavenger()
                    self.heap.lock.actor = "mutator"  # every other step is a P's
                    self._schedule_scavenger()
                continue
            if version != a.version:
                continue
            a.scheduled = False
            if a.steps is not None:
                self._continue_steps(a)
            else:
                execute(a, t, label)
                queue = a.queue
                while queue and a.blocked_on is None and not a.scheduled and a.steps is None:
                    ts, row = queue[0][1], queue[0][0]
                    if recorded:
                        t = ts if ts > a.free_at else a.free_at
                    else:
                        t = self._start_of(a)
                    top = schedule[0] if schedule else None
                    if t >= self.horizon or (top is not None and due(top, t, row)) or \
                            (until is not None and not (t < until or (t == until and row < until_row))):
                        break
                    self.now = t
                    execute(a, t, label)
            if a.queue and a.blocked_on is None and not a.scheduled:
                self._schedule(a)
            if closed and not a.queue and a.pid >= 0 and not self.trace_done:
                self.horizon = min(self.horizon, a.free_at)

    def _continue_steps(self, a: Actor) -> None:
        self.heap.lock.actor = "mutator"
        try:
            a.free_at = next(a.steps)
            self._schedule(a)
        except StopIteration:
            a.steps = None
            self.pending -= 1
            self._after_event(a, OP_FREE_OS_MEMORY)

    def _execute(self, a: Actor, start: int, label: str) -> None:
        """Run actor a's next event at ``start``, unless its span must wait for another actor."""
        row, ts, code, sid, n, value, k, prev = a.queue[0]
        heap = self.heap
        lenient = self.lenient
        if code <= OP_FREE:  # the span's previous op may run on another actor, or complete later
            done = self.span_done.get(sid)
            if prev >= 0 and (done is None or done[0] != prev):  # not yet run
                a.blocked_on = sid
                self.waiting.setdefault(sid, []).append(a)
                return
            if done is not None and start < done[1]:  # it ran, but completes later: start then
                a.free_at = done[1]
                self._schedule(a)
                return
        if self.ordered:  # rows run in the trace's order, across Ps: the order the runtime took its lock in
            if row != self.next_row:
                a.blocked_on = _ORDER
                self.order_waiters[row] = (a, start)
                return
            self.next_row = row + 1
            if self.order_waiters:
                self._wake_next_in_order(row + 1, start)
        a.queue.popleft()
        self.pending -= 1
        lock = heap.lock
        acquisitions = lock.acquisitions
        spans = self.spans
        if code == OP_ALLOC:
            if sid in spans:
                self._span_done(sid, row, start)
                if lenient:
                    self.skipped += 1
                    return
                raise UserError(f"{label}: row {row}: alloc of span {sid}, which is already live")
            if self.kinds_known and k & 1:  # a manual span (Go's allocManual: stacks, GC work buffers)
                base = heap.alloc_span(n, a.pid, True, True)
                self.manual_spans.add(sid)
            elif self.kinds_known and n < SMALL_SPAN_PAGES:
                base = heap.alloc_span(n, a.pid, bool(k >> 2))
            else:
                base = heap.alloc_span(n, a.pid)  # P -1: no P, so no page cache (Go: pp == nil)
            if base == 0:
                raise UserError(
                    f"{label}: row {row}: allocating span {sid} of {n} pages would grow the heap "
                    f"past {MAX_HEAP_SYS >> 40} TiB, the most the replay models"
                )
            spans[sid] = (base, n)
            self.allocs += 1
            if (base - ARENA_HINT_BASE) >> PAGE_SHIFT == sid:
                self.agree += 1
        elif code == OP_FREE:
            got = spans.pop(sid, None)
            if got is None or got[1] != n:
                if got is not None:  # not skippable, even with --lenient
                    raise UserError(f"{label}: row {row}: free of span {sid} with npages "
                                    f"{n}, but it was allocated with npages {got[1]}")
                self._span_done(sid, row, start)
                if lenient:
                    self.skipped += 1
                    return
                raise UserError(f"{label}: row {row}: free of unknown span {sid}")
            if self.manual_spans:
                manual = sid in self.manual_spans
                self.manual_spans.discard(sid)
                heap.free_span(got[0], n, a.pid, manual)
            else:
                heap.free_span(got[0], n, a.pid)
        elif code == OP_GC:  # world stopped: no heap lock (Go: gcMarkTermination)
            if heap.gc_done(value):
                self.goals_derived += 1
        elif code == OP_GC_START:  # world stopped: no heap lock (Go: gcStart); value: heap_live if known
            heap.gc_start(value)
        elif code == OP_FREE_OS_MEMORY:
            if self.forced_locked:  # Go 1.14's scavengeAll: one critical section
                heap.scavenge_all(locked=True)
            else:
                a.free_at = start
                if self.log is not None:
                    self.log.append((a.pid, row, code, start, start))
                a.steps = self._forced_steps(a)
                self.pending += 1  # until its last step
                self._continue_steps(a)
                return
        else:
            raise UserError(f"{label}: row {row}: unknown op code {code}")
        if lock.acquisitions != acquisitions:
            end = self._lock_op(a, start, acquisitions)
        else:  # no lock taken, so no scavenging: the meter is all there is
            end = start + heap.meter_ns
            heap.meter_ns = heap.after_unlock_ns = 0
        a.free_at = end
        if self.log is not None:
            self.log.append((a.pid, row, code, start, end))
        if code <= OP_FREE:
            if code == OP_ALLOC:  # Histogram.add, inline: once per allocation
                lat, v = self.latency, end - start
                shift = v.bit_length() - 7
                lat.counts[v if shift < 0 else ((shift + 1) << 6) + (v >> shift) - 64] += 1
                lat.n += 1
                lat.total += v
                if v > lat.max:
                    lat.max = v
            span_last = self.span_last
            self.span_done[sid] = (row, end)
            if span_last[sid] == row:  # the common case: no later op of this span queued yet
                del span_last[sid]
            else:
                self._span_done(sid, row, end)
            self.events += 1
            retained = heap.heap_sys - heap.heap_released
            if retained > self.retained_peak:
                self.retained_peak = retained
        else:
            self._after_event(a, code)

    def _wake_next_in_order(self, row: int, now: int) -> None:
        """Ordered timing: the row before ``row`` runs at ``now``, so ``row``'s actor may run, no earlier."""
        got = self.order_waiters.pop(row, None)
        if got is None:
            return
        w, asked = got
        w.blocked_on = None
        if now > asked:
            self.order_wait_ns += now - asked
        if w.free_at < now:
            w.free_at = now
        self._schedule(w)

    def _span_done(self, sid: int, row: int, end: int) -> None:
        """The op of span sid at ``row`` completed at ``end``: wake whoever
        waits for the next one, no earlier than that (causality).  The end
        is kept (span_done) until the clock passes it, for ops read later."""
        self.span_done[sid] = (row, end)
        if self.span_last[sid] == row:  # no op of the span queued after it
            del self.span_last[sid]
            return
        waiters = self.waiting.pop(sid, None)
        if waiters:
            for w in waiters:
                w.blocked_on = None
                if w.free_at < end:
                    w.free_at = end
                if not w.scheduled:
                    self._schedule(w)

    def _after_event(self, a: Actor, code: int) -> None:
        self.events += 1
        heap = self.heap
        retained = heap.heap_sys - heap.heap_released
        if retained > self.retained_peak:
            self.retained_peak = retained
        if code == OP_GC or code == OP_FREE_OS_MEMORY:  # sample the timelines
            self.timeline.append((a.free_at, retained))
            self.stall_timeline.append((a.free_at, self.stalls.total))
            if code == OP_GC:
                self._wake_scavenger(a.free_at)

    def finish(self, label: str, wall: float) -> ReplayResult:
        self.horizon = _INF
        self.trace_done = True
        self._run(label)
        if self.waiting:  # cannot happen for a valid trace: every wait is for an earlier row
            raise InvariantError(f"actors still wait for spans {sorted(self.waiting)[:5]} at the end")
        if self.order_waiters:
            raise InvariantError(f"rows {sorted(self.order_waiters)[:5]} still wait for their turn at the end")
        mutators = self.actors.values()
        makespan = max((a.free_at for a in mutators), default=0)
        while self.s_time <= makespan:  # the scavenger's steps until the program ends
            self._step_scavenger()
        heap = self.heap
        self.timeline.sort(key=_first)  # in time order (Ps finish out of order); stable
        self.timeline.append((makespan, heap.heap_retained()))
        self.stall_timeline.sort(key=_first)
        self.stall_timeline.append((makespan, self.stalls.total))
        by = heap.released_by
        recorded = (self.last_ts - self.first_ts) if self.first_ts is not None else 0
        g = self.gomaxprocs or (max((pid for pid in self.actors if pid >= 0), default=-1) + 1)
        per_p = [self.actors[pid].stall_ns if pid in self.actors else 0 for pid in range(g)]
        runtime = self.actors.get(-1)
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
            makespan_ns=makespan,
            address_agreement=self.agree / self.allocs if self.allocs else 0.0,
            skipped_events=self.skipped,
            timing=self.timing,
            gc_goal_derived=self.goals_derived,
            retain_extra_percent=self.retain_extra_percent,
            scavenge_percent=self.scavenge_percent,
            madvise_advice="MADV_DONTNEED" if self.madvdontneed else "MADV_FREE",
            madvise_calls=heap.madvise_calls,
            gomaxprocs=g,
            p_stall_ns=self.stalls.total,
            p_stall_max_ns=self.stalls.max,
            p_stall_p99_ns=self.stalls.quantile(0.99),
            p_stall_by_p=per_p,
            runtime_stall_ns=runtime.stall_ns if runtime is not None else 0,
            order_wait_ns=self.order_wait_ns,
            alloc_latency_p99_ns=self.latency.quantile(0.99),
            alloc_latency_max_ns=self.latency.max,
            recorded_duration_ns=recorded,
            throughput_events_per_vsec=self.events * 1e9 / makespan if makespan else 0.0,
            slowdown=makespan / recorded if recorded else 0.0,
            scavenger_cpu_ns=self.s_cpu_ns,
            released_bytes_per_scavenger_cpu_sec=by["background"] * 1e9 / self.s_cpu_ns if self.s_cpu_ns else 0.0,
            retained_timeline=self.timeline,
            p_stall_timeline=self.stall_timeline,
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
    timing: str = AUTO_TIMING,
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
    or when its P is free; ``ordered`` does too, and runs the rows in the
    trace's order across Ps (a row waits for the one before it to start:
    ``order_wait_ns``), which is the order a Go 1.14 recording took the
    heap lock in; ``shifted`` moves a P's later events by the lock waits it
    had; ``closed`` runs each P's events back to back (``closed_loop=True``
    is the same).  ``auto``, the default: ``ordered`` for a go1.14-runtime
    trace, ``recorded`` for any other.  ``retain_extra_percent`` and
    ``scavenge_percent`` are Go 1.14's retainExtraPercent (10) and
    scavengePercent (1): knobs for parameter studies.  ``madvdontneed`` is
    GODEBUG=madvdontneed=1: release with MADV_DONTNEED instead of MADV_FREE.
    Raises UserError for bad input.  ``check`` verifies the model's
    invariants after the replay (pagealloc.runtime.invariants.check_heap).
    ``lenient`` skips frees of unknown spans and allocs of live spans and
    counts them in ``skipped_events``.  ``progress(n)`` is called with the
    number of events done after each batch.
    """
    from pagealloc.trace.format import open_trace
    from pagealloc.trace.read import iter_event_batches, trace_metadata

    if isinstance(cost_model, str) or hasattr(cost_model, "__fspath__"):
        cost_model = CostModel.load(cost_model)
    label = label or _label(trace)
    where = str(trace) if isinstance(trace, str) or hasattr(trace, "__fspath__") else label  # for messages
    # Only a trace recorded from Go carries Go's span kinds; elsewhere kind 0
    # means "not given", not "large scan object".
    meta = trace_metadata(trace)
    kinds_known = meta.get("source") in ("go-trace", "go1.14-runtime")
    timing = concrete_timing(timing, meta.get("source"))
    gomaxprocs = _gomaxprocs(meta, where)
    has_p = "p" in open_trace(trace).schema.names
    if not has_p and (gomaxprocs or 1) > 1:
        raise UserError(f"{where}: the metadata says gomaxprocs {gomaxprocs} but the trace has no p column, "
                        "so which P did what is unknown (add a p column, or drop gomaxprocs from the metadata)")
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
        gomaxprocs=gomaxprocs if has_p else 1,
    )
    t0 = time.perf_counter()
    row = 0
    try:
        for batch in iter_event_batches(trace, spans=not lenient):
            cols = [a.tolist() for a in batch]
            if not has_p:  # one P: every event on P 0 (it has a page cache)
                cols[5] = [0] * len(cols[0])
            engine.run_batch(*cols, first_row=row, label=where)
            row += len(cols[0])
            if progress is not None:
                progress(row)
        if row == 0:
            raise UserError(f"{where}: the trace has no events")
        result = engine.finish(label, time.perf_counter() - t0)
        for name, value in reference_fields(meta, result, where).items():  # go1.14-runtime traces
            setattr(result, name, value)
        if check:
            check_heap(engine.heap, engine.spans)
    except InvariantError as e:  # a bug in the model (also raised mid-replay: retained < 0)
        raise InvariantError(f"{where} ({mode}): {e}") from e
    return result


def concrete_timing(timing: str, source: str | None) -> str:
    """The timing a replay of a trace from ``source`` (its metadata's) runs for ``timing``:
    ``auto`` is ``ordered`` for a go1.14-runtime trace (its rows are in heap-lock order), else ``recorded``."""
    if timing != AUTO_TIMING:
        return timing
    return "ordered" if source == "go1.14-runtime" else "recorded"


def _first(pair):
    return pair[0]


def _gomaxprocs(meta: dict, where: str) -> int | None:
    """The metadata's gomaxprocs (None when absent); UserError when it is not a P count."""
    g = meta.get("gomaxprocs")
    if g is None:
        return None
    if isinstance(g, bool) or not isinstance(g, int) or not 1 <= g <= 1 << 16:
        raise UserError(f"{where}: metadata gomaxprocs must be a whole number in [1, 65536], got {g!r}")
    return g


def check_knob(name: str, value, low, high) -> None:
    """A model knob must be a number in [low, high]; UserError otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise UserError(f"{name} must be a number in [{low:g}, {high:g}], got {value!r}")


__all__ = ["AUTO_TIMING", "BASELINE_MODE", "MODES", "TIMINGS", "Replay", "ReplayResult", "concrete_timing", "replay"]
