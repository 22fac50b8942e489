"""Sizes of Go's heap on linux/amd64, as defined in Go 1.14's malloc.go.

Go counterpart: runtime/malloc.go (pageShift, heapAddrBits, heapArenaBytes,
arenaBaseOffset, physPageSize, physHugePageSize) and runtime/sizeclasses.go
(_PageShift).  Pure constants: no lock contract.

physPageSize and physHugePageSize are read from the OS at start-up by the
real runtime; here they are defaults that a PageAlloc can override, so a
model of a 64 KiB-page machine is one argument away.
"""

MASK64 = (1 << 64) - 1  # uintptr arithmetic wraps modulo 2**64

PAGE_SHIFT = 13
PAGE_SIZE = 1 << PAGE_SHIFT  # 8 KiB runtime pages

# Default OS page sizes on linux/amd64.  Go reads both from the kernel; the
# huge-page size comes from transparent_hugepage/hpage_pmd_size (2 MiB).
PHYS_PAGE_SIZE = 4096
PHYS_HUGE_PAGE_SIZE = 2 << 20
MAX_PHYS_PAGE_SIZE = 512 << 10  # malloc.go: maxPhysPageSize

HEAP_ADDR_BITS = 48
LOG_HEAP_ARENA_BYTES = 6 + 20
HEAP_ARENA_BYTES = 1 << LOG_HEAP_ARENA_BYTES  # 64 MiB arenas

# amd64 addresses are sign-extended 48-bit values; adding this offset
# linearises them so chunk indices are contiguous (malloc.go arenaBaseOffset).
ARENA_BASE_OFFSET = 1 << 47

# First arena hint on amd64: 0x00c0 << 32, the hints then step by 1 << 32
# (mallocinit) and each hint grows upward (sysAlloc).
ARENA_HINT_BASE = 0x00C0 << 32
ARENA_HINT_STEP = 1 << 32
ARENA_HINT_COUNT = 0x7F
