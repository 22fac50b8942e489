# cython: language_level=3, boundscheck=False, cdivision=False
"""The compiled replay engine's event loop: sim/engine.py ported to typed Cython.

Not a Go file: the simulation around mheap.py (Go's mheap.allocSpan /
freeSpan) and mgcscavenge.py (Go's bgscavenge), read side by side with
sim/engine.py, the readable reference, which it follows method by method and
line by line (same names, same order of every heap call and every schedule
push, so the figures are byte-identical: tests/sim/test_replay_engines_agree.py,
test_multi_p.py, ``replay-figures`` under both engines).

Design: what engine.py keeps per event in Python objects is here in C —

* each P's queue (``Actor.queue``, a deque of 8-tuples) is a ring buffer of
  ``Ev`` structs in the ``Actor``;
* the four span tables keyed by trace span id (``spans`` (base, npages),
  ``manual_spans``, ``span_last``, ``span_done`` (row, end)) are one open-
  addressing hash table of ``Span`` structs (``SpanTable``), pruned per batch
  exactly as engine.py prunes ``span_done``;
* the schedule (engine.py's heapq of (time, tie, row, version, actor)
  tuples) is a binary heap of ``Slot`` structs (``Schedule``) ordered by the
  same key; the background scavenger puts its entries on it through
  ``schedule_scavenger``, as on engine.py's;
* the counters, the clock, the horizon (``inf`` is LLONG_MAX) and the three
  lock prices ``_lock_op`` reads are C fields;
* ``run_batch`` reads the batch's numpy columns through typed memoryviews
  (``TAKES_ARRAYS``: replay() hands them over without tolist());
* the three histograms it fills per event (stalls, holds, alloc latency) get
  the bit length of a value from the CPU (``hist_add``, histogram.py's rule);
* an unlocked FreeOSMemory's steps (engine.py's _forced_steps generator over
  mheap.py's scavenge_all_steps) are a ``ForcedSteps`` state stepped by
  ``_forced_step``, each step one scavengeOne of the compiled core.

What stays Python, as rare or shared: the span waiters and ordered timing's
waiters, the per-event log of tests, and the heap itself: ``ReplayHeap``
(_replay_heap.pxi), the compiled copy of runtime/mheap.py, called in C through
its .pxd, with its page marks (touched, lazyfree) in C.  Lock contract: the engine's, unchanged (engine.py's docstring): each
event's model operation runs atomically at its start, its heap-lock hold is
placed on the ``LockTimeline``; the heap takes and drops ``mheap_.lock``
itself.
"""

from cpython.ref cimport PyObject
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memset
from libc.limits cimport LLONG_MAX

import numpy as np

from pagealloc.errors import UserError
from pagealloc.runtime.invariants import InvariantError
from pagealloc.runtime._lock_futex_compiled import MUTATOR, SCAVENGER
from pagealloc.runtime.malloc import ARENA_HINT_BASE as _ARENA_HINT_BASE, PAGE_SHIFT as _PAGE_SHIFT
from pagealloc.runtime.malloc import ARENA_BASE_OFFSET as _ARENA_BASE_OFFSET, PAGE_SIZE as _PAGE_SIZE
from pagealloc.runtime.mpagealloc_64bit import LOG_PALLOC_CHUNK_BYTES as _LOG_PALLOC_CHUNK_BYTES
from pagealloc.runtime.mpagealloc_64bit import PALLOC_CHUNK_PAGES as _PALLOC_CHUNK_PAGES
from pagealloc.runtime._mheap_compiled import MAX_HEAP_SYS
from pagealloc.runtime._mgcscavenge_compiled import SCAVENGE_ALL
from pagealloc.sim.actor import HOSTING, ORDER
from pagealloc.sim.presets import LOCKED_SITES, ReplayConfig
from pagealloc.sim.engine import finished_result
from pagealloc.sim._scavenger_compiled import BackgroundScavenger
from pagealloc.trace import format as _format

# The hash of the sources the compiled replay engine was built from (setup.py; see sim/engines.py).
SOURCES_HASH = REPLAY_SOURCES_HASH

from pagealloc.runtime._lock_futex_compiled cimport HeapLock
from pagealloc.runtime._mheap_compiled cimport PHYS_4K, MHeap, Prices, span_kind_args
from pagealloc.sim._heaplock_compiled cimport LockTimeline
from pagealloc.sim._histogram_compiled cimport Histogram

cdef long long OP_ALLOC = _format.OP_ALLOC
cdef long long OP_FREE = _format.OP_FREE
cdef long long OP_GC = _format.OP_GC
cdef long long OP_GC_START = _format.OP_GC_START
cdef long long OP_FREE_OS_MEMORY = _format.OP_FREE_OS_MEMORY
cdef long long ARENA_HINT_BASE = _ARENA_HINT_BASE
cdef long long PAGE_SHIFT = _PAGE_SHIFT

include "_replay_heap.pxi"

cdef long long INF = LLONG_MAX  # engine.py's float("inf") horizon
_INF = float("inf")
CLOSED_QUEUE_LIMIT = 4_000_000  # engine.py's

# timings, as C codes (engine.py compares the strings)
cdef enum:
    RECORDED, ORDERED, SHIFTED, CLOSED

cdef int timing_code(str timing) except -1:
    if timing == "recorded":
        return RECORDED
    if timing == "ordered":
        return ORDERED
    if timing == "shifted":
        return SHIFTED
    if timing == "closed":
        return CLOSED
    raise ValueError(f"unknown timing {timing!r}")


# -- the span table: engine.py's spans, manual_spans, span_last and span_done in one C hash table --

cdef struct Span:
    unsigned long long sid
    long long base, npages  # spans[sid] = (base, npages), while live
    long long last_row  # span_last[sid], while has_last
    long long done_row, done_end  # span_done[sid] = (row, end), while has_done
    unsigned char used, live, manual, has_last, has_done


cdef class SpanTable:
    """Open addressing with linear probing, keyed by span id; an entry lives while any of its four parts
    does.  Entries are never deleted one by one (that would break the probe chains): one with nothing
    left is dropped when the table, half full, is rehashed (``_compact``)."""
    cdef Span *slots
    cdef Py_ssize_t cap, n  # cap a power of two; n entries used

    def __cinit__(self):
        self.cap = 1024
        self.n = 0
        self.slots = <Span *> calloc(self.cap, sizeof(Span))
        if self.slots is NULL:
            raise MemoryError()

    def __dealloc__(self):
        free(self.slots)

    cdef inline Py_ssize_t _home(self, unsigned long long sid) nogil:
        # The ids are small and dense (sequential, or page indices): near ids go to near slots, so the
        # spans an event touches, allocated about when it was, share cache lines (a mixing hash sent
        # every probe to a cold line).  Higher bits are folded in so that ids with many low zero bits
        # (addresses) still spread; the slot only decides speed, never what the table holds.
        sid ^= (sid >> 13) ^ (sid >> 29) ^ (sid >> 45)
        return <Py_ssize_t> (sid & <unsigned long long> (self.cap - 1))

    cdef Span *find(self, unsigned long long sid):
        """The entry of sid, or NULL."""
        cdef Py_ssize_t i = self._home(sid)
        cdef Span *s
        while True:
            s = &self.slots[i]
            if not s.used:
                return NULL
            if s.sid == sid:
                return s
            i = (i + 1) & (self.cap - 1)

    cdef Span *get(self, unsigned long long sid) except NULL:
        """The entry of sid, made (empty) if it has none.  May move every entry (pointers go stale)."""
        cdef Py_ssize_t i
        cdef Span *s
        if (self.n + 1) * 2 > self.cap:
            self._compact()
        i = self._home(sid)
        while True:
            s = &self.slots[i]
            if not s.used:
                memset(s, 0, sizeof(Span))
                s.used = 1
                s.sid = sid
                self.n += 1
                return s
            if s.sid == sid:
                return s
            i = (i + 1) & (self.cap - 1)

    cdef int _resize(self, Py_ssize_t cap) except -1:
        """Rehash into cap slots, dropping entries with nothing left in them."""
        cdef Span *old = self.slots
        cdef Py_ssize_t oldcap = self.cap, j, i
        cdef Span *s
        self.slots = <Span *> calloc(cap, sizeof(Span))
        if self.slots is NULL:
            self.slots = old
            raise MemoryError()
        self.cap = cap
        self.n = 0
        for j in range(oldcap):
            if old[j].used and (old[j].live or old[j].has_last or old[j].has_done):
                i = self._home(old[j].sid)
                while self.slots[i].used:
                    i = (i + 1) & (cap - 1)
                self.slots[i] = old[j]
                self.n += 1
        free(old)
        return 0

    cdef int _compact(self) except -1:
        """Rehash into the smallest table (at least 1024 slots) at most a quarter full of the entries
        that still hold something: the table grows with the spans alive, not with the trace."""
        cdef Py_ssize_t j, live = 0, cap = 1024
        for j in range(self.cap):
            if self.slots[j].used and (self.slots[j].live or self.slots[j].has_last or self.slots[j].has_done):
                live += 1
        while (live + 1) * 4 > cap:
            cap *= 2
        return self._resize(cap)

    cdef void prune(self, long long now):
        """engine.py's run_batch: forget completions the clock has passed (span_done entries
        ending at or before ``now`` of spans with no op queued).  Emptied entries go at the next rehash."""
        cdef Py_ssize_t j
        cdef Span *s
        for j in range(self.cap):
            s = &self.slots[j]
            if s.used and s.has_done and not (s.done_end > now or s.has_last):
                s.has_done = 0


cdef class ForcedSteps:
    """Where an unlocked FreeOSMemory is (an Actor's ``steps``; engine.py's: the _forced_steps generator):
    its scavenge-address reset made, its last scavenge_one released nothing (Replay._forced_step)."""
    cdef bint reset, done


cdef struct Ev:  # engine.py's queue tuple (row, ts, op, span, npages, value, kind, prev)
    long long row, ts, code
    unsigned long long sid
    long long npages
    unsigned long long value  # the column is uint64
    long long kind, prev


cdef class Actor:
    """A P replaying its own events in order, or the runtime actor (P -1): sim/actor.py's Actor, its
    queue a ring buffer of Ev structs (``queue_len``, ``head()``, ``push``, ``pop``)."""
    cdef public long long pid, free_at, delay, stall_ns, version
    cdef public object steps, blocked_on
    cdef public bint scheduled
    cdef Ev *q
    cdef Py_ssize_t qhead, qlen, qcap

    def __cinit__(self, long long pid):
        self.pid = pid
        self.qcap = 16
        self.q = <Ev *> malloc(self.qcap * sizeof(Ev))
        if self.q is NULL:
            raise MemoryError()
        self.steps = None
        self.blocked_on = None

    def __dealloc__(self):
        free(self.q)

    def __lt__(self, Actor other):
        """The schedule's last tie-break (actor.py): the lower P first."""
        return self.pid < other.pid

    @property
    def queue(self):
        """The queued events as engine.py's tuples (for inspection)."""
        cdef Py_ssize_t k
        cdef Ev *e
        out = []
        for k in range(self.qlen):
            e = &self.q[(self.qhead + k) % self.qcap]
            out.append((e.row, e.ts, e.code, e.sid, e.npages, e.value, e.kind, e.prev))
        return out

    cdef inline Ev *head(self):
        return &self.q[self.qhead]

    cdef int push(self, Ev *e) except -1:
        cdef Ev *bigger
        cdef Py_ssize_t k
        if self.qlen == self.qcap:
            bigger = <Ev *> malloc(2 * self.qcap * sizeof(Ev))
            if bigger is NULL:
                raise MemoryError()
            for k in range(self.qlen):
                bigger[k] = self.q[(self.qhead + k) % self.qcap]
            free(self.q)
            self.q, self.qhead, self.qcap = bigger, 0, 2 * self.qcap
        self.q[(self.qhead + self.qlen) % self.qcap] = e[0]
        self.qlen += 1
        return 0

    cdef inline void pop(self):
        self.qhead = (self.qhead + 1) % self.qcap
        self.qlen -= 1


# -- the schedule: engine.py's heapq of (time, tie, row, version, actor) tuples as a C binary heap --

cdef struct Slot:
    long long t, tie, row, version  # engine.py's tuple, in its order: the heap's key
    long long pid  # the tuple's last element compares as Actor.__lt__ does: the lower P first
    PyObject *actor  # borrowed (Replay.actors keeps every Actor alive); NULL: the background scavenger


cdef inline bint slot_lt(Slot *a, Slot *b) noexcept nogil:
    """engine.py's tuple order.  Two entries never tie on all five: each push takes a new version."""
    if a.t != b.t:
        return a.t < b.t
    if a.tie != b.tie:
        return a.tie < b.tie
    if a.row != b.row:
        return a.row < b.row
    if a.version != b.version:
        return a.version < b.version
    return a.pid < b.pid


cdef class Schedule:
    """A binary min-heap of Slots (heapq's algorithm on C structs: the same pops in the same order,
    since no two entries are equal)."""
    cdef Slot *h
    cdef Py_ssize_t n, cap

    def __cinit__(self):
        self.cap = 64
        self.n = 0
        self.h = <Slot *> malloc(self.cap * sizeof(Slot))
        if self.h is NULL:
            raise MemoryError()

    def __dealloc__(self):
        free(self.h)

    def __len__(self):
        return self.n

    cdef int push(self, long long t, long long tie, long long row, long long version, Actor a) except -1:
        """heappush(schedule, (t, tie, row, version, a)); a None: the background scavenger's entry."""
        cdef Slot *bigger
        cdef Py_ssize_t i, parent
        if self.n == self.cap:
            bigger = <Slot *> realloc(self.h, 2 * self.cap * sizeof(Slot))
            if bigger is NULL:
                raise MemoryError()
            self.h, self.cap = bigger, 2 * self.cap
        cdef Slot x
        x.t, x.tie, x.row, x.version = t, tie, row, version
        if a is None:
            x.pid, x.actor = 0, NULL
        else:
            x.pid, x.actor = a.pid, <PyObject *> a
        i = self.n
        self.n += 1
        while i > 0:  # sift up
            parent = (i - 1) >> 1
            if not slot_lt(&x, &self.h[parent]):
                break
            self.h[i] = self.h[parent]
            i = parent
        self.h[i] = x
        return 0

    cdef inline Slot *top(self) noexcept:
        """schedule[0]; only when n > 0."""
        return &self.h[0]

    cdef Slot pop(self) noexcept:
        """heappop(schedule); only when n > 0."""
        cdef Slot out = self.h[0], x
        cdef Py_ssize_t i = 0, child
        self.n -= 1
        if self.n:
            x = self.h[self.n]
            while True:  # sift down
                child = 2 * i + 1
                if child >= self.n:
                    break
                if child + 1 < self.n and slot_lt(&self.h[child + 1], &self.h[child]):
                    child += 1
                if not slot_lt(&self.h[child], &x):
                    break
                self.h[i] = self.h[child]
                i = child
            self.h[i] = x
        return out

    def entries(self):
        """The entries as engine.py's tuples, in heap order (for inspection)."""
        cdef Py_ssize_t k
        return [(self.h[k].t, self.h[k].tie, self.h[k].row, self.h[k].version,
                 None if self.h[k].actor is NULL else <object> self.h[k].actor) for k in range(self.n)]


cdef extern from *:
    int __builtin_clzll(unsigned long long) nogil


cdef inline int hist_add(Histogram h, long long v) except -1:
    """Histogram.add (sim/histogram.py, whose bucket rule this is) with the bit length taken in C:
    the three histograms the engine fills once or twice per event.  Negative values (never timed)
    go through Histogram.add itself."""
    cdef long long shift
    cdef Py_ssize_t b
    if v < 0:
        h.add(v)
        return 0
    if v < 64:  # histogram.py's _SUB: exact below it
        b = v
    else:
        shift = (64 - __builtin_clzll(<unsigned long long> v)) - 1 - 6  # v.bit_length() - 1 - _SUB_BITS
        b = ((shift + 1) << 6) + (v >> shift) - 64
    h.counts[b] += 1
    h.n += 1
    h.total += v
    if v > h.max:
        h.max = v
    return 0


cdef inline bint _due(Slot *entry, long long t, long long row) noexcept:
    """Whether a schedule entry runs before a P's event (row) at t (engine.py's Replay._due)."""
    return entry.t < t or (entry.t == t and (entry.tie == 0 or entry.row < row))


cdef class Replay:
    """One replay: sim/engine.py's Replay (its docstring), compiled.  Same constructor, run_batch, drain,
    finish, m_time and the attributes tests read (heap, spans, skipped, lenient, log, ...)."""
    cdef public object config, mode, bg_locked, forced_locked, cost, timing
    cdef public bint closed_loop, ordered, lenient, kinds_known, trace_done
    cdef public long long next_row, order_wait_ns
    cdef public dict order_waiters, waiting, actors
    cdef public object gomaxprocs, log, psched, scavenger, first_ts
    cdef public MHeap heap
    cdef Schedule sched
    cdef public list timeline, stall_timeline
    cdef long long _horizon
    cdef public long long now, pending
    cdef public LockTimeline lock_line
    cdef public Histogram stalls, holds, latency
    cdef public long long events, skipped, agree, allocs, retained_peak, goals_derived, last_ts
    cdef SpanTable table
    cdef int tcode
    cdef long long lock_ns

    def __init__(self, config, cost, *, kinds_known=False, psched=None, **knobs):
        """engine.py's Replay.__init__."""
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
        self.lock_ns = cost.lock_ns
        self.timing = timing
        self.tcode = timing_code(timing)
        self.closed_loop = timing == "closed"
        self.ordered = timing == "ordered"
        self.next_row = 0
        self.order_waiters = {}
        self.order_wait_ns = 0
        self.lenient = config.lenient
        self.kinds_known = kinds_known
        self.gomaxprocs = config.gomaxprocs
        self.heap = ReplayHeap(cost, retain_extra_percent=config.retain_extra_percent,
                          madvdontneed=config.madvdontneed, engine=config.engine)
        self.table = SpanTable()
        self.waiting = {}
        self.actors = {}
        self.sched = Schedule()
        self._horizon = 0
        self.now = 0
        self.pending = 0
        self.trace_done = False
        self.log = None
        self.lock_line = LockTimeline(cost.lock_spin_ns, cost.futex_wake_ns, cost.futex_wake_busy_ns, cost.unlock_wake_ns)
        self.lock_line.sched = psched
        self.stalls = Histogram()
        self.holds = Histogram()
        self.latency = Histogram()
        self.psched = psched
        self.heap.tlb_probe = psched if psched is not None and cost.tlb_shootdown_ns else None
        self.scavenger = BackgroundScavenger(self, self.bg_locked, config.scavenge_percent)
        self.events = 0
        self.skipped = 0
        self.agree = 0
        self.allocs = 0
        self.retained_peak = 0
        self.goals_derived = 0
        self.first_ts = None
        self.last_ts = 0
        self.timeline = []
        self.stall_timeline = []

    # -- engine.py's dicts, as views of the span table (tests, --check) --

    @property
    def horizon(self):
        return _INF if self._horizon == INF else self._horizon

    @horizon.setter
    def horizon(self, value):
        self._horizon = INF if value == _INF else value

    @property
    def spans(self):
        """trace span id -> (base, npages) of the live spans (engine.py's spans)."""
        cdef Py_ssize_t j
        cdef Span *s
        out = {}
        for j in range(self.table.cap):
            s = &self.table.slots[j]
            if s.used and s.live:
                out[s.sid] = (s.base, s.npages)
        return out

    @property
    def manual_spans(self):
        cdef Py_ssize_t j
        cdef Span *s
        return {self.table.slots[j].sid for j in range(self.table.cap)
                if self.table.slots[j].used and self.table.slots[j].live and self.table.slots[j].manual}

    # -- the Ps --

    cdef Actor _actor(self, long long pid, long long row, label):
        g = self.gomaxprocs
        if g is not None and pid >= g:
            raise UserError(f"{label}: row {row}: p {pid} is not below the trace's gomaxprocs {g}")
        cdef Actor a = Actor(pid)
        self.actors[pid] = a
        if self.tcode == CLOSED:
            a.free_at = self.now
        return a

    cdef inline long long _start_of(self, Actor a):
        """When actor a's next event starts, by the timing policy."""
        cdef long long ts = a.head().ts
        if self.tcode == RECORDED or self.tcode == ORDERED:
            return ts if ts > a.free_at else a.free_at
        if self.tcode == SHIFTED:
            ts += a.delay
            return ts if ts > a.free_at else a.free_at
        return a.free_at

    cdef int _schedule(self, Actor a) except -1:
        a.version += 1
        a.scheduled = True
        cdef long long row = a.head().row if a.steps is None else -1
        cdef long long t = a.free_at if a.steps is not None else self._start_of(a)
        self.sched.push(t, 1, row, a.version, a)
        return 0

    @property
    def schedule(self):
        """The schedule as engine.py's list of tuples (for inspection)."""
        return self.sched.entries()

    def schedule_scavenger(self, long long t, long long version):
        """engine.py's schedule_scavenger: the background scavenger's next step at t (tie 0: before a
        P's event at the same time)."""
        self.sched.push(t, 0, 0, version, None)

    cdef long long _lock_op(self, Actor a, long long start, long long acquisitions) except? -1:
        """engine.py's _lock_op: time the operation actor a just executed at ``start``; return when it ends."""
        cdef MHeap heap = self.heap
        cdef long long after = heap.after_unlock_ns
        cdef long long spent = heap.drain_meter()
        if heap.lock.acquisitions == acquisitions:
            return start + spent
        cdef long long busy = self.lock_line.busy_until, wait, stall, hold
        if busy > start:
            wait = busy - start
            stall = wait + self.lock_line.back_ns(wait, a.pid, busy)
            self.pay_unlock_wake(self.lock_line.holder, self.lock_line.wakes_holder(wait))
            hist_add(self.stalls, stall)
            a.stall_ns += stall
            a.delay += stall
        else:
            wait = stall = 0
            hist_add(self.stalls, 0)
        hold = spent - after + self.lock_ns
        hist_add(self.holds, hold)
        self.lock_line.hold(start + wait, start + wait + hold, a.pid)
        return start + stall + spent + self.lock_ns

    cdef int _op_at(self, Actor a, long long start) except -1:
        """engine.py's _op_at: whose operation the heap runs next, and when it would hold the lock."""
        cdef long long busy = self.lock_line.busy_until
        self.heap.op_ns = start if start >= busy else busy
        self.heap.tlb_p = a.pid
        return 0

    cdef bint _forced_step(self, Actor a, ForcedSteps steps) except -1:
        """engine.py's _forced_steps, FreeOSMemory dropping the lock per step (mode ``unlocked``), over
        MHeap.scavenge_all_steps (mheap.py): the two generators unrolled, one resumption of both per call.
        Runs the next critical section and times it (a.free_at: when it ends); False where the generators
        end (the section after the scavenge_one that released nothing)."""
        cdef MHeap heap = self.heap
        cdef HeapLock lock = heap.lock
        cdef long long start = a.free_at, acquisitions = lock.acquisitions
        if steps.done:  # scavenge_all_steps: ``if released == 0: return total``
            return False
        self._op_at(a, start)
        heap.forced = True
        try:
            if not steps.reset:  # the scavenge-address reset under the lock
                lock.lock()
                try:
                    heap.pages.reset_scavenge_addr()
                finally:
                    lock.unlock()
                steps.reset = True
            else:  # each scavenge_one(^0, false), which takes and drops the lock itself
                steps.done = heap.pages.scavenge_one(SCAVENGE_ALL, False) == 0
        finally:
            heap.forced = False
        a.free_at = self._lock_op(a, start, acquisitions)
        return True

    def p_free(self, p, t):
        """When P p can run a goroutine made runnable on it at t: once it is done with its current operation."""
        cdef Actor a = self.actors.get(p)
        return t if a is None or a.free_at <= t else a.free_at

    def host_begin(self, p):
        """The background scavenger starts running on P p (engine.py's host_begin)."""
        cdef Actor a = self.actors.get(p)
        if a is None or a.blocked_on is not None or a.steps is not None:
            return
        a.blocked_on = HOSTING
        a.version += 1
        a.scheduled = False

    def host_end(self, p, long long end):
        """The background scavenger stopped running on P p at ``end`` (engine.py's host_end)."""
        cdef Actor a = self.actors.get(p)
        if a is None or a.blocked_on is not HOSTING:
            return
        a.blocked_on = None
        if a.free_at < end:
            a.free_at = end
        if a.qlen and not a.scheduled:
            self._schedule(a)

    def pay_unlock_wake(self, who, long long ns):
        """engine.py's pay_unlock_wake: the last hold's holder pays its unlock's futexwakeup after its section."""
        cdef Actor a
        if ns == 0:
            return
        if who == SCAVENGER:
            self.scavenger.pay_after_hold(ns)
            return
        a = self.actors[who]
        a.free_at += ns
        if a.scheduled:
            self._schedule(a)

    def note_retained(self):
        cdef long long r = self.heap.heap_retained()
        if r > self.retained_peak:
            self.retained_peak = r

    # replay() hands run_batch the batch's numpy columns as they are (EventBatch's dtypes), not tolist()'s
    TAKES_ARRAYS = True

    def run_batch(self, ts, op, span, npages, value, p, kind=None, *, first_row, label):
        """engine.py's run_batch: queue one batch of events on their actors, then run the schedule
        up to this batch's last timestamp.  The columns are numpy arrays of EventBatch's dtypes
        (trace/format.py), or anything numpy turns into them (engine.py's lists)."""
        n = len(ts)
        if not n:
            return
        ts = np.asarray(ts, dtype=np.int64)
        kind = np.zeros(n, np.uint16) if kind is None else np.asarray(kind, dtype=np.uint16)
        self.table.prune(self.now)  # engine.py's span_done pruning: forget completions the clock has passed
        self._queue_batch(ts, np.asarray(op, dtype=np.uint8), np.asarray(span, dtype=np.uint64),
                          np.asarray(npages, dtype=np.uint32), np.asarray(value, dtype=np.uint64),
                          np.asarray(p, dtype=np.int32), kind, first_row, label)
        if self.first_ts is None:
            self.first_ts = int(ts[0])
        self.last_ts = ts[n - 1]
        cdef Actor x
        cdef long long h
        if self.tcode == CLOSED:
            h = INF
            for x in self.actors.values():
                if not x.qlen and x.pid >= 0 and x.free_at < h:
                    h = x.free_at
            self._horizon = h
            if self.pending > CLOSED_QUEUE_LIMIT:
                raise UserError(f"{label}: row {first_row + n - 1}: closed timing queued {self.pending:,} events waiting for "
                                "a P that has none in this part of the trace; replay it with --timing recorded or shifted")
        else:
            self._horizon = ts[n - 1]
        self._run(label, False, 0, 0)

    cdef int _queue_batch(self, const long long[:] ts, const unsigned char[:] op, const unsigned long long[:] span,
                          const unsigned int[:] npages, const unsigned long long[:] value, const int[:] p,
                          const unsigned short[:] kind, long long first_row, label) except -1:
        """run_batch's loop (engine.py's _queue_batch)."""
        cdef Py_ssize_t n = ts.shape[0], i
        cdef dict actors = self.actors
        cdef Schedule schedule = self.sched
        cdef bint closed = self.tcode == CLOSED, shifted = self.tcode == SHIFTED
        cdef Actor a
        cdef Ev e
        cdef Span *s
        cdef long long pid, t, nxt
        for i in range(n):
            pid = p[i]
            a = actors.get(pid)
            if a is None:
                a = self._actor(pid, first_row + i, label)
            e.code = op[i]
            e.row = first_row + i
            e.ts = ts[i]
            e.sid = span[i]
            e.npages = npages[i]
            e.value = value[i]
            e.kind = kind[i]
            e.prev = -1
            if e.code <= OP_FREE:  # a span op: its span's ops must run in trace order
                s = self.table.get(e.sid)
                if s.has_last:
                    e.prev = s.last_row
                s.last_row = e.row
                s.has_last = 1
            if closed and pid < 0 and not a.qlen and a.free_at < self.now:
                a.free_at = self.now
            a.push(&e)
            self.pending += 1
            if not closed and i + 1 < n and not a.scheduled and a.blocked_on is None and a.steps is None \
                    and a.qlen == 1:
                # The fast path (engine.py's): an idle P whose event starts no later than the next row's
                # timestamp runs it now, once whatever is due before it has run.
                t = e.ts + a.delay if shifted else e.ts
                if t < a.free_at:
                    t = a.free_at
                nxt = ts[i + 1]
                if t <= nxt:
                    if self._horizon <= t:
                        self._horizon = t + 1
                    if schedule.n and _due(schedule.top(), t, e.row):
                        self._run(label, True, t, e.row)
                        if a.scheduled or a.blocked_on is not None:
                            continue
                    self.now = t
                    self._execute(a, t, label)
                    if a.qlen and a.blocked_on is None and not a.scheduled:
                        self._schedule(a)
                    continue
            if not a.scheduled and a.blocked_on is None:
                if a.steps is None and not closed:
                    t = e.ts + a.delay if shifted else e.ts
                    a.version += 1
                    a.scheduled = True
                    schedule.push(t if t > a.free_at else a.free_at, 1, e.row, a.version, a)
                else:
                    self._schedule(a)
        return 0

    def drain(self, label):
        """Run every queued event now, as if the trace ended here (tests drive batches this way)."""
        horizon, done = self._horizon, self.trace_done
        self._horizon, self.trace_done = INF, True
        try:
            self._run(label, False, 0, 0)
        finally:
            self._horizon, self.trace_done = horizon, done

    @property
    def m_time(self):
        return max((a.free_at for a in self.actors.values()), default=0)

    cdef int _run(self, label, bint has_until, long long until, long long until_row) except -1:
        """engine.py's _run: every scheduled step that starts before the horizon (with ``until``:
        every step due before a P's event at that time, the fast path's)."""
        cdef Schedule schedule = self.sched
        scavenger = self.scavenger
        cdef bint closed = self.tcode == CLOSED
        cdef bint recorded = self.tcode == RECORDED or self.tcode == ORDERED
        cdef Actor a
        cdef Slot entry
        cdef long long t, ts, row, version
        cdef Ev *h
        while schedule.n and schedule.top().t < self._horizon and \
                (not has_until or _due(schedule.top(), until, until_row)):
            entry = schedule.pop()
            t = entry.t
            version = entry.version
            self.now = t
            if entry.actor is NULL:
                if version == scavenger.version:
                    if not self.pending:  # the program has ended: finish() runs the rest to its end
                        schedule.push(entry.t, entry.tie, 0, version, None)
                        return 0
                    scavenger.step()
                    self.heap.lock.running(MUTATOR)
                    scavenger.schedule()
                continue
            a = <Actor> entry.actor
            if version != a.version:
                continue
            a.scheduled = False
            if a.steps is not None:
                self._continue_steps(a)
            else:
                self._execute(a, t, label)
                while a.qlen and a.blocked_on is None and not a.scheduled and a.steps is None:
                    h = a.head()
                    ts, row = h.ts, h.row
                    if recorded:
                        t = ts if ts > a.free_at else a.free_at
                    else:
                        t = self._start_of(a)
                    if t >= self._horizon or (schedule.n and _due(schedule.top(), t, row)) or \
                            (has_until and not (t < until or (t == until and row < until_row))):
                        break
                    self.now = t
                    self._execute(a, t, label)
            if a.qlen and a.blocked_on is None and not a.scheduled:
                self._schedule(a)
            if closed and not a.qlen and a.pid >= 0 and not self.trace_done:
                if a.free_at < self._horizon:
                    self._horizon = a.free_at
        return 0

    cdef int _continue_steps(self, Actor a) except -1:
        self.heap.lock.running(MUTATOR)
        if self._forced_step(a, <ForcedSteps> a.steps):
            self._schedule(a)
        else:
            a.steps = None
            self.pending -= 1
            self._after_event(a, OP_FREE_OS_MEMORY)
        return 0

    cdef int _execute(self, Actor a, long long start, label) except -1:
        """engine.py's _execute: run actor a's next event at ``start``, unless its span must wait for another actor."""
        cdef Ev e = a.head()[0]
        cdef long long row = e.row, code = e.code, prev = e.prev, n = e.npages, acquisitions, end, retained
        cdef unsigned long long sid = e.sid
        cdef MHeap heap = self.heap
        cdef HeapLock lock
        cdef Span *s = NULL  # stays valid: only _queue_batch's get() moves entries, and it does not run in here
        cdef bint manual, small_object
        cdef long long base
        if code <= OP_FREE:  # the span's previous op may run on another actor, or complete later
            s = self.table.find(sid)  # there is one: queueing the op made it
            if s is NULL:
                raise InvariantError(f"{label}: row {row}: span {sid} has no entry in the span table")
            if prev >= 0 and (not s.has_done or s.done_row != prev):  # not yet run
                a.blocked_on = sid
                self.waiting.setdefault(sid, []).append(a)
                return 0
            if s.has_done and start < s.done_end:  # it ran, but completes later: start then
                a.free_at = s.done_end
                self._schedule(a)
                return 0
        if self.ordered:
            if row != self.next_row:
                a.blocked_on = ORDER
                self.order_waiters[row] = (a, start)
                return 0
            self.next_row = row + 1
            if self.order_waiters:
                self._wake_next_in_order(row + 1, start)
        a.pop()
        self.pending -= 1
        self._op_at(a, start)
        lock = heap.lock
        acquisitions = lock.acquisitions
        if code == OP_ALLOC:
            if s.live:
                self._span_done(sid, row, start)
                if self.lenient:
                    self.skipped += 1
                    return 0
                raise UserError(f"{label}: row {row}: alloc of span {sid}, which is already live")
            if self.kinds_known:  # P -1: no P, so no page cache (Go: pp == nil)
                small_object, manual = span_kind_args(e.kind)
                base = heap.alloc_span(n, a.pid, small_object, manual)
            else:
                manual = False
                base = heap.alloc_span(n, a.pid)
            if base == 0:
                raise UserError(
                    f"{label}: row {row}: allocating span {sid} of {n} pages would grow the heap "
                    f"past {MAX_HEAP_SYS >> 40} TiB, the most the replay models"
                )
            s.live, s.base, s.npages, s.manual = 1, base, n, manual
            self.allocs += 1
            if base >= ARENA_HINT_BASE and <unsigned long long> ((base - ARENA_HINT_BASE) >> PAGE_SHIFT) == sid:
                self.agree += 1
        elif code == OP_FREE:
            if not s.live or s.npages != n:
                if s.live:  # not skippable, even with --lenient
                    raise UserError(f"{label}: row {row}: free of span {sid} with npages "
                                    f"{n}, but it was allocated with npages {s.npages}")
                self._span_done(sid, row, start)
                if self.lenient:
                    self.skipped += 1
                    return 0
                raise UserError(f"{label}: row {row}: free of unknown span {sid}")
            s.live = 0
            if s.manual:
                s.manual = 0
                heap.free_span(s.base, n, a.pid, True)
            else:
                heap.free_span(s.base, n, a.pid)
        elif code == OP_GC:  # world stopped: no heap lock (Go: gcMarkTermination)
            if heap.gc_done(e.value):
                self.goals_derived += 1
        elif code == OP_GC_START:  # world stopped: no heap lock (Go: gcStart); value: heap_live if known
            heap.gc_start(e.value)
        elif code == OP_FREE_OS_MEMORY:
            if self.forced_locked:  # Go 1.14's scavengeAll: one critical section
                heap.scavenge_all(locked=True)
            else:
                a.free_at = start
                if self.log is not None:
                    self.log.append((a.pid, row, code, start, start))
                a.steps = ForcedSteps()
                self.pending += 1
                self._continue_steps(a)
                return 0
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
                hist_add(self.latency, end - start)
            s.has_done, s.done_row, s.done_end = 1, row, end
            if s.last_row == row:  # the common case: no later op of this span queued yet
                s.has_last = 0
            else:
                self._span_done(sid, row, end)
            self.events += 1
            retained = heap.heap_retained()
            if retained > self.retained_peak:
                self.retained_peak = retained
        else:
            self._after_event(a, code)
        return 0

    cdef int _wake_next_in_order(self, long long row, long long now) except -1:
        """Ordered timing: the row before ``row`` runs at ``now``, so ``row``'s actor may run, no earlier."""
        got = self.order_waiters.pop(row, None)
        if got is None:
            return 0
        cdef Actor w = got[0]
        cdef long long asked = got[1]
        w.blocked_on = None
        if now > asked:
            self.order_wait_ns += now - asked
        if w.free_at < now:
            w.free_at = now
        self._schedule(w)
        return 0

    cdef int _span_done(self, unsigned long long sid, long long row, long long end) except -1:
        """engine.py's _span_done: the op of span sid at ``row`` completed at ``end``: wake whoever
        waits for the next one, no earlier than that (causality)."""
        cdef Span *s = self.table.find(sid)
        cdef Actor w
        s.has_done, s.done_row, s.done_end = 1, row, end
        if s.last_row == row:  # no op of the span queued after it
            s.has_last = 0
            return 0
        waiters = self.waiting.pop(sid, None)
        if waiters:
            for w in waiters:
                w.blocked_on = None
                if w.free_at < end:
                    w.free_at = end
                if not w.scheduled:
                    self._schedule(w)
        return 0

    cdef int _after_event(self, Actor a, long long code) except -1:
        self.events += 1
        cdef long long retained = self.heap.heap_retained()
        if retained > self.retained_peak:
            self.retained_peak = retained
        if code == OP_GC or code == OP_FREE_OS_MEMORY:  # sample the timelines
            self.timeline.append((a.free_at, retained))
            self.stall_timeline.append((a.free_at, self.stalls.total))
            if code == OP_GC:
                self.scavenger.wake(a.free_at, a.pid)
        return 0

    def finish(self, label, wall, end_ns=0):
        """engine.py's finish: run the rest, then the shared end (the scavenger to the program's end, and
        the result, ``engine.finished_result``)."""
        self._horizon = INF
        self.trace_done = True
        self._run(label, False, 0, 0)
        return finished_result(self, label, wall, end_ns)
