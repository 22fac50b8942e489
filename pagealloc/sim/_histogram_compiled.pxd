# Types for the compiled copy of histogram.py (runtime/replay_sources.py): the same code, a cdef class.
# Values are virtual ns: int64 (a larger one raises OverflowError, it is never cut).
cdef class Histogram:
    cdef public list counts
    cdef public long long n, total, max
    cpdef add(self, long long v)
