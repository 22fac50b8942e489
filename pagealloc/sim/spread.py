"""How far a replay figure can be trusted: seeded perturbation and K-seed replays.

Not a Go file.  A replay is deterministic, so it prints one number; that
number can sit on a knife edge (a 5% change of one cost flipping a
decision the runtime takes once per GC cycle).  ``replay_seeds`` replays a
trace K times: seed 0 is the plain replay, exactly; seeds 1..K-1 perturb
what the model does not know exactly:

* every ``CostModel`` field, by a factor drawn uniformly in
  [1 - r, 1 + r] with r from ``COST_RANGES`` (rounded to whole ns):
  10% for what ``pagealloc calibrate`` measured (the OS costs: the spread
  of its runs and of a loaded machine), 20% for the heap operations taken
  from the real runtime's measured 210-310 ns range, 25% for estimates;
* the timers' lateness (``netpoll_late_ns``, ``sysmon_late_ns``): drawn
  from the distribution measured on the Go 1.14.6 recordings (the
  ``scavenger_iterations`` side tables: ``fired_ts`` against ``wake_at``,
  ``LATENESS_DECILES``; ``measured_lateness`` recomputes it);
* the recorded timestamps, where the timing follows them (``recorded``,
  ``ordered``, ``shifted``; not ``closed``): each row's ``ts`` moves later
  by up to ``TS_JITTER_NS`` (uniform), then the rows are kept in order
  (a running maximum), so the trace stays a valid one.

Seeding, chosen so that presets compare like with like: the costs and the
lateness depend on the seed alone (seed s is one alternative machine, the
same for every trace and preset), the timestamps on (seed, trace name), the
same in every preset.  The draws are PCG64 streams of NumPy's SeedSequence
turned into doubles by this module (53 bits of a raw word), not a
``Generator`` method, so a seed gives the same numbers on every machine
and NumPy version.

``spread_record`` reduces the K results to seed 0's figures plus ``F_min``
and ``F_max`` for each deterministic figure F (``SPREAD_FIGURES``).

``redrawn_crits`` draws the other unknown, for a Go 1.14.6 recording fed
its own crits: which release met which of them (not a seed of
``replay_seeds``; ``scripts/fresh-fidelity`` feeds it, "Session 29").
"""

from __future__ import annotations

import hashlib
import math
from concurrent.futures import ProcessPoolExecutor
from dataclasses import fields

import numpy as np

from pagealloc.runtime.malloc import PAGE_SIZE
from pagealloc.sim.costmodel import CostModel
from pagealloc.sim.presets import ReplayConfig, concrete_timing
from pagealloc.sim.result import METRICS

MEASURED, FROM_GO, ESTIMATE = 0.10, 0.20, 0.25
COST_RANGES = {
    "alloc_ns": FROM_GO,
    "free_ns": FROM_GO,
    "cache_alloc_ns": ESTIMATE,
    "cache_refill_ns": ESTIMATE,
    "mspan_refill_ns": ESTIMATE,
    "lock_ns": ESTIMATE,
    "lock_spin_ns": ESTIMATE,
    "futex_wake_ns": MEASURED,
    "grow_chunk_ns": ESTIMATE,
    "sys_alloc_ns": ESTIMATE,
    "chunk_scan_ns": ESTIMATE,
    "madvise_call_ns": MEASURED,
    "madvise_page_ns": MEASURED,
    "madvise_free_call_ns": MEASURED,
    "madvise_free_page_ns": MEASURED,
    "madvise_hugepage_ns": MEASURED,
    "tlb_shootdown_ns": MEASURED,
    "madvise_free_first_page_ns": MEASURED,
    "vma_split_ns": MEASURED,
    "cold_floor_ns": MEASURED,
    "cold_per_doubling_ns": MEASURED,
    "cold_max_ns": MEASURED,
    "memory_traffic_ns": MEASURED,
    "futex_wake_busy_ns": MEASURED,
    "scavenge_heap_ns": MEASURED,
    "cold_busy_floor_ns": MEASURED,
    "cold_busy_max_ns": MEASURED,
    "unlock_wake_ns": MEASURED,
    "page_fault_ns": MEASURED,
    "page_retouch_free_ns": MEASURED,
    "gc_ns": ESTIMATE,
}
# Deciles 10..90 (ns) of the timers' lateness on the go114-* recordings (measured_lateness): netpoll's on the
# 17 of 2026-12-06, the timers due under 1 ms after the M blocked (one poll of 1 ms: goschedule.netpoll_fires);
# sysmon's on the 15 of 2026-12-04: fired_ts - wake_at, 6,305 firings (on the 17 today: 74-89 us, left as
# measured then).  A seed draws one value per replay between the 10th and the 90th percentile, linearly
# between deciles.
LATENESS_DECILES = {
    "netpoll_late_ns": (65_570, 67_823, 69_045, 70_177, 71_920, 73_246, 74_393, 75_705, 79_825),
    "sysmon_late_ns": (68_712, 70_665, 74_455, 75_969, 78_326, 81_709, 86_053, 95_273, 218_673),
}
TS_JITTER_NS = 1_000  # a recorded timestamp against the heap operation it stands for: one operation's time
FOLLOWS_TIMESTAMPS = ("recorded", "ordered", "shifted")
# What a seed perturbs (all by default; a subset tells which part of the model's spread comes from where).
PARTS = ("costs", "lateness", "timestamps")
assert set(COST_RANGES) | set(LATENESS_DECILES) == {f.name for f in fields(CostModel)}

# The figures that get F_min / F_max: every deterministic number of the catalogue.
SPREAD_FIGURES = tuple(m.name for m in METRICS.values() if m.clock != "wall" and m.unit)


def uniforms(n: int, seed: int, *tag: str) -> np.ndarray:
    """``n`` doubles in [0, 1) for (seed, tag): PCG64 seeded by SeedSequence([seed, sha256(tag)...])."""
    digest = hashlib.sha256("\0".join(tag).encode()).digest()
    words = [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)]
    raw = np.random.PCG64(np.random.SeedSequence([seed, *words])).random_raw(n)
    return (np.asarray(raw, dtype=np.uint64) >> np.uint64(11)).astype(np.float64) * 2.0**-53


def perturbed_costs(cost: CostModel, seed: int, parts=PARTS) -> CostModel:
    """``cost`` with each field perturbed for ``seed`` (seed 0: ``cost`` itself); ``parts``: "costs" the
    virtual-time costs, "lateness" the timers' lateness (the others are left as they are)."""
    if seed == 0:
        return cost
    names = [f.name for f in fields(CostModel)]
    u = dict(zip(names, uniforms(len(names), seed, "costs")))
    out = {}
    for name in names:
        value = getattr(cost, name)
        if ("lateness" if name in LATENESS_DECILES else "costs") not in parts:
            out[name] = value
        elif name in LATENESS_DECILES:
            deciles = LATENESS_DECILES[name]
            out[name] = int(round(np.interp(u[name] * (len(deciles) - 1), range(len(deciles)), deciles)))
        else:
            r = COST_RANGES[name]
            out[name] = max(0, int(round(value * (1 - r + 2 * r * u[name]))))
    return CostModel(**out)


def jittered_ts(ts: np.ndarray, seed: int, name: str) -> np.ndarray:
    """Row timestamps moved later by up to TS_JITTER_NS each, kept non-decreasing (seed 0: unchanged)."""
    if seed == 0 or len(ts) == 0:
        return ts
    shift = np.floor(uniforms(len(ts), seed, "ts", name) * (TS_JITTER_NS + 1)).astype(np.int64)
    return np.maximum.accumulate(ts.astype(np.int64) + shift)


def jittered_trace(path, seed: int, name: str):
    """The trace at ``path`` as a pyarrow Table (metadata and side tables kept) with jittered ``ts``."""
    import pyarrow as pa

    from pagealloc.trace.read import read_trace

    table = read_trace(path)
    i = table.schema.get_field_index("ts")
    ts = jittered_ts(table.column(i).to_numpy(), seed, name)
    return table.set_column(i, table.schema.field(i), pa.array(ts, pa.int64()))


def seeded_inputs(path, config: ReplayConfig, cost: CostModel, seed: int, name: str, source: str | None,
                  table_cache: dict | None = None, parts=PARTS):
    """(trace, cost model) for ``seed``: the file and ``cost`` themselves for seed 0."""
    if seed == 0:
        return path, cost
    trace = path
    if "timestamps" in parts and concrete_timing(config.timing, source) in FOLLOWS_TIMESTAMPS:
        key = (str(path), seed, name)
        if table_cache is not None and key in table_cache:
            trace = table_cache[key]
        else:
            trace = jittered_trace(path, seed, name)
            if table_cache is not None:
                table_cache.clear()  # one trace at a time: a table is the whole trace in memory
                table_cache[key] = trace
    return trace, perturbed_costs(cost, seed, parts)


def replay_seed(path, config: ReplayConfig, cost: CostModel | None, seed: int, label: str, table_cache=None,
                parts=PARTS):
    """One replay of ``path`` for ``seed``: a ReplayResult (seed 0: the plain replay)."""
    from pagealloc.sim.replay import recording_costs, replay
    from pagealloc.trace.read import trace_metadata

    if not seed:  # the plain replay; with no cost given, replay() prices the recording's probe itself
        return replay(path, config=config, cost_model=cost, label=label)
    meta = trace_metadata(path)
    levels = None
    if cost is None:  # what seed 0's replay priced with
        cost, _, levels = recording_costs(path, meta, str(path), label, config)
    trace, seeded_cost = seeded_inputs(path, config, cost, seed, label, meta.get("source"), table_cache, parts)
    return replay(trace, config=config, cost_model=seeded_cost, label=label, probe_levels=levels)


_tables: dict = {}  # a worker's jittered trace, reused by the presets of one (trace, seed)


def _seed_job(job) -> list[dict]:
    path, label, configs, cost, seed, parts = job
    return [replay_seed(path, c, cost, seed, label, _tables, parts).to_dict() for c in configs]


def replay_seeds(path, configs: list[ReplayConfig], seeds: int, *, cost: CostModel | None = None,
                 label: str | None = None, jobs: int = 1, parts=PARTS) -> list[list[dict]]:
    """For each config (one per preset), the ``to_dict()`` of the replays of seeds 0..seeds-1, in
    seed order.  The seeds run in up to ``jobs`` processes; each does every config of its seed."""
    from pagealloc.trace.naming import trace_name

    if seeds < 1:
        raise ValueError(f"seeds must be at least 1, got {seeds}")
    label = label or trace_name(path)
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise ValueError(f"unknown parts {sorted(unknown)} (known: {', '.join(PARTS)})")
    work = [(str(path), label, list(configs), cost, s, tuple(parts)) for s in range(seeds)]
    if jobs > 1 and seeds > 1:
        with ProcessPoolExecutor(max_workers=min(jobs, seeds)) as pool:
            done = list(pool.map(_seed_job, work))
    else:
        done = [_seed_job(w) for w in work]
    return [[done[s][i] for s in range(seeds)] for i in range(len(configs))]


def spread_record(per_seed: list[dict]) -> dict:
    """Seed 0's figures, and ``F_min`` / ``F_max`` over every seed for each of SPREAD_FIGURES, and ``seeds``."""
    out = dict(per_seed[0])
    for name in SPREAD_FIGURES:
        values = [d.get(name) for d in per_seed]
        if all(_number(v) for v in values):
            out[f"{name}_min"], out[f"{name}_max"] = min(values), max(values)
    out["seeds"] = len(per_seed)
    return out


def relative_spread(record: dict, name: str) -> float:
    """(F_max - F_min) / F for seed 0's F (0 when all are 0; inf when F is 0 and the range is not)."""
    lo, hi, f = record[f"{name}_min"], record[f"{name}_max"], record[name]
    if hi == lo:
        return 0.0
    return (hi - lo) / abs(f) if f else math.inf


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


# One-page releases a redrawn block holds: ~140 ms of the fresh service runs, within which the machine's
# level holds (it moves over 250 ms windows: "Session 28").
REDRAW_BLOCK = 32


def redrawn_crits(trace, where: str, seed: int) -> list:
    """``replay.recorded_crits`` with each block of REDRAW_BLOCK one-page releases' crits in another order, drawn
    for ``seed`` (``uniforms``: the same on every machine; seed 0 keeps the recorded order); the
    other releases' crits stay where they were.  The run's crits and their level over the run are kept,
    which release met which (and so which met the OS's preemptions) is drawn again: fed to the replay
    (``crits``), whether the run's figures hinge on that draw, which no model of the crits can know
    ("Session 29")."""
    from pagealloc.sim.replay import recorded_iterations
    from pagealloc.trace.read import iterations_where

    table = recorded_iterations(trace, where, "recorded", "released_bytes")
    crits = np.array(iterations_where(table, "sleep", "crit_ns"), dtype=np.int64)
    one = np.flatnonzero(np.array(iterations_where(table, "sleep", "released_bytes")) == PAGE_SIZE)
    if seed:
        order = uniforms(len(one), seed, "redrawn crits")
        for start in range(0, len(one), REDRAW_BLOCK):
            block = one[start:start + REDRAW_BLOCK]
            crits[block] = crits[block][np.argsort(order[start:start + REDRAW_BLOCK], kind="stable")]
    return crits.tolist()


def measured_lateness(paths) -> dict[str, list[int]]:
    """Deciles 10..90 of the timers' lateness in the ``scavenger_iterations`` of go1.14-runtime recordings
    (how LATENESS_DECILES was measured): netpoll's from the timers due under 1 ms after its M blocked,
    which it fires after one poll of 1 ms (goschedule.netpoll_fires; a firing before that, by another
    rule the recording names netpoll, is left out), sysmon's against the timer's deadline."""
    from pagealloc.sim.goschedule import NETPOLL_POLL_NS
    from pagealloc.sim.replay import p_schedule_of
    from pagealloc.trace.read import scavenger_iterations, trace_metadata

    late: dict[str, list[int]] = {"netpoll_late_ns": [], "sysmon_late_ns": []}
    for path in paths:
        table = scavenger_iterations(path)
        if table is None:
            continue
        sched = p_schedule_of(path, trace_metadata(path).get("gomaxprocs"))
        d = table.to_pydict()
        for ts, wake, fired, by, p in zip(d["ts"], d["wake_at"], d["fired_ts"], d["fired_by"], d["timer_p"]):
            if wake < 0 or fired < 0:
                continue
            if by == "sysmon":
                late["sysmon_late_ns"].append(fired - wake)
            elif by == "netpoll" and p >= 0:
                blocked = sched.netpoll_blocked(p, ts, wake)
                if wake - blocked < NETPOLL_POLL_NS:  # one poll of 1 ms (goschedule.netpoll_fires): its lateness alone
                    late["netpoll_late_ns"].append(fired - blocked - NETPOLL_POLL_NS)
    return {k: [int(round(x)) for x in np.percentile([x for x in v if x >= 0], range(10, 100, 10))] if v else []
            for k, v in late.items()}


__all__ = ["COST_RANGES", "LATENESS_DECILES", "SPREAD_FIGURES", "TS_JITTER_NS", "jittered_trace", "jittered_ts",
           "measured_lateness", "perturbed_costs", "relative_spread", "replay_seed", "replay_seeds",
           "redrawn_crits", "spread_record", "uniforms"]
