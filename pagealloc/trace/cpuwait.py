"""What else ran on the recording machine: its other processes' share of the CPUs while a program was recorded.

Not a Go file.  Why it matters: on Linux, the background scavenger's
madvise(MADV_FREE) of resident pages must shoot down the TLB of every other
CPU that is running a thread of the process at that moment (an IPI, a VM exit
on a virtual machine).  On an otherwise idle 2-vCPU machine, where a Go
program's busy P keeps its thread on the other CPU, that makes a one-page
release cost ~13 us; with other processes taking the CPUs it costs ~2.5 us,
and Go's pacing (sleep = 100 x crit) releases ~2.7 times as often (go-parser
at GOMAXPROCS 2, recorded at nice -19 and beside two busy loops: 376 against
1,021 releases; docs/fidelity-log.md, "Session 5").  The replay's cost model
describes an idle machine, so a recording made on a busy one is not a fair
reference for the scavenger's pace; this module measures how busy it was.

``CpuWaitSampler`` reads, every few milliseconds while the program runs, the
time each of its threads ran and sat runnable waiting for a CPU
(/proc/PID/task/TID/schedstat; a thread's last reading before it exits is
kept), and the machine's busy time (/proc/stat) at the start and the end.
``other_cpu_share`` is the machine's busy time less the program's, over all
its CPUs for the run's wall time: ~0 on an idle machine (the sampler itself
costs ~1% of one CPU).  ``wait_share`` (waiting per unit of running) is not a
measure of other load: a Go program's own threads (Ps, GC workers, sysmon)
queue behind each other too (0.7-0.9 for churn at GOMAXPROCS 2 on 2 CPUs,
idle or not).  Where /proc does not say (not Linux), it reports nothing.
"""

from __future__ import annotations

import os
import threading
import time

from pagealloc.errors import UserError

SAMPLE_S = 0.01
BUSY_SHARE = 0.10  # other processes' share of the CPUs above which `pagealloc record` says the machine was busy
BUSY_MIN_WALL_NS = 100_000_000  # shorter runs: the share is mostly the recorder's own start-up, not load
GENERATOR_KEY = "cpu_wait"  # where a trace's metadata keeps the summary: generator.cpu_wait


def recorded_load(metadata: dict) -> dict | None:
    """The summary a recording kept (``CpuWaitSampler.summary`` under generator.cpu_wait), or None when
    the trace has none (not recorded by `pagealloc record`, recorded before it measured, or not on Linux)."""
    load = (metadata.get("generator") or {}).get(GENERATOR_KEY)
    return load if isinstance(load, dict) and isinstance(load.get("other_cpu_share"), (int, float)) else None


MAX_CPUS = 1 << 16  # more CPUs than any machine has: a corrupt summary


def recorded_cpus(metadata: dict, where: str) -> int:
    """How many CPUs the recording machine had (generator.cpu_wait.cpus), or 0 when the trace does not
    say (not recorded by `pagealloc record`): the replay prices a lock waiter's way back to a CPU by
    whether the other Ps running use them all (sim/heaplock.py, ``back_ns``).  A value that is not a CPU
    count is a UserError."""
    load = (metadata.get("generator") or {}).get(GENERATOR_KEY)
    if not isinstance(load, dict) or load.get("cpus") is None:
        return 0
    cpus = load["cpus"]
    if isinstance(cpus, bool) or not isinstance(cpus, int) or not 1 <= cpus <= MAX_CPUS:
        raise UserError(f"{where}: generator.cpu_wait.cpus is {cpus!r}, not a number of CPUs (1 to {MAX_CPUS})")
    return cpus


def busy_note(summary: dict) -> str | None:
    """`pagealloc record --go 1.14`'s one line when other processes took more than BUSY_SHARE of the CPUs."""
    share = summary.get("other_cpu_share", 0)
    if share <= BUSY_SHARE or summary["wall_ns"] < BUSY_MIN_WALL_NS:
        return None
    return (f"pagealloc: note: other processes used {share:.0%} of this machine's CPUs while the program ran; the "
            "background scavenger's crit (TLB shootdowns) and pace depend on that: record on an idle machine for a "
            "reference to compare replays with")


def machine_busy_ns() -> int | None:
    """The CPUs' busy time since boot, all of them (/proc/stat: all but idle and iowait), or None."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def read_schedstat(pid: int) -> dict[int, tuple[int, int]]:
    """{tid: (ns on a CPU, ns waiting on a run queue)} of the live threads of ``pid`` ({} if gone)."""
    out = {}
    base = f"/proc/{pid}/task"
    try:
        tids = os.listdir(base)
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"{base}/{tid}/schedstat") as f:
                run, wait = f.read().split()[:2]
            out[int(tid)] = (int(run), int(wait))
        except (OSError, ValueError):
            continue  # the thread exited between the listing and the read
    return out


class CpuWaitSampler:
    """Samples a running process's threads until ``stop``; then ``cpu_ns`` / ``wait_ns`` hold the sums."""

    def __init__(self, pid: int, interval_s: float = SAMPLE_S):
        self.pid, self.interval_s = pid, interval_s
        self.last: dict[int, tuple[int, int]] = {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pagealloc-cpuwait", daemon=True)
        self.supported = os.path.exists(f"/proc/{pid}/task")

    def start(self) -> "CpuWaitSampler":
        self._t0, self._busy0 = time.monotonic_ns(), machine_busy_ns()
        if self.supported:
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._done.is_set():
            self.last.update(read_schedstat(self.pid))
            self._done.wait(self.interval_s)

    def stop(self) -> None:
        self._done.set()
        if self._thread.is_alive():
            self._thread.join()
        self._wall, busy1 = time.monotonic_ns() - self._t0, machine_busy_ns()
        self._busy = None if busy1 is None or self._busy0 is None else busy1 - self._busy0

    @property
    def cpu_ns(self) -> int:
        return sum(run for run, _ in self.last.values())

    @property
    def wait_ns(self) -> int:
        return sum(wait for _, wait in self.last.values())

    def summary(self) -> dict | None:
        """The figures for a trace's metadata, or None when nothing was measured."""
        if not self.last or self.cpu_ns <= 0:
            return None
        out = {"cpus": os.cpu_count(), "wall_ns": self._wall, "cpu_ns": self.cpu_ns, "runqueue_wait_ns": self.wait_ns,
               "wait_share": round(self.wait_ns / self.cpu_ns, 4)}
        if self._busy is not None and self._wall > 0:
            other = max(self._busy - self.cpu_ns, 0) / (self._wall * (os.cpu_count() or 1))
            out["other_cpu_share"] = round(other, 4)
        return out
