"""The replay engine: the Ps and the background scavenger sharing one heap lock, in virtual time.

Not a Go file: the simulation around mheap.py and mgcscavenge.py.

Actors, in deterministic virtual nanoseconds:

* the Ps (``actor.Actor``), one per value of the trace's ``p`` column (P -1
  is the runtime, which has no P and so no page cache), each replaying its
  own events in trace order.  When an event starts is the timing's rule
  (``presets``); each event is one model operation (mheap.alloc_span,
  free_span, the GC pacing update, scavenge_all), executed atomically at
  its start time; its cost comes from the cost model, and if it takes the
  heap lock while another actor holds it, it waits: that wait is its
  P-stall.  A span's ops run in trace order across Ps (causality).
* the background scavenger (``scavenger.BackgroundScavenger``), a
  generator that yields at every heap-lock acquisition and release (and to
  sleep or park).  It runs only when its clock is the earliest pending
  time, so everything the Ps did before that instant is visible to it —
  which is how its unlocked, optimistic reads go stale in ``unlocked`` mode.

A schedule (a heap of (time, tie, row, version, actor)) always runs the
earliest pending step; ties go to the scavenger, then to the earliest row.
Lock waits are resolved on the lock's timeline (``heaplock``): an actor
asking for the lock at t gets it at max(t, the end of the last hold), and
each actor's critical section runs atomically when it is granted, so there
is one holder at a time whoever it is.  Nothing reads the wall clock.
"""

from __future__ import annotations

from heapq import heappop, heappush

from pagealloc.errors import UserError
from pagealloc.runtime.invariants import InvariantError
from pagealloc.runtime.lock_futex import MUTATOR, SCAVENGER
from pagealloc.runtime.malloc import ARENA_HINT_BASE, PAGE_SHIFT
from pagealloc.runtime.mheap import MAX_HEAP_SYS, MHeap, span_kind_args
from pagealloc.sim.actor import HOSTING, ORDER, Actor
from pagealloc.sim.costmodel import CostModel
from pagealloc.sim.goschedule import PSchedule
from pagealloc.sim.heaplock import LockTimeline
from pagealloc.sim.histogram import Histogram
from pagealloc.sim.presets import LOCKED_SITES, ReplayConfig
from pagealloc.sim.result import ReplayResult
from pagealloc.sim.scavenger import BackgroundScavenger
from pagealloc.trace.format import OP_ALLOC, OP_FREE, OP_FREE_OS_MEMORY, OP_GC, OP_GC_START

_INF = float("inf")
CLOSED_QUEUE_LIMIT = 4_000_000  # events queued at once under closed timing before giving up


class Replay:
    """One replay: the heap, every actor's clock, and the metrics being gathered (module docstring).

    Events are queued per P as batches are read; the schedule only runs steps
    before the horizon (the timestamp of the last event read), because an
    event not yet read cannot start before its timestamp."""

    def __init__(self, config: ReplayConfig | str, cost: CostModel, *, kinds_known: bool = False,
                 psched: PSchedule | None = None, **knobs):
        """``config``: how to replay (a str is shorthand for ReplayConfig(mode=config, **knobs)).
        ``kinds_known``: the trace's kind column is Go's (a recorded trace).  ``psched``: the Ps'
        schedule the background scavenger's timers follow (None: it wakes when it asked, on no P).
        The engine alone does not know where the trace came from: ``auto`` timing is ``recorded`` here."""
        if isinstance(config, str):
            if knobs.pop("closed_loop", False):
                knobs["timing"] = "closed"
            config = ReplayConfig(mode=config, **knobs)
        elif knobs:
            raise TypeError("Replay(config, ...) takes no knobs besides the config")
        config = config.with_timing_for(None).validated()
        self.config = config
        mode, timing = config.mode, config.timing
        self.mode = mode
        self.bg_locked, self.forced_locked = LOCKED_SITES[mode]
        self.cost = cost
        self.timing = timing
        self.closed_loop = timing == "closed"
        self.ordered = timing == "ordered"
        self.next_row = 0  # ordered timing: the row whose turn it is
        self.order_waiters: dict[int, tuple[Actor, int]] = {}  # row -> (its actor, when it asked to run)
        self.order_wait_ns = 0
        self.lenient = config.lenient
        self.kinds_known = kinds_known
        self.gomaxprocs = config.gomaxprocs  # None: as many as the trace's p column shows
        self.heap = heap = MHeap(cost, retain_extra_percent=config.retain_extra_percent,
                                 madvdontneed=config.madvdontneed, engine=config.engine)
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
        # mheap_.lock's holds in virtual time: one holder at a time; what a waiter pays to run again
        self.lock_line = LockTimeline(cost.lock_spin_ns, cost.futex_wake_ns, cost.futex_wake_busy_ns, cost.unlock_wake_ns)
        self.lock_line.sched = psched
        self.stalls = Histogram()
        self.holds = Histogram()
        self.latency = Histogram()
        self.psched = psched
        heap.tlb_probe = psched if psched is not None and cost.tlb_shootdown_ns else None
        self.scavenger = BackgroundScavenger(self, self.bg_locked, config.scavenge_percent)
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

    def schedule_scavenger(self, t: int, version: int) -> None:
        """The background scavenger's next step at t (tie 0: before a P's event at the same time)."""
        heappush(self.schedule, (t, 0, 0, version, None))

    def _lock_op(self, a: Actor, start: int, acquisitions: int) -> int:
        """Time the operation actor a just executed at ``start``; return when it ends.

        An operation that took the heap lock (``acquisitions`` changed) is
        timed as asking for it at ``start`` and holding it for all of its
        work but the part done after the release (page faults, cache hits);
        if another actor holds the lock then, it waits (a stall).  A wait
        longer than Go's spin (lock_spin_ns) gave up its CPU, and running
        again costs it LockTimeline.back_ns more (futex_wake_ns, or
        futex_wake_busy_ns with every CPU busy); the holder's unlock that
        woke it costs the holder unlock_wake_ns (``pay_unlock_wake``).
        """
        heap = self.heap
        after = heap.after_unlock_ns
        spent = heap.drain_meter()
        if heap.lock.acquisitions == acquisitions:
            return start + spent
        cost = self.cost
        lock_ns = cost.lock_ns
        line = self.lock_line
        busy = line.busy_until
        stalls = self.stalls
        if busy > start:
            wait = busy - start
            # Past the spin the waiter gave up its CPU and pays to run again (back_ns).  The
            # lock is not idle meanwhile (Go's lock has no handoff: a P spinning for it
            # takes it), so only the waiter pays: its section is timed from the release.
            stall = wait + line.back_ns(wait, a.pid, busy)
            self.pay_unlock_wake(line.holder, line.wakes_holder(wait))
            stalls.add(stall)
            a.stall_ns += stall
            a.delay += stall
        else:
            wait = stall = 0
            stalls.add(0)
        hold = spent - after + lock_ns
        self.holds.add(hold)
        line.hold(start + wait, start + wait + hold, a.pid)
        return start + stall + spent + lock_ns

    def _forced_steps(self, a: Actor):
        """FreeOSMemory dropping the lock per step (mode ``unlocked``): MHeap.scavenge_all_steps, each critical
        section timed at the time the previous one ended, so other actors interleave.  Yields each section's end."""
        lock = self.heap.lock
        steps = self.heap.scavenge_all_steps()
        while True:
            start = a.free_at
            acquisitions = lock.acquisitions
            self._op_at(a, start)
            try:
                next(steps)
            except StopIteration:
                return
            yield self._lock_op(a, start, acquisitions)

    def pay_unlock_wake(self, who, ns: int) -> None:
        """The last hold's holder ``who`` (a P's id or SCAVENGER) pays ``ns`` after its section: its unlock's
        futexwakeup for a waiter that slept behind it (LockTimeline.wakes_holder).  A P's next operation moves
        by ``ns`` (its ``free_at``; the held operation's latency, already counted, does not): that is the
        step after the hold, unless the event loop reached the waiter late (it waited for another actor's
        operation on its span, or for its turn in the trace's order) and the P had gone on, when the
        operation after its latest pays it.  The scavenger pays only between its hold and its next step
        (``BackgroundScavenger.pay_after_hold``)."""
        if ns == 0:
            return
        if who == SCAVENGER:
            self.scavenger.pay_after_hold(ns)
            return
        a = self.actors[who]
        a.free_at += ns
        if a.scheduled:
            self._schedule(a)

    def p_free(self, p: int, t: int) -> int:
        """When P p can run a goroutine made runnable on it at t: once it is done with its current operation."""
        a = self.actors.get(p)
        return t if a is None or a.free_at <= t else a.free_at

    def host_begin(self, p: int) -> None:
        """The background scavenger starts running on P p: the P's program waits until host_end
        (a goroutine needs a P; the scavenger is not a free extra CPU)."""
        a = self.actors.get(p)
        if a is None or a.blocked_on is not None or a.steps is not None:
            return
        a.blocked_on = HOSTING
        a.version += 1  # its pending schedule entry is void
        a.scheduled = False

    def host_end(self, p: int, end: int) -> None:
        """The background scavenger stopped running on P p at ``end``: the P runs its program again."""
        a = self.actors.get(p)
        if a is None or a.blocked_on is not HOSTING:
            return
        a.blocked_on = None
        if a.free_at < end:
            a.free_at = end
        if a.queue and not a.scheduled:
            self._schedule(a)

    def note_retained(self) -> None:
        r = self.heap.heap_retained()
        if r > self.retained_peak:
            self.retained_peak = r

    def run_batch(self, ts, op, span, npages, value, p, kind=None, *, first_row: int, label: str) -> None:
        """Queue one batch of events on their actors (lists, as from EventBatch columns'
        tolist()), then run the schedule up to this batch's last timestamp.

        ``kind`` (Go's span kind: span class << 1 | manual) is used when the engine was told the
        trace's kinds are real (``kinds_known``): a span under 16 pages for a large object (size
        class 0, not manual) takes the heap lock even when the page cache serves it, as in Go's
        allocSpan.  Otherwise every such span is taken to be a small-object span.
        """
        n = len(ts)
        if not n:
            return
        if kind is None or not self.kinds_known:
            kind = [0] * n if kind is None else kind
        now = self.now  # forget completions the clock has passed: they hold nothing back
        self.span_done = {sid: d for sid, d in self.span_done.items() if d[1] > now or sid in self.span_last}
        self._queue_batch(ts, op, span, npages, value, p, kind, first_row, label)
        if self.first_ts is None:
            self.first_ts = ts[0]
        self.last_ts = ts[-1]
        if self.timing == "closed":
            # A P whose queue is empty may get events starting at its free_at.
            self.horizon = min((x.free_at for x in self.actors.values() if not x.queue and x.pid >= 0), default=_INF)
            if self.pending > CLOSED_QUEUE_LIMIT:
                raise UserError(f"{label}: row {first_row + n - 1}: closed timing queued {self.pending:,} events waiting for "
                                "a P that has none in this part of the trace; replay it with --timing recorded or shifted")
        else:
            self.horizon = ts[-1]  # an event not read yet starts no earlier than its timestamp
        self._run(label)

    def _queue_batch(self, ts, op, span, npages, value, p, kind, first_row: int, label: str) -> None:
        """run_batch's loop (a method of its own so that the compiled copy can type it)."""
        n = len(ts)
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
                        if a.scheduled or a.blocked_on is not None:
                            continue  # the scavenger ran on this P meanwhile: the schedule has its event
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

    def drain(self, label: str) -> None:
        """Run every queued event now, as if the trace ended here (tests drive batches this way)."""
        horizon, done = self.horizon, self.trace_done
        self.horizon, self.trace_done = _INF, True
        try:
            self._run(label)
        finally:
            self.horizon, self.trace_done = horizon, done

    @property
    def m_time(self) -> int:  # when the last P is done with its last operation
        return max((a.free_at for a in self.actors.values()), default=0)

    @staticmethod
    def _due(entry, t: int, row: int) -> bool:  # whether a schedule entry runs before a P's event (row) at t
        return entry[0] < t or (entry[0] == t and (entry[1] == 0 or entry[2] < row))

    def _run(self, label: str, until: int | None = None, row: int = 0) -> None:
        """Run every scheduled step that starts before the horizon (with ``until``:
        every step due before a P's event at that time, the fast path's).

        After an actor's event, its next one runs at once, without a trip
        through the schedule, while it is still the earliest step (the
        common case: one P runs a stretch of events between the
        scavenger's steps).
        """
        schedule, scavenger = self.schedule, self.scavenger
        closed = self.timing == "closed"
        recorded = self.timing in ("recorded", "ordered")
        execute = self._execute
        due, until_row = self._due, row
        while schedule and schedule[0][0] < self.horizon and (until is None or due(schedule[0], until, until_row)):
            t, tie, _, version, a = heappop(schedule)
            self.now = t
            if a is None:
                if version == scavenger.version:
                    if not self.pending:  # the program has ended: finish() runs the rest to its end
                        heappush(schedule, (t, tie, 0, version, None))
                        return
                    scavenger.step()
                    self.heap.lock.running(MUTATOR)  # every other step is a P's
                    scavenger.schedule()
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

    def _op_at(self, a: Actor, start: int) -> None:
        """Tell the heap whose operation it runs next, and when it would hold the lock (for the TLB
        shootdowns of its releases: MHeap._tlb_peers_now)."""
        busy = self.lock_line.busy_until
        self.heap.op_ns, self.heap.tlb_p = (start if start >= busy else busy), a.pid

    def _continue_steps(self, a: Actor) -> None:
        self.heap.lock.running(MUTATOR)
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
                a.blocked_on = ORDER
                self.order_waiters[row] = (a, start)
                return
            self.next_row = row + 1
            if self.order_waiters:
                self._wake_next_in_order(row + 1, start)
        a.queue.popleft()
        self.pending -= 1
        self._op_at(a, start)
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
            if self.kinds_known:  # P -1: no P, so no page cache (Go: pp == nil)
                small_object, manual = span_kind_args(k)
                base = heap.alloc_span(n, a.pid, small_object, manual)
                if manual:  # Go's allocManual: stacks, GC work buffers
                    self.manual_spans.add(sid)
            else:
                base = heap.alloc_span(n, a.pid)
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
            end = start + heap.drain_meter()
        a.free_at = end
        if self.log is not None:
            self.log.append((a.pid, row, code, start, end))
        if code <= OP_FREE:
            if code == OP_ALLOC:
                self.latency.add(end - start)
            span_last = self.span_last
            self.span_done[sid] = (row, end)
            if span_last[sid] == row:  # the common case: no later op of this span queued yet
                del span_last[sid]
            else:
                self._span_done(sid, row, end)
            self.events += 1
            retained = heap.heap_retained()
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
        retained = heap.heap_retained()
        if retained > self.retained_peak:
            self.retained_peak = retained
        if code == OP_GC or code == OP_FREE_OS_MEMORY:  # sample the timelines
            self.timeline.append((a.free_at, retained))
            self.stall_timeline.append((a.free_at, self.stalls.total))
            if code == OP_GC:
                self.scavenger.wake(a.free_at, a.pid)

    def finish(self, label: str, wall: float, end_ns: int = 0) -> ReplayResult:
        """Run what is left; ``end_ns``: when the program exited, if the trace says (after its last row)."""
        self.horizon = _INF
        self.trace_done = True
        self._run(label)
        return finished_result(self, label, wall, end_ns)


def finished_result(engine, label: str, wall: float, end_ns: int = 0) -> ReplayResult:
    """The end of a replay, for both engines (this module's Replay and sim/_replay_core.pyx's, whose
    fields have the same names): once the event loop has run dry, check that nothing still waits,
    run the background scavenger to the program's end (the Ps' last step, or ``end_ns`` when the
    recording says the program ran on, idle, until then: burst-idle's last 200 ms), and build the
    result from the counters."""
    if engine.waiting:  # cannot happen for a valid trace: every wait is for an earlier row
        raise InvariantError(f"actors still wait for spans {sorted(engine.waiting)[:5]} at the end")
    if engine.order_waiters:
        raise InvariantError(f"rows {sorted(engine.order_waiters)[:5]} still wait for their turn at the end")
    mutators = engine.actors.values()
    makespan = max((a.free_at for a in mutators), default=0)
    scavenger = engine.scavenger
    end = max(makespan, end_ns)
    while scavenger.time <= end:  # the scavenger's steps until the program ends
        scavenger.step()
    heap = engine.heap
    engine.timeline.sort(key=_first)  # in time order (Ps finish out of order); stable
    engine.timeline.append((end, heap.heap_retained()))
    engine.stall_timeline.sort(key=_first)
    engine.stall_timeline.append((makespan, engine.stalls.total))
    by = heap.released_by
    recorded = (engine.last_ts - engine.first_ts) if engine.first_ts is not None else 0
    g = engine.gomaxprocs or (max((pid for pid in engine.actors if pid >= 0), default=-1) + 1)
    runtime = engine.actors.get(-1)
    config, stalls, cpu = engine.config, engine.stalls, scavenger.cpu_ns
    return ReplayResult(
        trace=label, mode=engine.mode, timing=engine.timing, events=engine.events,
        wall_seconds=wall, replay_events_per_wall_second=engine.events / wall if wall > 0 else 0.0,
        # the heap
        released_bytes=sum(by.values()), released_background_bytes=by["background"],
        released_background_count=heap.releases_by["background"],
        released_background_whole_huge_pages=heap.whole_huge_releases,
        released_growth_bytes=by["growth"], released_forced_bytes=by["forced"],
        retained_peak_bytes=engine.retained_peak, retained_final_bytes=heap.heap_retained(),
        heap_sys_bytes=heap.heap_sys, heap_growths=heap.growths, scavenged_alloc_bytes=heap.scav_alloc_bytes,
        madvise_calls=heap.madvise_calls, scavenger_fooled=heap.pages.stats_scav_fooled,
        address_agreement=engine.agree / engine.allocs if engine.allocs else 0.0,
        skipped_events=engine.skipped, gc_goal_derived=engine.goals_derived,
        # the knobs
        retain_extra_percent=config.retain_extra_percent, scavenge_percent=config.scavenge_percent,
        madvise_advice="MADV_DONTNEED" if config.madvdontneed else "MADV_FREE",
        # the heap lock and the Ps
        lock_acquisitions_mutator=heap.lock.by_actor[MUTATOR],
        lock_acquisitions_scavenger=heap.lock.by_actor[SCAVENGER],
        lock_hold_max_ns=engine.holds.max, lock_hold_p99_ns=engine.holds.quantile(0.99),
        gomaxprocs=g, p_stall_ns=stalls.total, p_stall_max_ns=stalls.max,
        p_stall_p99_ns=stalls.quantile(0.99),
        p_stall_by_p=[engine.actors[pid].stall_ns if pid in engine.actors else 0 for pid in range(g)],
        runtime_stall_ns=runtime.stall_ns if runtime is not None else 0, order_wait_ns=engine.order_wait_ns,
        alloc_latency_p99_ns=engine.latency.quantile(0.99), alloc_latency_max_ns=engine.latency.max,
        # time
        makespan_ns=makespan, recorded_duration_ns=recorded,
        throughput_events_per_vsec=engine.events * 1e9 / makespan if makespan else 0.0,
        slowdown=makespan / recorded if recorded else 0.0,
        scavenger_cpu_ns=cpu, scavenger_crit_p50_ns=scavenger.crits.quantile(0.5),
        scavenger_crit_p90_ns=scavenger.crits.quantile(0.9),
        scavenger_one_page_crit_mean_ns=scavenger.one_page_crit_ns // max(scavenger.one_page_crits, 1),
        scavenger_one_page_madvise_mean_ns=scavenger.one_page_madvise_ns // max(scavenger.one_page_crits, 1),
        scavenger_one_page_releases=scavenger.one_page_crits, scavenger_one_page_alone=scavenger.one_page_alone,
        scavenger_one_page_madvise_alone_mean_ns=scavenger.one_page_alone_madvise_ns // max(scavenger.one_page_alone, 1),
        scavenger_one_page_madvise_beside_mean_ns=(scavenger.one_page_madvise_ns - scavenger.one_page_alone_madvise_ns)
        // max(scavenger.one_page_crits - scavenger.one_page_alone, 1),
        scavenger_wakeups=scavenger.wakeups(end),
        released_bytes_per_scavenger_cpu_sec=by["background"] * 1e9 / cpu if cpu else 0.0,
        retained_timeline=engine.timeline, p_stall_timeline=engine.stall_timeline,
    )


def _first(pair):
    return pair[0]
