"""Measure the OS costs of the cost model on this machine.

Not a Go file.  Maps anonymous memory with Python's mmap, touches it so the
pages are resident, and times madvise(MADV_DONTNEED) and madvise(MADV_FREE)
over ranges of several sizes (a least-squares line gives each advice's
per-call and per-4 KiB-page costs), MADV_NOHUGEPAGE / MADV_HUGEPAGE on one
huge page, writing released pages again under each advice (a page
fault and a zeroed page after MADV_DONTNEED; next to nothing after
MADV_FREE while the kernel has not reclaimed the pages), and what MADV_FREE
on resident pages it meets for the first time costs per page, what MADV_FREE
of resident pages adds while another thread of the process runs on another
CPU (the TLB shootdown), and how much slower it is right after the thread slept
(the cold curve).  Medians over repeats
keep one noisy sample from moving the figure.  The result is a cost-model
file for ``pagealloc replay --cost-model``.

``probed_costs`` is the cost model of a replay of a recording that
carries ``trace.shootdown``'s probe: the defaults with the TLB shootdown
measured beside the program (the one cost that moves with the machine's
state from one run to the next; the recordings' crit follows it), what
streaming memory traffic adds to it, and the MADV_FREE call as the probe
read it alone (a constant of a machine, not of a run: 2.1-2.7 us on the
first host, 4.2-4.4 us on a second).
"""

from __future__ import annotations

import math
import mmap
import statistics
import time
from dataclasses import replace

from pagealloc.sim.costmodel import CostModel
from pagealloc.trace.shootdown import (PAGE, PROBE_REPEAT, madv_free_small_ns, machine_probe, recorded_probes, touch,
                                       wake_busy_mean_ns)
from pagealloc.trace.format import MACHINE_PROBE_KEY

HUGE = 2 << 20
GO_PAGE_4K = 2  # 4 KiB pages in the Go page the probe frees
SIZES = (1, 2, 4, 16, 64, 256, 1024)  # 4 KiB pages per madvise call


def _madvise_ns(buf: mmap.mmap, npages: int, repeat: int, advice: int) -> float:
    samples = []
    for _ in range(repeat):
        touch(buf, npages)
        t0 = time.perf_counter_ns()
        buf.madvise(advice, 0, npages * PAGE)
        samples.append(time.perf_counter_ns() - t0)
    return statistics.median(samples)


def _line(advice: int, buf: mmap.mmap, repeat: int) -> tuple[int, int]:
    """(per-call, per-4-KiB-page) ns of madvise(advice): a least-squares line over SIZES."""
    xs = list(SIZES)
    ys = [_madvise_ns(buf, n, repeat, advice) for n in xs]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return max(int(round(my - slope * mx)), 0), max(int(round(slope)), 0)


def _retouch_ns(buf: mmap.mmap, npages: int, repeat: int, advice: int) -> float:
    """ns per 4 KiB page of writing memory again after madvise(advice), less a resident write."""
    samples = []
    for _ in range(repeat):
        touch(buf, npages)
        buf.madvise(advice, 0, npages * PAGE)
        t0 = time.perf_counter_ns()
        touch(buf, npages)
        samples.append((time.perf_counter_ns() - t0) / npages)
    t0 = time.perf_counter_ns()
    touch(buf, npages)
    resident = (time.perf_counter_ns() - t0) / npages
    return max(statistics.median(samples) - resident, 0.0)


def _flag_ns(buf: mmap.mmap, repeat: int) -> float:
    """One MADV_NOHUGEPAGE / MADV_HUGEPAGE pair on a huge page of the mapping, per call."""
    samples = []
    huge = HUGE // PAGE
    for _ in range(repeat):
        t0 = time.perf_counter_ns()
        buf.madvise(mmap.MADV_NOHUGEPAGE, huge * PAGE, HUGE)  # splits the VMA
        buf.madvise(mmap.MADV_HUGEPAGE, huge * PAGE, HUGE)  # merges it back
        samples.append((time.perf_counter_ns() - t0) / 2)
    return statistics.median(samples)


COLD_FLOOR_NS = 2_000_000  # flat below: 2.2 us from 0.25 to 2 ms on the idle VM
COLD_SLEEPS_MS = (4, 8, 16, 32, 64)


def cold_curve(repeat: int) -> dict[float, float]:
    """Sleep (ms) -> median ns of MADV_FREE of one resident Go page right after sleeping that long, the
    floor (2 ms) included: the longer the thread slept, the colder what the call walks."""
    return {ms: madv_free_small_ns(repeat, sleep_s=ms / 1e3) for ms in (COLD_FLOOR_NS / 1e6, *COLD_SLEEPS_MS)}


def _cold_fit(curve: dict[float, float]) -> tuple[int, int]:
    """(cold_per_doubling_ns, cold_max_ns): a line through the floor over log2(sleep / floor), fitted to
    the sleeps under the longest, and the longest sleep's extra as the cap."""
    base = curve[COLD_FLOOR_NS / 1e6]
    xs = [math.log2(ms * 1e6 / COLD_FLOOR_NS) for ms in COLD_SLEEPS_MS[:-1]]
    ys = [curve[ms] - base for ms in COLD_SLEEPS_MS[:-1]]
    slope = sum(x * y for x, y in zip(xs, ys)) / sum(x * x for x in xs)
    return max(int(round(slope)), 0), max(int(round(curve[COLD_SLEEPS_MS[-1]] - base)), 0)


def _shootdown_ns(repeat: int) -> tuple[int, int]:
    """(tlb_shootdown_ns, memory_traffic_ns): what another CPU running this process adds to MADV_FREE of
    resident pages, and what it adds on top while that CPU streams through memory: record's probe, with
    ``repeat`` calls a side in each of its rounds (at least its own 60), as means (slow calls in)."""
    probe = machine_probe(repeat=max(PROBE_REPEAT, 2 * repeat))
    return (probe["tlb_shootdown_mean_ns"], probe["memory_traffic_mean_ns"]) if probe else (0, 0)


def priced_fields(probes: list[dict]) -> dict[str, str]:
    """{CostModel field: the probe key that prices it} for a recording's probes: the TLB shootdown, and
    the memory traffic's share where every probe measured it (probes since session 9); the means, slow
    calls in, where every probe kept them (since session 13; Go's pacing follows the mean of its crit),
    and for the traffic allocprobe's reading (Go's own allocation beside the call,
    trace/gosrc/allocprobe.go) where every probe ran it; a lock waiter's way back to a CPU, every CPU
    busy and one free, where every probe read them (since session 16)."""
    def every(key: str) -> bool:
        return all(key in p for p in probes)

    mean = "_mean" if every("tlb_shootdown_mean_ns") and every("memory_traffic_mean_ns") else ""
    fields = {"tlb_shootdown_ns": f"tlb_shootdown{mean}_ns"}
    if every("alloc_traffic_mean_ns"):
        fields["memory_traffic_ns"] = "alloc_traffic_mean_ns"
    elif every(f"memory_traffic{mean}_ns"):
        fields["memory_traffic_ns"] = f"memory_traffic{mean}_ns"
    if every("wake_busy_mean_ns") and every("wake_free_ns"):  # since session 16
        fields["futex_wake_busy_ns"] = "wake_busy_mean_ns"
        fields["futex_wake_ns"] = "wake_free_ns"
    return fields


def probed_costs(metadata: dict, base: CostModel | None = None) -> CostModel:
    """``base`` (default: CostModel's defaults) with the TLB shootdown the recording's probes measured
    (their mean), the memory traffic's share where they measured it too (probes since session 9), and
    the MADV_FREE call: the probe's call alone on one resident Go page, less that page's first-free cost
    (``base.madvise_free_first_page_ns`` a 4 KiB page), so that a release of one such page alone costs
    what the probe read there (2.1-2.7 us on the first host, 2.35 by the defaults; 4.2-4.4 us on a
    second host, docs/fidelity-log.md "Session 11"), and the heap side of a background release
    (``scavenge_heap_ns``) times that call over ``base``'s price of it; where the trace has them, else
    ``base`` as it is.
    The shootdown and the traffic are read from the keys ``priced_fields`` names (docs/fidelity-log.md, "Session 13")."""
    base = base or CostModel()
    probes = recorded_probes(metadata)
    if probes is None:
        return base
    fields = priced_fields(probes)
    alone = statistics.fmean(p["madv_free_go_page_ns"] for p in probes)
    first = GO_PAGE_4K * base.madvise_free_first_page_ns
    call = max(round(alone) - first, 0)
    # the heap side of a release follows the machine's state as the call does ("Session 23")
    priced = base.madvise_free_call_ns + first  # base's price of the probe's call
    level = alone / priced if priced > 0 else 1.0
    return replace(base, madvise_free_call_ns=call, scavenge_heap_ns=round(base.scavenge_heap_ns * level),
                   **{name: round(statistics.fmean(p[key] for p in probes)) for name, key in fields.items()})


def traffic_widths(metadata: dict) -> tuple[int, int, int] | None:
    """(narrow per mille, narrow width, wide width) for MHeap's traffic price (``_traffic_ns``): where
    every probe of the recording read allocprobe at both widths (since session 15), the narrow
    reading's mean as a share of the wide one's (at most all of it), and how many busy neighbours each
    had; None where it read one width (the price is then the wide one, whatever the Ps running)."""
    probes = recorded_probes(metadata)
    if probes is None or priced_fields(probes).get("memory_traffic_ns") != "alloc_traffic_mean_ns" or not all(
            "alloc_traffic_narrow_mean_ns" in p for p in probes):
        return None
    kept = metadata["generator"][MACHINE_PROBE_KEY]
    narrow_n, wide_n = kept.get("busy_threads_narrow"), kept.get("busy_threads")
    if narrow_n is None or wide_n is None:
        return None
    wide = statistics.fmean(p["alloc_traffic_mean_ns"] for p in probes)
    narrow = statistics.fmean(p["alloc_traffic_narrow_mean_ns"] for p in probes)
    return (1000 if wide <= 0 else min(round(1000 * narrow / wide), 1000)), narrow_n, wide_n


def first_free_ns(npages: int, repeat: int) -> float:
    """Median ns of MADV_FREE on ``npages`` 4 KiB pages resident and never freed before (small pages,
    as Go 1.14's heap is under THP "madvise": each goes to the lazyfree list now)."""
    samples = []
    for _ in range(repeat):
        buf = mmap.mmap(-1, npages * PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        try:
            buf.madvise(mmap.MADV_NOHUGEPAGE, 0, npages * PAGE)
            touch(buf, npages)
            t0 = time.perf_counter_ns()
            buf.madvise(mmap.MADV_FREE, 0, npages * PAGE)
            samples.append(time.perf_counter_ns() - t0)
        finally:
            buf.close()
    return statistics.median(samples)


def _first_free_page_ns(repeat: int) -> float:
    """Per 4 KiB page of MADV_FREE on resident pages it meets for the first time: the slope between
    64 and 512 pages (a whole huge page)."""
    return (first_free_ns(512, repeat) - first_free_ns(64, repeat)) / (512 - 64)


def nohugepage_ns(repeat: int) -> tuple[float, float]:
    """(first MADV_NOHUGEPAGE on a huge page: splits the VMA; the same call again)."""
    buf = mmap.mmap(-1, 2 * HUGE * (repeat + 1), flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    for i in range(0, len(buf), PAGE):
        buf[i] = 1
    first, again = [], []
    for k in range(repeat):
        off = 2 * HUGE * k + HUGE  # inside the mapping: the split makes three VMAs of one
        for out in (first, again):
            t0 = time.perf_counter_ns()
            buf.madvise(mmap.MADV_NOHUGEPAGE, off, HUGE)
            out.append(time.perf_counter_ns() - t0)
    buf.close()
    return statistics.median(first), statistics.median(again)


def _wake_ns(rounds: int = 2000) -> float:
    """A blocked process's wake-up latency: half the median round trip of a pipe ping-pong.

    A stand-in for futex_wake_ns (futexwakeup, then the sleeper scheduled):
    both are a syscall that makes a sleeping task runnable on another core.
    """
    import os

    a_r, a_w = os.pipe()
    b_r, b_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the echo: wake on a byte, answer with one
        try:
            for _ in range(rounds):
                os.read(a_r, 1)
                os.write(b_w, b"x")
        finally:
            os._exit(0)
    samples = []
    try:
        for _ in range(rounds):
            t0 = time.perf_counter_ns()
            os.write(a_w, b"x")
            os.read(b_r, 1)
            samples.append(time.perf_counter_ns() - t0)
    finally:
        os.waitpid(pid, 0)
        for fd in (a_r, a_w, b_r, b_w):
            os.close(fd)
    return statistics.median(samples) / 2


def calibrate(repeat: int = 30) -> dict:
    """The cost model's OS entries, measured here (see costmodel.py for what each is)."""
    size = max(max(SIZES) * PAGE, 3 * HUGE)
    buf = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        dn_call, dn_page = _line(mmap.MADV_DONTNEED, buf, repeat)
        fr_call, fr_page = _line(mmap.MADV_FREE, buf, repeat)
        fault = _retouch_ns(buf, max(SIZES), max(3, repeat // 10), mmap.MADV_DONTNEED)
        retouch = _retouch_ns(buf, max(SIZES), max(3, repeat // 10), mmap.MADV_FREE)
        flag = _flag_ns(buf, repeat)
    finally:
        buf.close()
    first, again = nohugepage_ns(repeat)
    per_doubling, cold_max = _cold_fit(cold_curve(max(10, repeat // 2)))
    shootdown, traffic = _shootdown_ns(repeat)
    return {
        "madvise_call_ns": dn_call,
        "madvise_page_ns": dn_page,
        "madvise_free_call_ns": fr_call,
        "madvise_free_page_ns": fr_page,
        "madvise_hugepage_ns": int(round(flag)),
        "tlb_shootdown_ns": shootdown,
        "page_fault_ns": int(round(fault)),
        "page_retouch_free_ns": int(round(retouch)),
        "futex_wake_ns": int(round(_wake_ns())),
        "madvise_free_first_page_ns": int(round(_first_free_page_ns(repeat))),
        "vma_split_ns": int(round(max(first - again, 0.0))),
        "cold_floor_ns": COLD_FLOOR_NS,
        "cold_per_doubling_ns": per_doubling,
        "cold_max_ns": cold_max,
        "memory_traffic_ns": traffic,
        # a lock waiter's way back with every CPU busy: the mean, as record's probe reads it ("Session 16")
        "futex_wake_busy_ns": int(round(wake_busy_mean_ns(max(10, 2 * repeat)))),
    }


def to_toml(values: dict) -> str:
    CostModel.from_dict(values)  # must be a valid cost model
    lines = ["# pagealloc cost model measured by `pagealloc calibrate` (nanoseconds)"]
    lines += [f"{k} = {v}" for k, v in values.items()]
    return "\n".join(lines) + "\n"
