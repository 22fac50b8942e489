# Types for the compiled copy of mranges.py (runtime/replay_sources.py): AddrRanges as a cdef class, its
# lookups called in C (the scavenger asks them once or twice per scavengeOne).  AddrRange stays a
# (compiled) dataclass.
cimport cython

cdef class AddrRanges:
    cdef public list ranges
    @cython.locals(i=Py_ssize_t)
    cpdef Py_ssize_t find_succ(self, base) except -1
    @cython.locals(i=Py_ssize_t)
    cpdef bint contains(self, addr) except -1
