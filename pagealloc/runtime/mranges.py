"""Address ranges known to the page allocator.

Go counterpart: runtime/mranges.go (addrRange, addrRanges).  Lock contract:
mutated only under the heap lock (PageAlloc.grow); the unlocked scavenger
path only reads, as in Go.

Go keeps the ranges in a slice that it grows by doubling in persistent
memory; a Python list is the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AddrRange:
    """The half-open address range [base, limit).  Go: addrRange."""

    base: int
    limit: int

    def size(self) -> int:
        return self.limit - self.base if self.limit > self.base else 0

    def contains(self, addr: int) -> bool:
        return self.base <= addr < self.limit

    def subtract(self, b: "AddrRange") -> "AddrRange":
        """self minus b, where b may not split self in two.  Go: addrRange.subtract."""
        a_base, a_limit = self.base, self.limit
        if a_base >= b.base and a_limit <= b.limit:
            return AddrRange(0, 0)
        if a_base < b.base and a_limit > b.limit:
            raise RuntimeError("bad prune")
        if a_limit > b.limit and a_base < b.limit:
            a_base = b.limit
        elif a_base < b.base and a_limit > b.base:
            a_limit = b.base
        return AddrRange(a_base, a_limit)


class AddrRanges:
    """Sorted, non-overlapping, coalesced address ranges.  Go: addrRanges."""

    __slots__ = ("ranges",)

    def __init__(self) -> None:
        self.ranges: list[AddrRange] = []

    def find_succ(self, base: int) -> int:
        """Index of the first range whose base is above ``base``.  Go: findSucc."""
        for i, r in enumerate(self.ranges):
            if base < r.base:
                return i
        return len(self.ranges)

    def contains(self, addr: int) -> bool:
        i = self.find_succ(addr)
        return i > 0 and self.ranges[i - 1].contains(addr)

    def add(self, r: AddrRange) -> None:
        """Insert r, which must not overlap any range, coalescing neighbours.  Go: add."""
        i = self.find_succ(r.base)
        down = i > 0 and self.ranges[i - 1].limit == r.base
        up = i < len(self.ranges) and r.limit == self.ranges[i].base
        if down and up:
            self.ranges[i - 1] = AddrRange(self.ranges[i - 1].base, self.ranges[i].limit)
            del self.ranges[i]
        elif down:
            self.ranges[i - 1] = AddrRange(self.ranges[i - 1].base, r.limit)
        elif up:
            self.ranges[i] = AddrRange(r.base, self.ranges[i].limit)
        else:
            self.ranges.insert(i, r)
