# Types for the compiled copy of heaplock.py (runtime/replay_sources.py).  Virtual ns: int64.
cdef class LockTimeline:
    cdef public long long busy_until, spin_ns, wake_ns, wake_busy_ns, unlock_wake_ns, cpus
    cdef public object log, sched, holder
    cdef public bint woken
    cpdef hold(self, long long start, long long end, who)
    cpdef long long back_ns(self, long long wait, long long waiter, long long release) except? -1
    cpdef long long wakes_holder(self, long long wait) except? -1
    cpdef bint cpus_taken(self, long long p, long long t) except -1
