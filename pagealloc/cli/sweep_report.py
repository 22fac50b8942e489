"""``pagealloc sweep-report RESULTS -o DIR``: a sweep's results as an HTML page.

Plots each metric against each swept axis, presets side by side
(pagealloc/sweep/report.py), as DIR/index.html with PNGs beside it.
"""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("sweep-report", help="HTML page of a sweep's results: each metric against each swept axis")
    p.add_argument("results", metavar="RESULTS", help="the results folder `pagealloc sweep -o` wrote")
    p.add_argument("-o", "--output", metavar="DIR", default="out/sweep-report",
                   help="output folder (default: out/sweep-report)")
    p.set_defaults(func=run)


def run(args) -> int:
    from pagealloc.sweep.report import build_sweep_report

    print(f"sweep-report: {build_sweep_report(args.results, args.output)}")
    return 0
