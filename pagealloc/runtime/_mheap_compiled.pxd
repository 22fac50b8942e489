# Types for the compiled copy of mheap.py (runtime/replay_sources.py): MHeap as a cdef class,
# its per-event methods called in C.  Byte counts (at most MAX_HEAP_SYS) and virtual ns are int64 (a
# larger value raises OverflowError, it is never cut); the rest stays Python objects.
cimport cython
from pagealloc.runtime._lock_futex_compiled cimport HeapLock
from pagealloc.runtime._mem_linux_compiled cimport sys_unused, sys_used
from pagealloc.runtime._mpagealloc_64bit_compiled cimport chunk_index, chunk_page_index

cpdef tuple span_kind_args(kind)
cdef long long PHYS_4K
# n, mask, had, new stay Python ints: a chunk's bitmap is 512 bits (1 << n in C would be cut to 64)
@cython.locals(first="long long")
cpdef long long mark_pages(dict marks, base, npages, dict among=*) except? -1

cdef class Prices:
    cdef public long long alloc_ns, free_ns, cache_alloc_ns, cache_refill_ns, mspan_refill_ns, sys_alloc_ns
    cdef public long long grow_chunk_ns, gc_ns, chunk_scan_ns, page_fault_ns, page_retouch_free_ns, madvise_call_ns
    cdef public long long madvise_page_ns, madvise_free_call_ns, madvise_free_page_ns, madvise_free_first_page_ns
    cdef public long long madvise_hugepage_ns, vma_split_ns, tlb_shootdown_ns, memory_traffic_ns, scavenge_heap_ns

cdef class MHeap:
    cdef public object cost, clock, pages
    cdef public long long phys_page_size, phys_huge_page_size
    cdef public bint madvdontneed
    cdef public Prices price
    cdef public long long madvise_calls, scavenger_madvise_ns, tlb_peers, tlb_p, op_ns, release_peers
    cdef public object tlb_probe, traffic
    cdef public dict touched, lazyfree, pcache, mspancache
    cdef public set nohugepage
    cdef public object next_gc, last_next_gc, last_heap_inuse, gogc, retain_extra_percent, scavenge_goal
    cdef public object cur_arena_base, cur_arena_end, arena_hint
    cdef public bint gc_blacken_enabled, forced
    cdef public object growths, arenas, recorded_crits
    cdef public dict released_by, releases_by
    cdef public long long whole_huge_releases
    cdef public long long heap_sys, heap_released, heap_inuse, manual_inuse, scav_alloc_bytes
    cdef public long long meter_ns, after_unlock_ns, _scanned_charged, cold_ns
    cdef public long long traffic_narrow_permille, traffic_narrow_n, traffic_wide_n
    cdef public HeapLock lock
    cpdef long long heap_retained(self) except? -1
    cpdef long long go_heap_retained(self) except? -1
    @cython.locals(first_free="long long")
    cpdef _sys_unused(self, long long addr, long long nbytes)
    @cython.locals(lock=HeapLock, price=Prices, base="long long", scav="long long", have_mspan=bint)
    cpdef long long alloc_span(self, long long npages, long long p=*, bint small_object=*, bint manual=*) except? -1
    @cython.locals(n="long long")
    cpdef bint _try_alloc_mspan(self, long long p) except -1
    @cython.locals(n="long long")
    cpdef _alloc_mspan_locked(self, long long p)
    @cython.locals(n="long long")
    cpdef _free_mspan_locked(self, long long p)
    # the compiled replay's ReplayHeap (sim/_replay_heap.pxi) overrides these two with C bitmaps
    cpdef long long _first_touch(self, long long base, long long npages) except? -1
    cpdef long long _first_lazyfree(self, long long base, long long npages) except? -1
    @cython.locals(addr="long long", nbytes="long long")
    cpdef long long _madvise_ns(self, tuple call, long long first_free=*) except? -1
    cpdef long long _tlb_peers_now(self) except? -1
    @cython.locals(wide="long long", span="long long", narrow="long long", over="long long")
    cpdef long long _traffic_ns(self, long long peers) except? -1
    @cython.locals(price=Prices, extra="long long", again="long long", peers="long long")
    cpdef long long _release_ns(self, bint dontneed, long long nbytes, long long first_free) except? -1
    @cython.locals(first="long long", h="long long")
    cpdef long long _hugepage_ns(self, long long addr, long long nbytes) except? -1
    @cython.locals(first="long long", h="long long", split=bint)
    cpdef long long _nohugepage_ns(self, long long addr, long long nbytes) except? -1
    @cython.locals(price=Prices, fresh="long long", released="long long", touch="long long", after_ns="long long")
    cpdef _account_alloc(self, long long npages, long long scav, long long base=*, bint manual=*)
    @cython.locals(lock=HeapLock)
    cpdef free_span(self, long long base, long long npages, long long p=*, bint manual=*)
    @cython.locals(scanned="long long", ns="long long")
    cpdef long long drain_meter(self) except? -1
