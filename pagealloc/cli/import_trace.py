"""``pagealloc import RECORDING -o OUT.parquet``: convert a raw recording to a trace.

RECORDING is a Go execution trace recorded with GODEBUG=traceallocfree=1
(Go >= 1.23), decoded by Go's own trace reader when Go is installed (the
record extra), else by pagealloc's pure-Python decoder (--decoder chooses);
or the record stream of pagealloc's Go 1.14.6 runtime, as 'pagealloc record
--go 1.14 --keep-raw FILE' keeps it (told apart by its first bytes).
"""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser(
        "import",
        help="convert a Go execution trace (GODEBUG=traceallocfree=1) or a Go 1.14 record stream to a Parquet trace",
        description=__doc__.split("\n\n", 1)[1].strip(),
    )
    p.add_argument("go_trace", metavar="RECORDING", help="execution trace from runtime/trace or go test -trace, or a Go 1.14 record stream")
    p.add_argument("-o", "--output", required=True, metavar="OUT.parquet")
    p.add_argument("--name", help="trace name for the metadata (default: RECORDING's file name)")
    p.add_argument("--program", help="program that was traced, for the metadata")
    p.add_argument("--go-version", help="Go version that recorded an execution trace, e.g. go1.27.3 (not in the trace itself)")
    p.add_argument("--goos", help="GOOS of the recording")
    p.add_argument("--goarch", help="GOARCH of the recording")
    p.add_argument(
        "--decoder",
        choices=["auto", "go", "python"],
        default="auto",
        help="for execution traces: go (Go's own reader, through a small Go program of pagealloc's built once); python (pure Python, no Go "
        "needed, orders a few same-moment events differently); auto (default): go if Go is installed",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    from pagealloc.cli.record import report
    from pagealloc.trace.go114records import import_records, is_record_stream
    from pagealloc.trace.goimport import import_go_trace

    if is_record_stream(args.go_trace):
        meta = import_records(args.go_trace, args.output, name=args.name, program=args.program)
    else:
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
    report(meta, args.output)
    return 0
