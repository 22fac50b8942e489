"""The background scavenger as an actor of the simulation.

Not a Go file: it drives ``mgcscavenge.bgscavenge`` (Go: ``bgscavenge``),
a generator that yields at every heap-lock acquisition and release and to
sleep or park, and times each step in virtual nanoseconds.

Lock contract: the generator takes and drops ``mheap_.lock`` itself; this
actor decides *when* each acquisition happens (when the last holder is
done, on the engine's ``LockTimeline``) and runs the section there.
"""

from __future__ import annotations

from collections import Counter

from pagealloc.runtime.invariants import InvariantError
from pagealloc.runtime.lock_futex import MUTATOR, SCAVENGER
from pagealloc.runtime.malloc import PAGE_SIZE
from pagealloc.runtime.mgcscavenge import LOCK, PARK, SLEEP, UNLOCKED, bgscavenge
from pagealloc.runtime.mheap import Prices
from pagealloc.sim.goschedule import OFF_CPU_CRIT_NS
from pagealloc.sim.histogram import Histogram

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
        self.host = 0  # the P it runs on; its sleep's timer lives on that P
        self.on_p = False  # running on its host P now (between a wake-up and its next sleep or park)
        # What woke it: the goschedule rule that fired each timer that did fire, or "gc" (wakeScavenger);
        # ReplayResult.scavenger_wakeups, beside the recording's own (trace.sidetables.P_FIRED_BY)
        self.fired_by: Counter[str] = Counter()
        self.fired_how = ""  # while it sleeps: the rule that will fire its timer, unless a GC wakes it first
        self.parks = 0  # how often it parked (nothing to do); it slept crits.n times, once after each release
        self.crits = Histogram()  # crit of each iteration that slept (Go's measure: wall time of scavengeOne)
        # the crits of its one-page releases under OFF_CPU_CRIT_NS (the level ``scavenger_crit="level"``
        # sets to the recording's): their sum, their madvise calls' part (MHeap.scavenger_madvise_ns, the
        # part sysmon's in-run probe measures: replay.in_run_costs) and number, and its background bytes
        # and madvise ns at its last sleep or park
        self.one_page_crit_ns = 0
        self.one_page_madvise_ns = 0
        self.one_page_crits = 0
        # of them, those whose MADV_FREE shot down no other CPU (no other P running: MHeap.release_peers),
        # their number and calls: the class sysmon's probe reads with every P idle (replay.in_run_costs)
        self.one_page_alone = 0
        self.one_page_alone_madvise_ns = 0
        self.released_alone = False  # its last release shot down no other CPU (set in its critical section)
        self.released_mark = 0
        self.madvise_mark = 0
        self.heap = engine.heap
        self.cost = engine.cost
        self.gen = bgscavenge(self.heap, locked=locked, scavenge_percent=scavenge_percent)
        self.state = RESUME
        self.time = 0
        self.version = 0
        self.send = None
        self.last_release = 0  # when its last release ended, and so its sleep began: what went cold since
        self.timer_fires = 0  # while it sleeps: when its timer fires (a GC before then finds it parked)
        self.timer_p = 0  # while it sleeps: the P whose heap holds its timer
        # a timer a GC stopped stays in its P's heap, marked deleted, until that P clears it: a sleep
        # before then resets it there (goschedule.deleted_timer_cleared)
        self.deleted_timer_p = 0
        self.deleted_until = 0
        self.cpu_ns = 0
        self.asleep_since = None  # when its last sleep began (None: parked since, or not yet slept)
        self.after_hold = False  # between a critical section and its next step
        # the in-run probe's level its releases are priced at (price_releases_by): ProbeLevels, the cost
        # model it scales and the heap's prices at each level met (per mille -> Prices); None: the heap's own
        self.levels = None
        self.level_cost = None
        self.level_prices = {}
        self.step()  # runs up to its first PARK
        self.heap.lock.running(MUTATOR)

    def price_releases_by(self, levels, cost) -> None:
        """Its releases are priced at ``cost`` with the prices of a release the machine sets scaled by
        ``levels`` (shootdown.ProbeLevels: sysmon's probe's level about each step of the run, relative to
        its mean), by the step its critical section begins in; the other actors' releases stay at
        ``cost``."""
        self.levels, self.level_cost, self.level_prices = levels, cost, {}

    def _level_prices(self, t: int):
        """The heap's prices at the probe's level at ``t``; None at the mean (the heap's own)."""
        level = self.levels.at(t)
        if level == 1000:
            return None
        prices = self.level_prices.get(level)
        if prices is None:
            prices = self.level_prices[level] = Prices(self.level_cost.releases_scaled(level / 1000))
        return prices

    def schedule(self) -> None:
        """Put its next step on the engine's schedule (tie 0: before a P's event at the same time)."""
        self.version += 1
        if self.time != _INF:
            self.engine.schedule_scavenger(self.time, self.version)

    def step(self) -> None:
        """Run its next step at ``self.time``."""
        heap, cost, engine = self.heap, self.cost, self.engine
        self.after_hold = False
        if self.state == ACQUIRE:
            self._critical_section()
            return
        if self.state == SLEEPING:
            self.send = self.time - self.last_release  # the time slept
            heap.cold_ns = self._cold_ns(self.send)
        if not self.on_p and engine.psched is not None:  # exact timers: it needs no P
            engine.host_begin(self.host)
            self.on_p = True
        heap.clock.now = self.time
        heap.lock.running(SCAVENGER)
        req = self.gen.send(self.send)
        self.send = None
        spent = heap.drain_meter()
        self.time += spent
        self.cpu_ns += spent
        if req == LOCK:
            self.state = ACQUIRE
            return
        heap.cold_ns = 0  # unspent (nothing released): the next wake-up prices the time since the last release
        released_mark, self.released_mark = self.released_mark, heap.released_by["background"]
        madvise_mark, self.madvise_mark = self.madvise_mark, heap.scavenger_madvise_ns
        if req == PARK:
            self.parks += 1
            engine.host_end(self.host, self.time)
            self.on_p = False
            self.state = PARKED
            self.asleep_since = None
            self.time = _INF
        else:
            assert req[0] == SLEEP
            self.crits.add(req[2])
            released = heap.released_by["background"] - released_mark
            if released == PAGE_SIZE and req[2] < OFF_CPU_CRIT_NS:
                calls = heap.scavenger_madvise_ns - madvise_mark
                self.one_page_crit_ns += req[2]
                self.one_page_madvise_ns += calls
                self.one_page_crits += 1
                if self.released_alone:
                    self.one_page_alone += 1
                    self.one_page_alone_madvise_ns += calls
            engine.host_end(self.host, self.time)
            self.on_p = False
            self.last_release = self.asleep_since = self.time
            self.state = SLEEPING
            sched = engine.psched
            if sched is None:  # no Ps' schedule (the engine driven alone): it wakes on time
                self.time += req[1]
                self.timer_fires = self.time
                self.fired_how = "on_time"
                self.fired_by["on_time"] += 1
                return
            self.timer_p = self.deleted_timer_p if self.time < self.deleted_until else self.host
            self.deleted_until = 0  # reset or not, it is live again: it fires and leaves the heap
            fired, self.host, how = sched.fire(self.timer_p, self.time, self.time + req[1], self.host)
            self.timer_fires = fired
            runs, runs_on = fired, self.host
            if how == "reschedule" or how == "preempt":
                # fired by its P's own schedule(), it waits there behind a GC worker the P runs first (unless
                # a P out of work steals it); else that P's M starts it when back on a CPU, or another M steals it
                runs, runs_on = sched.readied_run(self.host, fired, engine.lock_line.cpus)
            if how == "reschedule" and sched.preempted_at(self.host, fired):
                how = "preempt"  # the runtime's name for a reschedule its goroutine's preemption caused
            self.host = runs_on
            self.fired_how = how
            self.fired_by[how] += 1  # taken back if a GC wakes it first (wake)
            self.time = engine.p_free(self.host, runs)

    def wakeups(self, end: int) -> dict[str, int]:
        """{what woke it: how often} up to ``end``, the program's end: a sleep whose timer fires
        later did not end."""
        counts = Counter(self.fired_by)
        if self.state == SLEEPING and self.timer_fires > end:
            counts[self.fired_how] -= 1
        return {how: n for how, n in sorted(counts.items()) if n > 0}

    def check_wakeups(self, end: int) -> None:
        """Invariant (``--check``): every sleep and park that ended by ``end`` ended once, a sleep by its
        timer or by a GC, a park by a GC, and ``wakeups`` counted each once."""
        woken = sum(self.wakeups(end).values())
        pending = (self.state == SLEEPING and self.timer_fires > end) + (self.state == PARKED)
        if woken != self.crits.n + self.parks - pending:
            raise InvariantError(f"the background scavenger's wake-ups ({woken}) are not its ended sleeps and "
                                 f"parks ({self.crits.n} + {self.parks} - {pending} still pending)")

    def _critical_section(self) -> None:
        """It asked for the lock at ``time``: take it when the last holder is done and run
        its section there, atomically (as a P's operation), so that no other actor's hold
        can fall inside it.  Past the spin it slept in the futex, and pays the wake-up."""
        heap, cost, engine = self.heap, self.cost, self.engine
        line = engine.lock_line
        grant = self.time if self.time >= line.busy_until else line.busy_until
        engine.pay_unlock_wake(line.holder, line.wakes_holder(grant - self.time))
        heap.clock.now = grant
        heap.lock.running(SCAVENGER)
        heap.op_ns, heap.tlb_p = grant, self.host  # its M is its host's: the others' Ms take the shootdown
        released = heap.releases_by["background"]
        prices = self._level_prices(grant) if self.levels is not None else None
        if prices is not None:  # the machine's level as sysmon's probe read it then
            own = heap.price
            heap.price = prices
        req = self.gen.send(None)
        if prices is not None:
            heap.price = own
        if req != UNLOCKED:
            raise InvariantError(f"the background scavenger yielded {req!r} while holding the heap lock")
        hold = heap.drain_meter() + cost.lock_ns
        off = 0  # the OS took its thread off the CPU mid-crit as it took the recorded one's (outside the lock)
        if heap.releases_by["background"] != released:
            self.released_alone = heap.release_peers == 0  # read now: a P's release may come before its sleep
            if engine.psched is not None:
                off = engine.psched.off_cpu_ns(self.asleep_since, self.time, grant + hold)
        line.hold(grant, grant + hold, SCAVENGER)
        engine.holds.add(hold)
        wait = grant - self.time
        wake = line.back_ns(wait, self.host, grant)
        self.time = grant + hold + wake + off
        self.cpu_ns += hold
        self.state = RESUME
        self.after_hold = True  # until its next step: its unlock's futexwakeup may still be charged (pay_after_hold)
        engine.note_retained()

    def pay_after_hold(self, ns: int) -> None:
        """Its unlock woke a waiter that slept behind its last hold (LockTimeline.wakes_holder): the
        futexwakeup syscall, ``ns``, after its section and inside its crit.  Its next step (due at or after
        the hold's end) moves by ``ns`` — unless that step has run: a waiter the event loop reaches after
        its time (a P's event that waited for another actor's op of its span, or for its turn in the
        trace's order, runs at the time it was due) finds the scavenger gone on, and the wake is not paid."""
        if not self.after_hold:
            return
        self.time += ns
        self.cpu_ns += ns
        self.schedule()

    def wake(self, t: int, p: int) -> None:
        """Go: wakeScavenger, from a GC's mark termination at ``t`` on P ``p`` — ends a park or a
        sleep whose timer has not fired by ``t`` (stopTimer: it never fires; the scavenger runs when
        the GC readied it even if the timer would have fired before).  It runs behind bgsweep
        (goschedule.after_gc), on a P that is free."""
        sched = self.engine.psched
        run, host = sched.after_gc(p if p >= 0 else self.host, t) if sched is not None else (t, self.host)
        asked = sched.stop_requested(t) if sched is not None and self.state == SLEEPING else None
        if asked is not None and self.last_release > asked:
            # its run went on past the stop's request: in Go the ragged barrier and the stop wait for it,
            # so mark termination readies it that much later than the recording, made without it, has
            run += self.last_release - asked
        parked = False
        if self.state == PARKED:
            self.state = RESUME
            parked = True
        elif not (self.state == SLEEPING and t < self.timer_fires):
            return  # its timer fired first: it is not parked (step() sends the time slept)
        if not parked:
            self.fired_by[self.fired_how] -= 1  # its timer never fires
            self.timer_fires = t  # readied now (Go: scavenge.parked = false): a later GC finds it awake
            if sched is not None:  # stopTimer: deleted, still in its P's heap
                self.deleted_timer_p = self.timer_p
                self.deleted_until = sched.deleted_timer_cleared(self.timer_p, t, p)
        self.fired_by["gc"] += 1
        self.host = host
        self.time = self.engine.p_free(host, run)
        if parked:
            self.heap.cold_ns = self._cold_ns(self.time - self.last_release)
        self.schedule()

    def _cold_ns(self, slept: int) -> int:
        """CostModel.cold_ns of waking at ``time`` on ``host`` after ``slept``: the busy machine's curve where
        the other Ps running then take every CPU the recording machine had ("Session 23")."""
        return self.cost.cold_ns(slept, self.engine.lock_line.cpus_taken(self.host, self.time))
