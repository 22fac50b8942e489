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

A waiter past Go's spin gave up its CPU (osyield, then futexsleep) and pays
to run again (``back_ns``): ``futex_wake_ns``, or ``futex_wake_busy_ns``
where, at the release, the other Ps running are as many as the recording
machine's CPUs (the Go 1.14.6 runtime's waits, docs/fidelity-log.md,
"Session 16").  Go's lock has no hand-off (a spinning thread may take it
first), so the lock is not kept idle for the waiter: its section is placed
from the release, and only the waiter's own clock pays.

The holder pays too: a waiter that went to sleep marked the lock
``mutex_sleeping``, so the holder's ``unlock`` makes the ``futexwakeup``
syscall that wakes it (``unlock_wake_ns``, once a hold: ``wakes_holder``),
after its section, on its own clock — for the background scavenger, inside
its crit (lock_futex.go's unlock; docs/fidelity-log.md, "Session 24").
"""

from __future__ import annotations

from pagealloc.runtime.invariants import InvariantError


class LockTimeline:
    """The heap lock's holds in virtual time.  ``log``: a list to get (start, end, who) per hold (tests, --check)."""

    __slots__ = ("busy_until", "log", "spin_ns", "wake_ns", "wake_busy_ns", "unlock_wake_ns", "cpus", "sched",
                 "holder", "woken")

    def __init__(self, spin_ns: int = 0, wake_ns: int = 0, wake_busy_ns: int = 0, unlock_wake_ns: int = 0) -> None:
        self.busy_until = 0  # end of the last hold
        self.log: list | None = None
        self.spin_ns, self.wake_ns, self.wake_busy_ns = spin_ns, wake_ns, wake_busy_ns  # CostModel's
        self.unlock_wake_ns = unlock_wake_ns  # CostModel's
        self.holder = None  # who holds the last hold (``hold``'s who)
        self.woken = False  # whether a waiter slept behind the last hold (its unlock wakes one)
        self.cpus = 0  # the recording machine's CPUs (0: unknown, never all busy)
        self.sched = None  # the Ps' schedule (sim.goschedule.PSchedule), when the replay follows one

    def back_ns(self, wait: int, waiter: int, release: int) -> int:
        """What a waiter for the lock that waited ``wait`` ns pays on top to run again once it is released
        at ``release``: nothing within Go's spin; past it, ``wake_busy_ns`` where the Ps other than
        ``waiter`` running then are as many as the CPUs, else ``wake_ns``."""
        if wait <= self.spin_ns:
            return 0
        return self.wake_busy_ns if self.cpus_taken(waiter, release) else self.wake_ns

    def wakes_holder(self, wait: int) -> int:
        """What the last hold's holder pays after it for a waiter that waited ``wait`` ns behind it: past
        the spin the waiter slept in the futex, so the holder's unlock makes the futexwakeup syscall,
        ``unlock_wake_ns``, once a hold (Go's unlock wakes one sleeper; the others find the lock taken
        again and sleep on); 0 within the spin, or for a later sleeper behind the same hold."""
        if wait <= self.spin_ns or self.woken:
            return 0
        self.woken = True
        return self.unlock_wake_ns

    def cpus_taken(self, p: int, t: int) -> bool:
        """Whether the Ps other than ``p`` running at ``t`` take every CPU the recording machine had (False
        where its CPUs or the Ps' schedule are unknown): a lock waiter's way back to a CPU, and the
        background scavenger's cold start ("Session 16", "Session 23")."""
        return self.cpus > 0 and self.sched is not None and self.sched.others_running(p, t) >= self.cpus

    def hold(self, start: int, end: int, who) -> None:
        """Record a critical section [start, end) of ``who``; it must not begin before the last one ended."""
        if start < self.busy_until or end < start:
            raise InvariantError(f"two holders of the heap lock: {who} holds it from {start} ns to {end} ns, "
                                 f"but the last hold ends at {self.busy_until} ns")
        self.busy_until = end
        self.holder, self.woken = who, False
        if self.log is not None:
            self.log.append((start, end, who))


def check_one_holder(log) -> None:
    """The holds of a LockTimeline log, in the order taken, never overlap (InvariantError otherwise):
    they are put through a fresh LockTimeline's check."""
    line = LockTimeline()
    for start, end, who in log:
        line.hold(start, end, who)
