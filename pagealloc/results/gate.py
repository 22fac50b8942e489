"""The nightly gate's rules: which way is worse, and what changed between two runs.

The gate (``regressions``) knows which way is better for each benchmark,
which asv's own ``compare`` does not (it treats every number as a time):

* lower is better: ``time_*``, ``peakmem_*``, ``mem_*``, and the replay's
  ``track_mutator_stall_ns``, ``track_lock_hold_max_ns``,
  ``track_retained_peak_bytes``;
* higher is better: ``track_events_per_second``;
* ``track_released_bytes`` (and any other ``track_*``) has no good
  direction: releasing more lowers RSS but costs madvise calls.  Its changes
  are listed, never gated.

A benchmark regresses when it moves the bad way by more than ``factor``
(new/old > factor, or old/new > factor for higher-is-better), unless both
runs have 99% confidence intervals and they overlap (noise), or when it had
a value before and fails now.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pagealloc.results.asvresults import Run, Value

DEFAULT_FACTOR = 1.5

LOWER_IS_BETTER_TRACKS = ("track_mutator_stall_ns", "track_lock_hold_max_ns", "track_retained_peak_bytes")
HIGHER_IS_BETTER_TRACKS = ("track_events_per_second",)


def direction(benchmark: str) -> int:
    """+1: lower is better; -1: higher is better; 0: no good direction (never gated)."""
    method = benchmark.rsplit(".", 1)[-1]
    if method.startswith(("time_", "peakmem_", "mem_")) or method in LOWER_IS_BETTER_TRACKS:
        return 1
    if method in HIGHER_IS_BETTER_TRACKS:
        return -1
    return 0




@dataclass
class Change:
    benchmark: str
    params: tuple
    old: Value
    new: Value
    status: str  # regressed, improved, changed, failed, fixed, noise, same, incomparable

    @property
    def ratio(self) -> float:
        if self.old.ok and self.new.ok and self.old.value:
            return self.new.value / self.old.value
        return math.nan

    def label(self) -> str:
        return f"{self.benchmark}({', '.join(map(str, self.params))})" if self.params else self.benchmark


def compare_runs(old: Run, new: Run, factor: float = DEFAULT_FACTOR) -> list[Change]:
    """Every benchmark present in both runs, classified (see the module docstring)."""
    out = []
    for key in sorted(set(old.values) & set(new.values), key=str):
        bench, params = key
        a, b = old.values[key], new.values[key]
        if old.versions.get(bench) and new.versions.get(bench) and old.versions[bench] != new.versions[bench]:
            status = "incomparable"  # the benchmark's code changed
        elif a.ok and b.value is None:
            status = "failed"
        elif a.value is None and b.ok:
            status = "fixed"
        elif not (a.ok and b.ok):
            status = "same"  # skipped or failed in both
        else:
            d = direction(bench)
            ratio = b.value / a.value if a.value else (math.inf if b.value else 1.0)
            worse = ratio if d > 0 else (1 / ratio if ratio else math.inf)
            if d == 0:
                status = "changed" if (ratio > factor or ratio < 1 / factor) else "same"
            elif worse > factor or worse < 1 / factor:
                overlap = a.ci and b.ci and a.ci[0] <= b.ci[1] and b.ci[0] <= a.ci[1]
                status = "noise" if overlap else ("regressed" if worse > factor else "improved")
            else:
                status = "same"
        out.append(Change(bench, params, a, b, status))
    return out


def regressions(changes: list[Change]) -> list[Change]:
    return [c for c in changes if c.status in ("regressed", "failed")]
