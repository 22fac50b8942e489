"""``pagealloc sweep GRID.toml -o RESULTS``: a parameter sweep on Dask.

Runs every point of the grid (traces x presets x timings x costs x model
parameters, see pagealloc/sweep/grid.py; x seeds with ``--seeds K``) as one replay per Dask task, on
an embedded LocalCluster (one worker per core) or ``--scheduler``'s
cluster, and streams one row per replay into the RESULTS folder; a rerun
with the same RESULTS skips the points already there.
"""

from __future__ import annotations

import os
import sys

from pagealloc.cli.replay import add_engine_option
from pagealloc.errors import UserError


def register(sub) -> None:
    p = sub.add_parser("sweep", help="run a grid of replays (traces x presets x costs x parameters) on Dask")
    p.add_argument("grid", metavar="GRID.toml", help="the grid file (README: Parameter sweeps)")
    p.add_argument("-o", "--output", required=True, metavar="RESULTS",
                   help="results folder (a Parquet dataset; rerun with the same one to resume)")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                   help="Dask scheduler to use (default: $DASK_SCHEDULER_ADDRESS, else an embedded LocalCluster)")
    p.add_argument("--workers", type=int, metavar="N", help="LocalCluster worker processes (default: one per core)")
    p.add_argument("--dashboard-address", default="127.0.0.1:8787", metavar="HOST:PORT",
                   help="where the LocalCluster serves its dashboard (default 127.0.0.1:8787)")
    p.add_argument("--scatter", action="store_true",
                   help="send each trace to the workers once (for workers that cannot read the grid's paths)")
    p.add_argument("--serial", action="store_true", help="run the points one by one in this process, without Dask")
    p.add_argument("--check", action="store_true", help="verify the model's invariants after each replay")
    add_engine_option(p)
    p.add_argument("--flush-seconds", type=float, default=5.0, metavar="S",
                   help="write finished rows to RESULTS at least every S seconds (default 5)")
    p.add_argument("--seeds", type=int, default=1, metavar="K",
                   help="replay each point for seeds 0..K-1 (pagealloc.sim.spread: seed 0 unperturbed, the others "
                        "perturb costs, timer lateness and timestamps): K times the points, a seed column in RESULTS")
    p.add_argument("--dry-run", action="store_true", help="list the grid's size and axes, run nothing")
    p.set_defaults(func=run)


def run(args) -> int:
    from pagealloc.sweep.grid import load_grid
    from pagealloc.sweep.store import done_points

    if args.flush_seconds < 0:
        raise UserError(f"--flush-seconds must be >= 0, not {args.flush_seconds}")
    if args.serial and (args.scheduler or args.scatter or args.workers):
        raise UserError("--serial runs without Dask: it takes no --scheduler, --workers or --scatter")
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers must be at least 1, not {args.workers}")
    if args.workers is not None and (args.scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS")):
        raise UserError("--workers sizes the embedded LocalCluster; a --scheduler's (or $DASK_SCHEDULER_ADDRESS's) "
                        "cluster has its own workers")
    grid = load_grid(args.grid)
    if args.seeds != 1:
        grid = grid.with_seeds(args.seeds)
    if args.dry_run:
        ids = {p.id for p in grid.points}
        done = len(ids & set(done_points(args.output)))
        swept = ", ".join(f"{axis} {n}" for axis, n in grid.swept().items()) or "none"
        print(f"{grid.name}: {len(grid.points):,} points; values per swept axis: {swept}; "
              f"{done:,} already in {args.output}")
        return 0
    from pagealloc.sweep.execute import run_sweep

    s = run_sweep(grid, args.output, scheduler=args.scheduler, workers=args.workers, serial=args.serial,
                  scatter=args.scatter, check=args.check, engine=args.engine, flush_seconds=args.flush_seconds,
                  dashboard_address=args.dashboard_address)
    ran = s.ok + s.failed
    if not ran:
        print(f"{grid.name}: nothing to run: all {s.points:,} points are already in {args.output}")
        return 0
    rate = f", {ran / s.seconds * 60:,.0f} replays/min" if s.seconds > 0 else ""
    print(f"{grid.name}: {s.points:,} points: {ran:,} run ({s.ok:,} ok, {s.failed:,} failed) in {s.seconds:,.1f} s "
          f"on {s.workers} worker(s){rate}; {s.skipped:,} already in {args.output}")
    if s.failed:
        print(f"pagealloc: error: sweep: {s.failed} of {ran} points failed; their rows in {args.output} hold the "
              "errors (pagealloc.sweep.read_results, column error)", file=sys.stderr)
        return 1
    return 0
