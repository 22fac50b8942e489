"""``pagealloc replay TRACE... [--mode all|PRESET[,PRESET...]] [--json] ...``

Replays each trace in each preset and prints a table per trace with the
presets side by side, go1.14 (the baseline) first and each alternative's
ratio to it (or, with ``--json``, one JSON object per line per (trace,
preset)).  A progress bar goes to stderr when it is a terminal.

``--seeds K`` replays each (trace, preset) K times (pagealloc.sim.spread):
seed 0 is the plain replay, seeds 1..K-1 perturb the costs, the timers'
lateness and the recorded timestamps.  The JSON line keeps seed 0's value
of each deterministic figure F and adds ``F_min`` and ``F_max`` over the K
replays (and ``seeds``); the table shows each figure's range under it.
"""

from __future__ import annotations

import json
import os
import sys

from pagealloc.errors import UserError
from pagealloc.runtime.engines import ENGINES
from pagealloc.results.tables import scaled
from pagealloc.sim.presets import BASELINE_MODE, MODES, RELEASE_PROBES, SCAVENGER_CRITS, SCAVENGER_TIMERS, TIMINGS, ReplayConfig
from pagealloc.sim.result import table_metrics

# How each unit of the metric catalogue (pagealloc.sim.result) is printed.
FORMATS = {"B": "bytes", "B/s": "bytes/s", "ns": "ns", "count": "{:,}", "events/s": "{:,.0f}", "x": "{:.4f}",
           "fraction": "{:.1%}"}


def register(sub) -> None:
    p = sub.add_parser("replay", help="replay traces against the Go 1.14 heap model in each scavenging preset")
    p.add_argument("traces", metavar="TRACE", nargs="+", help="Parquet trace files")
    p.add_argument("--mode", default="all", type=parse_modes,
                   help=f"presets: all (default), or a comma list of {', '.join(MODES)}")
    p.add_argument("--timing", choices=TIMINGS, default="auto",
                   help="recorded: each event starts at its timestamp or when its P is free; ordered: the same, "
                        "and rows run in the trace's order across Ps (the order a Go 1.14 recording took the heap "
                        "lock in); shifted: a P's stalls delay all its later events; closed: each P runs back to "
                        "back; auto (default): ordered for go1.14-runtime traces, recorded for others")
    p.add_argument("--closed-loop", action="store_true", help="the same as --timing closed")
    p.add_argument("--json", action="store_true", help="one JSON object per line per (trace, preset)")
    add_cost_model_option(p)
    go = ReplayConfig()
    p.add_argument("--retain-extra-percent", type=float, default=go.retain_extra_percent, metavar="P",
                   help=f"Go's retainExtraPercent: heap kept above the goal (default {go.retain_extra_percent:g}, "
                        "Go 1.14's)")
    p.add_argument("--scavenge-percent", type=float, default=go.scavenge_percent, metavar="P",
                   help=f"Go's scavengePercent: background scavenger's share of one CPU (default "
                        f"{go.scavenge_percent:g}, Go 1.14's)")
    p.add_argument("--scavenger-timers", choices=SCAVENGER_TIMERS, default=SCAVENGER_TIMERS[0],
                   help="go1.14 (default): the background scavenger's sleeps are timers fired by Go 1.14.6's scheduler "
                        "over the Ps' schedule, and it runs on a P; exact: it wakes when it asked, needing no P "
                        "(the model before; for comparison)")
    p.add_argument("--scavenger-crit", choices=SCAVENGER_CRITS, default=SCAVENGER_CRITS[0],
                   help="model (default): Go's pacing is fed the modelled crit of each background release (and, on "
                        "a Go 1.14.6 recording, the time the OS had the recorded scavenger's thread off its CPU "
                        "mid-crit, at the same turn of the model's cycle); "
                        "recorded: the crit the Go 1.14.6 runtime measured (a recording's diagnostic: separates when "
                        "the scavenger runs from what crit the model prices); level: the model's crits, its prices of "
                        "a release scaled so that its one-page crit averages the runtime's in that recording (a "
                        "diagnostic: the machine's level in that run, from the recording; one more replay)")
    p.add_argument("--release-probe", choices=RELEASE_PROBES, default=RELEASE_PROBES[0],
                   help="in-run (default): on a Go 1.14.6 recording that has it, the prices of a release (the madvise "
                        "calls, the TLB shootdown, the traffic's share) at the level sysmon's probe measured while the "
                        "program ran (one more replay), a background release's at the probe's level about its time; "
                        "in-run-mean: every release at the probe's mean over the run; elsewhere, and with around: the "
                        "probes before and after the program; a --cost-model is used as given")
    p.add_argument("--gomaxprocs", type=int, default=None, metavar="N",
                   help="number of Ps (default: the trace's metadata, else its p column)")
    p.add_argument("--madvdontneed", action="store_true",
                   help="release with MADV_DONTNEED, as GODEBUG=madvdontneed=1 (default: MADV_FREE, as Go 1.14)")
    p.add_argument("--check", action="store_true", help="verify the model's invariants after each replay")
    add_engine_option(p)
    p.add_argument("--lenient", action="store_true", help="skip frees of unknown spans and allocs of live spans")
    p.add_argument("--seeds", type=parse_seeds, default=1, metavar="K",
                   help="replay each (trace, preset) K times: seed 0 as without it, seeds 1..K-1 perturbed (each cost "
                        "within its documented range, the timers' lateness, the recorded timestamps); JSON adds F_min "
                        "and F_max for each figure, the table its range (default 1: no perturbation)")
    p.add_argument("--jobs", "-j", type=int, default=None, metavar="N",
                   help="with --seeds: seeds replayed in parallel (default: up to 2)")
    p.set_defaults(func=run)


def add_cost_model_option(p) -> None:
    """--cost-model, shared by replay and report."""
    p.add_argument("--cost-model", metavar="FILE",
                   help="TOML or JSON file overriding the default virtual-time costs (without it: the defaults, "
                        "with the TLB shootdown and the memory traffic's share a recording measured beside its "
                        "program where it did)")


def add_engine_option(p) -> None:
    """--engine, shared by replay and sweep: which implementation runs (the figures are the same)."""
    p.add_argument("--engine", choices=ENGINES, default=None,
                   help="compiled (the default where it was built at install) or python (the readable mirror, "
                        "the reference); both give the same figures; PAGEALLOC_ENGINE sets the default")


def parse_seeds(text: str) -> int:
    try:
        k = int(text)
    except ValueError:
        k = 0
    if not 1 <= k <= 1000:
        raise UserError(f"--seeds: must be a whole number in [1, 1000], got {text!r}")
    return k


def parse_modes(text: str) -> tuple[str, ...]:
    """``all`` (or the old ``both``), or a comma list of presets, in MODES order."""
    if text in ("all", "both"):
        return MODES
    asked = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in asked if m not in MODES]
    if unknown or not asked:
        raise UserError(f"--mode: unknown preset {', '.join(unknown) or repr(text)} (choose all, or from {', '.join(MODES)})")
    return tuple(m for m in MODES if m in asked)


def _fmt(value, how: str) -> str:
    """A value in units that suit it: bytes as B/KiB/MiB/GiB (per second with bytes/s), ns as ns/us/ms/s."""
    if how == "bytes/s":
        return _fmt(value, "bytes") + "/s"
    if how in ("bytes", "ns"):
        x, unit = scaled(value, how)
        if unit == "B":
            return f"{value:,.0f} B"
        return f"{value:,} ns" if unit == "ns" else f"{x:,.2f} {unit}"
    return how.format(value)


def _progress(label: str):
    """A tqdm bar on a terminal, else nothing."""
    if not sys.stderr.isatty():
        return None, None
    from tqdm import tqdm

    bar = tqdm(desc=label, unit="ev", unit_scale=True, file=sys.stderr, leave=False)
    last = [0]

    def update(n: int) -> None:
        bar.update(n - last[0])
        last[0] = n

    return bar, update


def run(args) -> int:
    from pagealloc.sim.costmodel import CostModel
    from pagealloc.sim.replay import replay, warm_up
    from pagealloc.trace.naming import trace_name

    cost = CostModel.load(args.cost_model) if args.cost_model else None  # None: each trace's probed costs
    modes = args.mode
    if args.seeds > 1:
        return run_seeds(args, cost, modes)
    warm_up(args.traces[0], modes)  # else the first replay's wall clock also pays the process's start-up
    for path in args.traces:
        results = []
        for mode in modes:
            bar, update = _progress(f"{path} [{mode}]")
            try:
                r = replay(path, config=_config(args, mode), cost_model=cost, progress=update, label=trace_name(path))
            finally:
                if bar is not None:
                    bar.close()
            results.append(r)
            if r.gc_goal_derived and len(results) == 1:  # once per trace
                print(f"pagealloc: note: {path}: {r.gc_goal_derived:,} gc rows give no heap goal; derived Go 1.14's "
                      "(heap in use x (1 + GOGC/100), at least 4 MiB)", file=sys.stderr)
            if args.json:
                d = r.to_dict()
                print(json.dumps(d), flush=True)
        if not args.json:
            print(format_table(path, results))
    return 0


def _config(args, mode: str) -> ReplayConfig:
    return ReplayConfig(mode=mode, timing="closed" if args.closed_loop else args.timing,
                        retain_extra_percent=args.retain_extra_percent, scavenge_percent=args.scavenge_percent,
                        madvdontneed=args.madvdontneed, gomaxprocs=args.gomaxprocs,
                        scavenger_timers=args.scavenger_timers, scavenger_crit=args.scavenger_crit,
                        release_probe=args.release_probe, lenient=args.lenient, check=args.check, engine=args.engine)


def run_seeds(args, cost, modes) -> int:
    """--seeds K: each trace's presets replayed for seeds 0..K-1 (in up to --jobs processes)."""
    from pagealloc.sim.result import ReplayResult
    from pagealloc.sim.spread import replay_seeds, spread_record
    from pagealloc.trace.naming import trace_name
    from pagealloc.trace.read import trace_metadata

    jobs = args.jobs if args.jobs is not None else max(1, min(2, os.cpu_count() or 1))
    if jobs < 1:
        raise UserError(f"--jobs must be at least 1, got {jobs}")
    for path in args.traces:
        trace_metadata(path)  # a bad file: one line, before any worker starts
        configs = [_config(args, mode) for mode in modes]
        per_mode = replay_seeds(path, configs, args.seeds, cost=cost, label=trace_name(path), jobs=jobs)
        records = [spread_record(runs) for runs in per_mode]
        if args.json:
            for d in records:
                print(json.dumps(d), flush=True)
        else:
            results = [_result_of(d) for d in records]
            print(format_table(path, results, spreads=records))
    return 0


def _result_of(d: dict):
    """The ReplayResult a to_dict() record holds, its reference rebuilt from the flat reference_* keys."""
    from dataclasses import fields

    from pagealloc.sim.result import Reference, ReplayResult

    names = {f.name for f in fields(ReplayResult)} - {"reference"}
    r = ReplayResult(**{k: d[k] for k in names if k in d})
    if d.get("reference_released_bytes") is not None:
        r.reference = Reference.from_flat(d)
    return r


def format_table(path: str, results, spreads=None) -> str:
    """The presets side by side; after each alternative, its ratio to the baseline.  With ``spreads``
    (each result's spread_record), a row under each figure gives its range over the seeds."""
    base = next((r for r in results if r.mode == BASELINE_MODE), None)
    header = ["metric"]
    for r in results:
        header += [r.mode] + ([f"/{BASELINE_MODE}"] if base is not None and r is not base else [])
    rows = []
    for metric in table_metrics():
        name, how = metric.name, FORMATS[metric.unit]
        row = [name]
        for r in results:
            value = getattr(r, name)
            row.append(_fmt(value, how))
            if base is not None and r is not base:
                b = getattr(base, name)
                row.append(f"x{value / b:.2f}" if b else ("=" if value == b else "-"))
        rows.append(row)
        if spreads is not None and f"{name}_min" in spreads[0]:
            rng = ["  seeds min..max"]
            for r, d in zip(results, spreads):
                lo, hi = d[f"{name}_min"], d[f"{name}_max"]
                lo, hi = _fmt(lo, how), _fmt(hi, how)
                rng.append("=" if lo == hi else f"{lo}..{hi}")
                if base is not None and r is not base:
                    differs = getattr(r, name) != getattr(base, name)
                    rng.append(_verdict(spreads[results.index(base)], d, name) if differs else "")
            rows.append(rng)
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    r0 = results[0]
    lines = [f"{path}  ({r0.events:,} events, virtual time, timing {r0.timing}, MADV_FREE call "
             f"{r0.madvise_free_call_ns / 1e3:.2f} us, TLB shootdown "
             f"{r0.tlb_shootdown_ns / 1e3:.1f} us, + {r0.memory_traffic_ns / 1e3:.1f} us in heavy allocation, "
             f"heap side of a background release {r0.scavenge_heap_ns / 1e3:.2f} us"
             + (f", at sysmon's in-run probe's {r0.in_run_probe_ns / 1e3:.1f} us a one-page release's calls" if r0.in_run_probe_ns else "")
             + (f" (a background release's at its level about the release's time, "
                f"{r0.in_run_probe_level_low_permille / 1e3:.2f}-{r0.in_run_probe_level_high_permille / 1e3:.2f}x)"
                if r0.in_run_probe_level_high_permille else "")
             + f"; simulator speed {r0.replay_events_per_wall_second:,.0f} "
             "events per wall second)"]
    for row in [header, *rows]:
        lines.append("  ".join(cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)))
    if spreads is not None:
        lines.append(f"each figure's range over {spreads[0]['seeds']} seeds (seed 0 above; pagealloc.sim.spread); "
                     "beside an alternative's range, where it differs from the baseline: 'real' when the ranges do not "
                     "overlap, '~' within the model's spread")
    lines.append("address_agreement: share of allocs placed where the recorded program had them (a diagnostic of "
                 "recorded traces, meaningless for synthetic ones; ARCHITECTURE.md)")
    if r0.reference is not None:  # a go1.14-runtime trace
        lines += ["", *_aligned(_reference_rows(results))]
        if r0.reference.scavenger_wakeups is not None:
            lines += ["", *_aligned(_wakeup_rows(results))]
    return "\n".join(lines) + "\n"


def _verdict(base: dict, alt: dict, name: str) -> str:
    from pagealloc.results.headline import ranges_overlap

    return "~" if ranges_overlap((base[f"{name}_min"], base[f"{name}_max"]), (alt[f"{name}_min"], alt[f"{name}_max"])) \
        else "real"


def _aligned(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)) for row in rows]


def _wakeup_rows(results) -> list[list[str]]:
    """What woke the background scavenger, the runtime's count beside each preset's (ReplayResult.scavenger_wakeups)."""
    real = results[0].reference.scavenger_wakeups
    causes = sorted(set(real).union(*(r.scavenger_wakeups for r in results)), key=lambda c: (c == "gc", c))
    rows = [["background scavenger woken by (timer fired by, or gc)", "real", *(r.mode for r in results)]]
    for cause in causes:
        rows.append([f"  {cause}", f"{real.get(cause, 0):,}", *(f"{r.scavenger_wakeups.get(cause, 0):,}" for r in results)])
    return rows


_COUNTS = ("heap_growths", "released_background_count", "released_background_whole_huge_pages",
           "lock_acquisitions_mutator")  # not bytes
_TIMES = ("p_stall_ns", "p_stall_max_ns")


def _reference_rows(results) -> list[list[str]]:
    """The model against the real Go 1.14.6 runtime that recorded the trace (pagealloc.sim.reference)."""
    from pagealloc.sim.result import Reference

    rows = [["vs the real Go 1.14.6 runtime", "real", *(f"{r.mode}/real" for r in results)],
            ["address_agreement (spans at the recorded address)", "", *(f"{r.address_agreement:.2%}" for r in results)]]
    for name in Reference.COMPARED:
        ratios = [r.reference.ratios[name] for r in results]
        real = getattr(results[0].reference, name)
        how = "{:,}" if name in _COUNTS else "ns" if name in _TIMES else "bytes"
        rows.append([name, "-" if real is None else _fmt(real, how),
                     *("-" if x is None else f"{x:.3f}" for x in ratios)])
        if name == "released_background_whole_huge_pages" and real is not None:
            rows.append(_less_whole_huge_pages(results))
    return rows


def _less_whole_huge_pages(results) -> list[str]:
    """The background bytes less those released as whole huge pages, the runtime's and model / real."""
    from pagealloc.sim.result import background_bytes_less_whole_huge_pages as less

    real = less(results[0].reference)
    return ["  background bytes less them", _fmt(real, "bytes"),
            *(f"{less(r) / real:.3f}" if real else "-" for r in results)]
