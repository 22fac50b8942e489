"""``pagealloc validate TRACE...``: check trace files against format v1.

Checks the schema, types, op names, time order and span consistency of each
file (see pagealloc/trace/read.py) and prints one ``ok`` line per file; the
first problem stops it with ``pagealloc: error: FILE: row N: ...`` and
exit status 2.  A trace with no events is valid for the format (the library
accepts it) but is reported here as an error, as ``replay`` and ``info`` do:
there is nothing to replay.
"""

from __future__ import annotations

from pagealloc.errors import UserError


def register(sub) -> None:
    p = sub.add_parser("validate", help="check trace files (schema, order, span consistency)")
    p.add_argument("traces", nargs="+", metavar="TRACE", help="Parquet trace file(s)")
    p.set_defaults(func=run)


def run(args) -> int:
    from pagealloc.trace import validate_trace

    for path in args.traces:
        s = validate_trace(path)
        if s.events == 0:
            raise UserError(f"{path}: the trace has no events")
        counts = ", ".join(f"{n} {op}" for op, n in s.counts.items())
        print(f"{path}: ok: {s.events} events ({counts}), source {s.metadata['source']}")
    return 0
