# Types for the compiled copy of mpagealloc_64bit.py (runtime/replay_sources.py): the chunk addressing as
# cpdef functions, which the heap's and the scavenger's copies cimport and call in C.  Their arguments
# and results stay Python ints: the source's arithmetic is modulo 2**64 on unbounded ints.
cpdef chunk_index(addr)
cpdef chunk_base(ci)
cpdef chunk_page_index(addr)
