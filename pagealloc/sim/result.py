"""What one replay measured, and the catalogue of its figures.

Not a Go file.  ``ReplayResult``'s fields are the one catalogue of the
replay's figures: each is declared with ``figure(unit, better, clock,
label)``, and the CLI's table, the gate's directions, the headline, the
sweep report's units and the asv benchmarks read them from here
(``METRICS``) instead of keeping lists of their own.

* unit: ``B``, ``B/s``, ``ns``, ``count``, ``events/s``, ``x`` (a ratio),
  ``fraction`` or ``""`` (not a number: names, lists);
* better: ``LOWER`` / ``HIGHER`` is better, or ``NONE`` (releasing more
  lowers RSS but costs madvise calls: no better direction);
* clock: ``virtual`` (the model's deterministic nanoseconds), ``wall`` (the
  simulator's own speed: the only figures that vary between runs), or
  ``""`` (not a time);
* shown: ``main`` / ``detail``: the row group of ``pagealloc replay``'s
  table (``None``: not in the table).

What the real Go 1.14.6 runtime did, on go1.14-runtime traces, is one
nested ``Reference`` record; ``to_dict()`` flattens it to the
``reference_*`` keys that JSON lines, sweeps and asv keep.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields

LOWER, HIGHER, NONE = 1, -1, 0


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str
    better: int
    clock: str
    label: str
    shown: str | None


def figure(unit: str, better: int = NONE, label: str = "", *, clock: str = "", shown: str | None = "detail",
           default=0):
    """A ReplayResult field that is a figure of the catalogue."""
    if unit == "ns" and not clock:
        clock = "virtual"
    meta = {"unit": unit, "better": better, "clock": clock, "label": label, "shown": shown}
    if isinstance(default, list):
        return field(default_factory=list, metadata=meta)
    return field(default=default, metadata=meta)


def background_bytes_less_whole_huge_pages(r) -> int:
    """A ReplayResult's or a Reference's background bytes less those released as whole huge pages: what
    is not the walk's draw of whole huge pages (docs/fidelity-log.md, "Session 11")."""
    from pagealloc.runtime.malloc import PHYS_HUGE_PAGE_SIZE

    return r.released_background_bytes - r.released_background_whole_huge_pages * PHYS_HUGE_PAGE_SIZE


@dataclass
class Reference:
    """What the real Go 1.14.6 runtime did (the trace's metadata), and model / real for each figure."""

    released_bytes: int
    released_background_bytes: int
    released_background_count: int | None  # None: a recording older than the key
    released_background_whole_huge_pages: int | None  # None: a recording older than the key
    released_growth_bytes: int
    released_forced_bytes: int
    retained_final_bytes: int
    heap_sys_bytes: int
    heap_growths: int
    scavenged_alloc_bytes: int
    # the Ps' heap lock at the sites a row stands for (stream version 5 on; None: an older recording)
    lock_acquisitions_mutator: int | None
    p_stall_ns: int | None  # their waits for it, each from before lock() to holding it, summed
    p_stall_max_ns: int | None
    ratios: dict  # figure -> model / real (None where real is 0 and the model's is not; 1.0 where both are 0)
    retained_timeline: list  # [(ns, retained bytes)] as ReplayResult.retained_timeline
    scavenger_wakeups: dict | None = None  # as ReplayResult.scavenger_wakeups; None: no scavenger_iterations

    COMPARED = ("released_bytes", "released_background_bytes", "released_background_count",
                "released_background_whole_huge_pages", "released_growth_bytes", "released_forced_bytes",
                "retained_final_bytes", "heap_sys_bytes", "heap_growths", "scavenged_alloc_bytes",
                "lock_acquisitions_mutator", "p_stall_ns", "p_stall_max_ns")

    @classmethod
    def flat_names(cls) -> list[str]:
        """The reference_* keys of ReplayResult.to_dict(), in order."""
        return ([f"reference_{n}{s}" for n in cls.COMPARED for s in ("", "_ratio")]
                + ["reference_retained_timeline", "reference_scavenger_wakeups"])

    def flat(self) -> dict:
        out = {}
        for n in self.COMPARED:
            out[f"reference_{n}"] = getattr(self, n)
            out[f"reference_{n}_ratio"] = self.ratios.get(n)
        out["reference_retained_timeline"] = self.retained_timeline
        out["reference_scavenger_wakeups"] = self.scavenger_wakeups
        return out

    @classmethod
    def from_flat(cls, d: dict) -> "Reference":
        """flat()'s inverse: the Reference a to_dict() record's reference_* keys hold (``--seeds`` tables)."""
        figures = {n: d.get(f"reference_{n}") for n in cls.COMPARED}
        return cls(**figures, ratios={n: d.get(f"reference_{n}_ratio") for n in cls.COMPARED},
                   retained_timeline=d.get("reference_retained_timeline") or [],
                   scavenger_wakeups=d.get("reference_scavenger_wakeups"))


@dataclass
class ReplayResult:
    """Metrics of one replay of one trace in one preset (``mode``).

    Times ending in _ns are virtual nanoseconds; the WALL_CLOCK_FIELDS
    (the simulator's own speed) are the only non-deterministic fields.
    """

    trace: str = field(default="", metadata={"unit": "", "shown": None})
    mode: str = field(default="", metadata={"unit": "", "shown": None})
    events: int = figure("count", label="events")
    wall_seconds: float = figure("s", LOWER, "replay wall time", clock="wall", shown=None, default=0.0)
    replay_events_per_wall_second: float = figure("events/s", HIGHER, "replay speed", clock="wall", shown=None,
                                                  default=0.0)
    released_bytes: int = figure("B", NONE, "released", shown="main")
    released_background_bytes: int = figure("B", NONE, "released by the background scavenger")
    released_background_count: int = figure("count", NONE, "background scavenger releases (scavengeRangeLocked calls)")
    released_background_whole_huge_pages: int = figure(
        "count", NONE, "background releases of a whole huge page (findScavengeCandidate grew the page to it)")
    released_growth_bytes: int = figure("B", NONE, "released by heap growth")
    released_forced_bytes: int = figure("B", NONE, "released by FreeOSMemory")
    retained_peak_bytes: int = figure("B", LOWER, "peak retained")
    retained_final_bytes: int = figure("B", NONE, "retained at the end", shown="main")
    heap_sys_bytes: int = figure("B", NONE, "heap_sys")
    heap_growths: int = figure("count", NONE, "heap growths")
    scavenged_alloc_bytes: int = figure("B", NONE, "allocated from scavenged memory")
    lock_acquisitions_mutator: int = figure("count", NONE, "heap-lock acquisitions by Ps")
    lock_acquisitions_scavenger: int = figure("count", NONE, "heap-lock acquisitions by the scavenger")
    lock_hold_max_ns: int = figure("ns", LOWER, "longest heap-lock hold")
    lock_hold_p99_ns: int = figure("ns", LOWER, "heap-lock hold p99")
    scavenger_fooled: int = figure("count", NONE, "scavenger steps on a stale unlocked read")
    makespan_ns: int = figure("ns", LOWER, "makespan")
    address_agreement: float = figure("fraction", HIGHER, "spans at the recorded address", default=0.0)
    skipped_events: int = figure("count", NONE, "skipped events (--lenient)")
    timing: str = field(default="recorded", metadata={"unit": "", "shown": None})
    gc_goal_derived: int = figure("count", NONE, "GCs whose heap goal was derived", shown=None)
    retain_extra_percent: float = field(default=10, metadata={"unit": "", "shown": None})
    scavenge_percent: float = field(default=1, metadata={"unit": "", "shown": None})
    madvise_advice: str = field(default="MADV_FREE", metadata={"unit": "", "shown": None})  # how sysUnused released
    tlb_shootdown_ns: int = field(default=0, metadata={"unit": "", "shown": None})  # ns priced per release (CostModel)
    madvise_free_call_ns: int = field(default=0, metadata={"unit": "", "shown": None})  # ns priced per MADV_FREE call (CostModel)
    # ns priced per background release for the rest of its scavengeOne (CostModel.scavenge_heap_ns)
    scavenge_heap_ns: int = field(default=0, metadata={"unit": "", "shown": None})
    # ns a release adds on top while the program allocates heavily (sim/traffic.py); 0: not priced
    memory_traffic_ns: int = field(default=0, metadata={"unit": "", "shown": None})
    madvise_calls: int = figure("count", NONE, "madvise calls")
    # The modelled program, GOMAXPROCS Ps contending for the heap lock (virtual time):
    gomaxprocs: int = figure("count", NONE, "GOMAXPROCS", default=1)
    p_stall_ns: int = figure("ns", LOWER, "P-stall (all Ps)", shown="main")  # P-time waiting for the heap lock
    p_stall_max_ns: int = figure("ns", LOWER, "longest P-stall", shown="main")
    p_stall_p99_ns: int = figure("ns", LOWER, "P-stall p99", shown="main")  # over every heap-lock acquisition of a P
    p_stall_by_p: list = figure("", NONE, "P-stall per P", shown=None, default=[])
    runtime_stall_ns: int = figure("ns", LOWER, "stall of events with no P")  # in p_stall_ns, not in p_stall_by_p
    order_wait_ns: int = figure("ns", NONE, "ordered timing: waits for an earlier row")  # not in p_stall_ns
    alloc_latency_p99_ns: int = figure("ns", LOWER, "alloc latency p99", shown="main")  # lock wait included
    alloc_latency_max_ns: int = figure("ns", LOWER, "alloc latency max", shown="main")
    recorded_duration_ns: int = figure("ns", NONE, "recorded duration")
    throughput_events_per_vsec: float = figure("events/s", HIGHER, "events per virtual second", clock="virtual",
                                               shown="main", default=0.0)
    slowdown: float = figure("x", LOWER, "makespan / recorded duration", shown="main", default=0.0)
    scavenger_cpu_ns: int = figure("ns", NONE, "background scavenger CPU")
    scavenger_crit_p50_ns: int = figure("ns", NONE, "background scavenger crit p50 (an iteration's scavengeOne)")
    scavenger_crit_p90_ns: int = figure("ns", NONE, "background scavenger crit p90")
    # the mean crit of its one-page releases under 1 ms (what scavenger_crit="level" sets to the recording's)
    scavenger_one_page_crit_mean_ns: int = field(default=0, metadata={"unit": "", "shown": None})
    # of it, the madvise calls as the cost model priced them (what replay.in_run_costs sets to sysmon's probe)
    scavenger_one_page_madvise_mean_ns: int = field(default=0, metadata={"unit": "", "shown": None})
    # how many one-page releases those are, of them how many shot down no other CPU (no other P running),
    # and the calls' mean in each class: what replay.in_run_costs matches to sysmon's probe class by class
    scavenger_one_page_releases: int = field(default=0, metadata={"unit": "", "shown": None})
    scavenger_one_page_alone: int = field(default=0, metadata={"unit": "", "shown": None})
    scavenger_one_page_madvise_alone_mean_ns: int = field(default=0, metadata={"unit": "", "shown": None})
    scavenger_one_page_madvise_beside_mean_ns: int = field(default=0, metadata={"unit": "", "shown": None})
    # the mean of sysmon's in-run release probe the prices of a release were set to (replay.in_run_costs); 0: not
    in_run_probe_ns: int = field(default=0, metadata={"unit": "", "shown": None})
    # the lowest and highest of that probe's level over the run (shootdown.in_run_probe_levels) the background
    # releases were priced at, per mille of its mean; 0: priced at the mean throughout
    in_run_probe_level_low_permille: int = field(default=0, metadata={"unit": "", "shown": None})
    in_run_probe_level_high_permille: int = field(default=0, metadata={"unit": "", "shown": None})
    # What woke the background scavenger, with its count: the Go 1.14.6 scheduler rule (sim/goschedule.py)
    # that fired each of its timers that fired, and "gc" for wakeScavenger; pagealloc replay prints the
    # recording's own beside it.  Not a figure: a diagnostic of the timer rules.
    scavenger_wakeups: dict = field(default_factory=dict, metadata={"unit": "", "shown": None})
    released_bytes_per_scavenger_cpu_sec: float = figure("B/s", HIGHER, "released per scavenger CPU second",
                                                         default=0.0)
    retained_timeline: list = figure("", NONE, "retained at each GC, FreeOSMemory and the end", shown=None,
                                     default=[])  # [(virtual ns, retained bytes)]
    p_stall_timeline: list = figure("", NONE, "P-stall so far, at the same points", shown=None, default=[])
    reference: Reference | None = field(default=None, metadata={"unit": "", "shown": None})

    WALL_CLOCK_FIELDS = ("wall_seconds", "replay_events_per_wall_second")

    def to_dict(self) -> dict:
        """Flat: the reference record as reference_* keys (None on traces without one)."""
        d = asdict(self)
        d.pop("reference")
        ref = self.reference
        d.update(ref.flat() if ref is not None else dict.fromkeys(Reference.flat_names()))
        return d

    def to_row(self):
        """One pandas DataFrame row (the timelines stay lists in their cells)."""
        import pandas as pd

        return pd.DataFrame([self.to_dict()])

    def deterministic(self) -> dict:
        """Every field of to_dict() except the wall-clock ones."""
        d = self.to_dict()
        for k in self.WALL_CLOCK_FIELDS:
            d.pop(k)
        return d

    @classmethod
    def flat_fields(cls) -> list[tuple[str, str]]:
        """(name, type annotation) of every key of to_dict(), in order."""
        out = [(f.name, f.type) for f in fields(cls) if f.name != "reference"]
        for name in Reference.flat_names():
            kind = ("list" if name.endswith("timeline") else "dict | None" if name.endswith("wakeups")
                    else "float | None" if name.endswith("_ratio") else "int | None")
            out.append((name, kind))
        return out


METRICS: dict[str, Metric] = {
    f.name: Metric(f.name, f.metadata["unit"], f.metadata["better"], f.metadata["clock"], f.metadata["label"],
                   f.metadata["shown"])
    for f in fields(ReplayResult) if f.metadata.get("unit")
}
WALL_CLOCK_FIELDS = tuple(m.name for m in METRICS.values() if m.clock == "wall")
assert WALL_CLOCK_FIELDS == ReplayResult.WALL_CLOCK_FIELDS
assert all(f.default is not MISSING or f.default_factory is not MISSING for f in fields(ReplayResult))


def table_metrics() -> list[Metric]:
    """The figures of ``pagealloc replay``'s table: the main ones first, then the detail, each in field order."""
    return [m for group in ("main", "detail") for m in METRICS.values() if m.shown == group]


__all__ = ["HIGHER", "LOWER", "METRICS", "NONE", "Metric", "Reference", "ReplayResult", "WALL_CLOCK_FIELDS",
           "table_metrics"]
