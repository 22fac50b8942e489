"""The background scavenger as an actor of the simulation.

Not a Go file: it drives ``mgcscavenge.bgscavenge`` (Go: ``bgscavenge``),
a generator that yields at every heap-lock acquisition and release and to
sleep or park, and times each step in virtual nanoseconds.

Lock contract: the generator takes and drops ``mheap_.lock`` itself; this
actor decides *when* each acquisition happens (when the last holder is
done, on the engine's ``LockTimeline``) and runs the section there.
"""

from __future__ import annotations

from heapq import heappush

from pagealloc.runtime.invariants import InvariantError
from pagealloc.runtime.lock_futex import MUTATOR, SCAVENGER
from pagealloc.runtime.mgcscavenge import LOCK, PARK, SLEEP, UNLOCKED, bgscavenge

_INF = float("inf")
# States
RESUME, ACQUIRE, SLEEPING, PARKED = range(4)


class BackgroundScavenger:
    """The bgscavenge goroutine: its state, its clock and its CPU time.

    ``time`` is when its next step runs (infinite while parked); the engine
    runs that step when it is the earliest pending one (ties go to the
    scavenger).  ``version`` invalidates its stale schedule entries.
    """

    def __init__(self, engine, locked: bool, scavenge_percent) -> None:
        self.engine = engine
        self.heap = engine.heap
        self.cost = engine.cost
        self.gen = bgscavenge(self.heap, locked=locked, scavenge_percent=scavenge_percent)
        self.state = RESUME
        self.time = 0
        self.version = 0
        self.send = None
        self.sleep_start = 0
        self.cpu_ns = 0
        self.step()  # runs up to its first PARK
        self.heap.lock.running(MUTATOR)

    def schedule(self) -> None:
        """Put its next step on the engine's schedule (tie 0: before a P's event at the same time)."""
        self.version += 1
        if self.time != _INF:
            heappush(self.engine.schedule, (self.time, 0, 0, self.version, None))

    def step(self) -> None:
        """Run its next step at ``self.time``."""
        heap, cost, engine = self.heap, self.cost, self.engine
        if self.state == ACQUIRE:
            self._critical_section()
            return
        if self.state == SLEEPING:
            self.send = self.time - self.sleep_start
        heap.clock.now = self.time
        heap.lock.running(SCAVENGER)
        req = self.gen.send(self.send)
        self.send = None
        spent = heap.drain_meter()
        self.time += spent
        self.cpu_ns += spent
        if req == LOCK:
            self.state = ACQUIRE
        elif req == PARK:
            self.state = PARKED
            self.time = _INF
        else:
            assert req[0] == SLEEP
            self.sleep_start = self.time
            self.time += req[1]
            self.state = SLEEPING

    def _critical_section(self) -> None:
        """It asked for the lock at ``time``: take it when the last holder is done and run
        its section there, atomically (as a P's operation), so that no other actor's hold
        can fall inside it.  Past the spin it slept in the futex, and pays the wake-up."""
        heap, cost, engine = self.heap, self.cost, self.engine
        line = engine.lock_line
        grant = self.time if self.time >= line.busy_until else line.busy_until
        heap.clock.now = grant
        heap.lock.running(SCAVENGER)
        req = self.gen.send(None)
        if req != UNLOCKED:
            raise InvariantError(f"the background scavenger yielded {req!r} while holding the heap lock")
        hold = heap.drain_meter() + cost.lock_ns
        line.hold(grant, grant + hold, SCAVENGER)
        engine.holds.add(hold)
        wait = grant - self.time
        wake = cost.futex_wake_ns if wait > cost.lock_spin_ns else 0
        self.time = grant + hold + wake
        self.cpu_ns += hold
        self.state = RESUME
        engine.note_retained()

    def wake(self, t: int) -> None:
        """Go: wakeScavenger — ends a park or a sleep early."""
        if self.state == PARKED:
            self.time, self.state = t, RESUME
        elif self.state == SLEEPING and t < self.time:
            self.time = t  # step() sends t - sleep start as the time slept
        else:
            return
        self.schedule()
