"""The heap lock.

Go counterpart: runtime.mutex with lock()/unlock() (runtime/lock_futex.go),
in its role as mheap_.lock, which pageAlloc reaches through s.mheapLock.

The model is single-threaded, so the lock never blocks: acquiring a held
lock is a bug in the caller (in Go it would self-deadlock) and raises.  What
the lock adds is bookkeeping: who holds it, how often each actor took it,
and an optional observer that the replay engine uses to charge virtual time
and to see every acquisition and release as a scheduling point.
"""

from __future__ import annotations

from collections import Counter
from typing import Callable


class LockError(RuntimeError):
    """The heap-lock contract was broken (double lock, unlock of a free lock, ...)."""


class HeapLock:
    """Non-reentrant mutex with acquisition counting.  Usable as ``with lock:``."""

    __slots__ = ("holder", "acquisitions", "by_actor", "actor", "observer")

    def __init__(self) -> None:
        self.holder: str | None = None
        self.acquisitions = 0
        self.by_actor: Counter[str] = Counter()
        # Actor charged for the next acquisitions; the replay engine switches it.
        self.actor = "mutator"
        # observer(event, actor) with event in {"lock", "unlock"}.
        self.observer: Callable[[str, str], None] | None = None

    @property
    def held(self) -> bool:
        return self.holder is not None

    def lock(self) -> None:
        """Go: lock(&mheap_.lock)."""
        if self.holder is not None:
            raise LockError(f"heap lock already held by {self.holder}; {self.actor} would deadlock")
        self.holder = self.actor
        self.acquisitions += 1
        self.by_actor[self.actor] += 1
        if self.observer is not None:
            self.observer("lock", self.actor)

    def unlock(self) -> None:
        """Go: unlock(&mheap_.lock)."""
        if self.holder is None:
            raise LockError("unlock of unlocked heap lock")
        actor, self.holder = self.holder, None
        if self.observer is not None:
            self.observer("unlock", actor)

    # The context manager repeats lock/unlock's bodies: it is on every
    # replayed heap operation, and a nested call costs as much as the body.
    def __enter__(self) -> "HeapLock":
        if self.holder is not None or self.observer is not None:
            self.lock()
            return self
        actor = self.holder = self.actor
        self.acquisitions += 1
        self.by_actor[actor] += 1
        return self

    def __exit__(self, *exc) -> None:
        if self.holder is None or self.observer is not None:
            self.unlock()
            return
        self.holder = None
