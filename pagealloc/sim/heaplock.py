"""mheap_.lock in virtual time: one holder at a time.

Not a Go file: the simulation's side of ``runtime.lock_futex.HeapLock``
(which counts acquisitions and attributes releases, in processing order).
Here each critical section becomes an interval [start, end) of virtual
time, and the intervals never overlap: an actor that asks for the lock at
``t`` is granted it at ``grant(t)`` = max(t, the end of the last hold), and
``hold(start, end)`` records its section.  Nothing moves the end of the last
hold backwards; a section that would start before it is a bug of the model
(InvariantError), whoever holds it: a P, the runtime, a FreeOSMemory step
or the background scavenger.

A waiter past Go's spin sleeps in the futex and pays ``futex_wake_ns`` to
wake.  Go's lock has no hand-off (a spinning thread may take it first), so
the lock is not kept idle for the sleeper: its section is placed from the
release, and only the waiter's own clock pays the wake-up.
"""

from __future__ import annotations

from pagealloc.runtime.invariants import InvariantError


class LockTimeline:
    """The heap lock's holds in virtual time.  ``log``: a list to get (start, end, who) per hold (tests, --check)."""

    __slots__ = ("busy_until", "log")

    def __init__(self) -> None:
        self.busy_until = 0  # end of the last hold
        self.log: list | None = None

    def hold(self, start: int, end: int, who) -> None:
        """Record a critical section [start, end) of ``who``; it must not begin before the last one ended."""
        if start < self.busy_until or end < start:
            raise InvariantError(f"two holders of the heap lock: {who} holds it from {start} ns to {end} ns, "
                                 f"but the last hold ends at {self.busy_until} ns")
        self.busy_until = end
        if self.log is not None:
            self.log.append((start, end, who))


def check_one_holder(log) -> None:
    """The holds of a LockTimeline log, in the order taken, never overlap (InvariantError otherwise):
    they are put through a fresh LockTimeline's check."""
    line = LockTimeline()
    for start, end, who in log:
        line.hold(start, end, who)
