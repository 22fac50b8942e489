"""``pagealloc replay TRACE... [--mode unlocked|locked|both] [--json] ...``

Replays each trace in each mode and prints a table per trace with the two
modes side by side (or, with ``--json``, one JSON object per line per
(trace, mode)).  A progress bar goes to stderr when it is a terminal.
"""

from __future__ import annotations

import json
import sys

from pagealloc.sim.replay import MODES

# Metrics shown in the table, with how to format them.
TABLE = [
    ("events", "{:,}"),
    ("events_per_second", "{:,.0f}"),
    ("released_bytes", "bytes"),
    ("released_background_bytes", "bytes"),
    ("released_growth_bytes", "bytes"),
    ("released_forced_bytes", "bytes"),
    ("retained_peak_bytes", "bytes"),
    ("retained_final_bytes", "bytes"),
    ("heap_growths", "{:,}"),
    ("scavenged_alloc_bytes", "bytes"),
    ("lock_acquisitions_mutator", "{:,}"),
    ("lock_acquisitions_scavenger", "{:,}"),
    ("lock_hold_max_ns", "ns"),
    ("lock_hold_p99_ns", "ns"),
    ("mutator_stall_ns", "ns"),
    ("mutator_stall_max_ns", "ns"),
    ("mutator_stall_p99_ns", "ns"),
    ("scavenger_fooled", "{:,}"),
    ("makespan_ns", "ns"),
    ("address_agreement", "{:.1%}"),
    ("skipped_events", "{:,}"),
]


def register(sub) -> None:
    p = sub.add_parser("replay", help="replay traces against the Go 1.14 heap model, locked vs unlocked scavenging")
    p.add_argument("traces", metavar="TRACE", nargs="+", help="Parquet trace files")
    p.add_argument("--mode", choices=[*MODES, "both"], default="both", help="scavenger lock mode (default: both)")
    p.add_argument("--json", action="store_true", help="one JSON object per line per (trace, mode)")
    p.add_argument("--closed-loop", action="store_true", help="replay events back to back, ignoring timestamps")
    p.add_argument("--cost-model", metavar="FILE", help="TOML or JSON file overriding virtual-time costs")
    p.add_argument("--check", action="store_true", help="verify the model's invariants after each replay")
    p.add_argument("--lenient", action="store_true", help="skip frees of unknown spans and allocs of live spans")
    p.set_defaults(func=run)


def _fmt(value, how: str) -> str:
    if how == "bytes":
        return f"{value / 2**20:,.2f} MiB"
    if how == "ns":
        return f"{value / 1e3:,.1f} us" if value < 10**7 else f"{value / 1e9:,.3f} s"
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
    from pagealloc.sim.replay import replay

    cost = CostModel.load(args.cost_model) if args.cost_model else CostModel()
    modes = MODES if args.mode == "both" else (args.mode,)
    for path in args.traces:
        results = []
        for mode in modes:
            bar, update = _progress(f"{path} [{mode}]")
            try:
                r = replay(path, mode, cost_model=cost, closed_loop=args.closed_loop, check=args.check,
                           lenient=args.lenient, progress=update)
            finally:
                if bar is not None:
                    bar.close()
            results.append(r)
            if args.json:
                d = r.to_dict()
                print(json.dumps(d), flush=True)
        if not args.json:
            print(format_table(path, results))
    return 0


def format_table(path: str, results) -> str:
    header = ["metric"] + [r.mode for r in results]
    rows = [[name] + [_fmt(getattr(r, name), how) for r in results] for name, how in TABLE]
    lines = [f"{path}  ({results[0].events:,} events, virtual time; events/s is wall clock)", *_aligned([header, *rows])]
    if getattr(results[0], "reference_released_bytes", None) is not None:  # a go1.14-runtime trace
        lines += ["", *_aligned(_reference_rows(results))]
    return "\n".join(lines) + "\n"


def _aligned(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(widths[0]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)) for row in rows]


def _reference_rows(results) -> list[list[str]]:
    """The model against the real Go 1.14.6 runtime that recorded the trace (pagealloc.sim.reference)."""
    from pagealloc.sim.reference import COMPARED

    rows = [["vs the real Go 1.14.6 runtime", "real", *(f"{r.mode}/real" for r in results)],
            ["address_agreement (spans at the recorded address)", "", *(f"{r.address_agreement:.2%}" for r in results)]]
    for name in COMPARED:
        ratios = [getattr(r, f"reference_{name}_ratio") for r in results]
        rows.append([name, _fmt(getattr(results[0], f"reference_{name}"), "{:,}" if name == "heap_growths" else "bytes"),
                     *("-" if x is None else f"{x:.3f}" for x in ratios)])
    return rows
