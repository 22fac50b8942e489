"""Presets, timing policies and the one typed configuration of a replay.

Not a Go file.  A *preset* (``mode``) says which scavenging sites hold the
heap lock throughout; a *timing* says when a P starts its next event.  Every
caller of the engine (``replay()``, the CLI, sweeps, asv) builds a
``ReplayConfig``, so a default or a bound is written down once, here.

Presets, named for what they do with the heap lock:

* ``go1.14``, as shipped: the background scavenger calls
  scavengeOne(…, false), dropping the lock between steps; heap growth and
  FreeOSMemory (scavengeAll: lock, resetScavengeAddr, scavenge(^0, true),
  unlock) hold it throughout.  The baseline the others are compared with.
* ``unlocked``: every site that can drop the lock does: the background
  scavenger and FreeOSMemory step with it dropped.
* ``locked``: every site holds it throughout, the background scavenger too.

Heap growth scavenges inside alloc with the lock held in all three.

Timings: ``recorded`` starts each event at its timestamp or when its P is
free; ``ordered`` does too and runs the rows in the trace's order across Ps
(the order a Go 1.14 recording took the heap lock in); ``shifted`` moves a
P's later events by the lock waits it had; ``closed`` runs each P's events
back to back.  ``auto`` is ``ordered`` for a go1.14-runtime trace and
``recorded`` for any other (``concrete_timing``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from pagealloc.errors import UserError
from pagealloc.runtime.mgcscavenge import SCAVENGE_PERCENT
from pagealloc.runtime.mheap import RETAIN_EXTRA_PERCENT

MODES = ("go1.14", "unlocked", "locked")
BASELINE_MODE = "go1.14"
# (background scavenger holds the lock, FreeOSMemory holds the lock) per mode
LOCKED_SITES = {"go1.14": (False, True), "unlocked": (False, False), "locked": (True, True)}
AUTO_TIMING = "auto"
TIMINGS = (AUTO_TIMING, "recorded", "ordered", "shifted", "closed")
# When the background scavenger runs after a sleep: "go1.14", a timer fired by Go 1.14.6's scheduler
# over the Ps' schedule, on a P (sim/goschedule.py); "exact", when it asked, needing no P (the model
# before the scheduled scavenger, kept to measure what the scheduler changes).
SCAVENGER_TIMERS = ("go1.14", "exact")
# What Go's pacing is fed as each background release's crit: "model", the section's modelled wall time
# (CostModel); "recorded", the crit the Go 1.14.6 runtime measured for the same release in the
# recording (a diagnostic: it separates *when* the scavenger runs from what crit the model prices);
# "level", the model's crits with the prices of a release scaled to the runtime's mean one-page crit in
# that recording (a diagnostic: it separates the crit's level, the machine's state in the run, from
# which release pays what; replay.crit_level_costs).
SCAVENGER_CRITS = ("model", "recorded", "level")
# Which probe of the recording machine sets the prices of a release (the madvise calls, the TLB shootdown,
# the traffic's share): "in-run", sysmon's probe during the program where the recording has it (record
# stream version 6: replay.in_run_costs), at its level about each background release's time
# (shootdown.in_run_probe_levels, "Session 28"), else the probes before and after it; "in-run-mean", the
# same probe at its mean over the run (sessions 22-27); "around", the probes before and after only.
RELEASE_PROBES = ("in-run", "in-run-mean", "around")
IN_RUN_PROBES = RELEASE_PROBES[:2]

# The model knobs a sweep may vary: name -> (kind, lowest, highest).  kind is
# "number" (int or float), "int" or "bool".  Defaults are ReplayConfig's (Go 1.14's).
KNOBS = {
    "retain_extra_percent": ("number", 0, 1000),  # retainExtraPercent: retain the heap goal + this % (Go: 10)
    "scavenge_percent": ("number", 1e-6, 100),  # scavengePercent: the background scavenger's % of one CPU (Go: 1)
    "madvdontneed": ("bool", None, None),  # GODEBUG=madvdontneed=1: MADV_DONTNEED instead of MADV_FREE (Go: false)
    "gomaxprocs": ("int", 1, 1 << 16),  # number of Ps; None: the trace's metadata, else its p column
}


@dataclass(frozen=True)
class ReplayConfig:
    """How to replay a trace: everything but the trace and the cost model.

    ``validated()`` raises UserError for a value out of range, naming it.
    """

    mode: str = BASELINE_MODE
    timing: str = AUTO_TIMING
    retain_extra_percent: float = RETAIN_EXTRA_PERCENT
    scavenge_percent: float = SCAVENGE_PERCENT
    madvdontneed: bool = False
    gomaxprocs: int | None = None
    scavenger_timers: str = SCAVENGER_TIMERS[0]
    scavenger_crit: str = SCAVENGER_CRITS[0]
    release_probe: str = RELEASE_PROBES[0]
    lenient: bool = False  # skip frees of unknown spans and allocs of live spans (counted)
    check: bool = False  # verify the model's invariants after the replay
    engine: str | None = None  # "compiled" or "python" (runtime/engines.py); None: the process default. Same figures.

    def validated(self) -> "ReplayConfig":
        if self.mode not in MODES:
            raise UserError(f"unknown mode {self.mode!r} (choose from {', '.join(MODES)})")
        if self.timing not in TIMINGS:
            raise UserError(f"unknown timing {self.timing!r} (choose from {', '.join(TIMINGS)})")
        if self.engine is not None:
            from pagealloc.runtime.engines import check_engine

            try:
                check_engine(self.engine)
            except ValueError as e:
                raise UserError(str(e)) from None
        if self.scavenger_timers not in SCAVENGER_TIMERS:
            raise UserError(f"unknown scavenger timers {self.scavenger_timers!r} (choose from {', '.join(SCAVENGER_TIMERS)})")
        if self.scavenger_crit not in SCAVENGER_CRITS:
            raise UserError(f"unknown scavenger crit {self.scavenger_crit!r} (choose from {', '.join(SCAVENGER_CRITS)})")
        if self.release_probe not in RELEASE_PROBES:
            raise UserError(f"unknown release probe {self.release_probe!r} (choose from {', '.join(RELEASE_PROBES)})")
        for name, (kind, low, high) in KNOBS.items():
            value = getattr(self, name)
            if kind == "bool":
                if not isinstance(value, bool):
                    raise UserError(f"{name} must be true or false, got {value!r}")
            elif not (name == "gomaxprocs" and value is None):
                check_knob(name, value, low, high, integer=kind == "int")
        return self

    def with_timing_for(self, source: str | None) -> "ReplayConfig":
        """This configuration with ``auto`` resolved for a trace whose metadata source is ``source``."""
        return replace(self, timing=concrete_timing(self.timing, source))

    @classmethod
    def defaults(cls) -> dict:
        return {f.name: f.default for f in fields(cls)}


def concrete_timing(timing: str, source: str | None) -> str:
    """The timing a replay of a trace from ``source`` (its metadata's) runs for ``timing``:
    ``auto`` is ``ordered`` for a go1.14-runtime trace (its rows are in heap-lock order), else ``recorded``."""
    if timing != AUTO_TIMING:
        return timing
    return "ordered" if source == "go1.14-runtime" else "recorded"


def check_knob(name: str, value, low, high, integer: bool = False) -> None:
    """A model knob must be a number (a whole one if ``integer``) in [low, high]; UserError otherwise."""
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
        what = "a whole number" if integer else "a number"
        raise UserError(f"{name} must be {what} in [{low:g}, {high:g}], got {value!r}")


def gomaxprocs_of(meta: dict, where: str) -> int | None:
    """The metadata's gomaxprocs (None when absent); UserError when it is not a P count."""
    g = meta.get("gomaxprocs")
    if g is None:
        return None
    if isinstance(g, bool) or not isinstance(g, int) or not 1 <= g <= 1 << 16:
        raise UserError(f"{where}: metadata gomaxprocs must be a whole number in [1, 65536], got {g!r}")
    return g
