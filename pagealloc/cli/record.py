"""``pagealloc record -o OUT.parquet [options] -- TARGET [ARGS...]``.

Builds and runs a real Go program, or a package's tests or benchmarks, and
records its heap trace.  TARGET is a .go file, a main package directory, or
'test PKG [go test flags]'.  By default the installed Go (>= 1.23; the
record extra brings Go 1.27) records it with GODEBUG=traceallocfree=1;
with --go 1.14, pagealloc's recording build of the Go 1.14.6 runtime the
model mirrors does, and the trace also carries what that runtime released
(the reference replays are held against).  debug.FreeOSMemory() calls are
captured without any change to the program.  The program's output shows as
it runs.
"""

from __future__ import annotations

import argparse
import sys

from pagealloc.errors import UserError

EPILOG = """examples:
  pagealloc record -o churn.parquet -- traces/workloads/churn
  pagealloc record -o json.parquet -- test encoding/json -run '^$' -bench CodeDecoder -benchtime 100x
  pagealloc record --go 1.14 --gomaxprocs 8 -o churn-114.parquet -- traces/workloads/churn

--go 1.14 builds its toolchain once (about 2.5 minutes) from the Go 1.14.6
source given by --go114-src or $PAGEALLOC_GO114_SRC (a go1.14.6-src.tar.gz or
an unpacked tree), else ../shared/go114 beside this checkout, into
$PAGEALLOC_GO114_CACHE (default ~/.cache/pagealloc-go114-record)."""


def register(sub) -> None:
    p = sub.add_parser(
        "record",
        help="record a Go program's heap trace (needs the record extra)",
        usage="pagealloc record -o OUT.parquet [options] -- TARGET [ARGS...]",
        description=__doc__.split("\n\n", 1)[1].strip(),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-o", "--output", required=True, metavar="OUT.parquet")
    p.add_argument("--name", help="trace name for the metadata (default: the program or package)")
    p.add_argument("--go", choices=["installed", "1.14"], default="installed",
                   help="the runtime that records: the installed Go (default), or pagealloc's recording Go 1.14.6")
    p.add_argument("--go114-src", metavar="PATH", help="Go 1.14.6 source tarball or tree for --go 1.14 (default: $PAGEALLOC_GO114_SRC, else ../shared/go114 beside this checkout)")
    p.add_argument("--gomaxprocs", type=int, metavar="N", help="run with GOMAXPROCS=N (more Ps than cores is fine)")
    p.add_argument("--keep-raw", "--keep-go-trace", dest="keep_raw", metavar="FILE",
                   help="also keep the raw recording in FILE (the Go execution trace, or the Go 1.14 record stream; "
                   "pagealloc import reads both)")
    p.add_argument("-q", "--quiet", action="store_true", help="hide the program's output (kept in a log that an error names)")
    p.add_argument("-v", "--verbose", action="store_true", help="also show the build's output")
    p.add_argument("target", nargs=argparse.REMAINDER, metavar="TARGET [ARGS...]")
    p.set_defaults(func=run)


def run(args) -> int:
    from pagealloc.trace.record import record

    target = args.target[1:] if args.target[:1] == ["--"] else args.target
    if not target:
        raise UserError("record: missing TARGET (usage: pagealloc record -o OUT.parquet -- TARGET [ARGS...])")
    meta = record(
        target, args.output, name=args.name, keep_raw=args.keep_raw, verbose=args.verbose,
        go=args.go, go114_src=args.go114_src, gomaxprocs=args.gomaxprocs, quiet=args.quiet,
    )
    report(meta, args.output)
    return 0


def report(meta: dict, output: str) -> None:
    """The summary line on stdout, and warnings about what the replay cannot follow on stderr."""
    from pagealloc.trace.go114records import warnings_for
    from pagealloc.trace.goimport import warnings_for as go_trace_warnings

    counts = ", ".join(f"{n} {op}" for op, n in meta["counts"].items())
    line = f"{output}: {meta['events']} events ({counts})"
    if meta.get("program"):
        line += f" from {meta['program']}"
    print(line)
    ref = meta.get("reference")
    if ref:
        by = ", ".join(f"{path} {n / 2**20:,.1f} MiB" for path, n in ref["released_bytes"].items())
        print(f"{output}: reference (the Go 1.14.6 runtime): released {by}; {ref['heap_growths']} heap growths; "
              f"retained at the end {ref['retained_final_bytes'] / 2**20:,.1f} MiB")
    for warning in warnings_for(ref) if ref else go_trace_warnings(meta):
        print(f"pagealloc: warning: {output}: {warning}", file=sys.stderr)
