"""Tests of pagealloc.runtime.mranges (Go's addrRange / addrRanges).

Go 1.14 has no mranges_test.go (it arrived in a later release), so nothing
here is a port: these are our own cases, written against Go 1.14's
mranges.go semantics (plain, non-linearised address comparisons; add
coalesces with both neighbours).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pagealloc.runtime.mranges import AddrRange, AddrRanges

# name: (ranges added in order, resulting ranges)
ADD = {
    "One": ([(0x1000, 0x2000)], [(0x1000, 0x2000)]),
    "Disjoint": ([(0x1000, 0x2000), (0x3000, 0x4000)], [(0x1000, 0x2000), (0x3000, 0x4000)]),
    "DisjointBelow": ([(0x3000, 0x4000), (0x1000, 0x2000)], [(0x1000, 0x2000), (0x3000, 0x4000)]),
    "CoalesceUp": ([(0x2000, 0x3000), (0x1000, 0x2000)], [(0x1000, 0x3000)]),
    "CoalesceDown": ([(0x1000, 0x2000), (0x2000, 0x3000)], [(0x1000, 0x3000)]),
    "CoalesceBoth": ([(0x1000, 0x2000), (0x3000, 0x4000), (0x2000, 0x3000)], [(0x1000, 0x4000)]),
    "InsertMiddle": (
        [(0x1000, 0x2000), (0x9000, 0xA000), (0x5000, 0x6000)],
        [(0x1000, 0x2000), (0x5000, 0x6000), (0x9000, 0xA000)],
    ),
    "CoalesceBothAmongMany": (
        [(0x1000, 0x2000), (0x3000, 0x4000), (0x6000, 0x7000), (0x4000, 0x6000)],
        [(0x1000, 0x2000), (0x3000, 0x7000)],
    ),
}


def build(ranges) -> AddrRanges:
    a = AddrRanges()
    for base, limit in ranges:
        a.add(AddrRange(base, limit))
    return a


@pytest.mark.parametrize(("adds", "want"), list(ADD.values()), ids=list(ADD))
def test_addr_ranges_add(adds, want):
    assert [(r.base, r.limit) for r in build(adds).ranges] == want


@pytest.mark.parametrize(
    ("addr", "succ", "inside"),
    [
        (0x0, 0, False),
        (0x1000, 1, True),
        (0x1FFF, 1, True),
        (0x2000, 1, False),
        (0x4FFF, 1, False),
        (0x5000, 2, True),
        (0x5FFF, 2, True),
        (0x6000, 2, False),
        (0xFFFF_8000_0000_0000, 2, False),  # minScavAddr: above everything as a plain uintptr
    ],
)
def test_addr_ranges_find_succ_and_contains(addr, succ, inside):
    a = build([(0x1000, 0x2000), (0x5000, 0x6000)])
    assert a.find_succ(addr) == succ
    assert a.contains(addr) == inside


@pytest.mark.parametrize(
    ("a", "b", "want"),
    [
        ((0x1000, 0x3000), (0x0, 0x4000), (0, 0)),  # covered entirely
        ((0x1000, 0x3000), (0x2000, 0x4000), (0x1000, 0x2000)),  # top cut off
        ((0x1000, 0x3000), (0x0, 0x2000), (0x2000, 0x3000)),  # bottom cut off
        ((0x1000, 0x3000), (0x4000, 0x5000), (0x1000, 0x3000)),  # disjoint
    ],
)
def test_addr_range_subtract(a, b, want):
    got = AddrRange(*a).subtract(AddrRange(*b))
    assert (got.base, got.limit) == want


def test_addr_range_subtract_split_is_an_error():
    with pytest.raises(RuntimeError):
        AddrRange(0x1000, 0x4000).subtract(AddrRange(0x2000, 0x3000))


@settings(deadline=None, max_examples=100)
@given(st.permutations(range(12)), st.sets(st.integers(0, 11)))
def test_addr_ranges_add_any_order(order, holes):
    """Adding unit ranges in any order gives sorted, coalesced ranges covering them."""
    units = [k for k in order if k not in holes]
    a = build([(k * 0x1000, (k + 1) * 0x1000) for k in units])
    got = [(r.base, r.limit) for r in a.ranges]
    assert got == sorted(got)
    assert all(x[1] < y[0] for x, y in zip(got, got[1:])), "touching ranges were not coalesced"
    covered = {k for base, limit in got for k in range(base // 0x1000, limit // 0x1000)}
    assert covered == set(units)
    assert sum(AddrRange(*r).size() for r in got) == 0x1000 * len(units)
