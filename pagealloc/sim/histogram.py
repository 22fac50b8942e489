"""Fixed-memory histogram of non-negative integers for max / p99 figures.

Not a Go file.  Lock hold times and mutator stalls are recorded once per
operation; keeping them all would make memory grow with trace length, so
they go into log-linear buckets (64 per power of two: <= 1.6% relative
error on a quantile, exact below 64) and the maximum is kept exactly.
Deterministic: same inputs, same figures.
"""

from __future__ import annotations

_SUB_BITS = 6
_SUB = 1 << _SUB_BITS


def _lower_bound(b: int) -> int:
    if b < _SUB:
        return b
    shift = (b >> _SUB_BITS) - 1
    return ((b & (_SUB - 1)) + _SUB) << shift


class Histogram:
    __slots__ = ("counts", "n", "total", "max")

    def __init__(self) -> None:
        self.counts = [0] * (65 << _SUB_BITS)  # enough buckets for any 64-bit value
        self.n = 0
        self.total = 0
        self.max = 0

    def add(self, v: int) -> None:
        if v < _SUB:
            b = v
        else:
            shift = v.bit_length() - 1 - _SUB_BITS
            b = ((shift + 1) << _SUB_BITS) + (v >> shift) - _SUB
        self.counts[b] += 1
        self.n += 1
        self.total += v
        if v > self.max:
            self.max = v

    def quantile(self, q: float) -> int:
        """Lower edge of the bucket holding the q-quantile (0 when empty); never above max."""
        if not self.n:
            return 0
        rank = q * self.n
        seen = 0
        for b, count in enumerate(self.counts):
            seen += count
            if seen >= rank:
                return min(_lower_bound(b), self.max)
        return self.max
