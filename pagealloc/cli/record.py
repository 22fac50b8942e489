"""``pagealloc record -o OUT.parquet [--name NAME] -- TARGET [ARGS...]``.

Builds and runs a real Go program (or a package's tests/benchmarks) with
``GODEBUG=traceallocfree=1``, records its execution trace and imports it.
TARGET is a ``.go`` file, a main package directory, or ``test PKG [go test
flags]``.  Needs Go: ``pip install 'pagealloc[record]'``.  See
pagealloc/trace/record.py.
"""

from __future__ import annotations

import argparse

from pagealloc.errors import UserError


def register(sub) -> None:
    p = sub.add_parser(
        "record",
        help="record a Go program's heap trace (needs the record extra)",
        usage="pagealloc record -o OUT.parquet [--name NAME] -- TARGET [ARGS...]",
        description=__doc__.split("\n\n")[1],
    )
    p.add_argument("-o", "--output", required=True, metavar="OUT.parquet")
    p.add_argument("--name", help="trace name for the metadata (default: the program or package)")
    p.add_argument("--keep-go-trace", metavar="FILE", help="also keep the raw Go execution trace in FILE")
    p.add_argument("-v", "--verbose", action="store_true", help="show go test's output")
    p.add_argument("target", nargs=argparse.REMAINDER, metavar="TARGET [ARGS...]")
    p.set_defaults(func=run)


def run(args) -> int:
    from pagealloc.trace.record import record

    target = args.target[1:] if args.target[:1] == ["--"] else args.target
    if not target:
        raise UserError("record: missing TARGET (usage: pagealloc record -o OUT.parquet -- TARGET [ARGS...])")
    meta = record(target, args.output, name=args.name, keep_go_trace=args.keep_go_trace, verbose=args.verbose)
    counts = ", ".join(f"{n} {op}" for op, n in meta["counts"].items())
    print(f"{args.output}: {meta['events']} events ({counts}) from {meta['program']}")
    return 0
