# Types for the compiled copy of histogram.py (runtime/replay_sources.py): the same code, a cdef class.
# Values are virtual ns: int64 (a larger one raises OverflowError, it is never cut).
cimport cython

cdef long long _SUB_BITS, _SUB

@cython.locals(shift="long long")
cdef long long _lower_bound(long long b)

cdef class Histogram:
    cdef public list counts
    cdef public long long n, total, max
    @cython.locals(b=Py_ssize_t, shift="long long")
    cpdef add(self, long long v)
