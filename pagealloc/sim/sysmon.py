"""sysmon's loop, as far as it fires the background scavenger's timer: Go 1.14.6's proc.go ``sysmon``.

Not a Go file of its own: ``sysmon()`` in proc.go, reduced to what decides
when it starts an M for an overdue timer.  Lock contract: sysmon has no P
and takes ``sched.lock``, never ``mheap_.lock``; it only ever fires the
timer, so it needs none of the heap lock's bookkeeping.

Each pass of the loop sleeps ``usleep(delay)`` and then looks:

- the world is stopping or stopped (``sched.gcwaiting``), or every P is idle
  (``npidle == gomaxprocs``): if the next timer is still ahead it sleeps on
  ``sysmonnote`` until that timer (``notetsleep``; ``startTheWorld`` wakes
  it early), and either way its delay goes back to 20 us;
- a timer is overdue (``next < now``): ``startm`` wakes an M onto an idle
  P, whose ``findrunnable`` runs its own P's timers or steals them from a P
  that is not running a goroutine;
- ``retake`` took no P from a syscall (our programs' Ps never sit in one):
  after 50 such passes the delay doubles each pass, up to 10 ms.

So sysmon is punctual only while it keeps seeing idle Ps or stops for the
world.  After a few ms with some P always busy it looks every 10 ms, and a timer due
in an all-idle stretch that begins then waits for netpoll's whole
milliseconds or sysmon's next look (../shared/reference/go114-facts.md;
on a fresh growth-storm recording with sysmon's loop printed, all 25 of the
all-idle timers that fired more than 300 us late had sysmon looking every
5-10 ms, and 89 of the 95 fired by sysmon on time had it asleep on the
timer: docs/fidelity-log.md, "Session 12"); and since the recorder writes sysmon's
loop (record stream version 4), tests/trace/test_go114_record.py holds every
pass's delay to ``next_delay`` and every pass that took the branch to
``Sysmon``'s idea of when it does.

The model's sysmon runs on the recorded Ps' schedule: "every P idle" and
the stops for the world are the recording's, from their requests (recorded
since record stream version 4; before, ``STW_REQUEST_NS`` before the world
stopped, the recordings' mean); the timer is the model's scavenger's.  The
program's own timers and syscalls, which also end sysmon's sleeps (and a
syscall that retake takes a P from resets its delay), are not in a trace.

Where the recording has sysmon's own passes (record stream version 4 on),
the model's keeps their phase: each pass it computes lands on the recorded
pass nearest to it within half its delay (the same pass), else keeps its
own clock ("Session 20").  Its usleep returns when the kernel runs its
thread again, ~0.1 ms after the delay when a CPU is free and up to ms
later when the Ps take every CPU; and the program's own timers and
syscalls move it.  Without the recorded passes the model's backed-off
passes fell within 300 us of a recorded one 5-11% of the time (chance), and
which of sysmon and netpoll fired an all-idle timer was a coin flip.
"""

from __future__ import annotations

from bisect import bisect_right

TICK_OVER_NS = 85_000  # usleep(delay) returns this much after delay (timer slack; 105 us a pass at delay 20, measured)
STARTM_NS = 25_000  # from sysmon's pass that sees an overdue timer to the timer run by the M it started (7-45 us)
# gcwaiting is set this long before the world stops: the mean, as a pass's chance to see it goes with the
# window's length (72,677 recorded requests: median 56 us, p90 174; by workload, means 28-201 us)
STW_REQUEST_NS = 104_000
MAX_SLEEP_NS = 60_000_000_000  # forcegcperiod / 2: its longest sleep with no timer
_FIRST_DELAY_US, _MAX_DELAY_US, _PASSES_BEFORE_BACKOFF = 20, 10_000, 50


class Sysmon:
    """The model's sysmon over a recorded schedule.  ``advance`` moves it on in time order.

    ``idle``: sorted, disjoint (start, end) spans in which the recording has every P idle;
    ``stops``: (the world stopped: its first stopped row, start-the-world) of each stop for the world; ``restarts``:
    start-the-world times (they wake its sleep); ``passes``: the recorded sysmon's passes, whose phase it keeps.
    """

    def __init__(self, idle: list[tuple[int, int]], stops: list[tuple[int, int]], restarts: list[int],
                 requests: list[int] | None = None, start: int = 0, passes: list[int] | None = None) -> None:
        self.passes = passes or []  # the recorded sysmon's passes, sorted (record stream version 4 on)
        self.idle_starts, self.idle_ends = [s for s, _ in idle], [e for _, e in idle]
        waits = _merged([(_requested(b, requests), e) for b, e in stops])  # gcwaiting: from the request on
        self.wait_starts, self.wait_ends = [s for s, _ in waits], [e for _, e in waits]
        self.restarts = restarts
        self.at = start + _FIRST_DELAY_US * 1000 + TICK_OVER_NS  # its next pass
        self.delay_us, self.idle = _FIRST_DELAY_US, 0
        self.sleeping = False  # ``at`` is the end of a sleep on sysmonnote, not of a usleep
        self.sleep_target: int | None = None  # the timer that sleep was for
        self.sleeps = 0  # sleeps on sysmonnote begun

    def _looks_idle(self, t: int, held: bool) -> bool:
        """A pass at t takes the branch: the world is stopping, or every P is idle (``held``: the
        model's scavenger holds one of the Ps the recording has idle)."""
        return _within(self.wait_starts, self.wait_ends, t) or (not held and _within(self.idle_starts, self.idle_ends, t))

    def requested_before(self, t: int) -> int | None:
        """When the stop for the world that t falls in was asked for (gcwaiting set), if t is between
        a stop's request and its restart; else None."""
        i = bisect_right(self.wait_starts, t) - 1
        return self.wait_starts[i] if i >= 0 and t < self.wait_ends[i] else None

    def _next_restart(self, t: int) -> int | None:
        i = bisect_right(self.restarts, t)
        return self.restarts[i] if i < len(self.restarts) else None

    def advance(self, until: int, timer: int | None = None, can_fire=None, held: bool = False) -> int | None:
        """Run sysmon's passes before ``until`` with the scavenger's timer due at ``timer`` (None:
        no timer; ``held``: the scavenger runs on a P meanwhile).  Returns when it gets the timer
        run (a pass that starts an M for it, the M's latency included; ``can_fire(t)`` says whether
        that M can run it then), or None; a sleep on the timer that ends at or after it returns
        ``timer`` itself (the caller adds the sleep's lateness).  Passes at or after ``until`` are
        left for the next call."""
        while self.at < until:
            now = self.at
            if self.sleeping:  # back from notetsleep: the branch resets, then the overdue check
                self.sleeping = False
                self._next_pass(reset=True)
                if timer is not None and timer <= now and (can_fire is None or can_fire(now)):
                    return timer if now == self.sleep_target else now + STARTM_NS
                continue
            branch = self._looks_idle(now, held)
            if branch and (timer is None or timer > now):
                wake = timer if timer is not None else now + MAX_SLEEP_NS
                restart = self._next_restart(now)
                if restart is not None and restart < wake:
                    wake = restart
                self.sleeps += 1
                self.at, self.sleeping, self.sleep_target = wake, True, timer
                continue
            self._next_pass(reset=branch)
            if timer is not None and timer < now and (can_fire is None or can_fire(now)):
                return now + STARTM_NS
        return None

    def _next_pass(self, reset: bool) -> None:
        """The end of a pass (``reset``: it took the branch), then the next usleep."""
        self.delay_us, self.idle = next_delay(self.delay_us, self.idle, reset)
        self.at += self.delay_us * 1000 + TICK_OVER_NS
        if self.passes:
            self.at = _nearest(self.passes, self.at, self.delay_us * 500)


def _nearest(sorted_times: list[int], t: int, within: int) -> int:
    """The time of ``sorted_times`` nearest to t if it is within ``within`` of it, else t."""
    i = bisect_right(sorted_times, t)
    near = [sorted_times[j] for j in (i - 1, i) if 0 <= j < len(sorted_times) and abs(sorted_times[j] - t) <= within]
    return min(near, key=lambda x: abs(x - t)) if near else t


def next_delay(delay_us: int, idle: int, reset: bool, retook: bool = False) -> tuple[int, int]:
    """(delay, idle) of sysmon's next pass after one with ``delay_us`` and ``idle``, as the loop's top
    computes them.  The branch (``reset``) puts them back to 20 us and 0 and then retake, finding
    nothing, counts the pass (idle 1); a retake that took a P from a syscall (``retook``) leaves idle
    at 0, so the backoff starts one pass later.  Past 50 counted passes the delay doubles, up to 10 ms."""
    if reset or retook:
        idle, delay_us = 0, _FIRST_DELAY_US
    if not retook:
        idle += 1
    if idle > _PASSES_BEFORE_BACKOFF:
        delay_us = min(delay_us * 2, _MAX_DELAY_US)
    return delay_us, idle


def _requested(stop: int, requests: list[int] | None) -> int:
    """When the stop for the world that stopped at ``stop`` was asked for: the recorded request
    (record stream version 4) at or before it, within 10 ms, else STW_REQUEST_NS before it."""
    if requests:
        i = bisect_right(requests, stop) - 1
        if i >= 0 and stop - requests[i] <= 10_000_000:
            return requests[i]
    return max(0, stop - STW_REQUEST_NS)


def _within(starts: list, ends: list, t: int) -> bool:
    i = bisect_right(starts, t) - 1
    return i >= 0 and t < ends[i]


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]
