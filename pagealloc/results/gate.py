"""The suite's rules for its benchmarks: which way is worse, which are wall
clock, and what changed between two runs (the nightly gate, scripts/compare).

asv's own ``compare`` and ``continuous`` take every number as lower-is-better.
The benchmarks are named so that this is right wherever a figure has a
better direction (a higher-is-better figure is tracked as its inverse,
e.g. ``track_wall_seconds_per_event``), so here:

* lower is better: ``time_*``, ``peakmem_*``, ``mem_*`` and every replay
  ``track_*`` of ``LOWER_IS_BETTER_TRACKS``;
* higher is better: ``track_events_per_second``, a name of older results
  (now ``track_wall_seconds_per_event``);
* no better direction: ``track_released_bytes`` (releasing more lowers RSS
  but costs madvise calls), ``track_scavenger_cpu_ns`` and any other
  ``track_*``.  Their changes are listed, never gated.

A benchmark regresses when it moves the bad way by more than ``factor``
(new/old > factor, or old/new > factor for higher-is-better), or when it
had a value before and fails now.  A wall-clock figure is judged only with
asv's own statistics: both runs need a 99% confidence interval (two samples
or more; ``--quick`` takes one), and when they overlap the move is noise.
Without them a wall-clock move beyond the factor is "unjudged": listed,
never a regression or an improvement.  Virtual-time figures are
deterministic, so one sample tells.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pagealloc.results.asvresults import Run, Value
from pagealloc.sim.result import HIGHER, LOWER, METRICS, NONE

DEFAULT_FACTOR = 1.5

# The replay's figures take their direction and clock from the metric catalogue
# (pagealloc.sim.result); the asv layer adds its own names: the old alias of
# p_stall_ns and the inverses of figures where higher is better.
_REPLAY = {f"track_{m.name}": m for m in METRICS.values()}
LOWER_IS_BETTER_TRACKS = tuple(n for n, m in _REPLAY.items() if m.better == LOWER) + (
    "track_mutator_stall_ns",  # = p_stall_ns, the name since the first published suite
    "track_virtual_ns_per_event",  # 1 / throughput_events_per_vsec
    "track_scavenger_ns_per_released_mib",  # 1 / released_bytes_per_scavenger_cpu_sec
    "track_wall_seconds_per_event",  # 1 / replay_events_per_wall_second
)
HIGHER_IS_BETTER_TRACKS = tuple(n for n, m in _REPLAY.items() if m.better == HIGHER) + (
    "track_events_per_second",  # a name of older results (now track_wall_seconds_per_event)
)
NO_DIRECTION_TRACKS = tuple(n for n, m in _REPLAY.items() if m.better == NONE)
# Wall-clock figures: noisy; the rest of the replay's track_* are virtual time.
WALL_CLOCK_TRACKS = tuple(n for n, m in _REPLAY.items() if m.clock == "wall") + (
    "track_wall_seconds_per_event", "track_events_per_second")


def method(benchmark: str) -> str:
    return benchmark.rsplit(".", 1)[-1]


def direction(benchmark: str) -> int:
    """+1: lower is better; -1: higher is better; 0: no good direction (never gated)."""
    m = method(benchmark)
    if m.startswith(("time_", "peakmem_", "mem_")) or m in LOWER_IS_BETTER_TRACKS:
        return 1
    if m in HIGHER_IS_BETTER_TRACKS:
        return -1
    return 0


def is_wall_clock(benchmark: str) -> bool:
    m = method(benchmark)
    return m.startswith(("time_", "peakmem_", "mem_")) or m in WALL_CLOCK_TRACKS


def cis_overlap(a: Value, b: Value) -> bool | None:
    """Whether the 99% confidence intervals overlap; None when one is unknown."""
    if not (a.ci and b.ci):
        return None
    return a.ci[0] <= b.ci[1] and b.ci[0] <= a.ci[1]


@dataclass
class Change:
    benchmark: str
    params: tuple
    old: Value
    new: Value
    status: str  # regressed, improved, changed, failed, fixed, noise, unjudged, same, incomparable

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
                overlap = cis_overlap(a, b)
                if overlap is None and is_wall_clock(bench):
                    status = "unjudged"  # one sample: asv cannot tell this move from noise
                else:
                    status = "noise" if overlap else ("regressed" if worse > factor else "improved")
            else:
                status = "same"
        out.append(Change(bench, params, a, b, status))
    return out


def regressions(changes: list[Change]) -> list[Change]:
    return [c for c in changes if c.status in ("regressed", "failed")]
