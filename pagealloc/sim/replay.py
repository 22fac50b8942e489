"""The entry point: replay a trace file or table against the Go 1.14 heap model.

Not a Go file.  ``replay()`` reads the trace in batches, feeds them to the
engine (``engine.Replay``) and returns its ``ReplayResult`` with, on a
go1.14-runtime trace, what the real runtime did (``reference``).
``warm_up`` pays a process's one-time costs before anything is timed.

The presets, timings and ``ReplayConfig`` are in ``presets``; the result
and its metric catalogue in ``result``; the engine in ``engine``,
``actor`` and ``scavenger``.  Their names are re-exported here.
"""

from __future__ import annotations

import time

import numpy as np
from dataclasses import replace

from pagealloc.errors import UserError
from pagealloc.runtime.invariants import InvariantError, check_heap
from pagealloc.runtime.malloc import PAGE_SIZE
from pagealloc.runtime.mgcscavenge import SCAVENGE_PERCENT
from pagealloc.runtime.mheap import RETAIN_EXTRA_PERCENT
from pagealloc.sim.calibrate import probed_costs, traffic_widths
from pagealloc.sim.costmodel import CostModel
from pagealloc.sim.engine import Replay
from pagealloc.sim.engines import replay_class
from pagealloc.sim.goschedule import OFF_CPU_CRIT_NS, PSchedule, RowsToSchedule
from pagealloc.sim.presets import (
    AUTO_TIMING,
    BASELINE_MODE,
    IN_RUN_PROBES,
    LOCKED_SITES,
    MODES,
    SCAVENGER_TIMERS,
    TIMINGS,
    ReplayConfig,
    check_knob,
    concrete_timing,
    gomaxprocs_of,
)
from pagealloc.sim.reference import recorded_end_ns, reference_record
from pagealloc.sim.result import ReplayResult
from pagealloc.sim.traffic import AllocTraffic
from pagealloc.trace.shootdown import ProbeLevels, in_run_probe_classes, in_run_probe_levels, in_run_probe_mean_ns

WARM_UP_ROWS = 5_000


def replay(
    trace,
    mode: str = BASELINE_MODE,
    *,
    cost_model: CostModel | str | None = None,
    timing: str = AUTO_TIMING,
    closed_loop: bool = False,
    retain_extra_percent=RETAIN_EXTRA_PERCENT,
    scavenge_percent=SCAVENGE_PERCENT,
    madvdontneed: bool = False,
    gomaxprocs: int | None = None,
    scavenger_timers: str = "go1.14",
    scavenger_crit: str = "model",
    release_probe: str = "in-run",
    check: bool = False,
    lenient: bool = False,
    engine: str | None = None,
    label: str | None = None,
    progress=None,
    config: ReplayConfig | None = None,
    probe_levels: ProbeLevels | None = None,
    crits: list[int] | None = None,
) -> ReplayResult:
    """Replay ``trace`` (a path, pyarrow Table or pandas DataFrame) in ``mode`` (a preset of MODES).

    ``cost_model``: a CostModel or a cost-model file (TOML or JSON, its
    entries over the defaults); None: CostModel's defaults with the TLB
    shootdown that ``pagealloc record`` measured beside the program, where
    the trace carries it (``calibrate.probed_costs``), and, under
    ``release_probe="in-run"`` (the default), the prices of a release at
    the level sysmon's probe measured during the program, where the
    recording has that probe (record stream version 6; ``in_run_costs``,
    one more replay).

    The keywords are ReplayConfig's fields (``config`` gives them all at
    once, and then the keywords are not read): ``timing`` (TIMINGS; ``auto``
    is ``ordered`` for a go1.14-runtime trace, ``recorded`` for any other;
    ``closed_loop=True`` is ``closed``), Go 1.14's retainExtraPercent (10)
    and scavengePercent (1), ``madvdontneed`` (GODEBUG=madvdontneed=1),
    ``gomaxprocs`` (None: the trace's metadata, else its p column),
    ``scavenger_timers`` (SCAVENGER_TIMERS: ``go1.14``, the default, or
    ``exact``, the background scavenger waking when it asked, on no P),
    ``scavenger_crit`` (SCAVENGER_CRITS: ``model``, the default;
    ``recorded``, Go's pacing fed the crits the runtime measured, for a
    trace that carries its scavenger iterations; ``level``, the model's
    crits with the prices of a release scaled to the level of the
    runtime's in that recording, ``crit_level_costs``; under ``model`` and
    ``level`` such a trace's crits of 1 ms or more still take the model's
    scavenger off its CPU, goschedule's "the OS's part"),
    ``release_probe`` (RELEASE_PROBES: ``in-run``, ``in-run-mean`` or
    ``around``, which probe of the recording machine prices a release, as
    above; ``in-run`` at the probe's level about each release's time,
    ``in-run-mean`` at its mean over the run),
    ``check`` (verify the model's invariants after the replay), ``lenient``
    (skip frees of unknown spans and allocs of live spans, counted in
    ``skipped_events``), ``engine`` (``compiled`` or ``python``, the
    readable mirror; None: the process default, runtime/engines.py; the
    figures are the same).  ``probe_levels``: with a ``cost_model``, the
    probe's level over the run its background releases are priced at
    (``shootdown.in_run_probe_levels``; spread's seeds take seed 0's);
    without one, the recording's own.  ``crits``: under ``scavenger_crit="recorded"``, the crits to feed
    instead of the recording's (``spread.redrawn_crits``).  ``progress(n)`` is called with the number of
    events done after each batch.  Raises UserError for bad input and
    InvariantError for a bug of the model.
    """
    from pagealloc.trace.cpuwait import recorded_cpus
    from pagealloc.trace.format import open_trace
    from pagealloc.trace.naming import trace_name
    from pagealloc.trace.read import iter_event_batches, trace_metadata

    if config is None:
        config = ReplayConfig(mode=mode, timing="closed" if closed_loop else timing,
                              retain_extra_percent=retain_extra_percent, scavenge_percent=scavenge_percent,
                              madvdontneed=madvdontneed, gomaxprocs=gomaxprocs, scavenger_timers=scavenger_timers,
                              scavenger_crit=scavenger_crit, release_probe=release_probe, lenient=lenient, check=check,
                              engine=engine)
    config.validated()
    if crits is not None and config.scavenger_crit != "recorded":
        raise UserError("crits are fed only under scavenger_crit='recorded'")
    if isinstance(cost_model, str) or hasattr(cost_model, "__fspath__"):
        cost_model = CostModel.load(cost_model)
    meta = trace_metadata(trace)
    label = label or trace_name(trace, meta)
    where = str(trace) if isinstance(trace, str) or hasattr(trace, "__fspath__") else label  # for messages
    # Only a trace recorded from Go carries Go's span kinds; elsewhere kind 0
    # means "not given", not "large scan object".
    kinds_known = meta.get("source") in ("go-trace", "go1.14-runtime")
    config = config.with_timing_for(meta.get("source"))
    has_p = "p" in open_trace(trace).schema.names
    g = config.gomaxprocs or gomaxprocs_of(meta, where)
    if not has_p and (g or 1) > 1:
        raise UserError(f"{where}: the metadata says gomaxprocs {g} but the trace has no p column, "
                        "so which P did what is unknown (add a p column, or drop gomaxprocs from the metadata)")
    if cost_model:
        cost, in_run, levels = cost_model, None, probe_levels
    else:
        cost, in_run, levels = recording_costs(trace, meta, where, label, config)
    if config.scavenger_crit == "level":
        cost = crit_level_costs(trace, where, label, config, cost)
    sched = p_schedule_of(trace, g if has_p else 1, cost) if config.scavenger_timers == "go1.14" else None
    engine = replay_class(config.engine)(replace(config, gomaxprocs=g if has_p else 1), cost, kinds_known=kinds_known,
                                         psched=sched)
    engine.lock_line.cpus = recorded_cpus(meta, where)  # a lock waiter's way back to a CPU (heaplock.back_ns)
    if levels is not None:
        engine.scavenger.price_releases_by(levels, cost)
    if config.scavenger_crit == "recorded":
        engine.heap.recorded_crits = iter(recorded_crits(trace, where) if crits is None else crits)
        if sched is not None:  # those crits have the OS's time off the CPU in them already
            sched.forget_off_cpu()
    # the program's allocation traffic, for its releases' price (only where a shootdown is priced)
    traffic = AllocTraffic() if cost.memory_traffic_ns and engine.heap.tlb_probe is not None else None
    engine.heap.traffic = traffic
    widths = traffic_widths(meta) if traffic is not None else None  # the traffic price follows the Ps running
    if widths is not None:
        engine.heap.traffic_narrow_permille, engine.heap.traffic_narrow_n, engine.heap.traffic_wide_n = widths
    arrays = getattr(engine, "TAKES_ARRAYS", False)  # the compiled engine reads the numpy columns in C
    t0 = time.perf_counter()
    row = 0
    try:
        for batch in iter_event_batches(trace, spans=not config.lenient):
            cols = list(batch) if arrays else [a.tolist() for a in batch]
            if not has_p:  # one P: every event on P 0 (it has a page cache)
                cols[5] = np.zeros(len(cols[0]), np.int32) if arrays else [0] * len(cols[0])
            if traffic is not None:
                traffic.add(batch[0], batch[1], batch[3])
            engine.run_batch(*cols, first_row=row, label=where)
            if traffic is not None:
                traffic.forget_before(engine.now)
            row += len(cols[0])
            if progress is not None:
                progress(row)
        if row == 0:
            raise UserError(f"{where}: the trace has no events")
        end_ns = recorded_end_ns(meta, where, engine.last_ts)
        result = engine.finish(label, time.perf_counter() - t0, end_ns)
        result.reference = reference_record(meta, result, where, trace)  # go1.14-runtime traces
        result.tlb_shootdown_ns = cost.tlb_shootdown_ns
        result.madvise_free_call_ns = cost.madvise_free_call_ns
        result.scavenge_heap_ns = cost.scavenge_heap_ns
        result.memory_traffic_ns = cost.memory_traffic_ns if traffic is not None else 0
        result.in_run_probe_ns = round(in_run) if in_run is not None else 0
        if levels is not None:
            result.in_run_probe_level_low_permille = min(levels.permille.values(), default=1000)
            result.in_run_probe_level_high_permille = max(levels.permille.values(), default=1000)
        if config.check:
            check_heap(engine.heap, engine.spans)
            engine.scavenger.check_wakeups(max(result.makespan_ns, end_ns))
    except InvariantError as e:  # a bug in the model (also raised mid-replay: retained < 0)
        raise InvariantError(f"{where} ({config.mode}): {e}") from e
    return result


def recording_costs(trace, meta: dict, where: str, label: str,
                    config: ReplayConfig) -> tuple[CostModel, float | None, ProbeLevels | None]:
    """The cost model of a replay given none, the in-run probe's mean it was set to (None: not), and the
    probe's level over the run its background releases follow (None: the cost model's throughout): the
    defaults with what the recording machine's probes around the program measured (``probed_costs``);
    under ``release_probe="in-run"`` or ``"in-run-mean"`` (not for ``scavenger_crit="level"``, which sets
    its own level), the prices of a release at the level of sysmon's probe during it (``in_run_costs``);
    under ``"in-run"``, at that probe's level about each release's time (``in_run_probe_levels``)."""
    cost = probed_costs(meta)
    in_run = (in_run_probe_mean_ns(meta, where) if config.release_probe in IN_RUN_PROBES
              and config.scavenger_crit != "level" else None)
    if in_run is None:
        return cost, None, None
    g = gomaxprocs_of(meta, where)
    classes = in_run_probe_classes(meta, where, g) if g else None
    scaled = in_run_costs(trace, label, config, cost, in_run, classes)
    if scaled is None:
        return cost, None, None
    levels = in_run_probe_levels(meta, where, g) if g and config.release_probe == "in-run" else None
    return scaled, in_run, levels


def crit_level_costs(trace, where: str, label: str, config: ReplayConfig, cost: CostModel) -> CostModel:
    """``cost`` with the prices of a release the machine sets (costmodel.RELEASE_PRICES) scaled by the
    runtime's mean one-page crit over the model's, as a replay with the model's crits (``cost``, this
    configuration) has it: the model's crits then sit at the level the recording machine's were in
    that run.  One pilot replay, not iterated: the scaled replay's own mean stays within a few percent
    of the runtime's (docs/fidelity-log.md, "Session 21")."""
    recorded = recorded_one_page_crit_mean_ns(trace, where)
    pilot = pilot_replay(trace, label, config, cost)
    if pilot.scavenger_one_page_crit_mean_ns <= 0:
        raise UserError(f"{where}: --scavenger-crit level: the model's scavenger made no one-page release to "
                        "set the level by")
    return cost.releases_scaled(recorded / pilot.scavenger_one_page_crit_mean_ns)


def in_run_costs(trace, label: str, config: ReplayConfig, cost: CostModel, probe_mean_ns: float,
                 classes: tuple[list[int], list[int]] | None = None) -> CostModel | None:
    """``cost`` with the prices of a release the machine sets (costmodel.RELEASE_PRICES) scaled so that
    the madvise calls of the model's one-page background releases average what sysmon's in-run probe
    measured for the same calls (``shootdown.in_run_probe_mean_ns``), as a replay with ``cost`` has
    them: a calibration made during the run, where the machine's state was the program's.  Like for
    like where the probe's calls come split by ``classes`` (``shootdown.in_run_probe_classes``): the
    model's calls are weighted as the probe's samples fall, not as its own releases do (``like_for_like``).
    The rest of the model's crit (the lock, the walk) stays the cost model's.  One pilot replay, as for
    ``crit_level_costs``; None where the pilot made no one-page release."""
    pilot = pilot_replay(trace, label, config, cost)
    matched = like_for_like(classes, pilot) if classes is not None else None
    probe, calls = matched if matched is not None else (probe_mean_ns, pilot.scavenger_one_page_madvise_mean_ns)
    return cost.releases_scaled(probe / calls) if calls > 0 else None


def like_for_like(classes: tuple[list[int], list[int]], result: ReplayResult) -> tuple[float, float] | None:
    """(the probe's mean, the mean of ``result``'s one-page release calls weighted as the probe's samples
    fall) over the classes of release both have: no other P running (no TLB shootdown), or some.  None
    where they share neither.

    Why: a release beside running Ps pays their shootdown, one with none does not (Go 1.14.6's one-page
    MADV_FREE: 4-6 us at the median with no other P running, 24-44 with some, growth_storm at
    GOMAXPROCS 8).  The scavenger wakes as Ps reschedule, sysmon every 10 ms: on that program about half
    of both the runtime's and the model's releases find no other P running, but 8-12% of the probe's
    samples every P idle; on burst_idle 96-98% of the model's releases and 72-76% of the probe's samples.
    Matching the model's overall mean to the probe's then prices the calls beside running Ps 1.5-2x what
    the probe's own such calls cost, and the count fell to 0.58-0.87x on those programs' fresh runs
    (docs/fidelity-log.md, "Session 25", "Session 26")."""
    alone_n = result.scavenger_one_page_alone
    pairs = [(calls, model) for calls, n, model in (
        (classes[0], alone_n, result.scavenger_one_page_madvise_alone_mean_ns),
        (classes[1], result.scavenger_one_page_releases - alone_n, result.scavenger_one_page_madvise_beside_mean_ns),
    ) if calls and n > 0]
    if not pairs:
        return None
    samples = sum(len(calls) for calls, _ in pairs)
    return (sum(sum(calls) for calls, _ in pairs) / samples,
            sum(len(calls) * model for calls, model in pairs) / samples)


def pilot_replay(trace, label: str, config: ReplayConfig, cost: CostModel) -> ReplayResult:
    """A replay of ``trace`` with the model's crits at ``cost``, unchecked: what the level modes scale from."""
    return replay(trace, config=replace(config, scavenger_crit="model", release_probe="around", check=False),
                  cost_model=cost, label=label)


def recorded_one_page_crit_mean_ns(trace, where: str) -> float:
    """The mean crit (ns) of the runtime's background releases of one page that took under
    OFF_CPU_CRIT_NS (its thread stayed on its CPU), from the recording's scavenger iterations."""
    table = recorded_iterations(trace, where, "level", "released_bytes")
    crit, released = (table.column(c).to_numpy() for c in ("crit_ns", "released_bytes"))
    outcome = table.column("outcome").to_numpy(zero_copy_only=False)
    one = (outcome == "sleep") & (released == PAGE_SIZE) & (crit >= 0) & (crit < OFF_CPU_CRIT_NS)
    if not one.any():
        raise UserError(f"{where}: --scavenger-crit level: the runtime made no one-page background release "
                        "to set the level by")
    return float(crit[one].mean())


def recorded_crits(trace, where: str) -> list:
    """The crit (ns) the Go 1.14.6 runtime measured for each background release that slept, in order."""
    from pagealloc.trace.read import iterations_where

    return iterations_where(recorded_iterations(trace, where, "recorded"), "sleep", "crit_ns")


def recorded_iterations(trace, where: str, crit_mode: str, *columns: str):
    """The recording's scavenger iterations (with ``columns``), which ``--scavenger-crit crit_mode`` needs;
    UserError where the trace has none."""
    from pagealloc.trace.read import scavenger_iterations

    table = scavenger_iterations(trace)
    if table is None or table.num_rows == 0 or not set(columns) <= set(table.column_names):
        raise UserError(f"{where}: --scavenger-crit {crit_mode} needs a Go 1.14.6 recording with its scavenger "
                        "iterations (format v3), and this trace has none")
    return table


def p_schedule_of(trace, gomaxprocs: int | None, cost: CostModel | None = None) -> PSchedule:
    """The Ps' schedule the background scavenger's timers follow: the trace's recorded one (format v3,
    from the Go 1.14.6 runtime), else derived from its rows batch by batch (goschedule.RowsToSchedule, from_rows's rule); the timers'
    lateness is ``cost``'s (default: CostModel's)."""
    from pagealloc.trace import read

    cost = cost or CostModel()
    late = {"netpoll_late_ns": cost.netpoll_late_ns, "sysmon_late_ns": cost.sysmon_late_ns}
    table = read.p_schedule(trace)
    if table is not None and table.num_rows:
        return PSchedule.from_table(table, gomaxprocs or 1, read.sched_events(trace),
                                    read.scavenger_iterations(trace), **late)
    rows = RowsToSchedule()
    for ts, p, op in read.schedule_batches(trace):
        rows.add(ts, np.zeros_like(p) if gomaxprocs == 1 else p, op)  # one P runs every row (no p column: P 0)
    return rows.schedule(gomaxprocs or rows.nprocs(), **late)


def warm_up(path, modes) -> None:
    """Replay the first WARM_UP_ROWS rows of ``path`` once in each mode, untimed.

    The first replay in a process otherwise also pays pyarrow's first
    Parquet read and the engine's first run (~0.2 s), which made whichever
    mode ran first look slower in the wall-clock figures.  The rows without
    the file's metadata (whose counts are the whole trace's) are a valid
    trace.  A bad input is left for the measured replay to report; a model
    bug (InvariantError) is reported here, naming the file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        first = next(pq.ParquetFile(path).iter_batches(batch_size=WARM_UP_ROWS))
        head = pa.Table.from_batches([first]).replace_schema_metadata(None)
        for mode in modes:
            replay(head, mode, label=str(path))
    except (UserError, OSError, StopIteration, ValueError):
        pass  # not a measurement: the measured replay reports what is wrong


__all__ = ["AUTO_TIMING", "BASELINE_MODE", "LOCKED_SITES", "MODES", "SCAVENGER_TIMERS", "TIMINGS", "Replay", "ReplayConfig",
           "ReplayResult", "check_knob", "concrete_timing", "replay", "warm_up"]
