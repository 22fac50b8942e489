"""Radix-tree geometry of the page allocator on 64-bit platforms.

Go counterpart: runtime/mpagealloc_64bit.go (summaryLevels, levelBits,
levelShift, levelLogPages, pallocChunksL1Bits) plus the level constants of
mpagealloc.go.  Pure constants: no lock contract.

Go reserves each summary level as one huge array and commits it on demand
(sysInit/sysGrow); this model stores every level as a sparse dict instead, so
only entries that exist cost memory (see mpagealloc.PageAlloc).
"""

from pagealloc.runtime.malloc import HEAP_ADDR_BITS, PAGE_SHIFT

LOG_PALLOC_CHUNK_PAGES = 9
PALLOC_CHUNK_PAGES = 1 << LOG_PALLOC_CHUNK_PAGES  # 512 pages per chunk
PALLOC_CHUNK_BYTES = PALLOC_CHUNK_PAGES << PAGE_SHIFT  # 4 MiB
LOG_PALLOC_CHUNK_BYTES = LOG_PALLOC_CHUNK_PAGES + PAGE_SHIFT

SUMMARY_LEVELS = 5
SUMMARY_LEVEL_BITS = 3
SUMMARY_L0_BITS = HEAP_ADDR_BITS - LOG_PALLOC_CHUNK_BYTES - (SUMMARY_LEVELS - 1) * SUMMARY_LEVEL_BITS

PALLOC_CHUNKS_L1_BITS = 13
PALLOC_CHUNKS_L2_BITS = HEAP_ADDR_BITS - LOG_PALLOC_CHUNK_BYTES - PALLOC_CHUNKS_L1_BITS

# Per level: how many index bits a block of entries has, how far an address
# is shifted to index the level, and log2 of the pages one entry covers.
LEVEL_BITS = (SUMMARY_L0_BITS,) + (SUMMARY_LEVEL_BITS,) * (SUMMARY_LEVELS - 1)
LEVEL_SHIFT = tuple(HEAP_ADDR_BITS - SUMMARY_L0_BITS - l * SUMMARY_LEVEL_BITS for l in range(SUMMARY_LEVELS))
LEVEL_LOG_PAGES = tuple(
    LOG_PALLOC_CHUNK_PAGES + (SUMMARY_LEVELS - 1 - l) * SUMMARY_LEVEL_BITS for l in range(SUMMARY_LEVELS)
)

# Summary fields are 21 bits wide: enough for the 2**21 pages of one L0 entry.
LOG_MAX_PACKED_VALUE = LOG_PALLOC_CHUNK_PAGES + (SUMMARY_LEVELS - 1) * SUMMARY_LEVEL_BITS
MAX_PACKED_VALUE = 1 << LOG_MAX_PACKED_VALUE


# Chunk addressing (Go: chunkIndex, chunkBase, chunkPageIndex, maxSearchAddr,
# minScavAddr in mpagealloc.go).  They live here, next to the geometry, so
# that mpagealloc, mpagecache and mgcscavenge can all import them without an
# import cycle.  All arithmetic is uintptr arithmetic, i.e. modulo 2**64.
from pagealloc.runtime.malloc import ARENA_BASE_OFFSET, MASK64, PAGE_SIZE  # noqa: E402

MAX_SEARCH_ADDR = MASK64 - ARENA_BASE_OFFSET  # "no free memory" search address
MIN_SCAV_ADDR = (-ARENA_BASE_OFFSET) & MASK64  # "scavenger is done" address


def chunk_index(addr: int) -> int:
    """Global index of the chunk holding addr.  Go: chunkIndex."""
    return ((addr + ARENA_BASE_OFFSET) & MASK64) >> LOG_PALLOC_CHUNK_BYTES


def chunk_base(ci: int) -> int:
    """Base address of chunk ci.  Go: chunkBase."""
    return ((ci << LOG_PALLOC_CHUNK_BYTES) - ARENA_BASE_OFFSET) & MASK64


def chunk_page_index(addr: int) -> int:
    """Index of addr's page within its chunk.  Go: chunkPageIndex."""
    return (addr % PALLOC_CHUNK_BYTES) // PAGE_SIZE


def page_base(ci: int, page_idx: int) -> int:
    """Address of page page_idx of chunk ci.  Go (export_test.go): PageBase."""
    return (chunk_base(ci) + page_idx * PAGE_SIZE) & MASK64


def linear(addr: int) -> int:
    """addr in the linearised address space (Go adds arenaBaseOffset)."""
    return (addr + ARENA_BASE_OFFSET) & MASK64


# BaseChunkIdx of Go's tests: the chunk holding address 0xc000 * 4 MiB.
BASE_CHUNK_IDX = chunk_index(0xC000 * PALLOC_CHUNK_BYTES)
