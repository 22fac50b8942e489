"""What the runtime asks of the OS when it releases and reuses heap memory, on linux.

Go counterpart: runtime/mem_linux.go as of Go 1.14 (sysUnused, sysUsed,
sysHugePage).  The model makes no system calls: each function returns the
madvise calls Go would make, as (advice, address, bytes), and the heap
(mheap.py) prices them with the cost table it was given.

Lock contract, as in Go: sysUnused runs where its caller runs, which for
the scavenger (scavengeRangeLocked) is with the heap lock held; sysUsed is
called by allocSpan after it has released the heap lock.

Advice: Go 1.14 releases with MADV_FREE (adviseUnused), falling back to
MADV_DONTNEED on kernels before 4.5; GODEBUG=madvdontneed=1 asks for
MADV_DONTNEED.  When physHugePageSize is not 0 (transparent huge pages
available), sysUnused first marks the partial huge pages at the head and
tail of the range MADV_NOHUGEPAGE, so the kernel does not re-form them,
and sysUsed marks the whole huge pages inside a reused range MADV_HUGEPAGE.
"""

from __future__ import annotations

MADV_DONTNEED = "MADV_DONTNEED"
MADV_FREE = "MADV_FREE"
MADV_HUGEPAGE = "MADV_HUGEPAGE"
MADV_NOHUGEPAGE = "MADV_NOHUGEPAGE"


def _align_down(x: int, a: int) -> int:
    return x & ~(a - 1)


def _align_up(x: int, a: int) -> int:
    return (x + a - 1) & ~(a - 1)


def sys_unused(v: int, n: int, phys_huge_page_size: int, madvdontneed: bool = False) -> list[tuple[str, int, int]]:
    """The madvise calls of releasing [v, v+n).  Go: sysUnused (linux).

    Caller's lock: whatever its caller holds (the heap lock, for the
    scavenger).  v and n are multiples of the physical page size.
    """
    calls = []
    huge = phys_huge_page_size
    if huge != 0:
        head = _align_down(v, huge) if v & (huge - 1) else 0
        tail = _align_down(v + n - 1, huge) if (v + n) & (huge - 1) else 0
        if head != 0 and head + huge == tail:  # adjacent: one call for both
            calls.append((MADV_NOHUGEPAGE, head, 2 * huge))
        else:
            if head != 0:
                calls.append((MADV_NOHUGEPAGE, head, huge))
            if tail != 0 and tail != head:
                calls.append((MADV_NOHUGEPAGE, tail, huge))
    calls.append((MADV_DONTNEED if madvdontneed else MADV_FREE, v, n))
    return calls


def sys_used(v: int, n: int, phys_huge_page_size: int) -> list[tuple[str, int, int]]:
    """The madvise calls of reusing released memory [v, v+n).  Go: sysUsed -> sysHugePage (linux).

    Caller's lock: none (allocSpan calls it after unlocking the heap).
    Only the whole huge pages inside the range get MADV_HUGEPAGE back.
    """
    huge = phys_huge_page_size
    if huge == 0:
        return []
    beg, end = _align_up(v, huge), _align_down(v + n, huge)
    return [(MADV_HUGEPAGE, beg, end - beg)] if beg < end else []
