"""The recording machine's other load (pagealloc.trace.cpuwait), measured on real processes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pagealloc.trace import cpuwait

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="needs Linux's /proc")

BURN = "import time\nt = time.perf_counter()\nwhile time.perf_counter() - t < 0.4: pass\n"


def test_read_schedstat_gives_each_thread_its_run_and_wait_time():
    threads = cpuwait.read_schedstat(os.getpid())
    assert os.getpid() in threads  # the main thread's id is the process id
    run, wait = threads[os.getpid()]
    assert run > 0 and wait >= 0
    assert cpuwait.read_schedstat(2**22 + 12345) == {}  # no such process


def test_the_sampler_sums_a_busy_programs_cpu_time_and_the_machines_other_load():
    proc = subprocess.Popen([sys.executable, "-c", BURN])
    sampler = cpuwait.CpuWaitSampler(proc.pid, interval_s=0.005).start()
    proc.wait()
    sampler.stop()
    s = sampler.summary()
    assert s is not None
    # 0.4 s of spinning, most of it seen before the process exited (the last reading is kept)
    assert 0.2e9 <= s["cpu_ns"] <= s["wall_ns"] * s["cpus"]
    assert s["runqueue_wait_ns"] >= 0 and s["wait_share"] == round(s["runqueue_wait_ns"] / s["cpu_ns"], 4)
    assert 0 <= s["other_cpu_share"] <= 1


def test_nothing_measured_is_no_summary():
    sampler = cpuwait.CpuWaitSampler(2**22 + 12345).start()
    sampler.stop()
    assert not sampler.supported and sampler.summary() is None


def test_machine_busy_ns_counts_up():
    a = cpuwait.machine_busy_ns()
    exec(BURN.replace("0.4", "0.05"))
    b = cpuwait.machine_busy_ns()
    assert a is not None and b > a


def test_a_recordings_load_is_read_back_and_a_busy_one_is_named():
    summary = {"cpus": 2, "wall_ns": 500_000_000, "cpu_ns": 10**9, "runqueue_wait_ns": 0, "wait_share": 0.0,
               "other_cpu_share": 0.52}
    assert cpuwait.recorded_load({"generator": {cpuwait.GENERATOR_KEY: summary}}) == summary
    assert cpuwait.recorded_load({"generator": {"name": "pagealloc import"}}) is None
    assert cpuwait.recorded_load({}) is None
    assert "other processes used 52% of this machine's CPUs" in cpuwait.busy_note(summary)
    assert cpuwait.busy_note({**summary, "other_cpu_share": cpuwait.BUSY_SHARE}) is None  # not above the bound
    assert cpuwait.busy_note({**summary, "wall_ns": cpuwait.BUSY_MIN_WALL_NS - 1}) is None  # too short to say
