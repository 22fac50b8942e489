"""``pagealloc validate TRACE...``: check trace files against format v1.

Checks the schema, types, op names, time order and span consistency of each
file (see pagealloc/trace/read.py) and prints one ``ok`` line per file; the
first problem stops it with ``pagealloc: error: FILE: row N: ...`` and
exit status 2.
"""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("validate", help="check trace files (schema, order, span consistency)")
    p.add_argument("traces", nargs="+", metavar="TRACE", help="Parquet trace file(s)")
    p.set_defaults(func=run)


def run(args) -> int:
    from pagealloc.trace import validate_trace

    for path in args.traces:
        s = validate_trace(path)
        counts = ", ".join(f"{n} {op}" for op, n in s.counts.items())
        print(f"{path}: ok: {s.events} events ({counts}), source {s.metadata['source']}")
    return 0
