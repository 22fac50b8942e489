"""A waiter for the heap lock past Go's spin, back on a CPU: futex_wake_ns, or futex_wake_busy_ns with every
CPU busy (sim/heaplock.py, ``LockTimeline.back_ns``).

Past the spin, lock_futex.go's lock gives up the CPU (osyield, then futexsleep); the Go 1.14.6 runtime's
waits that did so lasted 0.4-1.4 ms on average where the other Ps running kept both CPUs of the recording
machine busy, 5-13 us where they did not (docs/fidelity-log.md, "Session 16").
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from tracefiles import rewrite_metadata

from pagealloc.cli import main
from pagealloc.errors import UserError
from pagealloc.sim.costmodel import CostModel
from pagealloc.sim.goschedule import PSchedule
from pagealloc.sim.heaplock import LockTimeline
from pagealloc.sim.replay import replay
from pagealloc.trace.cpuwait import recorded_cpus

US, MS = 1_000, 1_000_000
TRACES = Path(__file__).resolve().parents[2] / "traces"


def four_ps() -> PSchedule:
    """P 0 runs throughout; P 1 and P 2 run up to 1 ms; P 3 is idle."""
    rows = [(0, 0, "user"), (0, 1, "user"), (0, 2, "gc_worker"), (0, 3, "idle"), (1 * MS, 1, "idle"),
            (1 * MS, 2, "idle")]
    table = pa.table({"ts": [r[0] for r in rows], "p": [r[1] for r in rows], "state": [r[2] for r in rows],
                      "reason": [""] * len(rows)})
    return PSchedule.from_table(table, 4)


def line(cpus: int) -> LockTimeline:
    t = LockTimeline(spin_ns=2_000, wake_ns=1_850, wake_busy_ns=900_000)
    t.cpus, t.sched = cpus, four_ps()
    return t


def test_within_the_spin_a_waiter_pays_nothing_more():
    assert line(2).back_ns(2_000, 3, 500 * US) == 0


def test_past_the_spin_with_every_cpu_busy_it_waits_to_run_again():
    assert line(2).back_ns(2_001, 3, 500 * US) == 900_000  # P 0, 1 and 2 running: two CPUs busy
    assert line(3).back_ns(2_001, 3, 500 * US) == 900_000  # three on three
    assert line(2).back_ns(2_001, 1, 500 * US) == 900_000  # the waiter's own P is not counted: P 0 and P 2


def test_past_the_spin_with_a_cpu_free_or_the_cpus_unknown_it_pays_the_wake_up():
    assert line(4).back_ns(50 * US, 3, 500 * US) == 1_850  # three running on four CPUs
    assert line(2).back_ns(50 * US, 3, 2 * MS) == 1_850  # only P 0 runs by then
    assert line(0).back_ns(50 * US, 3, 500 * US) == 1_850  # not recorded by `pagealloc record`
    unscheduled = LockTimeline(2_000, 1_850, 900_000)
    unscheduled.cpus = 2
    assert unscheduled.back_ns(50 * US, 3, 500 * US) == 1_850  # no Ps' schedule to ask


def test_recorded_cpus_reads_the_recording_machines_count_and_refuses_a_bad_one():
    assert recorded_cpus({}, "t") == 0
    assert recorded_cpus({"generator": {"cpu_wait": {"other_cpu_share": 0.0}}}, "t") == 0
    assert recorded_cpus({"generator": {"cpu_wait": {"cpus": 2}}}, "t") == 2
    for bad in (0, -1, "2", 2.0, True, 1 << 20):
        with pytest.raises(UserError, match=r"t: generator.cpu_wait.cpus is .*, not a number of CPUs"):
            recorded_cpus({"generator": {"cpu_wait": {"cpus": bad}}}, "t")


def _with_cpus(tmp_path, cpus, name):
    return str(rewrite_metadata(TRACES / "go114-service-p4.parquet", tmp_path / name,
                                lambda doc: doc["generator"]["cpu_wait"].update(cpus=cpus)))


def test_the_service_recordings_waiters_pay_the_busy_price_and_the_engines_agree(tmp_path):
    """go114-service-p4 (GOMAXPROCS 4 on 2 CPUs, two CPU-bound goroutines): its Ps' waits past the spin
    mostly find both CPUs busy.  A busy price of 1 ms raises its P-stall by about that per such wait;
    said to have 8 CPUs, the same recording pays the idle wake-up (against itself at the default prices:
    the CPUs also decide where a timer its P's reschedule fired waits for that P's M, ``runnext_start``).  The
    compiled and the Python engine give the same figures either way."""
    busy = CostModel(futex_wake_busy_ns=1_000_000)
    path = str(TRACES / "go114-service-p4.parquet")
    eight = _with_cpus(tmp_path, 8, "eight.parquet")
    plain = replay(path, "go1.14", cost_model=CostModel())
    priced = replay(path, "go1.14", cost_model=busy, engine="compiled")
    many = replay(eight, "go1.14", cost_model=busy)
    assert priced.p_stall_ns > plain.p_stall_ns + 1_000_000  # at least one waiter paid the busy price
    assert priced.p_stall_max_ns >= 1_000_000
    assert many.p_stall_ns == replay(eight, "go1.14", cost_model=CostModel()).p_stall_ns  # 8 CPUs: never all busy
    assert replay(path, "go1.14", cost_model=busy, engine="python").deterministic() == priced.deterministic()
    # the default prices a busy machine's way back as an idle one's: recordings without the probe replay as before
    assert CostModel().futex_wake_busy_ns == CostModel().futex_wake_ns


def test_a_bad_cpu_count_in_the_recording_is_one_line_and_exit_2(tmp_path, capfd):
    bad = _with_cpus(tmp_path, 0, "bad.parquet")
    assert main(["replay", bad]) == 2
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and "generator.cpu_wait.cpus is 0, not a number of CPUs" in err
    assert "Traceback" not in err
