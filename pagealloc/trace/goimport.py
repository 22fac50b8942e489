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
  ``FreeOSMemory`` become ``free_os_memory`` rows.  Our workloads log right
  after ``debug.FreeOSMemory()`` returns, so the GC that call ran, and its
  frees, precede the row, and the replay's scavengeAll sees the heap Go's did.

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

from pagealloc.errors import UserError
from pagealloc.trace.format import OP_ALLOC, TraceWriter, make_metadata
from pagealloc.trace.gotool import find_go, go_env, last_line
from pagealloc.trace.gotrace import MIN_MINOR, Decoded, GoTraceInfo, read_header

# One parsed event line: "M=3087 P=0 G=1 Experimental Time=1768864870144 Name=SpanAlloc Args=[...]".
LINE_RE = re.compile(r"M=-?\d+ P=(-?\d+) G=-?\d+ (\w+) Time=(\d+) (.*)")
SPAN_RE = re.compile(r"Name=(Span|SpanAlloc|SpanFree) Args=\[id=Value\{Uint64\((\d+)\)\}(?:, npages_value=Value\{Uint64\((\d+)\)\}, kindclass=Value\{Uint64\((\d+)\)\})?")
METRIC_RE = re.compile(r'Name="([^"]+)" Value=Value\{Uint64\((\d+)\)\}')
WALL_RE = re.compile(r"Wall=(\S+)")
FREE_OS_MEMORY_LOG = 'Category="pagealloc" Message="FreeOSMemory"'
GC_MARK = 'Name="GC concurrent mark phase"'


def decode_parsed(lines) -> Decoded:
    """Turn ``go tool trace -d=parsed`` output lines into trace rows."""
    d = Decoded()
    for line in lines:
        if not line.startswith("M="):
            continue  # stack frames and blank lines
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
        raise UserError(f"{path}: go tool trace cannot read it: {last_line(stderr)}")
    return decoded


DECODERS = {"go": "go tool trace -d=parsed", "python": "pagealloc.trace.gowire (pure Python)"}


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
    d, decoder = decode(go_trace, decoder)
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
        },
        "generator": {"name": "pagealloc import", "input": os.path.basename(go_trace)},
    }
    fields.update({k: v for k, v in metadata.items() if v is not None})
    meta = make_metadata("go-trace", **fields)
    with TraceWriter(out, meta) as w:
        w.write(**d.columns())
    return w.metadata


__all__ = ["DECODERS", "Decoded", "GoTraceInfo", "decode", "decode_go_trace", "decode_parsed", "import_go_trace", "read_header"]
