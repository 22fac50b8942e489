"""The holder's side of a heap-lock waiter that slept (CostModel.unlock_wake_ns, ``LockTimeline.wakes_holder``).

Past Go's spin a waiter marks the lock mutex_sleeping and sleeps in the futex, so the holder's unlock makes
the futexwakeup syscall (lock_futex.go's unlock), after its section and on its own clock: for the background
scavenger, inside crit.  The Go 1.14.6 runtime's scavengeOne timed around its unlocks: 30-42% of churn's
one-page releases (GOMAXPROCS 2) ended with one, 6.8-9.2 us on average (docs/fidelity-log.md, "Session 24").
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from test_lock_one_holder import contended_free_os_memory

from pagealloc.sim.costmodel import CostModel
from pagealloc.sim.engine import Replay
from pagealloc.sim.heaplock import LockTimeline
from pagealloc.sim.replay import replay
from pagealloc.trace.format import OP_ALLOC, OP_FREE_OS_MEMORY

ROOT = Path(__file__).resolve().parents[2]
WAKE = 40_000  # far above the figures' own variation, so a replay shows it plainly


def test_the_first_waiter_past_the_spin_makes_the_holder_pay_once_a_hold():
    line = LockTimeline(spin_ns=2_000, unlock_wake_ns=WAKE)
    line.hold(0, 100_000, "scavenger")
    assert line.holder == "scavenger"
    assert line.wakes_holder(2_000) == 0  # within the spin: it never slept, the lock word says locked
    assert line.wakes_holder(2_001) == WAKE  # it slept: the unlock wakes it
    assert line.wakes_holder(50_000) == 0  # a second sleeper: one futexwakeup wakes one, and it is paid
    line.hold(100_000, 101_000, 3)
    assert line.holder == 3 and line.wakes_holder(60_000) == WAKE  # a new hold, a new unlock


def _scenario(cost: CostModel) -> tuple[list, object]:
    engine = Replay("go1.14", cost, gomaxprocs=4)
    engine.log = []
    rows = contended_free_os_memory()
    forced = next(r[0] for r in rows if r[1] == OP_FREE_OS_MEMORY)
    rows.append((forced + 1_000, OP_ALLOC, 1 << 20, 1, 0, 0))  # P0 allocates again after it
    rows.sort(key=lambda r: r[0])
    ts, op, span, npages, value, p = (list(c) for c in zip(*rows))
    engine.run_batch(ts, op, span, npages, value, p, first_row=0, label="scenario")
    return engine.log, engine.finish("scenario", 0.0)


def test_a_locked_free_os_memory_with_ps_asleep_behind_it_pays_one_wake_after_it():
    """issue 19's scenario: P0's FreeOSMemory holds the lock for ~0.8 ms under go1.14 while Ps 1-3 ask every
    20 us; they sleep behind it, and P0's unlock wakes one.  P0 is behind its recorded times, so its next
    operation starts that much after the hold's end."""
    def gap_after_forced(log):  # from its end to P0's next operation
        k = next(i for i, e in enumerate(log) if e[0] == 0 and e[2] == OP_FREE_OS_MEMORY)
        return next(e[3] for e in log[k + 1:] if e[0] == 0) - log[k][4]
    unpriced, _ = _scenario(replace(CostModel(), unlock_wake_ns=0))
    priced, r = _scenario(replace(CostModel(), unlock_wake_ns=WAKE))
    assert r.p_stall_max_ns > 300_000  # they did sleep behind it
    assert gap_after_forced(unpriced) == 0 and gap_after_forced(priced) == WAKE


@pytest.mark.parametrize("engine", ["python", "compiled"])
def test_the_scavengers_unlock_lengthens_its_crit_where_ps_contend(engine):
    """go114-churn-p2: its two Ps allocate hard, and ask for the lock during the scavenger's releases (which
    Go 1.14 makes with the lock held).  Priced, the scavenger's crits take the wakes more, and so it
    sleeps longer and releases less; its calls stay what they were priced."""
    trace = ROOT / "traces" / "go114-churn-p2.parquet"
    base = replay(trace, "go1.14", cost_model=replace(CostModel(), unlock_wake_ns=0), engine=engine)
    priced = replay(trace, "go1.14", cost_model=replace(CostModel(), unlock_wake_ns=WAKE), engine=engine)
    rest = lambda r: r.scavenger_one_page_crit_mean_ns - r.scavenger_one_page_madvise_mean_ns
    assert rest(priced) - rest(base) > WAKE // 10  # a share of the releases had a sleeper behind them
    assert priced.released_background_count < base.released_background_count


def test_the_engines_agree_with_the_wakes_priced():
    trace = ROOT / "traces" / "go114-json-p8.parquet"
    cost = replace(CostModel(), unlock_wake_ns=WAKE)
    a, b = (replay(trace, "go1.14", cost_model=cost, engine=e) for e in ("python", "compiled"))
    assert a.released_background_count == b.released_background_count
    assert a.p_stall_ns == b.p_stall_ns and a.scavenger_cpu_ns == b.scavenger_cpu_ns
    assert a.scavenger_one_page_crit_mean_ns == b.scavenger_one_page_crit_mean_ns


def test_a_scavenger_gone_on_from_its_hold_does_not_pay():
    """A waiter the event loop reaches after the scavenger's step after its hold has run (a P's event that
    waited for another actor's op of its span, or for its turn in the trace's order, runs at the time it
    was due) finds it gone on: the wake is not paid (the stateful test found the case, with a chunk scan
    of 0.2 ms).  Between the hold and that step it pays: its next step moves."""
    from types import SimpleNamespace

    import pagealloc.sim.scavenger as S

    steps = []
    bg = object.__new__(S.BackgroundScavenger)
    bg.engine = SimpleNamespace(schedule_scavenger=lambda t, version: steps.append(t))
    bg.time, bg.cpu_ns, bg.version, bg.after_hold = 1_000, 0, 0, False
    bg.pay_after_hold(WAKE)
    assert (bg.time, bg.cpu_ns, steps) == (1_000, 0, [])
    bg.after_hold = True
    bg.pay_after_hold(WAKE)
    assert (bg.time, bg.cpu_ns, steps) == (1_000 + WAKE, WAKE, [1_000 + WAKE])
