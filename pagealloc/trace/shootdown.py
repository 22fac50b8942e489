"""The recording machine's TLB shootdown, probed beside the program.

Not a Go file.  Why it matters: on Linux, MADV_FREE of resident pages must
shoot down the TLB of every other CPU running a thread of the process at
that moment (an IPI; a VM exit on a virtual machine).  Go 1.14's background
scavenger sleeps 100 times its crit, and on an idle 2-vCPU machine the
shootdown is most of a one-page release's crit (~10 of ~13 us), so the
real scavenger's pace follows it, and it moves from one run to the next
(the host's state: 8.6-15.6 us over 65 runs of the service program on one
idle VM, the runtime's crit following it; docs/fidelity-log.md, "Session 8").

``machine_probe`` measures it now: MADV_FREE of one resident Go page,
alone and while busy threads of this process, as many as the program has
other Ps, compete for the other CPUs (``OtherThread``), in rounds that
alternate them, medians over the rounds (~1.1 s).  It also measures what
the same call adds when those threads stream through memory instead of
computing (``OtherThread(memory=True)``: what a heap-heavy program's Ps do
while they allocate; sim/traffic.py prices it, docs/fidelity-log.md, "Session 9"),
and both again as means, with the calls that took 100-300 us in (the price
Go's pacing follows; docs/fidelity-log.md, "Session 13").  ``pagealloc record`` runs it right before and right
after the program — not during it, where its thread would take a CPU from
the program — and keeps both under the metadata's
``generator.machine_probe`` (trace.format checks their form on reading);
``recorded_probes`` reads them back, and sim.calibrate.probed_costs prices
a replay with them.  Since session 16 it also reads a lock waiter's way
back to a CPU (``wake_samples``): on the 2-vCPU VM a thread that gave up its
CPU waits ~1 ms for one when every CPU is busy, which is most of what the
Go 1.14.6 runtime's Ps wait for the heap lock there.  ``pagealloc calibrate`` measures the same things
(and more) with these helpers.
"""

from __future__ import annotations

import bisect
import hashlib
import mmap
import os
import statistics
import threading
import time
from dataclasses import dataclass

from pagealloc.errors import UserError
from pagealloc.trace.format import MACHINE_PROBE_KEY

PAGE = 4096  # the kernel's page (Go's is two)
PROBE_ROUNDS, PROBE_REPEAT = 7, 60  # ~1.1 s (three sides a round)
WAKE_REPEAT = 60  # busy wake-ups a probe (~0.3 s)
PREEMPTED_NS = 1_000_000  # a call this long had the probe's thread off its CPU: left out of the means


def touch(buf: mmap.mmap, npages: int) -> None:
    """Write one byte of each of the first ``npages`` 4 KiB pages: resident from now on."""
    for i in range(0, npages * PAGE, PAGE):
        buf[i] = 1


class OtherThread:
    """While open, ``n`` threads of this process busy outside the GIL, each on another CPU when the
    machine has one free: hashing a 1 MiB buffer (hashlib releases the GIL; a small working set), or
    with ``memory`` adding 1 to a 64 MiB array a MiB at a time (numpy releases it too; caches and TLB
    streamed through, as by a P that allocates and writes new objects)."""

    def __init__(self, n: int = 1, memory: bool = False):
        self.n = max(n, 1)
        self.memory = memory

    def _hash(self) -> None:
        data = bytes(1 << 20)
        while not self.stop:
            hashlib.sha256(data)

    def _stream(self) -> None:
        import numpy as np  # a dependency of the package; only this mode needs it

        heap, step, at = np.ones(8 << 20), 1 << 17, 0
        while not self.stop:
            heap[at:at + step] += 1.0
            at = (at + step) % heap.size

    def __enter__(self) -> "OtherThread":
        self.stop = False
        work = self._stream if self.memory else self._hash
        self.threads = [threading.Thread(target=work, daemon=True) for _ in range(self.n)]
        for t in self.threads:
            t.start()
        time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.stop = True
        for t in self.threads:
            t.join()


# The wake-up probe: a thread that ran, blocks briefly and is woken, with every CPU busy or one free.  Two
# child processes (no GIL between them): the waiter runs RUN_NS, says it blocks, blocks on a pipe; the
# holder spins HOLD_NS, writes the time and runs on RUN_NS, as a P's M that unlocked does.
WAKE_RUN_NS, WAKE_HOLD_NS = 3_000_000, 30_000
_WAKE_CHILD = """
import os, sys, time
role, n, run, hold, a, b, out = sys.argv[1], *map(int, sys.argv[2:])
def spin(ns):
    end = time.monotonic_ns() + ns
    while time.monotonic_ns() < end:
        pass
if role == "waiter":
    lat = []
    for _ in range(n):
        spin(run)
        os.write(a, b"x")
        t = int.from_bytes(os.read(b, 8), "little")
        lat.append(time.monotonic_ns() - t)
    os.write(out, b"".join(x.to_bytes(8, "little") for x in lat))
else:
    for _ in range(n):
        os.read(a, 1)
        spin(hold)
        os.write(b, time.monotonic_ns().to_bytes(8, "little"))
        spin(run)
"""


def other_cpus() -> int:
    """One busy thread per CPU other than the probe's own (at least one): what keeps every CPU busy
    beside it, and the narrow allocprobe's width (record)."""
    return max((os.cpu_count() or 2) - 1, 1)


def wake_busy_mean_ns(repeat: int) -> float:
    """The mean of ``wake_samples`` with every CPU busy: the waits of a whole slice are the point, so
    the long ones stay in (``futex_wake_busy_ns``; record's probe and ``pagealloc calibrate``)."""
    return statistics.fmean(wake_samples(repeat, other_cpus()))


def wake_samples(repeat: int, others: int) -> list[int]:
    """ns from a release to the released waiter running again, ``repeat`` times, with ``others`` busy
    threads of this process beside the two: what a P's M that gave up its CPU waiting for the heap lock
    (an osyield or a futex sleep in lock_futex.go) waits to run again, with no CPU free (``others`` =
    CPUs - 1: the holder runs on) or with one (``others`` = 0; on a virtual machine the idle vCPU must be
    woken too) (docs/fidelity-log.md, "Session 16")."""
    import contextlib
    import subprocess
    import sys

    a_r, a_w = os.pipe()
    b_r, b_w = os.pipe()
    out_r, out_w = os.pipe()
    fds = (a_r, a_w, b_r, b_w, out_r, out_w)
    try:
        with OtherThread(others) if others else contextlib.nullcontext():
            kids = [subprocess.Popen([sys.executable, "-c", _WAKE_CHILD, role, str(repeat), str(WAKE_RUN_NS),
                                      str(WAKE_HOLD_NS), str(a), str(b), str(out_w)], pass_fds=fds)
                    for role, a, b in (("waiter", a_w, b_r), ("holder", a_r, b_w))]
            buf = b""
            while len(buf) < 8 * repeat:
                chunk = os.read(out_r, 8 * repeat - len(buf))
                if not chunk:
                    break
                buf += chunk
            for kid in kids:
                kid.wait()
    finally:
        for fd in fds:
            os.close(fd)
    if len(buf) < 8 * repeat:
        raise OSError("the wake-up probe's waiter ended early")
    return [int.from_bytes(buf[i:i + 8], "little") for i in range(0, len(buf), 8)]


def madv_free_small_samples(repeat: int, touched: bool = True, sleep_s: float = 0.0002) -> list[int]:
    """ns of each of ``repeat`` MADV_FREE calls on one Go page (2 x 4 KiB), resident (``touched``) or
    never touched, each after sleeping ``sleep_s`` (the other CPU takes this process's mm up again
    meanwhile)."""
    buf = mmap.mmap(-1, 2 * PAGE * repeat, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        if touched:
            touch(buf, 2 * repeat)
        samples = []
        for k in range(repeat):
            time.sleep(sleep_s)
            t0 = time.perf_counter_ns()
            buf.madvise(mmap.MADV_FREE, 2 * PAGE * k, 2 * PAGE)
            samples.append(time.perf_counter_ns() - t0)
    finally:
        buf.close()
    return samples


def madv_free_small_ns(repeat: int, touched: bool = True, sleep_s: float = 0.0002) -> float:
    """Median ns of ``madv_free_small_samples``."""
    return statistics.median(madv_free_small_samples(repeat, touched, sleep_s))


def mean_below_cap(samples: list[int]) -> float:
    """Mean of the samples under ``PREEMPTED_NS``: a call's price with its slow tail in, without the
    probe's thread being taken off its CPU (which the model leaves out of the runtime's crit too)."""
    kept = [x for x in samples if x < PREEMPTED_NS]
    return statistics.fmean(kept) if kept else float(PREEMPTED_NS)


def probe_available() -> bool:
    """Whether this machine has madvise(MADV_FREE) to probe (Linux)."""
    return hasattr(mmap, "MADV_FREE")


def machine_probe(rounds: int = PROBE_ROUNDS, repeat: int = PROBE_REPEAT, others: int = 1) -> dict | None:
    """What MADV_FREE of one resident Go page costs here now, alone (``madv_free_go_page_ns``), what
    ``others`` busy threads of this process add (``tlb_shootdown_ns``: the IPI to whichever CPU runs one
    of them), and what it adds on top when they stream through memory (``memory_traffic_ns``): medians
    over ``rounds`` rounds that alternate the three, so that a round where the threads got no CPU does
    not decide.  ``record`` passes the program's other Ps (GOMAXPROCS - 1): on an idle
    machine one thread or three read the same (9.5 us here), but beside other load the threads compete
    for the CPUs as the program's Ps do (beside two busy loops, one thread read 0.5 us and three 11.2).

    The same two prices with each side's slow calls in (``tlb_shootdown_mean_ns``,
    ``memory_traffic_mean_ns``): beside busy threads a call now and then takes 100-300 us (in some
    phases of a host one in ten of the runtime's own calls did), and Go's pacing follows the mean of its crit, not its
    median (the sleep after each release is 170 times that release's crit).  They are the mean of all
    rounds' calls under ``PREEMPTED_NS`` beside the threads, less the median call alone, and the
    streaming side's such mean less the computing side's; ``probed_costs`` prices a replay with them.
    And ``wake_busy_mean_ns`` and ``wake_free_ns``, the mean of ``shootdown.wake_samples`` with every
    CPU busy and the median with one free: what a waiter for the heap lock that gave up its CPU waits to run again
    (the replay's ``futex_wake_busy_ns`` and ``futex_wake_ns``; docs/fidelity-log.md, "Session 16").
    None where madvise(MADV_FREE) is not there (not Linux) or fails."""
    if not probe_available():
        return None
    alone, shootdown, traffic = [], [], []
    all_shared, all_streaming = [], []  # every call beside the threads, for the means
    try:
        for _ in range(rounds):
            a = madv_free_small_samples(repeat)
            with OtherThread(others):
                shared = madv_free_small_samples(repeat)
            with OtherThread(others, memory=True):
                streaming = madv_free_small_samples(repeat)
            all_shared += shared
            all_streaming += streaming
            a, shared, streaming = (statistics.median(x) for x in (a, shared, streaming))
            alone.append(a)
            shootdown.append(max(shared - a, 0.0))
            traffic.append(max(streaming - shared, 0.0))
    except OSError:
        return None
    call = statistics.median(alone)  # the call alone, as madv_free_go_page_ns keeps it and the replay prices it
    shared_mean, streaming_mean = mean_below_cap(all_shared), mean_below_cap(all_streaming)
    try:  # a thread that gave up its CPU, back on one (session 16): every CPU busy, the mean (its slices
        # are the point); one free, the median (a few slow samples are other load taking that CPU)
        busy = wake_busy_mean_ns(WAKE_REPEAT)
        free = statistics.median(wake_samples(WAKE_REPEAT, 0))
    except OSError:
        return None
    return {"madv_free_go_page_ns": int(round(call)), "wake_busy_mean_ns": int(round(busy)),
            "wake_free_ns": int(round(free)),
            "tlb_shootdown_ns": int(round(statistics.median(shootdown))),
            "memory_traffic_ns": int(round(statistics.median(traffic))),
            "tlb_shootdown_mean_ns": int(round(max(shared_mean - call, 0.0))),
            "memory_traffic_mean_ns": int(round(max(streaming_mean - shared_mean, 0.0)))}


IN_RUN_COLUMNS = ["ts", "unused_ns", "madv_free_ns", "npidle", "page"]  # reference.release_probe (go114records)
IN_RUN_MIN_SAMPLES = 10  # fewer (a program of ~0.1 s): the level is not read from them


def in_run_probe_mean_ns(metadata: dict, where: str) -> float | None:
    """The mean of sysmon's in-run release probe (record stream version 6; ``go114patch``'s
    ``pageallocProbeRun``): sysUnused's calls on a resident page of sysmon's own, made every 10 ms while
    the program ran, so the TLB shootdown in them is the one the scavenger's releases paid then.  The
    calls ``in_run_probe_calls`` keeps; None where the recording has no such probe, or fewer than
    IN_RUN_MIN_SAMPLES of them; UserError where the table is malformed."""
    calls = in_run_probe_calls(metadata, where)
    if calls is None or len(calls[1]) < IN_RUN_MIN_SAMPLES:
        return None
    return statistics.fmean(unused for _, unused, *_ in calls[1])


def in_run_probe_classes(metadata: dict, where: str, gomaxprocs: int) -> tuple[list[int], list[int]] | None:
    """The calls ``in_run_probe_mean_ns`` averages, split as a release's TLB shootdown falls: (those
    made with every one of the recording's ``gomaxprocs`` Ps idle, so no CPU ran a goroutine to shoot
    down; those with some P running).  Sysmon has no P, so its probe with ``npidle == gomaxprocs`` is
    like a background release with no other P running (MHeap.release_peers == 0).  None where
    ``in_run_probe_mean_ns`` is; UserError where a probe had more idle Ps than ``gomaxprocs``."""
    calls = in_run_probe_calls(metadata, where)
    if calls is None or len(calls[1]) < IN_RUN_MIN_SAMPLES:
        return None
    idle = [npidle for *_, npidle, _ in calls[1]]
    if max(idle) > gomaxprocs:
        raise UserError(f"{where}: metadata reference.release_probe has a probe with {max(idle)} idle Ps, "
                        f"more than GOMAXPROCS {gomaxprocs}")
    alone = [r[1] for r in calls[1] if _every_p_idle(r, gomaxprocs)]
    beside = [r[1] for r in calls[1] if not _every_p_idle(r, gomaxprocs)]
    return alone, beside


def _every_p_idle(row: list[int], gomaxprocs: int) -> bool:
    """Whether a probe's call (a row of IN_RUN_COLUMNS) was made with every one of the recording's Ps idle:
    the class ``in_run_probe_classes`` splits by (no CPU ran a goroutine to shoot down)."""
    return row[3] == gomaxprocs


# The probe's level over the run ("Session 28"): the machine's state moves within a run (the runtime's
# one-page crit over 250 ms windows of the fresh service runs: sd 13% about the run's mean), and the
# probe's calls follow it (correlation 0.61), so a release is priced at the probe's level about its time.
LEVEL_STEP_NS = 50_000_000  # the level is read per step of the run
LEVEL_HALF_WIDTH_NS = 200_000_000  # from the probe's calls this near the step's middle (~40 of them)
LEVEL_CAP = 4  # a call over this many times its class's median counts as that (one OS preemption under 1 ms)
LEVEL_MIN_SAMPLES = 5  # fewer calls about a step: the run's level


@dataclass(frozen=True)
class ProbeLevels:
    """The level of sysmon's probe over the run, relative to its mean, in per mille: ``permille[k]`` for
    what happens in [k * step_ns, (k + 1) * step_ns); a step with no probe near it is at the mean (1000).
    Kept by step only where probes are, so a long idle stretch with none costs nothing."""
    step_ns: int
    permille: dict[int, int]

    def at(self, t: int) -> int:
        """The level at ``t`` (ns from the trace's start), per mille of the probe's mean."""
        return self.permille.get(t // self.step_ns, 1000)


def in_run_probe_levels(metadata: dict, where: str, gomaxprocs: int) -> ProbeLevels | None:
    """Sysmon's probe's level about each LEVEL_STEP_NS of the run, relative to the run's: the mean of the
    calls within LEVEL_HALF_WIDTH_NS of the step's middle, each taken relative to its class's mean
    (``in_run_probe_classes``: every P idle, or not, so that a stretch of idle probes is not read as a
    cheap machine) and capped at LEVEL_CAP times its class's median first (a single slow call would be a
    sixth of a step's level), in per mille; a step with fewer than LEVEL_MIN_SAMPLES calls near it is at
    the mean, and so is a step before the first call's or after the last's.  None where
    ``in_run_probe_classes`` is."""
    if in_run_probe_classes(metadata, where, gomaxprocs) is None:
        return None
    rows = in_run_probe_calls(metadata, where)[1]
    relative = [0.0] * len(rows)
    for alone in (True, False):
        members = [i for i, r in enumerate(rows) if _every_p_idle(r, gomaxprocs) == alone]
        if not members:
            continue
        cap = LEVEL_CAP * statistics.median(rows[i][1] for i in members)
        capped = [min(rows[i][1], cap) for i in members]
        mean = statistics.fmean(capped)
        for i, v in zip(members, capped):
            relative[i] = v / mean if mean > 0 else 1.0
    order = sorted(range(len(rows)), key=lambda i: rows[i][0])
    ts = [rows[i][0] for i in order]
    values = [relative[i] for i in order]
    # Steps from the first call's to the last's only: the process's probe outlives the trace, and a step
    # beyond its calls would read from the few at one edge of its window (5-20 in the fresh recordings).
    first, last = ts[0] // LEVEL_STEP_NS, ts[-1] // LEVEL_STEP_NS
    steps = {k for t in ts for k in range(max(first, (t - LEVEL_HALF_WIDTH_NS) // LEVEL_STEP_NS),
                                          min(last, (t + LEVEL_HALF_WIDTH_NS) // LEVEL_STEP_NS) + 1)}
    permille = {}
    for k in sorted(steps):
        middle = k * LEVEL_STEP_NS + LEVEL_STEP_NS // 2
        lo = bisect.bisect_left(ts, middle - LEVEL_HALF_WIDTH_NS)
        hi = bisect.bisect_right(ts, middle + LEVEL_HALF_WIDTH_NS)
        if hi - lo >= LEVEL_MIN_SAMPLES:
            permille[k] = round(1000 * statistics.fmean(values[lo:hi]))
    return ProbeLevels(LEVEL_STEP_NS, permille)


def in_run_probe_calls(metadata: dict, where: str) -> tuple[int, list[list[int]]] | None:
    """(how many probes the recording has, the rows of those under ``PREEMPTED_NS``: a longer one had
    sysmon's thread off its CPU, left out as from the runtime's crits), or None where it has no release
    probe; UserError where the table is malformed."""
    table = (metadata.get("reference") or {}).get("release_probe")
    if table is None:
        return None
    if not _is_probe_table(table):
        raise UserError(f"{where}: metadata reference.release_probe must have columns {IN_RUN_COLUMNS} and rows of "
                        "whole numbers with 0 <= madv_free_ns <= unused_ns and npidle >= 0")
    return len(table["rows"]), [r for r in table["rows"] if r[1] < PREEMPTED_NS]


def _is_probe_table(table) -> bool:
    """Whether ``table`` has reference.release_probe's form: IN_RUN_COLUMNS, and rows of as many whole
    numbers, each probe's MADV_FREE within its calls' time, its count of idle Ps not negative."""
    def row_ok(r) -> bool:
        return (isinstance(r, list) and len(r) == len(IN_RUN_COLUMNS) and all(type(v) is int for v in r)
                and 0 <= r[2] <= r[1] and r[3] >= 0)
    return (isinstance(table, dict) and table.get("columns") == IN_RUN_COLUMNS and isinstance(table.get("rows"), list)
            and all(map(row_ok, table["rows"])))


def recorded_probes(metadata: dict) -> list[dict] | None:
    """[before, after]: the probes a recording kept (trace.format checked their form when it read the
    metadata), or None when it has none (recorded before the probe, or not by ``pagealloc record``)."""
    kept = (metadata.get("generator") or {}).get(MACHINE_PROBE_KEY)
    return [kept["before"], kept["after"]] if kept is not None else None
