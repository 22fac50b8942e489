# Types for the compiled copy of heaplock.py (runtime/replay_sources.py).  Virtual ns: int64.
cdef class LockTimeline:
    cdef public long long busy_until
    cdef public object log
    cpdef hold(self, long long start, long long end, who)
