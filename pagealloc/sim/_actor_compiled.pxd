# Types for the compiled copy of actor.py (runtime/replay_sources.py).  Virtual ns: int64.
cdef class Actor:
    cdef public long long pid, free_at, delay, stall_ns, version
    cdef public object queue, steps, blocked_on
    cdef public bint scheduled
