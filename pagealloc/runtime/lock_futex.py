"""The heap lock.

Go counterpart: runtime.mutex with lock()/unlock() (runtime/lock_futex.go),
in its role as mheap_.lock, which pageAlloc reaches through s.mheapLock.

The model is single-threaded, so the lock never blocks: acquiring a held
lock is a bug in the caller (in Go it would self-deadlock) and raises.  What
the lock adds is bookkeeping: who holds it and how often each actor took it.
The replay engine says which actor runs (``running(actor)``: ``MUTATOR``
for a P or the runtime, ``SCAVENGER`` for the background scavenger) before
running its code, and times the critical sections itself.
"""

from __future__ import annotations

from collections import defaultdict

MUTATOR = "mutator"  # a P running the program, or the runtime on its behalf
SCAVENGER = "scavenger"  # the background scavenger goroutine (bgscavenge)


class LockError(RuntimeError):
    """The heap-lock contract was broken (double lock, unlock of a free lock, ...)."""


class HeapLock:
    """Non-reentrant mutex with acquisition counting.  Usable as ``with lock:``."""

    __slots__ = ("holder", "acquisitions", "by_actor", "actor")

    def __init__(self) -> None:
        self.holder: str | None = None
        self.acquisitions = 0
        # acquisitions per actor; a defaultdict, not a Counter: its += runs in C (a Counter's goes
        # through Python-level method lookups, on every acquisition)
        self.by_actor: defaultdict[str, int] = defaultdict(int)
        # Actor charged for the next acquisitions; the replay engine switches it.
        self.actor = MUTATOR

    def running(self, actor: str) -> None:
        """The actor whose code runs from now on (charged for the next acquisitions)."""
        self.actor = actor

    @property
    def held(self) -> bool:
        return self.holder is not None

    def lock(self) -> "HeapLock":
        """Go: lock(&mheap_.lock)."""
        if self.holder is not None:
            raise LockError(f"heap lock already held by {self.holder}; {self.actor} would deadlock")
        actor = self.holder = self.actor
        self.acquisitions += 1
        self.by_actor[actor] += 1
        return self

    def unlock(self) -> None:
        """Go: unlock(&mheap_.lock)."""
        if self.holder is None:
            raise LockError("unlock of unlocked heap lock")
        self.holder = None

    # ``with lock:`` is lock() ... unlock().  The heap's per-event paths call lock() and
    # unlock() themselves, as Go does (the compiled copy calls them in C; a with-statement
    # would look both methods up as Python attributes on every operation).
    def __enter__(self) -> "HeapLock":
        return self.lock()

    def __exit__(self, *_exc) -> None:
        self.unlock()
