# Types for the compiled copy of engine.py (runtime/replay_sources.py): Replay as a cdef class whose
# per-event methods are called in C, on the typed heap, lock, histograms and actors.
cimport cython
from pagealloc.runtime._mheap_compiled cimport MHeap
from pagealloc.runtime._lock_futex_compiled cimport HeapLock
from pagealloc.sim._actor_compiled cimport Actor
from pagealloc.sim._heaplock_compiled cimport LockTimeline
from pagealloc.sim._histogram_compiled cimport Histogram

cdef class Replay:
    cdef public object config, mode, bg_locked, forced_locked, cost, timing
    cdef public bint closed_loop, ordered, lenient, kinds_known, trace_done
    cdef public object next_row, order_waiters, order_wait_ns, gomaxprocs
    cdef public MHeap heap
    cdef public dict spans, span_last, span_done, waiting, actors
    cdef public set manual_spans
    cdef public list schedule, timeline, stall_timeline
    cdef public object horizon, now, pending, log, psched, scavenger
    cdef public LockTimeline lock_line
    cdef public Histogram stalls, holds, latency
    cdef public object events, skipped, agree, allocs, retained_peak, goals_derived, first_ts, last_ts

    @cython.locals(a=Actor, i=Py_ssize_t, n=Py_ssize_t, closed=bint, shifted=bint, row="long long",
                   code="long long", prev="long long", pid="long long")
    cpdef _queue_batch(self, ts, op, span, npages, value, p, kind, first_row, label)
    cpdef _start_of(self, Actor a)
    cpdef _schedule(self, Actor a)
    @cython.locals(heap=MHeap, line=LockTimeline, stalls=Histogram, after="long long", spent="long long",
                   lock_ns="long long", busy="long long", wait="long long", stall="long long", hold="long long")
    cpdef long long _lock_op(self, Actor a, long long start, long long acquisitions) except? -1
    @cython.locals(a=Actor, scavenger=object)
    cpdef _run(self, label, until=*, row=*)
    cpdef _continue_steps(self, Actor a)
    @cython.locals(heap=MHeap, lock=HeapLock, row="long long", code="long long", prev="long long",
                   acquisitions="long long", end="long long")
    cpdef _execute(self, Actor a, long long start, label)
    cpdef _span_done(self, sid, row, end)
    @cython.locals(heap=MHeap)
    cpdef _after_event(self, Actor a, code)
