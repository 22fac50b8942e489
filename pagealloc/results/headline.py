"""The headline: per trace, what each preset changes against the baseline.

The figures a Go runtime engineer asks about first: what holding the heap
lock costs the program (P-stall, allocation latency p99 and max) and what
the scavenger returns to the OS (released bytes).  Commits whose
ReplayResult predates the multi-P metrics have the single-mutator ones
instead (mutator stall, longest heap-lock hold, released bytes).  All are
virtual-time and deterministic, so any difference is real, not noise; a
figure is shown where some preset differs from the baseline by at least
``MIN_CHANGE`` (1%), and the traces come biggest difference first.

``headline(metrics)`` takes {trace: {mode: {field: value}}}, from replays
(``ReplayResult.to_dict()``) or from asv results (``from_run``).

With the seeds' spread (``F_min`` / ``F_max`` beside F, from
``pagealloc.sim.spread.spread_record``), a difference is called real only
when the preset's range and the baseline's do not overlap; otherwise it is
"within the model's spread" (``Line.real``).  Without it (asv's history,
one seed) every difference is reported as before, unjudged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pagealloc.results.asvresults import Run, order_modes
from pagealloc.sim.result import METRICS

HEADLINE = ("p_stall_ns", "alloc_latency_p99_ns", "alloc_latency_max_ns", "released_bytes")
FIGURES = [(name, METRICS[name].label) for name in HEADLINE]  # labels from the catalogue (pagealloc.sim.result)
FALLBACK = [
    ("mutator_stall_ns", "mutator stall"),
    ("lock_hold_max_ns", "longest heap-lock hold"),
    ("released_bytes", "released"),
]


MIN_CHANGE = 0.01
WITHIN_SPREAD = "within the model's spread"


def ranges_overlap(a: tuple, b: tuple) -> bool:
    """Two closed ranges (lo, hi) share a point."""
    return a[0] <= b[1] and b[0] <= a[1]


def unit_of(field: str) -> str:
    """"ns", "bytes" or "" for a figure (the catalogue's unit; an older result's name by its suffix)."""
    m = METRICS.get(field)
    unit = m.unit if m is not None else "ns" if field.endswith("_ns") else "B" if field.endswith("_bytes") else ""
    return {"ns": "ns", "B": "bytes"}.get(unit, "")


@dataclass
class Line:
    """One figure of one trace in every mode (the baseline first)."""

    trace: str
    field: str
    label: str
    values: dict
    ranges: dict | None = None  # mode -> (F_min, F_max) over the seeds; None: one seed, no spread known

    @property
    def baseline(self) -> str:
        return next(iter(self.values))

    def ratio(self, mode: str) -> float:
        base, v = self.values[self.baseline], self.values[mode]
        if base:
            return v / base
        return 1.0 if v == base else math.inf

    @property
    def spread(self) -> float:
        """How far the furthest preset is from the baseline (|log ratio|)."""
        return max((abs(math.log(r)) if 0 < r < math.inf else math.inf
                    for r in (self.ratio(m) for m in list(self.values)[1:])), default=0.0)

    def real(self, mode: str) -> bool | None:
        """The mode's difference from the baseline is beyond the model's spread (their seed ranges do not
        overlap); None when the spread is unknown."""
        if self.ranges is None:
            return None
        return not ranges_overlap(self.ranges[self.baseline], self.ranges[mode])

    def verdict(self, mode: str) -> str:
        """"real", WITHIN_SPREAD, or "" (no spread known)."""
        real = self.real(mode)
        return "" if real is None else "real" if real else WITHIN_SPREAD

    @property
    def survives(self) -> bool:
        """Some preset's difference is real (without a spread: the difference is taken as it is)."""
        return self.ranges is None or any(self.real(m) for m in list(self.values)[1:])

    @property
    def differs(self) -> bool:
        """Some preset is at least MIN_CHANGE away from the baseline."""
        return self.spread >= math.log1p(MIN_CHANGE) - 1e-12


def figures_for(fields) -> list[tuple[str, str]]:
    """The headline figures a set of fields supports: multi-P, else single-mutator."""
    fields = set(fields)
    return FIGURES if "p_stall_ns" in fields else FALLBACK


def headline(metrics: dict) -> tuple[list[list[Line]], list[str]]:
    """([the differing Lines of each trace], traces where no figure differs).

    Traces with a difference come first, the biggest (largest spread of any
    figure) first; a figure missing in some mode is left out."""
    per_trace, same = [], []
    for trace, by_mode in metrics.items():
        modes = order_modes(by_mode)
        if len(modes) < 2:
            continue
        fields = set.intersection(*(set(d) for d in by_mode.values()))
        lines = [
            Line(trace, f, label, {m: by_mode[m][f] for m in modes}, _ranges(by_mode, modes, f))
            for f, label in figures_for(fields)
            if f in fields and all(_number(by_mode[m][f]) for m in modes)
        ]
        differing = [line for line in lines if line.differs]
        if differing:
            per_trace.append(differing)
        else:
            same.append(trace)
    per_trace.sort(key=lambda lines: -max(line.spread for line in lines))
    return per_trace, same


def _ranges(by_mode: dict, modes, f: str) -> dict | None:
    """{mode: (F_min, F_max)} when every mode has them, else None."""
    lo, hi = f"{f}_min", f"{f}_max"
    if all(_number(by_mode[m].get(lo)) and _number(by_mode[m].get(hi)) for m in modes):
        return {m: (by_mode[m][lo], by_mode[m][hi]) for m in modes}
    return None


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def from_run(run: Run) -> dict:
    """{trace: {mode: {field: value}}} from a run's ReplayMetrics track_* benchmarks."""
    out: dict = {}
    for (bench, params), v in run.values.items():
        cls, _, m = bench.rpartition(".")
        if not cls.endswith(("ReplayMetrics", "ReplayMetricsHeavy")) or not m.startswith("track_") or len(params) != 2:
            continue
        if v.ok:
            trace, mode = params
            out.setdefault(trace, {}).setdefault(mode, {})[m.removeprefix("track_")] = v.value
    return out
