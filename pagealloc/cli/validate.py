"""``pagealloc validate TRACE...``: check trace files against format v1.

Checks the schema, types, op names, time order and span consistency of each
file (see pagealloc/trace/read.py).  Every file is checked: an ``ok`` line
on stdout for each good one, a ``pagealloc: error: FILE: row N: ...`` line
on stderr for each bad one, and exit status 2 if any was bad.  A trace with
no events is valid for the format (the library accepts it) but is reported
here as an error, as ``replay`` and ``info`` do: there is nothing to replay.
"""

from __future__ import annotations

import sys

from pagealloc.errors import UserError


def register(sub) -> None:
    p = sub.add_parser("validate", help="check trace files (schema, order, span consistency); reports every bad file")
    p.add_argument("traces", nargs="+", metavar="TRACE", help="Parquet trace file(s)")
    p.set_defaults(func=run)


def each_trace(paths, check) -> int:
    """``check(path)`` for every path; a UserError becomes one
    ``pagealloc: error:`` line and the next file is checked.  Exit status 2
    if any failed (shared by validate and info)."""
    bad = 0
    for path in paths:
        try:
            check(path)
        except UserError as e:
            sys.stdout.flush()
            print(f"pagealloc: error: {e}", file=sys.stderr, flush=True)
            bad += 1
    return 2 if bad else 0


def run(args) -> int:
    from pagealloc.trace import validate_trace

    def check(path):
        s = validate_trace(path)
        if s.events == 0:
            raise UserError(f"{path}: the trace has no events")
        counts = ", ".join(f"{n} {op}" for op, n in s.counts.items())
        print(f"{path}: ok: {s.events} events ({counts}), source {s.metadata['source']}")

    return each_trace(args.traces, check)
