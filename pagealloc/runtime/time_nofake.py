"""The runtime's clock.

Go counterpart: runtime/time_nofake.go (``nanotime()``, which Go's
scavenger reads to time each iteration: its ``crit``).

In the model time is virtual: the simulation owns one ``Clock`` per heap
and advances ``now`` before it runs an actor's step; the runtime code only
reads it, through ``nanotime()``, as Go's does.  No lock: the simulation is
single-threaded.
"""

from __future__ import annotations


class Clock:
    """Virtual nanoseconds since the replay began."""

    __slots__ = ("now",)

    def __init__(self) -> None:
        self.now = 0

    def nanotime(self) -> int:
        """Go: nanotime()."""
        return self.now
