# Types for the compiled copy of lock_futex.py (runtime/replay_sources.py).
cdef class HeapLock:
    cdef public object holder, by_actor, actor
    cdef public long long acquisitions
    cpdef running(self, actor)
    cpdef lock(self)
    cpdef unlock(self)
