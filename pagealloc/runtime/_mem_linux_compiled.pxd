# Types for the compiled copy of mem_linux.py (runtime/replay_sources.py): sysUnused and sysUsed called in
# C by the heap's compiled copy (it cimports them).  Addresses and byte counts are below 2**63, so the
# alignments compute in unsigned 64 bits what the source computes in Python ints.
cimport cython

cdef unsigned long long _align_down(unsigned long long x, unsigned long long a)
cdef unsigned long long _align_up(unsigned long long x, unsigned long long a)
@cython.locals(huge="unsigned long long", head="unsigned long long", tail="unsigned long long")
cpdef list sys_unused(unsigned long long v, unsigned long long n, unsigned long long phys_huge_page_size, bint madvdontneed=*)
@cython.locals(huge="unsigned long long", beg="unsigned long long", end="unsigned long long")
cpdef list sys_used(unsigned long long v, unsigned long long n, unsigned long long phys_huge_page_size)
