"""``pagealloc import GO_TRACE -o OUT.parquet``: convert a Go execution trace.

The trace must have been recorded with ``GODEBUG=traceallocfree=1`` (Go >=
1.23).  Decoding goes through ``go tool trace -d=parsed`` when Go is
installed (the ``record`` extra), else through pagealloc's pure-Python
decoder; ``--decoder`` chooses.  See pagealloc/trace/goimport.py for the
mapping of Go events to rows and for how events are ordered.
"""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("import", help="convert a Go execution trace (GODEBUG=traceallocfree=1) to a Parquet trace")
    p.add_argument("go_trace", metavar="GO_TRACE", help="execution trace from runtime/trace or go test -trace")
    p.add_argument("-o", "--output", required=True, metavar="OUT.parquet")
    p.add_argument("--name", help="trace name for the metadata (default: GO_TRACE's file name)")
    p.add_argument("--program", help="program that was traced, for the metadata")
    p.add_argument("--go-version", help="Go version that recorded the trace, e.g. go1.27.3 (not in the trace itself)")
    p.add_argument("--goos", help="GOOS of the recording")
    p.add_argument("--goarch", help="GOARCH of the recording")
    p.add_argument(
        "--decoder",
        choices=["auto", "go", "python"],
        default="auto",
        help="go: go tool trace -d=parsed (Go's own reader); python: pure Python, no Go needed, "
        "orders a few same-moment events differently; auto (default): go if Go is installed",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    from pagealloc.trace.goimport import import_go_trace

    meta = import_go_trace(
        args.go_trace,
        args.output,
        name=args.name,
        program=args.program,
        go_version=args.go_version,
        goos=args.goos,
        goarch=args.goarch,
        decoder=args.decoder,
    )
    counts = ", ".join(f"{n} {op}" for op, n in meta["counts"].items())
    print(f"{args.output}: {meta['events']} events ({counts})")
    return 0
