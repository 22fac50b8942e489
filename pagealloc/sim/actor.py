"""A P of the replayed program: the actor that runs a trace's events.

Not a Go file: Go's P (runtime2.go's ``p``) as the simulation needs it.
"""

from __future__ import annotations

from collections import deque


class Actor:
    """A P replaying its own events in order, or the runtime actor (P -1, no page cache).

    ``queue`` holds its events not yet executed, in trace order, as
    (row, ts, op, span, npages, value, kind, prev) tuples, ``prev`` being
    the row of the span's previous op (-1: none); ``free_at`` is when it is
    done with its last operation; ``delay`` is the lock-wait time that has
    accumulated on it (the ``shifted`` timing moves its later events by that
    much).  ``steps`` is the rest of a multi-step operation (an unlocked
    FreeOSMemory); ``blocked_on`` a span id whose earlier op (on another
    actor) must run first, ORDER, or HOSTING; ``version`` invalidates its stale
    entries in the engine's schedule.
    """

    __slots__ = ("pid", "queue", "free_at", "delay", "stall_ns", "steps", "scheduled", "blocked_on", "version")

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.queue: deque = deque()
        self.free_at = 0
        self.delay = 0
        self.stall_ns = 0
        self.steps = None
        self.scheduled = False
        self.blocked_on = None
        self.version = 0

    def __lt__(self, other: "Actor") -> bool:
        """The last tie-break of the engine's schedule: entries tie on everything before the actor only
        for two actors both in a multi-step operation (two unlocked FreeOSMemory at the same time, same
        version); the lower P goes first, deterministically (comparing them raised TypeError before)."""
        return self.pid < other.pid


ORDER = "order"  # Actor.blocked_on while it waits for its turn in the trace's row order
HOSTING = "hosting"  # Actor.blocked_on while the background scavenger runs on its P
