"""sim/goschedule.py: when the background scavenger's timer fires, by Go 1.14.6's rules."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
import pyarrow as pa
import pytest

from pagealloc.sim.goschedule import (
    DERIVED_GAP_NS,
    FORCE_PREEMPT_NS,
    IDLE,
    NETPOLL_LATE_NS,
    RUNNING,
    RESTART_WAKEP_NS,
    RUNNEXT_STEAL_NS,
    RUNNEXT_STOLEN_NS,
    SCHED,
    SYSMON_LATE_NS,
    WAKEP_DONE_NS,
    PSchedule,
)
from pagealloc.sim.costmodel import CostModel

US, MS = 1_000, 1_000_000


def schedule(rows, nprocs=2):
    """rows: (ts, p, state) with Go's state names."""
    table = pa.table({"ts": [r[0] for r in rows], "p": [r[1] for r in rows], "state": [r[2] for r in rows],
                      "reason": [""] * len(rows)})
    return PSchedule.from_table(table, nprocs)


def sysmon_away(s: PSchedule) -> PSchedule:
    """s with sysmon backed off (in a usleep of 10 ms that outlasts the test): the rules it does not
    come into.  sim/sysmon.py and tests/sim/test_sysmon.py have the cases it does."""
    s.sysmon.delay_us, s.sysmon.idle, s.sysmon.at = 10_000, 100, 100 * MS
    return s


def test_a_running_timer_p_fires_at_its_next_reschedule():
    """Rule 1 (golang/go#38860): P0 runs a goroutine from 0 to 12 ms; a 1 ms sleep from 0.5 ms fires at 12 ms."""
    s = schedule([(0, 0, "user"), (12 * MS, 0, "sched"), (12 * MS + 5 * US, 0, "user"), (0, 1, "idle")])
    assert s.fire(0, 500 * US, 1500 * US) == (12 * MS, 0, "reschedule")


def test_a_timer_p_in_the_scheduler_fires_when_it_starts_its_next_goroutine():
    """Rule 4: checkTimers runs in schedule() before the P runs what comes next; a long stretch in the
    scheduler (its M off the CPU) ends late, and so does the timer."""
    s = schedule([(0, 0, "user"), (1 * MS, 0, "sched"), (1 * MS + 130, 0, "user"), (2 * MS, 0, "sched"),
                  (6 * MS, 0, "user"), (0, 1, "user")])
    assert s.fire(0, 500 * US, 1 * MS + 50) == (1 * MS + 130, 0, "reschedule")
    assert s.fire(0, 1500 * US, 3 * MS) == (6 * MS, 0, "reschedule")


def test_no_timer_runs_while_the_world_is_stopped():
    """A goroutine stopped for a stop-the-world leaves its P in schedule()'s gcstopm, before checkTimers:
    a timer due on it then, or due during the stop, fires when the world restarts (its P back in the
    scheduler), not at the stop."""
    s = schedule([(0, 0, "user"), (0, 1, "user"), (5 * MS, 0, "sched"), (5 * MS, 1, "sched"),
                  (5 * MS + 20 * US, 0, "stopped"), (5 * MS + 20 * US, 1, "stopped"),
                  (5 * MS + 90 * US, 0, "sched"), (5 * MS + 90 * US, 1, "sched"),
                  (5 * MS + 95 * US, 0, "user"), (5 * MS + 95 * US, 1, "user"), (20 * MS, 0, "sched")])
    restart = 5 * MS + 90 * US
    assert s.fire(0, 3 * MS, 4 * MS) == (restart, 0, "start_the_world")  # its P runs until the stop
    assert s.fire(0, 3 * MS, 5 * MS + 10 * US) == (restart, 0, "start_the_world")  # due in the scheduler, before it
    assert s.fire(0, 3 * MS, 5 * MS + 50 * US) == (restart, 0, "start_the_world")  # due while stopped
    assert s.fire(0, 5 * MS + 95 * US, 6 * MS) == (20 * MS, 0, "reschedule")  # after it: rule 1 again


def test_an_idle_timer_p_sleeps_whole_milliseconds_in_netpoll():
    """Rule 2: P1 idle since 1 ms, P0 busy: a 0.3 ms sleep from 1 ms becomes 1 ms, plus netpoll's lateness;
    a longer one is truncated to whole milliseconds and polled again if the timer is not due yet."""
    s = sysmon_away(schedule([(0, 0, "user"), (0, 1, "user"), (1 * MS, 1, "idle")]))
    assert s.fire(1, 1 * MS, 1 * MS + 300 * US) == (2 * MS + NETPOLL_LATE_NS, 1, "netpoll")
    # 2.5 ms: netpoll waits int32(delay / 1e6) = 2 ms, returns late with 0.43 ms still to go, and polls
    # again for 1 ms: three whole milliseconds and two latenesses (netpoll_epoll.go, findrunnable)
    assert s.fire(1, 1 * MS, 3500 * US) == (4 * MS + 2 * NETPOLL_LATE_NS, 1, "netpoll")
    # 2.05 ms: the first poll's lateness already passes the deadline: two whole milliseconds, late once
    assert s.fire(1, 1 * MS, 3 * MS + 50 * US) == (3 * MS + NETPOLL_LATE_NS, 1, "netpoll")
    # the fraction exactly the lateness: due as the first poll returns
    assert s.fire(1, 1 * MS, 3 * MS + NETPOLL_LATE_NS) == (3 * MS + NETPOLL_LATE_NS, 1, "netpoll")
    # a whole number of milliseconds: one poll of that many
    assert s.fire(1, 1 * MS, 4 * MS) == (4 * MS + NETPOLL_LATE_NS, 1, "netpoll")


def test_a_p_going_idle_steals_the_timer_first():
    s = sysmon_away(schedule([(0, 0, "user"), (0, 1, "user"), (1 * MS, 1, "idle"), (1400 * US, 0, "idle"),
                              (1500 * US, 0, "user")]))
    when, p, how = s.fire(1, 1 * MS, 1 * MS + 300 * US)
    assert (when, how) == (1400 * US, "steal") and p in (0, 1)


def test_sysmon_fires_when_every_p_is_idle():
    """Rule 3: no floor, ~80 us late."""
    s = schedule([(0, 0, "idle"), (0, 1, "idle")])
    assert s.fire(0, 100 * US, 400 * US) == (400 * US + SYSMON_LATE_NS, 0, "sysmon")


def test_after_a_gc_it_runs_when_the_gc_worker_stops():
    """wakeScavenger readies it onto the GC's P during the stop-the-world; that P runs it when the
    goroutine it resumes (the GC worker finishing gcMarkTermination) stops."""
    s = schedule([(0, 0, "stopped"), (0, 1, "stopped"), (10 * US, 0, "user"), (10 * US, 1, "gc_worker"),
                  (2 * MS, 1, "sched"), (2 * MS + 1 * US, 1, "sweep"), (2 * MS + 2 * US, 1, "user")])
    assert s.after_gc(1, 5 * US) == (2 * MS, 1)


def test_after_a_gc_it_waits_behind_a_user_goroutine_queued_ahead_of_it():
    """The recording shows the GC's P going on, past bgsweep's first span, to a user goroutine: that
    one was ahead of the scavenger in the P's run queue, so the scavenger runs when it stops (a stop
    for the world on the way is not that), or when another P out of work steals it first."""
    rows = [(0, 0, "stopped"), (0, 1, "stopped"), (10 * US, 0, "user"), (10 * US, 1, "gc_worker"),
            (2 * MS, 1, "sched"), (2 * MS + 1 * US, 1, "sweep"), (2 * MS + 2 * US, 1, "sched"),
            (2 * MS + 3 * US, 1, "user"), (4 * MS, 1, "stopped"), (4 * MS + 10 * US, 1, "user"),
            (7 * MS, 1, "sched"), (7 * MS + 1 * US, 1, "user")]
    assert schedule(rows).after_gc(1, 5 * US) == (7 * MS, 1)
    stolen = rows + [(6 * MS, 0, "sched"), (6 * MS + 1 * US, 0, "idle")]
    assert schedule(stolen).after_gc(1, 5 * US) == (6 * MS + 1 * US, 0)
    # no bgsweep span on the P before the user goroutine: the queue went to a stealing P with bgsweep
    unswept = [r for r in rows if r[2] != "sweep"]
    assert schedule(unswept).after_gc(1, 5 * US) == (2 * MS, 1)
    # a derived schedule has no goroutine kinds: when the cycle's sweeping ends, as before
    assert PSchedule.from_rows([0, 10 * US], [0, 1], 2).behind_queued_user(1, 2 * MS) == 2 * MS


def test_after_a_gc_a_stop_for_the_world_on_its_p_keeps_it_queued_until_the_restart():
    """The GC's P goes on with a goroutine that stops the world (the next gcStart) before the readied
    scavenger runs: that P parks in gcstopm before its run queue, so the scavenger runs after the
    restart -- stolen by startTheWorld's wakep M where a P is idle, else when the P, which goes on
    with the goroutine that stopped the world, next stops; where an M takes the P into schedule() at
    the restart, then.  (Before: at the stop, inside the stop for the world: 121 of 2,668 GC wake-ups
    on 24 fresh service runs, within 100 us of the runtime 4% of them, now 25%.)"""
    rows = [(0, 0, "stopped"), (0, 1, "stopped"), (10 * US, 0, "user"), (10 * US, 1, "user"),
            (2 * MS, 0, "sched"), (2 * MS + 10 * US, 0, "stopped"), (2 * MS + 10 * US, 1, "stopped"),
            (2 * MS + 100 * US, 1, "user"), (7 * MS, 1, "sched"), (7 * MS + 1 * US, 1, "user")]
    restart = 2 * MS + 100 * US
    busy = rows + [(restart, 0, "user"), (9 * MS, 0, "sched")]
    assert schedule(busy).after_gc(1, 5 * US) == (7 * MS, 1)
    idle = rows + [(restart, 0, "sched"), (restart + 2 * US, 0, "idle")]
    assert schedule(idle).after_gc(1, 5 * US) == (restart + RESTART_WAKEP_NS, 0)
    taken = [r if r[:2] != (restart, 1) else (restart, 1, "sched") for r in busy]
    assert schedule(taken).after_gc(1, 5 * US) == (restart, 1)


def test_after_a_gc_a_p_that_runs_out_of_work_steals_it():
    s = schedule([(0, 0, "user"), (0, 1, "gc_worker"), (1 * MS, 0, "sched"), (1 * MS + 1 * US, 0, "idle"),
                  (3 * MS, 1, "sched")])
    assert s.after_gc(1, 5 * US) == (1 * MS + 1 * US, 0)


def test_after_a_gc_a_p_whose_goroutine_a_stack_scan_suspended_steals_it():
    """suspendG parks the scanned goroutine _Gpreempted, off every run queue: its P goes through
    findrunnable with nothing of its own and steals the scavenger waiting on the GC's P (as on fresh
    service-2 at 842.48 ms, where the model had waited 8.9 ms more for the GC's P).  A preemption
    requeues the goroutine on the global queue, which findrunnable takes first: no steal point."""
    def rows(reason):
        return [(0, 0, "user", ""), (0, 1, "gc_worker", ""), (20 * US, 1, "sched", "park"), (21 * US, 1, "sweep", ""),
                (22 * US, 1, "sched", "yield"), (23 * US, 1, "user", ""),  # queued ahead of the scavenger
                (9 * MS, 1, "sched", "preempt"), (9 * MS + 1 * US, 1, "user", ""),
                (3 * MS, 0, "sched", reason), (3 * MS + 40 * US, 0, "user", "")]
    suspended, preempted = (PSchedule.from_table(pa.table({"ts": [r[0] for r in rr], "p": [r[1] for r in rr],
                                                           "state": [r[2] for r in rr],
                                                           "reason": [r[3] for r in rr]}), 2)
                            for rr in (rows("suspend"), rows("preempt")))
    assert suspended.steal_points[0] == [3 * MS] and preempted.steal_points[0] == []
    assert suspended.after_gc(1, 5 * US) == (3 * MS, 0)
    assert preempted.after_gc(1, 5 * US) == (9 * MS, 1)


def test_start_the_worlds_idle_ps_do_not_steal():
    """A P that startTheWorld puts on the idle list (it had no work) never ran findrunnable."""
    s = schedule([(0, 0, "stopped"), (0, 1, "stopped"), (1 * US, 0, "sched"), (1 * US, 1, "gc_worker"),
                  (30 * US, 0, "idle"), (31 * US, 0, "sched"), (40 * US, 0, "user"), (2 * MS, 1, "sched")])
    assert s.after_gc(1, 0) == (2 * MS, 1)


def test_the_recorded_scavenger_is_taken_out_of_the_schedule():
    """The model runs its own scavenger: the recorded one's stretches neither keep a P busy nor
    decide when it steals.  A P that woke only to run it stays idle."""
    s = schedule([(0, 0, "user"), (1 * MS, 0, "sched"), (1 * MS + 1 * US, 0, "scavenger"),
                  (1 * MS + 20 * US, 0, "sched"), (1 * MS + 21 * US, 0, "idle"),
                  (0, 1, "idle"), (5 * MS, 1, "sched"), (5 * MS + 1 * US, 1, "scavenger"), (5 * MS + 20 * US, 1, "sched"),
                  (5 * MS + 21 * US, 1, "idle")])
    assert s.state_at(0, 1 * MS + 10 * US) == IDLE  # idle from where the scavenger started
    assert s.steal_points[0] == [1 * MS + 1 * US]
    assert s.state_at(1, 5 * MS + 10 * US) == IDLE and s.steal_points[1] == []


def test_an_idle_p_that_woke_and_ran_a_scavenger_a_gc_readied_keeps_its_wake_as_a_steal_point():
    """A GC readies the scavenger inside its stop-the-world, where ready finds no idle P to wakep: the M
    that woke idle P 0 and found it there was started for other work, and without the recorded
    scavenger it would have passed through findrunnable (a steal point) and gone idle again.  A run a
    timer readied is the wake's own and stays taken out, wake and all."""
    run = 5 * MS + 1 * US
    rows = [(0, 0, "idle"), (5 * MS, 0, "sched"), (run, 0, "scavenger"), (5 * MS + 20 * US, 0, "sched"),
            (5 * MS + 21 * US, 0, "idle"), (0, 1, "stopped"), (10 * US, 1, "gc_worker"), (9 * MS, 1, "sched"),
            (9 * MS + 1 * US, 1, "user")]
    table = pa.table({"ts": [r[0] for r in rows], "p": [r[1] for r in rows], "state": [r[2] for r in rows],
                      "reason": [""] * len(rows)})
    timer = PSchedule.from_table(table, 2)
    assert timer.ts[0] == [0] and timer.steal_points[0] == []
    assert timer.after_gc(1, 5 * US) == (9 * MS, 1)  # P 1 runs it when its GC worker stops
    readied = pa.table({"woken_by": ["gc"], "next_run_ts": [run], "next_run_p": [0]})
    gc = PSchedule.from_table(table, 2, iterations=readied)
    assert gc.ts[0] == [0, 5 * MS, run] and gc.steal_points[0] == [run]
    assert gc.state_at(0, run + 10 * US) == IDLE
    assert gc.after_gc(1, 5 * US) == (run, 0)  # P 0's pass steals it from P 1's run queue


def test_the_gc_readied_runs_come_from_the_runtimes_iterations():
    from pagealloc.sim.goschedule import gc_readied_runs

    it = pa.table({"woken_by": ["gc", "timer", "gc", "gc"], "next_run_ts": [30, 10, 20, -1], "next_run_p": [1, 1, 1, 0]})
    got = gc_readied_runs(it)
    assert list(got) == [1] and got[1].tolist() == [20, 30]
    assert gc_readied_runs(None) is None and gc_readied_runs(it.drop(["next_run_p"])) is None


def test_derived_schedule_from_rows():
    """Rows closer than DERIVED_GAP_NS: running in between; a preemption every 10 ms of a long run."""
    ts = np.array([0, 100 * US, 200 * US, 200 * US + 2 * DERIVED_GAP_NS, 30 * MS, 30 * MS + 1])
    p = np.array([0, 0, 0, 0, 1, 1])
    s = PSchedule.from_rows(ts, p, 2)
    assert s.derived and s.state_at(0, 150 * US) == RUNNING and s.state_at(0, 1 * MS) == IDLE
    assert s.state_at(1, 1 * MS) == IDLE
    # a long run on P0: rows every 0.5 ms for 25 ms
    ts = np.arange(0, 25 * MS, 500 * US)
    s = PSchedule.from_rows(ts, np.zeros(len(ts), int), 1)
    when, _, how = s.fire(0, 1 * MS, 2 * MS)
    assert (when, how) == (FORCE_PREEMPT_NS, "preempt")


def test_derived_sweep_ends_at_each_cycles_last_free():
    """Without recorded sweep ends, a cycle's sweeping ends at its last free row (the sweeper's frees;
    Go finishes sweeping before the next GC), so after a GC the scavenger runs behind them."""
    from pagealloc.trace.format import OP_ALLOC, OP_FREE, OP_GC

    rows = [(0, OP_ALLOC), (10, OP_GC), (20, OP_FREE), (30, OP_ALLOC), (40, OP_FREE), (50, OP_GC), (60, OP_ALLOC),
            (70, OP_GC), (80, OP_FREE)]
    ts = np.array([t for t, _ in rows])
    op = np.array([o for _, o in rows], dtype=np.int8)
    s = PSchedule.from_rows(ts, np.zeros(len(ts), int), 1, op)
    assert s.cycles == [(10, 40), (50, None), (70, 80)]  # the cycle after the GC at 50 freed nothing
    assert s.after_gc(0, 10) == (40, 0) and s.after_gc(0, 70) == (80, 0)
    assert s.after_gc(0, 50) == (50, 0)  # nothing to sweep: at once (not the next cycle's end)
    assert PSchedule.from_rows(ts, np.zeros(len(ts), int), 1).cycles == []


def test_others_running_counts_the_ps_running_a_goroutine_besides_the_given_one():
    """The CPUs whose TLBs a madvise must shoot down: Ps in a goroutine, not in the scheduler or idle."""
    s = schedule([(0, 0, "user"), (0, 1, "gc_worker"), (0, 2, "sched"), (0, 3, "idle"), (5 * MS, 1, "idle")], nprocs=4)
    assert s.others_running(0, 1 * MS) == 1 and s.others_running(2, 1 * MS) == 2
    assert s.others_running(0, 6 * MS) == 0


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_the_schedule_derived_batch_by_batch_is_the_one_derived_at_once(data):
    """RowsToSchedule keeps only the schedule, not the rows: any split of the rows gives the same PSchedule."""
    from pagealloc.sim.goschedule import RowsToSchedule
    from pagealloc.trace.format import OP_ALLOC, OP_FREE, OP_GC

    n = data.draw(st.integers(1, 120))
    gaps = data.draw(st.lists(st.sampled_from([0, 10 * US, 900 * US, DERIVED_GAP_NS, 3 * MS]), min_size=n, max_size=n))
    ts = np.cumsum(gaps).astype(np.int64)
    p = np.array(data.draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)))
    op = np.array(data.draw(st.lists(st.sampled_from([OP_ALLOC, OP_FREE, OP_FREE, OP_GC]), min_size=n, max_size=n)))
    cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=5)))
    rows = RowsToSchedule()
    for a, b in zip([0, *cuts], [*cuts, n]):
        if b > a:
            rows.add(ts[a:b], p[a:b], op[a:b])
    got = rows.schedule(4)
    # the rule, row by row: a run starts at a P's first row and after a gap >= DERIVED_GAP_NS; idle after it
    for q in range(4):
        t = ts[p == q].tolist()
        want = []
        for i, x in enumerate(t):
            if i == 0 or x - t[i - 1] >= DERIVED_GAP_NS:
                want.append((x, RUNNING))
            if i == len(t) - 1 or t[i + 1] - x >= DERIVED_GAP_NS:
                want.append((x + 1, IDLE))
        assert sorted(zip(got.ts[q], got.state[q]), key=lambda e: e[0]) == sorted(want, key=lambda e: e[0])
    # a cycle per gc row, ending at the last free row before the next gc row
    gcs = [i for i in range(n) if op[i] == OP_GC]
    cycles = []
    for j, g in enumerate(gcs):
        end = gcs[j + 1] if j + 1 < len(gcs) else n
        fr = [i for i in range(g + 1, end) if op[i] == OP_FREE]
        cycles.append((int(ts[g]), int(ts[fr[-1]]) if fr else None))
    assert got.cycles == cycles


def test_a_gc_wakes_a_sleeping_scavenger_whose_timer_has_not_fired_and_stops_the_timer():
    """Go's wakeScavenger: stopTimer, then ready.  A GC before the timer fires decides when the
    scavenger runs (behind bgsweep, after_gc), even where the stopped timer would have fired earlier;
    a GC after the timer fired finds it not parked."""
    from collections import Counter
    from types import SimpleNamespace

    from pagealloc.sim import scavenger as S

    def sleeping(timer_fires, asked=None, released=0):
        runs = []
        psched = SimpleNamespace(after_gc=lambda p, t: (12 * MS, 1), deleted_timer_cleared=lambda p, t, gc_p: t,
                                 stop_requested=lambda t: asked)
        engine = SimpleNamespace(psched=psched, p_free=lambda p, t: t, schedule_scavenger=lambda t, v: runs.append(t))
        bg = object.__new__(S.BackgroundScavenger)
        bg.engine, bg.state, bg.host, bg.version = engine, S.SLEEPING, 0, 0
        bg.fired_by, bg.fired_how = Counter(sysmon=1), "sysmon"  # the rule its sleep's timer was to fire by
        bg.timer_p = 0
        bg.time = bg.timer_fires = timer_fires
        bg.last_release = released
        return bg, runs

    bg, runs = sleeping(10 * MS)
    bg.wake(5 * MS, 1)  # the timer was due at 10 ms, the GC's wake-up readies it behind bgsweep
    assert (bg.time, bg.host, runs) == (12 * MS, 1, [12 * MS])
    assert +bg.fired_by == Counter(gc=1)  # woken by the GC; the timer it stopped never fired
    bg.engine.psched.after_gc = lambda p, t: (t + 7 * MS, 1)
    bg.wake(6 * MS, 1)  # a second GC before it ran: wakeScavenger finds it readied (not parked), a no-op
    assert (bg.time, runs, +bg.fired_by) == (12 * MS, [12 * MS], Counter(gc=1))
    bg, runs = sleeping(4 * MS)
    bg.wake(5 * MS, 1)  # its timer fired first
    assert (bg.time, runs, +bg.fired_by) == (4 * MS, [], Counter(sysmon=1))
    # its last run went on 30 us past the request of the stop this wake-up comes from: the ragged
    # barrier and the stop waited for it, so the GC readies it 30 us later than recorded
    bg, runs = sleeping(10 * MS, asked=4 * MS, released=4 * MS + 30 * US)
    bg.wake(5 * MS, 1)
    assert (bg.time, runs) == (12 * MS + 30 * US, [12 * MS + 30 * US])
    bg, runs = sleeping(10 * MS, asked=4 * MS, released=3 * MS)  # released before the request: as recorded
    bg.wake(5 * MS, 1)
    assert bg.time == 12 * MS


def test_a_timer_a_gc_stopped_stays_in_its_ps_heap_until_that_ps_scheduler_clears_it():
    """stopTimer marks the timer deleted in its P's heap; the P's own checkTimers clears it at its next
    schedule(): at start-the-world for a P that ran a goroutine when the world stopped, when the GC's
    goroutine next stops for the GC's P, when an M next takes it for an idle P."""
    stop = [(5 * MS, q, "sched") for q in range(3)] + [(5 * MS + 20 * US, q, "stopped") for q in range(3)]
    restart = 5 * MS + 90 * US
    s = schedule([(0, 0, "user"), (0, 1, "gc_worker"), (0, 2, "user"), (1 * MS, 2, "sched"), (1 * MS + 1, 2, "idle"),
                  *stop, (restart, 0, "sched"), (restart + 5 * US, 0, "user"),
                  (restart, 1, "gc_worker"), (7 * MS, 1, "sched"), (7 * MS + 1, 1, "user"),
                  (restart, 2, "sched"), (restart + 2 * US, 2, "idle"), (9 * MS, 2, "sched"), (9 * MS + 1, 2, "user")],
                 nprocs=3)
    woken = 5 * MS + 50 * US  # mark termination on P 1
    assert s.deleted_timer_cleared(0, woken, 1) == restart  # gcstopm returns into schedule()
    assert s.deleted_timer_cleared(1, woken, 1) == 7 * MS  # the GC's worker stops
    assert s.deleted_timer_cleared(2, woken, 1) == 9 * MS  # idle: procresize's pass is not a schedule()


def test_the_next_sleep_resets_a_stopped_timer_on_the_p_whose_heap_still_holds_it():
    """modtimer on a timerDeleted timer keeps it in its P's heap: the scavenger's next sleep's timer is
    on the stopped timer's P until that P clears it, wherever the scavenger ran; after, on its own P."""
    from collections import Counter
    from types import SimpleNamespace

    from pagealloc.runtime.mgcscavenge import SLEEP
    from pagealloc.sim import scavenger as S

    def sleep_after_gc(sleep_at):
        fired_on = []
        psched = SimpleNamespace(after_gc=lambda p, t: (t, 3), deleted_timer_cleared=lambda p, t, gc_p: 8 * MS,
                                 stop_requested=lambda t: None,
                                 fire=lambda p, t, due, ran_on: fired_on.append(p) or (due, p, "netpoll"))
        engine = SimpleNamespace(psched=psched, p_free=lambda p, t: t, schedule_scavenger=lambda t, v: None,
                                 host_end=lambda p, t: None)
        bg = object.__new__(S.BackgroundScavenger)
        bg.engine, bg.state, bg.host, bg.version = engine, S.SLEEPING, 2, 0
        bg.fired_by, bg.fired_how = Counter(netpoll=1), "netpoll"
        bg.time = bg.timer_fires = 10 * MS
        bg.timer_p, bg.deleted_timer_p, bg.deleted_until, bg.crits = 2, 0, 0, SimpleNamespace(add=lambda c: None)
        bg.heap, bg.cost = SimpleNamespace(cold_ns=0), SimpleNamespace(cold_ns=lambda ns: 0)
        bg.wake(5 * MS, 3)  # the GC on P 3 stops the timer on P 2; the scavenger runs on P 3
        assert bg.host == 3
        # its next iteration ends in a sleep at sleep_at (the generator's step, reduced to its SLEEP)
        bg.gen = (lambda: (yield (SLEEP, 1 * MS, 10 * US)))()
        bg.send = None
        bg.heap = SimpleNamespace(clock=SimpleNamespace(now=0), lock=SimpleNamespace(running=lambda a: None),
                                  drain_meter=lambda: 0, cold_ns=0, released_by={"background": 0},
                                  scavenger_madvise_ns=0)
        bg.state, bg.time, bg.on_p, bg.cpu_ns, bg.last_release = S.RESUME, sleep_at, True, 0, 0
        bg.released_mark = bg.madvise_mark = 0
        bg.step()
        return fired_on[0]

    assert sleep_after_gc(6 * MS) == 2  # P 2 has not cleared it yet (at 8 ms): reset there
    assert sleep_after_gc(9 * MS) == 3  # cleared: a new timer on the P it ran on


def test_a_timer_netpoll_or_sysmon_fires_runs_on_the_p_that_went_idle_last():
    """The woken M takes the head of the idle list (pidleget), the P that went idle last; the P the
    model's scavenger ran on went idle when it slept."""
    rows = [(0, 0, "user"), (1 * MS, 0, "sched"), (1 * MS + 1, 0, "idle"), (0, 1, "user"), (2 * MS, 1, "sched"),
            (2 * MS + 1, 1, "idle"), (0, 2, "user")]
    when, host, how = sysmon_away(schedule(rows, nprocs=3)).fire(0, 500 * US, 3 * MS)
    assert (how, host) == ("netpoll", 1)  # P 1 went idle after P 0
    when, host, how = schedule(rows, nprocs=3).fire(0, 500 * US, 3 * MS)
    assert (how, host) == ("sysmon", 1)  # sysmon, looking every 105 us, starts that M sooner
    when, host, how = sysmon_away(schedule(rows, nprocs=3)).fire(0, 2500 * US, 3 * MS)  # the scavenger ran on P 0 until 2.5 ms
    assert (how, host) == ("netpoll", 0)
    s = schedule([(0, 0, "idle"), (1 * MS, 1, "idle"), (2 * MS, 2, "idle")], nprocs=3)
    assert s.fire(0, 100 * US, 5 * MS)[1:] == (2, "sysmon")


def test_each_wake_up_passes_wakeps_m_through_the_head_of_the_idle_list():
    """ready calls wakep: an M takes the idle list's head, finds nothing and puts it back, so that P
    is the head again WAKEP_DONE_NS after the wake-up, unless the scavenger's own P idles later."""
    s = schedule([(0, 0, "idle"), (1 * MS, 1, "idle"), (2 * MS, 2, "idle")], nprocs=3)
    when, host, _ = s.fire(0, 100 * US, 5 * MS)
    assert host == 2 and s.model_idle[1] == when + WAKEP_DONE_NS  # P 1 was the head but for P 2
    when2, host2, _ = s.fire(0, when + 5 * US, 10 * MS, ran_on=2)  # its run ended before wakep's pass
    assert host2 == 1
    when3, host3, _ = s.fire(0, when2 + 30 * US, 15 * MS, ran_on=1)  # ... and after it
    assert host3 == 1


def test_the_recorded_scavengers_wakep_passes_on_other_ps_are_taken_out():
    """The model wakes its own scavenger (and passes wakep's M itself): the idle P that the recorded
    scavenger's wake-up passed through stays idle from when it went idle before."""
    rows = [(0, 0, "idle"), (10 * MS, 0, "sched"), (10 * MS + 5 * US, 0, "scavenger"), (10 * MS + 15 * US, 0, "sched"),
            (10 * MS + 16 * US, 0, "idle"), (0, 1, "user"), (1 * MS, 1, "sched"), (1 * MS + 1, 1, "idle"),
            (10 * MS + 9 * US, 1, "sched"), (10 * MS + 17 * US, 1, "idle"), (20 * MS, 1, "sched"), (20 * MS + 2 * US, 1, "idle")]
    s = schedule(rows)
    assert s.ts[1] == [0, 1 * MS, 1 * MS + 1, 20 * MS, 20 * MS + 2 * US]  # the pass at 20 ms is not near one


def test_a_goroutine_stopping_for_the_world_is_no_steal_point_and_the_restart_steals_due_timers():
    """A P whose goroutine stops for a stop-the-world parks in gcstopm, not findrunnable; at the
    restart, startTheWorld's wakep starts an M on the idle list's head that steals due timers."""
    rows = [(0, 0, "idle"), (0, 1, "user"), (2 * MS, 1, "sched"), (2 * MS + 10 * US, 1, "stopped"),
            (2 * MS + 5 * US, 0, "sched"), (2 * MS + 10 * US, 0, "stopped"), (2 * MS + 60 * US, 0, "sched"),
            (2 * MS + 62 * US, 0, "idle"), (2 * MS + 60 * US, 1, "sched"), (2 * MS + 61 * US, 1, "user")]
    s = sysmon_away(schedule(rows))
    assert s.steal_points[1] == []
    restart = 2 * MS + 60 * US
    assert s.fire(0, 100 * US, 1500 * US) == (restart + RESTART_WAKEP_NS, 0, "start_the_world")  # due before it
    assert s.fire(0, 100 * US, 3 * MS)[2] == "netpoll"  # due after it


def test_a_p_out_of_work_steals_the_scavenger_waiting_behind_a_gc_worker():
    """The scavenger a timer readied onto P0's runnext waits while P0's dedicated mark worker runs,
    but findrunnable's last stealing round on a P out of work takes a P's runnext: P1, done with its
    goroutine at 1.5 ms, runs it there.  With no such P it waits for the worker to stop."""
    rows = [(0, 0, "user", ""), (1 * MS, 0, "sched", "preempt"), (1 * MS + 1 * US, 0, "gc_worker", "dedicated"),
            (4 * MS, 0, "sched", "park"), (4 * MS + 1 * US, 0, "user", ""), (0, 1, "user", "")]
    idle_later = rows + [(1500 * US, 1, "sched", "park"), (1500 * US + 2 * US, 1, "idle", "")]
    busy, stolen = (PSchedule.from_table(pa.table({"ts": [r[0] for r in rr], "p": [r[1] for r in rr],
                                                   "state": [r[2] for r in rr], "reason": [r[3] for r in rr]}), 2)
                    for rr in (rows, idle_later))
    assert busy.readied_run(0, 1 * MS, 2) == (4 * MS, 0)
    when, p = stolen.readied_run(0, 1 * MS, 2)
    assert p == 1 and 1500 * US <= when < 4 * MS
    assert stolen.readied_run(0, 4 * MS + 1 * US, 2) == (4 * MS + 1 * US, 0)  # no worker: runnext_start


def test_a_timer_netpoll_would_fire_while_the_world_is_stopped_waits_for_the_restart():
    """stopTheWorld takes the idle Ps off the idle list: netpoll's M, back from epoll_wait inside the
    stop, finds no P (stopm), and the timer fires at the restart (17 of 4,763 netpoll firings on 12
    fresh service runs fell inside a stop)."""
    rows = [(0, 0, "idle"), (0, 1, "user"), (2 * MS, 1, "sched"), (2 * MS + 10 * US, 1, "stopped"),
            (2 * MS + 5 * US, 0, "sched"), (2 * MS + 10 * US, 0, "stopped"), (2 * MS + 300 * US, 0, "sched"),
            (2 * MS + 302 * US, 0, "idle"), (2 * MS + 300 * US, 1, "sched"), (2 * MS + 301 * US, 1, "user")]
    s = sysmon_away(schedule(rows))
    restart = 2 * MS + 300 * US
    assert s.netpoll_fires(0, 1 * MS, 1 * MS + 900 * US) == 2 * MS + NETPOLL_LATE_NS  # inside the stop
    assert s.fire(0, 1 * MS, 1 * MS + 900 * US) == (restart + RESTART_WAKEP_NS, 0, "start_the_world")


def test_an_m_in_the_scheduler_before_the_recorded_scavenger_ran_is_kept():
    """Only a short pass before the recorded scavenger's run is an M woken for it; a long stretch in
    the scheduler (an M spinning, or off the CPU) stays in the schedule."""
    s = schedule([(0, 0, "idle"), (1 * MS, 0, "sched"), (1 * MS + 400 * US, 0, "scavenger"),
                  (1 * MS + 410 * US, 0, "sched"), (1 * MS + 411 * US, 0, "idle"), (0, 1, "user")])
    assert s.state_at(0, 1 * MS + 100 * US) != IDLE
    assert s.state_at(0, 1 * MS + 405 * US) == IDLE


def test_a_recorded_scavenger_run_a_preemption_cut_in_two_is_one_run():
    """The recorded scavenger, its M off the CPU mid-crit, came back preempted (it had taken over the
    preempted goroutine's time slice from runnext) and ran on: scavenger, sched, scavenger.  Taken out, the
    P is not left in the scheduler for the ms the run lasted; what followed starts where the run began."""
    run = 1 * MS + 10 * US
    s = schedule([(0, 0, "user"), (1 * MS, 0, "sched"), (run, 0, "scavenger"), (5 * MS, 0, "sched"),
                  (5 * MS + 1 * US, 0, "scavenger"), (5 * MS + 2 * US, 0, "sched"), (5 * MS + 3 * US, 0, "user"),
                  (0, 1, "user")])
    assert s.state_at(0, run - 1) != IDLE and s.sched_end(0, 1 * MS) == run  # the pass before it stays
    assert s.state_at(0, 3 * MS) != SCHED  # not in the scheduler for the 4 ms of the run


def test_a_timer_its_ps_reschedule_fired_runs_when_that_ps_m_is_back_or_is_stolen():
    """checkTimers readies the scavenger onto runnext, and the P's M, off the CPU (a scheduler stretch of
    ms), starts it when it is back if the other Ps' goroutines take every CPU.  With a CPU free wakep's
    spinning M steals it, RUNNEXT_STEAL_NS after the firing, onto the idle P it took; a stretch shorter
    than RUNNEXT_STOLEN_NS is the M's own pass, which starts it.  The recording's CPUs unknown (0):
    never all busy."""
    fired, back = 2 * MS, 4 * MS
    s = schedule([(0, 0, "user"), (fired, 0, "sched"), (back, 0, "user"), (0, 1, "user"), (0, 2, "user"),
                  (0, 3, "user"), (1 * MS, 3, "sched"), (1 * MS + 130, 3, "idle")], nprocs=4)
    assert s.runnext_start(0, fired, cpus=2) == (back, 0)  # P1 and P2 run: both CPUs taken
    assert s.runnext_start(0, fired, cpus=4) == (fired + RUNNEXT_STEAL_NS, 3)  # a CPU free: P3's M steals it
    assert s.runnext_start(0, fired, cpus=0) == (fired + RUNNEXT_STEAL_NS, 3)
    assert s.runnext_start(1, 1 * MS, cpus=2) == (1 * MS, 1)  # P1 runs its goroutine: not in the scheduler
    short = schedule([(0, 0, "user"), (fired, 0, "sched"), (fired + RUNNEXT_STOLEN_NS - 1, 0, "user"),
                      (0, 1, "idle")])
    assert short.runnext_start(0, fired, cpus=2) == (fired, 0)  # its M's own pass: it starts it
    nobody = schedule([(0, 0, "user"), (fired, 0, "sched"), (back, 0, "user"), (0, 1, "user")])
    assert nobody.runnext_start(0, fired, cpus=4) == (fired, 0)  # no idle P for an M to take


def test_after_a_stop_the_initiators_p_runs_its_timers_at_its_next_reschedule():
    """The goroutine that stopped the world goes on running after startTheWorld, without schedule():
    its P's timers wait for its next reschedule.  A P an M takes into schedule() runs them at the
    restart; one procresize put on the idle list leaves them to startTheWorld's wakep M."""
    stop = [(5 * MS, q, "sched") for q in range(3)] + [(5 * MS + 20 * US, q, "stopped") for q in range(3)]
    restart = 5 * MS + 90 * US
    s = schedule([(0, 0, "user"), (0, 1, "user"), (0, 2, "user"), *stop,
                  (restart, 0, "gc_worker"), (8 * MS, 0, "sched"), (8 * MS + 1, 0, "user"),
                  (restart, 1, "sched"), (restart + 3 * US, 1, "user"),
                  (restart, 2, "sched"), (restart + 2 * US, 2, "idle")], nprocs=3)
    assert s.fire(0, 1 * MS, 5 * MS + 50 * US) == (8 * MS, 0, "reschedule")  # the initiator's P
    assert s.fire(1, 1 * MS, 5 * MS + 50 * US) == (restart, 1, "start_the_world")
    assert s.fire(2, 1 * MS, 5 * MS + 50 * US) == (restart + RESTART_WAKEP_NS, 2, "start_the_world")


def test_a_goroutine_a_preemption_requeued_runs_elsewhere_when_the_scavenger_holds_its_p_long_enough():
    """At a preemption the goroutine goes to the global run queue; when the timer that fires there
    readies the scavenger, wakep's M on an idle P takes the goroutine if the scavenger holds the P
    longer than WAKEP_TAKES_NS.  The P is then idle, and its next timer fires as an idle P's."""
    from pagealloc.sim.goschedule import WAKEP_TAKES_NS

    rows = [(0, 0, "user", ""), (10 * MS, 0, "sched", "preempt"), (10 * MS + 5 * US, 0, "user", ""),
            (20 * MS, 0, "sched", "preempt"), (20 * MS + 5 * US, 0, "user", ""),
            (0, 1, "idle", ""), (0, 2, "user", "")]

    def table():
        return pa.table({"ts": [r[0] for r in rows], "p": [r[1] for r in rows], "state": [r[2] for r in rows],
                         "reason": [r[3] for r in rows]})

    for held, how in ((WAKEP_TAKES_NS + 10 * US, "netpoll"), (WAKEP_TAKES_NS - 10 * US, "reschedule")):
        s = PSchedule.from_table(table(), 3)
        when, host, first = s.fire(0, 1 * MS, 5 * MS)
        assert (when, host, first) == (10 * MS, 0, "reschedule")
        assert s.fire(0, when + held, when + held + 1 * MS)[2] == how


def test_check_wakeups_holds_every_ended_sleep_and_park_to_one_wakeup():
    """--check's scavenger invariant: the wake-ups it counts are its ended sleeps and parks.  A GC that
    came again before the woken scavenger ran used to count (and move it) twice: synth-contention."""
    from collections import Counter
    from pathlib import Path
    from types import SimpleNamespace

    from pagealloc.runtime.invariants import InvariantError
    from pagealloc.sim import scavenger as S
    from pagealloc.sim.replay import replay

    bg = object.__new__(S.BackgroundScavenger)
    bg.state, bg.timer_fires, bg.crits, bg.parks = S.PARKED, 0, SimpleNamespace(n=2), 1  # two sleeps, one park
    bg.fired_by = Counter(sysmon=1, gc=1)  # one sleep ended by its timer, one by a GC; parked now
    bg.check_wakeups(10 * MS)
    bg.fired_by["gc"] += 1
    with pytest.raises(InvariantError, match="wake-ups"):
        bg.check_wakeups(10 * MS)
    trace = Path(__file__).resolve().parents[2] / "traces" / "synth-contention.parquet"
    assert set(replay(trace, "go1.14", check=True).scavenger_wakeups) == {"gc"}
    # the figure the fix gave, at the prices of its day (before the heap side of a release, "Session 23")
    fix_day = replace(CostModel(), scavenge_heap_ns=0, unlock_wake_ns=0)
    assert replay(trace, "go1.14", check=True, cost_model=fix_day).scavenger_wakeups == {"gc": 27}


def test_a_scavenger_its_ps_reschedule_readies_waits_behind_the_gc_worker_the_p_runs_first():
    """schedule() runs checkTimers, then findRunnableGCWorker, then runqget: the scavenger a timer readies
    there waits at the tail of the run queue while a dedicated or fractional mark worker runs (through a
    stop for the world), but not behind an idle-priority worker (findrunnable starts one only when
    nothing else is runnable) nor behind a user goroutine (the existing rule: it runs there)."""
    rows = [(0, 0, "user", ""), (1 * MS, 0, "sched", "suspend"), (1 * MS + 1 * US, 0, "gc_worker", "fractional"),
            (2 * MS, 0, "stopped", "stw"), (2 * MS + 10 * US, 0, "gc_worker", "start_the_world"),
            (2 * MS + 60 * US, 0, "sched", "park"), (2 * MS + 61 * US, 0, "user", ""),
            (3 * MS, 0, "sched", "preempt"), (3 * MS + 1 * US, 0, "gc_worker", "idle"), (4 * MS, 0, "sched", "park"),
            (4 * MS + 1 * US, 0, "user", ""), (5 * MS, 0, "sched", "preempt"), (5 * MS + 1 * US, 0, "user", ""),
            (0, 1, "user", "")]
    table = pa.table({"ts": [r[0] for r in rows], "p": [r[1] for r in rows], "state": [r[2] for r in rows],
                      "reason": [r[3] for r in rows]})
    s = PSchedule.from_table(table, 2)
    assert s.fire(0, 500 * US, 800 * US) == (1 * MS, 0, "reschedule")
    assert s.behind_gc_worker(0, 1 * MS) == 2 * MS + 10 * US  # the worker, stopped for the world, then it
    assert s.behind_gc_worker(0, 3 * MS) == 3 * MS  # an idle worker: the scavenger runs first
    assert s.behind_gc_worker(0, 5 * MS) == 5 * MS  # a user goroutine next
    assert s.behind_gc_worker(1, 1 * MS) == 1 * MS  # another P's worker is not in the way
    # scavenger_wakeups names a reschedule its goroutine's preemption caused "preempt", as the runtime does
    assert [s.preempted_at(0, t) for t in (1 * MS, 3 * MS, 5 * MS, 5 * MS + 1 * US)] == [False, True, True, True]
    assert not s.preempted_at(1, 3 * MS)
    derived = schedule([(0, 0, "user"), (1 * MS, 0, "sched"), (1 * MS + 1 * US, 0, "gc_worker"), (2 * MS, 0, "sched")])
    assert derived.behind_gc_worker(0, 1 * MS) == 1 * MS  # no reason recorded: no priority worker known


def test_the_recorded_scavengers_long_crits_are_its_thread_off_the_cpu():
    """A recorded crit of 1 ms or more (the OS ran another thread on the scavenger's CPU mid-release) is
    a window [its record - crit, its record); short crits and parks are not.  Its turn begins halfway
    between the recorded release before it and its own.  The model's release that ends the sleep a window
    began in is off its CPU as long, once; so is a release that starts in the window's turn, before the
    window or as it begins (the model's cycle a little ahead of Go's); a parked scavenger meets none in
    its sleep."""
    iterations = pa.table({"ts": [5 * MS, 20 * MS, 40 * MS, 60 * MS], "outcome": ["sleep", "sleep", "park", "sleep"],
                           "crit_ns": [30 * US, 3 * MS, -1, 2 * MS]})
    table = pa.table({"ts": [0, 0], "p": [0, 1], "state": ["idle", "idle"], "reason": ["", ""]})
    s = PSchedule.from_table(table, 2, iterations=iterations)
    assert (s.off_cpu_starts, s.off_cpu_ends) == ([17 * MS, 58 * MS], [20 * MS, 60 * MS])
    assert s.off_cpu_turns == [(5 * MS - 30 * US + 17 * MS) // 2, (17 * MS + 58 * MS) // 2]  # the park is no release
    assert s.off_cpu_ns(1 * MS, 10 * MS, 10 * MS + 30 * US) == 0  # nearer the runtime's release before
    assert s.off_cpu_ns(17 * MS + 1, 18 * MS, 18 * MS + 30 * US) == 0  # it slept after the window began
    assert s.off_cpu_ns(None, 18 * MS, 18 * MS + 30 * US) == 0  # parked through the window
    assert s.off_cpu_ns(16 * MS, 30 * MS, 30 * MS + 30 * US) == 3 * MS  # asleep at 17 ms, its next release meets it ...
    assert s.off_cpu_ns(16 * MS, 31 * MS, 31 * MS + 30 * US) == 0  # ... once
    assert s.off_cpu_ns(50 * MS, 58 * MS, 58 * MS + 30 * US) == 2 * MS  # a release going on as the window began
    ahead = PSchedule.from_table(table, 2, iterations=iterations)
    assert ahead.off_cpu_ns(1 * MS, 11 * MS, 11 * MS + 30 * US) == 3 * MS  # in the window's turn, 6 ms ahead
    assert ahead.off_cpu_ns(11 * MS, 30 * MS, 30 * MS + 30 * US) == 0  # the turn is met: the next release is not
    assert ahead.off_cpu_ns(None, 40 * MS, 40 * MS + 30 * US) == 2 * MS  # woken from a park, in the turn
    assert PSchedule.from_table(table, 2).off_cpu_ns(16 * MS, 30 * MS, 31 * MS) == 0  # no iterations recorded: no windows
