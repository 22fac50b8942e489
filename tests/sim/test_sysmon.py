"""sim/sysmon.py: Go 1.14.6's sysmon loop, as far as it fires the background scavenger's timer."""

from __future__ import annotations

from pagealloc.sim.goschedule import NETPOLL_LATE_NS, SYSMON_LATE_NS
from pagealloc.sim.sysmon import STARTM_NS, STW_REQUEST_NS, TICK_OVER_NS, Sysmon, next_delay
from test_goschedule import schedule  # rows (ts, p, Go's state name) -> a recorded PSchedule

US, MS = 1_000, 1_000_000
NEVER = 1 << 62


def passes(sysmon: Sysmon, until: int) -> list[int]:
    """The times of its passes before ``until`` (with no timer)."""
    out = []
    while sysmon.at < until:
        out.append(sysmon.at)
        sysmon.advance(sysmon.at + 1)
    return out


def test_it_looks_every_20_us_for_50_passes_then_backs_off_to_10_ms():
    """proc.go: ``if idle == 0 { delay = 20 } else if idle > 50 { delay *= 2 }``, capped at 10 ms;
    retake never takes a P here, so idle counts every pass."""
    t = passes(Sysmon([], [], []), 200 * MS)
    gaps = [b - a for a, b in zip(t, t[1:])]
    assert t[0] == 20 * US + TICK_OVER_NS
    assert gaps[:50] == [20 * US + TICK_OVER_NS] * 50
    doubled = [40, 80, 160, 320, 640, 1280, 2560, 5120, 10_000]
    assert gaps[50:59] == [d * US + TICK_OVER_NS for d in doubled]
    assert set(gaps[59:]) == {10 * MS + TICK_OVER_NS}


def delays_after(reset: str, passes: int) -> list[int]:
    """next_delay's delays for ``passes`` passes after one that ``reset`` ("branch" or "retake")."""
    delay, idle = next_delay(10_000, 200, reset == "branch", reset == "retake")
    out = [delay]
    for _ in range(passes - 1):
        delay, idle = next_delay(delay, idle, False)
        out.append(delay)
    return out


def test_a_retake_resets_its_count_to_0_and_the_branch_to_1():
    """proc.go: the branch sets ``idle = 0`` and the same pass's retake, finding nothing, counts it
    (``idle++``); a retake that took a P sets ``idle = 0`` and nothing counts that pass.  So after the
    branch the 51st pass doubles, after a retake the 52nd (one fresh churn recording at GOMAXPROCS 2
    had a retake and then 51 quiet passes: its 51st was 20 us)."""
    assert delays_after("branch", 52) == [20] * 50 + [40, 80]
    assert delays_after("retake", 52) == [20] * 51 + [40]


def test_it_sees_the_world_stopping_from_the_request_not_from_a_ps_long_reschedule():
    """gcwaiting is set at the stop's request.  A P whose M sat in the scheduler for ms before the
    stop (its stop, for its timers, begins there) does not make sysmon see the world stopping earlier:
    that stretch began before the request at 29% of the fresh recordings' stops, and sysmon took the
    branch 5,554 times on 12 service runs against the runtime's 273 (149 now).  With no recorded
    request, the world stopped STW_REQUEST_NS before."""
    import pyarrow as pa

    from pagealloc.sim.goschedule import PSchedule

    rows = [(0, 0, "user"), (2 * MS, 0, "sched"), (5 * MS, 0, "stopped"), (5 * MS + 100 * US, 0, "user"),
            (0, 1, "user"), (5 * MS, 1, "stopped"), (5 * MS + 100 * US, 1, "sched"), (5 * MS + 101 * US, 1, "user")]
    table = pa.table({"ts": [r[0] for r in rows], "p": [r[1] for r in rows], "state": [r[2] for r in rows],
                      "reason": [""] * len(rows)})
    request = 5 * MS - 40 * US
    events = pa.table({"ts": [request], "p": [-1], "event": ["stop_request"], "value": [0]})
    recorded = PSchedule.from_table(table, 2, events=events).sysmon
    assert (recorded.wait_starts, recorded.wait_ends) == ([request], [5 * MS + 100 * US])
    assert PSchedule.from_table(table, 2).sysmon.wait_starts == [5 * MS - STW_REQUEST_NS]
    assert PSchedule.from_table(table, 2).stops[0][0] == [2 * MS]  # its timers: the stop begins at its reschedule


def test_a_stop_for_the_world_it_sees_resets_its_delay():
    """A pass inside a stop (from its request on) takes the gcwaiting branch: it sleeps until
    start-the-world wakes it, then looks every 20 us again."""
    restart = 60 * MS
    s = Sysmon([], [(50 * MS, restart)], [restart])
    t = passes(s, 80 * MS)
    assert s.sleeps == 1
    after = [x for x in t if x >= restart]
    assert after[0] == restart and after[1] - after[0] == 20 * US + TICK_OVER_NS
    assert Sysmon([], [(50 * MS, restart)], [restart]).wait_starts == [50 * MS - STW_REQUEST_NS]


def test_with_every_p_idle_it_sleeps_on_the_timer_and_fires_it_on_time():
    s = Sysmon([(0, NEVER)], [], [])
    assert s.advance(5 * MS, 3 * MS) == 3 * MS  # its sleep ends at the timer (the caller adds the lateness)
    assert s.sleeps == 1


def test_an_overdue_timer_is_fired_by_the_m_its_next_pass_starts():
    s = Sysmon([], [], [])
    first = 20 * US + TICK_OVER_NS
    assert s.advance(5 * MS, 50 * US) == first + STARTM_NS
    s = Sysmon([], [], [])
    assert s.advance(5 * MS, 50 * US, can_fire=lambda t: False) is None  # no idle P, or the timer's P runs


def test_it_does_not_sleep_while_the_scavenger_holds_a_p():
    """The recording's idle Ps, less the one the model's scavenger runs on: not every P is idle."""
    held = Sysmon([(0, NEVER)], [], [])
    held.advance(10 * MS, held=True)
    assert held.sleeps == 0
    free = Sysmon([(0, NEVER)], [], [40 * MS])
    free.advance(10 * MS)
    assert free.sleeps == 1 and free.at == 40 * MS  # no timer: until start-the-world wakes it


def test_a_sleep_begun_before_the_timer_was_set_outlasts_it():
    """notetsleep's deadline is the next timer when it began: a timer set later does not wake it (a
    burst-idle recording: sysmon asleep for the program's 200 ms sleep while netpoll fired the
    scavenger's timers)."""
    s = Sysmon([(0, NEVER)], [], [100 * MS])
    s.advance(1 * MS)  # no timer yet: asleep until 100 ms
    assert s.advance(20 * MS, 5 * MS) is None


def test_after_ms_of_busy_ps_an_all_idle_timer_waits_for_netpoll():
    """As in go114-growth-storm-p2 at 336 ms: both Ps busy for 40 ms, then idle.  sysmon, at 10 ms a
    look, looked at ~36.4 ms and next looks at ~46.5 ms; the timer due at 40.4 ms fires at netpoll's
    whole millisecond.  The same with a stop for the world around sysmon's look at 36.4 ms: it looks
    every 105 us again, sees every P idle, sleeps on the timer and fires it on time."""
    busy = [(0, 0, "user"), (0, 1, "user"), (40 * MS, 0, "idle"), (40 * MS, 1, "idle")]
    s = schedule(busy)
    assert s.fire(0, 40 * MS + 100 * US, 40 * MS + 400 * US) == (41 * MS + 100 * US + NETPOLL_LATE_NS, 0, "netpoll")
    look = next(t for t in passes(Sysmon([], [], []), 40 * MS) if t > 30 * MS)
    stop = [(look - 20 * US, 0, "stopped"), (look - 20 * US, 1, "stopped"), (look + 30 * US, 0, "user"),
            (look + 30 * US, 1, "user")]
    s = schedule(sorted(busy + stop))
    when, _, how = s.fire(0, 40 * MS + 100 * US, 40 * MS + 400 * US)
    assert (when, how) == (40 * MS + 400 * US + SYSMON_LATE_NS, "sysmon")


def test_it_keeps_the_recorded_sysmons_phase():
    """With the recorded sysmon's passes (record stream version 4 on), each pass the model computes
    lands on the recorded pass nearest to it within half its delay: the runtime's usleep returned when
    the kernel ran its thread again, ms late with every CPU busy.  With none that near, its own clock."""
    own = passes(Sysmon([], [], []), 200 * MS)
    late = [t + 2 * MS for t in own if t > 50 * MS]  # the runtime's backed-off passes, 2 ms later each ...
    odd = len(late) // 2
    recorded = late[:odd] + [late[odd] + 6 * MS] + late[odd + 1:]  # ... but one, 6 ms later still
    t = passes(Sysmon([], [], [], passes=recorded), 200 * MS)
    assert t[:50] == own[:50]  # the 20 us passes: no recorded pass within 10 us
    assert [x for x in t if x > 50 * MS] == [x for x in late if x < 200 * MS]  # the odd one on its own clock
