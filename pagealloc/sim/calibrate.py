"""Measure the OS costs of the cost model on this machine.

Not a Go file.  Maps anonymous memory with Python's mmap, touches it so the
pages are resident, and times madvise(MADV_DONTNEED) over ranges of several
sizes (a least-squares line gives the per-call and per-4 KiB-page costs) and
the page faults of touching released pages again.  Medians over repeats
keep one noisy sample from moving the figure.  The result is a cost-model
file for ``pagealloc replay --cost-model``.
"""

from __future__ import annotations

import mmap
import statistics
import time

from pagealloc.sim.costmodel import CostModel

PAGE = 4096
SIZES = (1, 2, 4, 16, 64, 256, 1024)  # 4 KiB pages per madvise call


def _touch(buf: mmap.mmap, npages: int) -> None:
    for i in range(0, npages * PAGE, PAGE):
        buf[i] = 1


def _madvise_ns(buf: mmap.mmap, npages: int, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        _touch(buf, npages)
        t0 = time.perf_counter_ns()
        buf.madvise(mmap.MADV_DONTNEED, 0, npages * PAGE)
        samples.append(time.perf_counter_ns() - t0)
    return statistics.median(samples)


def _fault_ns(buf: mmap.mmap, npages: int, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        buf.madvise(mmap.MADV_DONTNEED, 0, npages * PAGE)
        t0 = time.perf_counter_ns()
        _touch(buf, npages)
        samples.append((time.perf_counter_ns() - t0) / npages)
    # The loop itself costs something too: subtract touching resident pages.
    t0 = time.perf_counter_ns()
    _touch(buf, npages)
    resident = (time.perf_counter_ns() - t0) / npages
    return max(statistics.median(samples) - resident, 0.0)


def calibrate(repeat: int = 30) -> dict:
    """{madvise_call_ns, madvise_page_ns, page_fault_ns} measured here."""
    buf = mmap.mmap(-1, max(SIZES) * PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        xs = list(SIZES)
        ys = [_madvise_ns(buf, n, repeat) for n in xs]
        mx, my = statistics.fmean(xs), statistics.fmean(ys)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
        intercept = my - slope * mx
        fault = _fault_ns(buf, max(SIZES), max(3, repeat // 10))
    finally:
        buf.close()
    return {
        "madvise_call_ns": max(int(round(intercept)), 0),
        "madvise_page_ns": max(int(round(slope)), 0),
        "page_fault_ns": int(round(fault)),
    }


def to_toml(values: dict) -> str:
    CostModel.from_dict(values)  # must be a valid cost model
    lines = ["# pagealloc cost model measured by `pagealloc calibrate` (nanoseconds)"]
    lines += [f"{k} = {v}" for k, v in values.items()]
    return "\n".join(lines) + "\n"
