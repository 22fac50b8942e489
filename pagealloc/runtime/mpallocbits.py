"""Per-chunk page bitmaps.

Go counterpart: runtime/mpallocbits.go (pageBits, pallocBits, pallocData,
findBitRange64).  No lock contract of its own: every mutation happens under
the heap lock held by the caller (PageAlloc), and the scavenger's unlocked
reads only ever read.

Representation.  Go keeps a chunk's 512 bits in eight uint64 words.  Here a
bitmap is one Python int of at most 512 bits, bit i = page i (1 = allocated
in the alloc bitmap, 1 = scavenged in the scavenged bitmap).  Whole-bitmap
operations then become a handful of big-int operations, which is what makes
the model fast enough.  The search functions keep Go's word-granular
semantics exactly: a search "from searchIdx" starts at the 64-bit word that
holds searchIdx, as Go's loops do, and returns the same new search index.

The module-level functions work on raw ints and are what PageAlloc's hot
path calls; PallocBits and PallocData wrap them with Go's method names for
tests and for readers holding the Go file alongside.
"""

from __future__ import annotations

from pagealloc.runtime.mpagealloc_64bit import PALLOC_CHUNK_PAGES

CHUNK_MASK = (1 << PALLOC_CHUNK_PAGES) - 1  # all 512 bits set
WORD_MASK = (1 << 64) - 1
NOT_FOUND = (1 << 64) - 1  # Go's ^uint(0)


def range_mask(i: int, n: int) -> int:
    """Bits [i, i+n) set."""
    return ((1 << n) - 1) << i


def lowest_set(x: int) -> int:
    """Index of the lowest set bit of x > 0 (Go: sys.TrailingZeros)."""
    return (x & -x).bit_length() - 1


def run_starts(free: int, n: int) -> int:
    """Bit i set iff bits [i, i+n) of ``free`` are all set (n >= 1)."""
    covered = 1
    while covered < n and free:
        step = n - covered if n - covered < covered else covered
        free &= free >> step
        covered += step
    return free


def longest_run(free: int) -> int:
    """Length of the longest run of set bits in ``free``."""
    if not free:
        return 0
    # powers[j]: positions that start a run of at least 2**j set bits.
    powers = [free]
    while True:
        width = 1 << (len(powers) - 1)
        nxt = powers[-1] & (powers[-1] >> width)
        if not nxt:
            break
        powers.append(nxt)
    top = len(powers) - 1
    length, starts = 1 << top, powers[top]
    for j in range(top - 1, -1, -1):
        longer = starts & (powers[j] >> length)
        if longer:
            starts, length = longer, length + (1 << j)
    return length


def popcnt_range(bits: int, i: int, n: int) -> int:
    """Set bits in [i, i+n).  Go: pageBits.popcntRange."""
    return ((bits >> i) & ((1 << n) - 1)).bit_count()


def find(bits: int, npages: int, search_idx: int) -> tuple[int, int]:
    """First free run of ``npages`` at or after the 64-bit word holding search_idx.

    Go: pallocBits.find (find1 / findSmallN / findLargeN).  Returns
    (start, new_search_idx); start is NOT_FOUND on failure.  new_search_idx is
    the first free page at or after that word (NOT_FOUND when there is none),
    which is the value Go's three helpers compute.
    """
    word_start = (search_idx >> 6) << 6
    free = (CHUNK_MASK ^ bits) >> word_start
    if not free:
        return NOT_FOUND, NOT_FOUND
    first_free = word_start + lowest_set(free)
    if npages == 1:
        return first_free, first_free
    starts = run_starts(free, npages)
    if not starts:
        return NOT_FOUND, first_free
    return word_start + lowest_set(starts), first_free


def find_small_n(bits: int, npages: int, search_idx: int) -> tuple[int, int]:
    """Go: pallocBits.findSmallN (npages <= 64); same contract as find."""
    assert 1 <= npages <= 64
    return find(bits, npages, search_idx)


def find_large_n(bits: int, npages: int, search_idx: int) -> tuple[int, int]:
    """Go: pallocBits.findLargeN (npages > 64); same contract as find."""
    assert npages > 64
    return find(bits, npages, search_idx)


def summarize(bits: int) -> tuple[int, int, int]:
    """(start, max, end) free-run lengths of a chunk.  Go: pallocBits.summarize.

    Returned unpacked; mpagealloc.pack_palloc_sum packs it.
    """
    if bits == 0:
        return PALLOC_CHUNK_PAGES, PALLOC_CHUNK_PAGES, PALLOC_CHUNK_PAGES
    if bits == CHUNK_MASK:
        return 0, 0, 0
    start = lowest_set(bits)
    end = PALLOC_CHUNK_PAGES - bits.bit_length()
    return start, longest_run(CHUNK_MASK ^ bits), end


def pages64(bits: int, i: int) -> int:
    """The aligned 64-page block holding page i.  Go: pallocBits.pages64 / pageBits.block64."""
    return (bits >> ((i >> 6) << 6)) & WORD_MASK


def find_bit_range64(c: int, n: int) -> int:
    """Index of the first run of n set bits in the uint64 c, or >= 64.  Go: findBitRange64.

    Go returns the position where its scan stopped when there is no run;
    callers only test ``>= 64``, and so does every Go test, so 64 is returned.
    """
    if n == 0:
        return 0
    starts = run_starts(c & WORD_MASK, n)
    # A run must lie wholly inside the 64 bits.
    starts &= (1 << (65 - n)) - 1 if n <= 64 else 0
    return lowest_set(starts) if starts else 64


class PallocBits:
    """A chunk's alloc bitmap.  Go: pallocBits (0 = free, 1 = in use)."""

    __slots__ = ("bits",)

    def __init__(self, bits: int = 0):
        self.bits = bits

    def find(self, npages: int, search_idx: int) -> tuple[int, int]:
        return find(self.bits, npages, search_idx)

    def find1(self, search_idx: int) -> int:
        return find(self.bits, 1, search_idx)[0]

    def find_small_n(self, npages: int, search_idx: int) -> tuple[int, int]:
        return find_small_n(self.bits, npages, search_idx)

    def find_large_n(self, npages: int, search_idx: int) -> tuple[int, int]:
        return find_large_n(self.bits, npages, search_idx)

    def alloc_range(self, i: int, n: int) -> None:
        self.bits |= range_mask(i, n)

    def alloc_all(self) -> None:
        self.bits = CHUNK_MASK

    def free1(self, i: int) -> None:
        self.bits &= ~(1 << i)

    def free(self, i: int, n: int) -> None:
        self.bits &= ~range_mask(i, n)

    def free_all(self) -> None:
        self.bits = 0

    def summarize(self) -> tuple[int, int, int]:
        return summarize(self.bits)

    def pages64(self, i: int) -> int:
        return pages64(self.bits, i)

    def popcnt_range(self, i: int, n: int) -> int:
        return popcnt_range(self.bits, i, n)


class PallocData(PallocBits):
    """Alloc bitmap plus scavenged bitmap of one chunk.  Go: pallocData.

    Allocating pages clears their scavenged bits (the memory is in use again).
    The scavenger-side methods (has_scavenge_candidate, find_scavenge_candidate)
    are defined in mgcscavenge, as in Go, which binds them to this class.
    """

    __slots__ = ("scavenged",)

    def __init__(self, bits: int = 0, scavenged: int = 0):
        super().__init__(bits)
        self.scavenged = scavenged

    def alloc_range(self, i: int, n: int) -> None:
        mask = range_mask(i, n)
        self.bits |= mask
        self.scavenged &= ~mask

    def alloc_all(self) -> None:
        self.bits = CHUNK_MASK
        self.scavenged = 0

    def scavenged_set_range(self, i: int, n: int) -> None:
        self.scavenged |= range_mask(i, n)
