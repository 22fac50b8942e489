"""``pagealloc report [TRACE...] [--asv-results DIR] [--machine NAME] [-o DIR]``: the HTML report.

Replays each TRACE in every mode and writes DIR/index.html with PNGs: first
the headline (per trace, what each preset changes against go1.14, biggest
difference first), then a summary table, released bytes and stall per
mode, retained bytes over time with each preset's difference from go1.14,
and, given asv's results folder, the replay benchmarks and model
microbenchmarks across commits.  Traces are named as everywhere: their
metadata name, else the file's stem.  See pagealloc/results/report.py.
"""

from __future__ import annotations

from pagealloc.cli.replay import add_cost_model_option
from pagealloc.errors import UserError


def register(sub) -> None:
    p = sub.add_parser("report", help="HTML report: each preset against go1.14 per trace, and across commits from asv results")
    p.add_argument("traces", metavar="TRACE", nargs="*", help="Parquet trace files to replay in every mode")
    p.add_argument("--asv-results", metavar="DIR", help="asv results folder (e.g. .asv/results): plot benchmarks across commits")
    p.add_argument("--machine", metavar="NAME", help="asv machine whose results to plot (needed when there are several)")
    p.add_argument("-o", "--output", metavar="DIR", default="out/report", help="output folder (default: out/report)")
    p.add_argument("--jobs", "-j", metavar="N", type=int, default=None, help="replays run in parallel (default: up to 2)")
    add_cost_model_option(p)
    p.add_argument("--seeds", type=int, default=1, metavar="K",
                   help="replay each (trace, preset) for K seeds (pagealloc.sim.spread) and draw each figure's range; "
                        "the headline calls a difference real only where the ranges do not overlap (default 1)")
    p.set_defaults(func=run)


def run(args) -> int:
    from pagealloc.results.report import build_report, default_jobs

    cost = None
    if args.cost_model:
        from pagealloc.sim.costmodel import CostModel

        cost = CostModel.load(args.cost_model)
    jobs = args.jobs if args.jobs is not None else default_jobs()
    if jobs < 1:
        raise UserError(f"report: --jobs must be at least 1 (got {jobs})")
    if not 1 <= args.seeds <= 1000:
        raise UserError(f"report: --seeds must be a whole number in [1, 1000] (got {args.seeds})")
    index = build_report(args.traces, args.output, asv_results=args.asv_results, machine=args.machine,
                         jobs=jobs, cost_model=cost, seeds=args.seeds)
    print(f"report: {index}")
    return 0
