"""``pagealloc selfcheck``: run the model's built-in consistency check.

Replays a seeded random alloc/free/scavenge stream through PageAlloc and
compares every allocation with a naive first-fit over the same bitmaps, then
verifies the model's invariants.  Prints a one-line verdict with the number
of operations checked; a mismatch is a bug in pagealloc: one
``pagealloc: error:`` line and exit status 1.
"""

from __future__ import annotations

import sys

from pagealloc.errors import UserError


def register(sub) -> None:
    p = sub.add_parser("selfcheck", help="check the page allocator model against a naive first-fit")
    p.add_argument("--ops", type=int, default=20_000, help="operations to run (default 20000)")
    p.add_argument("--seed", type=int, default=1, help="seed of the random operation stream (default 1)")
    p.set_defaults(func=run)


def run(args) -> int:
    from pagealloc.runtime.selfcheck import SelfCheckError, run_selfcheck

    if args.ops < 1:
        raise UserError(f"selfcheck: --ops must be at least 1 (got {args.ops})")
    try:
        report = run_selfcheck(args.ops, args.seed)
    except SelfCheckError as e:
        print(f"pagealloc: error: selfcheck failed: {e} (a bug in pagealloc)", file=sys.stderr)
        return 1
    print(report)
    return 0
