"""Import a Go execution trace (``GODEBUG=traceallocfree=1``, Go >= 1.23).

The events come from the toolchain's own decoder, ``go tool trace
-d=parsed``, one line per event:

- ``Span`` (a span alive when tracing started) and ``SpanAlloc`` become
  ``alloc`` rows; ``SpanFree`` becomes ``free`` (with the npages of its
  alloc).  ``span`` is Go's id, (base - min heap address) / 8 KiB;
  ``kind`` is Go's kindclass (span class << 1, or 1 for stacks and other
  manual spans).
- The begin of each ``GC concurrent mark phase`` range becomes a ``gc_start``
  row, carrying the last ``/memory/classes/heap/objects:bytes`` (heap_live).
- The end of each ``GC concurrent mark phase`` range becomes a ``gc`` row;
  its ``value`` is the next ``/gc/heap/goal:bytes`` metric (the runtime
  publishes it just after), or the last known goal if none follows.
- ``runtime/trace`` log events with category ``pagealloc`` and message
  ``FreeOSMemory`` become ``free_os_memory`` rows.  ``pagealloc record``
  builds programs so that ``debug.FreeOSMemory()`` logs it right after it
  returns (a program may also log it itself), so the GC that call ran, and
  its frees, precede the row, and the replay's scavengeAll sees the heap
  Go's did.  Every call runs a GC, so two annotations with no row between
  them are one call annotated twice (by record and by the program): the
  second is dropped (``duplicate_annotations``).
- Go's decoder prints stacks: a GC mark phase whose stack shows
  ``runtime/debug.FreeOSMemory`` is one FreeOSMemory call
  (``free_os_memory_gcs``).  More of those than annotations means calls the
  replay will not see, and ``warnings_for`` says so.

Order and ties: Go's trace reader merges the per-M event batches by
timestamp (a min-heap over Ms, stepping past an M whose next event is not
yet causally possible) and bumps any timestamp that is not after the
previous event's to previous + 1 ns, so the events arrive strictly
increasing in time and there are no ties to break.  Rows keep that order;
a ``gc`` row sits where its range ended.  ``ts`` is ns since the trace's
first Sync event.

Reconciliation (counted in the metadata under ``importer``, and expected
to stay 0): a ``SpanAlloc`` of a span that is still live first frees it
(``implicit_frees``); a ``SpanFree`` of a span not live is dropped
(``dropped_frees``).

The header, page size and min heap address come from a small pure-Python
scan of the binary batches (the AllocFree experiment's info batch), which
``-d=parsed`` does not print (pagealloc.trace.gotrace).  pagealloc.trace.gowire decodes the whole
binary trace in pure Python instead (``--decoder python``, no Go needed);
it finds the same events, but orders a few of them differently (see there).
"""

from __future__ import annotations

import os
import re
import subprocess

import numpy as np

from pagealloc.errors import UserError
from pagealloc.trace.format import OP_ALLOC, OP_FREE_OS_MEMORY, TraceWriter, make_metadata
from pagealloc.trace.gotool import find_go, go_env, last_line
from pagealloc.trace.gotrace import MIN_MINOR, Decoded, GoTraceInfo, read_header

# One parsed event line: "M=3087 P=0 G=1 Experimental Time=1768864870144 Name=SpanAlloc Args=[...]".
LINE_RE = re.compile(r"M=-?\d+ P=(-?\d+) G=-?\d+ (\w+) Time=(\d+) (.*)")
SPAN_RE = re.compile(r"Name=(Span|SpanAlloc|SpanFree) Args=\[id=Value\{Uint64\((\d+)\)\}(?:, npages_value=Value\{Uint64\((\d+)\)\}, kindclass=Value\{Uint64\((\d+)\)\})?")
METRIC_RE = re.compile(r'Name="([^"]+)" Value=Value\{Uint64\((\d+)\)\}')
WALL_RE = re.compile(r"Wall=(\S+)")
FREE_OS_MEMORY_LOG = 'Category="pagealloc" Message="FreeOSMemory"'
GC_MARK = 'Name="GC concurrent mark phase"'
FREE_OS_MEMORY_FRAME = "runtime/debug.FreeOSMemory "  # a stack line: "\truntime/debug.FreeOSMemory @ 0x543966"


def decode_parsed(lines) -> Decoded:
    """Turn ``go tool trace -d=parsed`` output lines into trace rows."""
    d = Decoded(free_os_memory_gcs=0)
    gc_begin = False  # the last event was a GC mark phase's start: is its stack FreeOSMemory's?
    for line in lines:
        if not line.startswith("M="):  # stack frames and blank lines
            if gc_begin and FREE_OS_MEMORY_FRAME in line:
                d.free_os_memory_gcs += 1
                gc_begin = False
            continue
        gc_begin = False
        if "Name=Span" in line:
            m = LINE_RE.match(line)
            s = SPAN_RE.search(m.group(4))
            if s is None:
                continue
            t, p, sid = int(m.group(3)), int(m.group(1)), int(s.group(2))
            if s.group(1) == "SpanFree":
                d.span_free(t, sid, p)
            else:
                d.span_alloc(t, sid, int(s.group(3)), int(s.group(4)), p, at_start=s.group(1) == "Span")
        elif " Metric " in line:
            metric = METRIC_RE.search(line)
            if metric is None:
                continue
            if metric.group(1) == "/gc/heap/goal:bytes":
                d.heap_goal(int(metric.group(2)))
            elif metric.group(1) == "/memory/classes/heap/objects:bytes":
                d.heap_live(int(metric.group(2)))
            elif metric.group(1) == "/sched/gomaxprocs:threads" and d.gomaxprocs is None:
                d.gomaxprocs = int(metric.group(2))
        elif " RangeBegin " in line and GC_MARK in line:
            m = LINE_RE.match(line)
            d.gc_start(int(m.group(3)), int(m.group(1)))
            gc_begin = True
        elif " RangeEnd " in line and GC_MARK in line:
            m = LINE_RE.match(line)
            d.gc_end(int(m.group(3)), int(m.group(1)))
        elif " Log " in line and FREE_OS_MEMORY_LOG in line:
            m = LINE_RE.match(line)
            d.free_os_memory(int(m.group(3)), int(m.group(1)))
        elif " Sync " in line and d.start is None:
            m = LINE_RE.match(line)
            d.start = int(m.group(3))
            wall = WALL_RE.search(line)
            d.wall = wall.group(1) if wall else None
    return d


def decode_go_trace(path: str) -> Decoded:
    """Run ``go tool trace -d=parsed`` on ``path`` and decode its output."""
    exe, _ = find_go()
    proc = subprocess.Popen(
        [exe, "tool", "trace", "-d=parsed", path],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=go_env(),
        text=True,
        bufsize=1 << 20,
    )
    try:
        decoded = decode_parsed(proc.stdout)
    finally:
        proc.stdout.close()
        stderr = proc.stderr.read()
        proc.wait()
    if proc.returncode != 0:
        raise UserError(f"{path}: {GO_REJECTS} {last_line(stderr)}")
    return decoded


DECODERS = {"go": "go tool trace -d=parsed", "python": "pagealloc.trace.gowire (pure Python)"}
GO_REJECTS = "go tool trace cannot read it:"


def decode(go_trace: str, decoder: str = "auto") -> tuple[Decoded, str]:
    """Decode with ``decoder``: ``go``, ``python``, or ``auto`` (go if Go is installed)."""
    if decoder == "auto":
        try:
            find_go()
            decoder = "go"
        except UserError:
            decoder = "python"
    if decoder == "go":
        return decode_go_trace(go_trace), decoder
    if decoder == "python":
        from pagealloc.trace.gowire import decode_wire  # lazily: most imports use Go's decoder

        return decode_wire(go_trace), decoder
    raise ValueError(f"unknown decoder {decoder!r}")


def import_go_trace(go_trace: str, out: str, name: str | None = None, decoder: str = "auto", **metadata) -> dict:
    """Convert a Go execution trace to a v1 trace file; return its metadata.

    ``decoder``: ``go`` (``go tool trace -d=parsed``, Go's own reader),
    ``python`` (pagealloc.trace.gowire, no Go needed) or ``auto`` (go when
    Go is installed).  ``metadata`` adds or overrides fields
    (``go_version``, ``goos``, ``goarch``, ``program``, ``args``,
    ``generator`` ...), since the trace itself records none of them.
    """
    info = read_header(go_trace)
    go_error = None
    try:
        d, decoder = decode(go_trace, decoder)
    except UserError as e:
        # auto: Go 1.27's reader rejects some traces its runtime wrote ("inconsistent status for proc",
        # at GOMAXPROCS 8 on 2 cores) although their events are whole; the Python decoder reads them.
        if decoder != "auto" or GO_REJECTS not in str(e) or "inconsistent status" not in str(e):
            raise
        go_error = str(e).split(GO_REJECTS, 1)[1].strip()
        d, decoder = decode(go_trace, "python")
    columns, duplicates = _drop_duplicate_annotations(d.columns())
    if OP_ALLOC not in d.op:
        raise UserError(f"{go_trace}: no heap span events; record it with GODEBUG=traceallocfree=1 (Go >= 1.{MIN_MINOR})")
    fields = {
        "name": name or os.path.splitext(os.path.basename(go_trace))[0],
        "page_size": info.page_size,
        "min_heap_addr": info.min_heap_addr,
        "gomaxprocs": d.gomaxprocs,
        "recorded_at": d.wall,
        "go_trace_version": info.version,
        "spans_at_start": d.spans_at_start,
        "importer": {
            "decoder": DECODERS[decoder],
            "implicit_frees": d.implicit_frees,
            "dropped_frees": d.dropped_frees,
            "duplicate_annotations": duplicates,
            "free_os_memory_gcs": d.free_os_memory_gcs,
            **({"go_reader_error": go_error} if go_error else {}),
        },
        "generator": {"name": "pagealloc import", "input": os.path.basename(go_trace)},
    }
    fields.update({k: v for k, v in metadata.items() if v is not None})
    meta = make_metadata("go-trace", **fields)
    with TraceWriter(out, meta) as w:
        w.write(**columns)
    return w.metadata


def _drop_duplicate_annotations(columns: dict) -> tuple[dict, int]:
    """Drop a free_os_memory row that directly follows another (one call annotated twice)."""
    fom = columns["op"] == OP_FREE_OS_MEMORY
    dup = fom & np.r_[False, fom[:-1]]
    if not dup.any():
        return columns, 0
    return {k: v[~dup] for k, v in columns.items()}, int(dup.sum())


def warnings_for(meta: dict) -> list[str]:
    """What the replay of an imported trace will miss: FreeOSMemory calls without an annotation."""
    importer = meta.get("importer") or {}
    out = []
    if importer.get("go_reader_error"):
        out.append(f"go tool trace rejected the trace ({importer['go_reader_error']}); pagealloc's Python decoder read it instead")
    seen = importer.get("free_os_memory_gcs")
    annotated = (meta.get("counts") or {}).get("free_os_memory", 0)
    if seen is None or seen <= annotated:
        return out
    return out + [
        f"{seen} GCs started by debug.FreeOSMemory (their stacks say so) but only {annotated} FreeOSMemory annotations: "
        "the replay will not run scavengeAll for the others (record with pagealloc record, which annotates every call, "
        'or log trace.Log(ctx, "pagealloc", "FreeOSMemory") after each call)'
    ]


__all__ = ["DECODERS", "Decoded", "GoTraceInfo", "decode", "decode_go_trace", "decode_parsed", "import_go_trace", "read_header", "warnings_for"]
