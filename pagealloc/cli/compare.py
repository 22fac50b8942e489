"""``pagealloc compare OLD NEW [--gate] [--factor F] [--machine NAME] [--results DIR] [--all]``.

Two commits' asv results compared by the suite's rules (pagealloc/results/gate.py):
what ``asv compare -f 1.5 --split OLD NEW`` prints, with three differences:

* directions: asv takes every figure as lower-is-better; here each
  benchmark has the suite's direction, and figures with no better direction
  (such as track_released_bytes) are listed as "changed", never as improved
  or worse;
* wall-clock figures (time_*, peakmem_*, the simulator's own speed) are
  judged only with asv's statistics: when both runs have a 99% confidence
  interval (two samples or more; ``asv run --quick`` takes one).  A move
  beyond the factor without them is listed as "not judged"; virtual-time
  figures are deterministic and judged from one sample;
* nothing is silently skipped: asv compares only results of the same
  environment and otherwise prints every benchmark as n/a, "stayed the
  same".  Here commits without a common environment are compared across
  their environments with a WARNING, and when no benchmark has a value in
  both commits, that is an error.

OLD and NEW are any git names of the repository you are in (HEAD~1, main, a
hash).  Exit status: 0 (a report, whatever changed); with ``--gate``, 1 when
a benchmark regressed or started failing, as the nightly gate; 2 for an
error (no results, nothing in common).  ``scripts/compare`` is this command.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pagealloc.errors import UserError


def register(sub) -> None:
    from pagealloc.results.gate import DEFAULT_FACTOR

    p = sub.add_parser("compare", help="compare two commits' asv results by the suite's rules; --gate exits 1 on a regression",
                       description=__doc__.split("\n\n", 1)[1].strip())
    p.add_argument("old", metavar="OLD", help="the commit before (a git name or hash)")
    p.add_argument("new", metavar="NEW", help="the commit after")
    p.add_argument("--gate", action="store_true", help="exit with status 1 when a benchmark regressed or started failing")
    p.add_argument("--factor", "-f", type=float, default=DEFAULT_FACTOR, help="change factor (default %(default)s)")
    p.add_argument("--machine", "-m", help="asv machine (default: the only one)")
    p.add_argument("--results", metavar="DIR", help="asv results folder (default: .asv/results of this repository)")
    p.add_argument("--all", action="store_true", help="also list the benchmarks that stayed the same")
    p.set_defaults(func=run)


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True).stdout.strip()


def resolve(name: str) -> str:
    """The full hash of a git name, or the name itself (a hash of results whose commit this clone lacks)."""
    try:
        return _git("rev-parse", "--verify", "--quiet", f"{name}^{{commit}}")
    except (OSError, subprocess.CalledProcessError):
        return name


def default_results() -> Path:
    """.asv/results at the top of the repository you are in (else of the current folder)."""
    try:
        return Path(_git("rev-parse", "--show-toplevel")) / ".asv" / "results"
    except (OSError, subprocess.CalledProcessError):
        return Path(".asv") / "results"


def run(args) -> int:
    from pagealloc.results.asvresults import load_results, runs_to_compare
    from pagealloc.results.gate import compare_runs, regressions
    from pagealloc.results.tables import format_changes, format_comparison

    if not args.factor > 1:
        raise UserError(f"compare: --factor must be greater than 1 (got {args.factor:g})")
    results = load_results(args.results or default_results())
    old, new, warning = runs_to_compare(results.for_machine(args.machine), resolve(args.old), resolve(args.new))
    if warning:
        print(f"WARNING: {warning}\n", flush=True)
    changes = compare_runs(old, new, args.factor)
    compared = [c for c in changes if (c.old.ok and c.new.ok) or c.status in ("failed", "fixed")]
    print(f"{old.commit[:8]} -> {new.commit[:8]}, machine {old.machine}, factor {args.factor:g}: "
          f"{len(compared)} benchmark values compared", flush=True)
    if not compared:
        raise UserError(f"compare: NO COMMON BENCHMARKS: no benchmark has a value in both {old.commit[:8]} "
                        f"({old.path.name}) and {new.commit[:8]} ({new.path.name})")
    text = format_comparison(changes, results)
    print(f"\n{text}" if text else "\nnothing changed beyond the factor")
    same = [c for c in compared if c.status == "same"]
    if args.all and same:
        print("\nstayed the same:\n" + format_changes(same, results, ("same",)))
    else:
        print(f"\n{len(same)} stayed the same (--all lists them)")
    bad = regressions(changes)
    if args.gate:
        verdict = f"FAILED: {len(bad)} benchmark value(s) regressed or started failing" if bad else "passed"
        print(f"\ncompare: gate {verdict} (factor {args.factor:g})", file=sys.stderr if bad else sys.stdout)
        return 1 if bad else 0
    return 0
