# Compiled core, part 1 of 4 (included by _core.pyx).
#
# Go counterpart: runtime/mpallocbits.go (pageBits, pallocBits, pallocData,
# findBitRange64) and the Python mirror pagealloc/runtime/mpallocbits.py.
# No lock contract of its own: every mutation happens under the heap lock
# held by the caller (pageAlloc), the scavenger's unlocked reads only read.
#
# Representation: as in Go, a chunk's 512 bits are eight uint64 words, bit i
# of word w is page 64*w + i (1 = allocated in pallocBits, 1 = scavenged in
# scavenged).  The search functions keep Go's word-granular semantics: a
# search "from searchIdx" starts at the word holding searchIdx.

from libc.stdint cimport uint64_t, int64_t, uint8_t

cdef extern from *:
    """
    static inline int pa_ctz64(uint64_t x) { return x ? __builtin_ctzll(x) : 64; }
    static inline int pa_clz64(uint64_t x) { return x ? __builtin_clzll(x) : 64; }
    static inline int pa_popcount64(uint64_t x) { return __builtin_popcountll(x); }
    """
    int pa_ctz64(uint64_t x) nogil   # Go: sys.TrailingZeros64
    int pa_clz64(uint64_t x) nogil   # Go: sys.LeadingZeros64
    int pa_popcount64(uint64_t x) nogil  # Go: sys.OnesCount64

DEF PALLOC_CHUNK_PAGES = 512
DEF WORDS = 8  # PALLOC_CHUNK_PAGES / 64
cdef uint64_t ALL_ONES = 0xFFFFFFFFFFFFFFFF
cdef uint64_t NOT_FOUND_U = 0xFFFFFFFFFFFFFFFF  # Go's ^uint(0)


ctypedef struct pallocData:
    uint64_t palloc_bits[WORDS]  # Go: pallocBits (1 = in use)
    uint64_t scavenged[WORDS]    # Go: scavenged (1 = returned to the OS)


cdef inline uint64_t word_mask(int i, int n) noexcept nogil:
    """Bits [i, i+n) of one word, 0 <= i, i+n <= 64."""
    if n <= 0:
        return 0
    if n >= 64:
        return ALL_ONES
    return ((<uint64_t>1 << n) - 1) << i


cdef inline void bits_set_range(uint64_t* b, int i, int n) noexcept nogil:
    """Go: pageBits.setRange."""
    cdef int w, lo, cnt
    while n > 0:
        w = i >> 6
        lo = i & 63
        cnt = 64 - lo if 64 - lo < n else n
        b[w] |= word_mask(lo, cnt)
        i += cnt
        n -= cnt


cdef inline void bits_clear_range(uint64_t* b, int i, int n) noexcept nogil:
    """Go: pageBits.clearRange."""
    cdef int w, lo, cnt
    while n > 0:
        w = i >> 6
        lo = i & 63
        cnt = 64 - lo if 64 - lo < n else n
        b[w] &= ~word_mask(lo, cnt)
        i += cnt
        n -= cnt


cdef inline int bits_popcnt_range(const uint64_t* b, int i, int n) noexcept nogil:
    """Go: pageBits.popcntRange."""
    cdef int w, lo, cnt, total = 0
    while n > 0:
        w = i >> 6
        lo = i & 63
        cnt = 64 - lo if 64 - lo < n else n
        total += pa_popcount64(b[w] & word_mask(lo, cnt))
        i += cnt
        n -= cnt
    return total


cdef inline int longest_ones64(uint64_t x) noexcept nogil:
    """Length of the longest run of set bits in x.

    In O(log 64) steps, not one per bit of the run: ``x`` becomes the starts of
    runs of at least ``k`` ones (x_k), doubling k while some remain, then adding
    halving steps while some remain (x_(k+s) = x_k & (x_k >> s) for s <= k)."""
    cdef int k = 1, step
    cdef uint64_t y
    if x == 0:
        return 0
    if x == ALL_ONES:
        return 64
    while True:  # gallop: k = 1, 2, 4, ... while a run of 2k exists
        y = x & (x >> k)
        if y == 0:
            break
        x = y
        k *= 2
    step = k // 2
    while step:  # runs of k exist, of 2k not: settle the bits below k
        y = x & (x >> step)
        if y:
            x = y
            k += step
        step //= 2
    return k


cdef inline uint64_t run_starts64(uint64_t x, int n) noexcept nogil:
    """Bit i set iff bits [i, i+n) of x are all set (runs wholly inside the word; 1 <= n <= 64)."""
    cdef int covered = 1, step
    while covered < n and x:
        step = n - covered if n - covered < covered else covered
        x &= x >> step
        covered += step
    return x


cdef inline uint64_t find_bit_range64(uint64_t c, int n) noexcept nogil:
    """Index of the first run of n set bits in c, or 64 when there is none.  Go: findBitRange64."""
    if n == 0:
        return 0
    if n > 64:
        return 64
    cdef uint64_t s = run_starts64(c, n)
    return pa_ctz64(s) if s else 64


cdef inline void palloc_find(const uint64_t* b, int npages, int search_idx,
                             uint64_t* start, uint64_t* new_search) noexcept nogil:
    """First free run of npages at or after the word holding search_idx.

    Go: pallocBits.find (find1 / findSmallN / findLargeN).  *start is
    NOT_FOUND on failure; *new_search is the first free page at or after
    that word (NOT_FOUND when there is none), as Go's three helpers compute.
    """
    cdef int w, w0 = search_idx >> 6
    cdef uint64_t free, starts
    cdef int carry = 0, tz, top
    start[0] = NOT_FOUND_U
    new_search[0] = NOT_FOUND_U
    for w in range(w0, WORDS):
        free = ~b[w]
        if free == 0:
            carry = 0
            continue
        if new_search[0] == NOT_FOUND_U:
            new_search[0] = (w << 6) + pa_ctz64(free)
            if npages == 1:
                start[0] = new_search[0]
                return
        # A run carried over from the words below, finished at this word's bottom.
        if carry:
            tz = pa_ctz64(~free)
            if carry + tz >= npages:
                start[0] = (w << 6) - carry
                return
        if npages <= 64:
            starts = run_starts64(free, npages)
            if starts:
                start[0] = (w << 6) + pa_ctz64(starts)
                return
        if free == ALL_ONES:
            carry += 64
            continue
        carry = pa_clz64(~free)  # free pages at the top of this word


cdef inline void palloc_summarize(const uint64_t* b, uint64_t* s_start, uint64_t* s_max, uint64_t* s_end) noexcept nogil:
    """(start, max, end) free-run lengths of a chunk.  Go: pallocBits.summarize."""
    cdef int w, run = 0, longest = 0, inner, k
    cdef uint64_t free
    cdef int start = -1
    for w in range(WORDS):
        free = ~b[w]
        if free == ALL_ONES:
            run += 64
            continue
        k = pa_ctz64(~free)  # free pages at the bottom of this word
        run += k
        if start < 0:
            start = run
        if run > longest:
            longest = run
        if pa_popcount64(free) > longest:  # else no run inside this word can be longer
            inner = longest_ones64(free)
            if inner > longest:
                longest = inner
        run = pa_clz64(~free)  # free pages at its top
    if start < 0:
        start = run  # all free
    if run > longest:
        longest = run
    s_start[0] = start
    s_max[0] = longest
    s_end[0] = run


cdef object words_to_int(const uint64_t* b):
    """The 512 bits as one Python int (bit i = page i), the Python mirror's form."""
    cdef int w
    x = 0
    for w in range(WORDS - 1, -1, -1):
        x = (x << 64) | b[w]
    return x


cdef void int_to_words(object x, uint64_t* b) except *:
    cdef int w
    if x < 0 or x >> PALLOC_CHUNK_PAGES:
        raise ValueError("a chunk bitmap has 512 bits")
    for w in range(WORDS):
        b[w] = <uint64_t>(x & 0xFFFFFFFFFFFFFFFF)
        x >>= 64
