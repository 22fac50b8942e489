"""Import a Go execution trace (``GODEBUG=traceallocfree=1``, Go >= 1.23).

The events come from the toolchain's own decoder, ``go tool trace
-d=parsed``, one line per event:

- ``Span`` (a span alive when tracing started) and ``SpanAlloc`` become
  ``alloc`` rows; ``SpanFree`` becomes ``free`` (with the npages of its
  alloc).  ``span`` is Go's id, (base - min heap address) / 8 KiB;
  ``kind`` is Go's kindclass (span class << 1, or 1 for stacks and other
  manual spans).
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
``-d=parsed`` does not print.  pagealloc.trace.gowire decodes the whole
binary trace in pure Python instead (``--decoder python``, no Go needed);
it finds the same events, but orders a few of them differently (see there).
"""

from __future__ import annotations

import mmap
import os
import re
import subprocess
from array import array
from dataclasses import dataclass, field

import numpy as np

from pagealloc.errors import UserError
from pagealloc.trace.format import OP_ALLOC, OP_FREE, OP_FREE_OS_MEMORY, OP_GC, TraceWriter, make_metadata
from pagealloc.trace.gotool import find_go, go_env, last_line

# Wire format (internal/trace/tracev2): batch kinds and the AllocFree experiment.
HEADER_RE = re.compile(rb"^go 1\.(\d+) trace\x00*$")
EV_EVENT_BATCH = 1
EV_EXPERIMENTAL_BATCH = 49
EV_END_OF_GENERATION = 52
EXPERIMENT_ALLOC_FREE = 1
ALLOC_FREE_INFO_BATCH = 1  # [min heap addr, page size, min heap align, fixed stack]
MIN_MINOR = 23  # traceallocfree appeared in Go 1.23


@dataclass
class GoTraceInfo:
    """What the binary trace says about itself."""

    version: str  # trace format version, e.g. "1.26"
    min_heap_addr: int | None = None
    page_size: int | None = None


def uvarint(buf, i: int) -> tuple[int, int]:
    """Decode the unsigned LEB128 varint at ``buf[i]``; return (value, next index)."""
    x = shift = 0
    while True:
        b = buf[i]
        i += 1
        x |= (b & 0x7F) << shift
        if b < 0x80:
            return x, i
        shift += 7


def varints(buf, i: int, n: int) -> tuple[list[int], int]:
    """Decode ``n`` consecutive varints at ``buf[i]``; return (values, next index)."""
    out = []
    for _ in range(n):
        v, i = uvarint(buf, i)
        out.append(v)
    return out, i


class WireError(Exception):
    """The bytes do not follow Go's trace wire format."""


def wire_batches(buf):
    """Yield ``(gen, m, time, exp, start, end)`` for every batch after the 16-byte header.

    ``exp`` is the experiment (0 for none); the batch's data is ``buf[start:end]``.
    """
    i = 16
    while i < len(buf):
        kind = buf[i]
        i += 1
        if kind == EV_END_OF_GENERATION:
            continue
        exp = 0
        if kind == EV_EXPERIMENTAL_BATCH:
            exp = buf[i]
            i += 1
        elif kind != EV_EVENT_BATCH:
            raise WireError(f"expected a batch at byte {i - 1}, found event type {kind}")
        (gen, m, time, size), i = varints(buf, i, 4)
        if i + size > len(buf):
            raise WireError(f"truncated: a batch wants {size} bytes at byte {i}, the file ends at {len(buf)}")
        yield gen, m, time, exp, i, i + size
        i += size


def read_header(path: str) -> GoTraceInfo:
    """Check that ``path`` is a Go >= 1.23 execution trace and find its AllocFree info batch."""
    if os.path.isdir(path):
        raise UserError(f"{path}: is a directory, not a Go execution trace file")
    if not os.path.isfile(path):
        raise UserError(f"{path}: no such file")
    with open(path, "rb") as f:
        m = HEADER_RE.match(f.read(16))
        if not m:
            raise UserError(f"{path}: not a Go execution trace (no 'go 1.N trace' header)")
        minor = int(m.group(1))
        if minor < MIN_MINOR:
            raise UserError(f"{path}: Go 1.{minor} trace; heap span events need Go >= 1.{MIN_MINOR} with GODEBUG=traceallocfree=1")
        info = GoTraceInfo(f"1.{minor}")
        if os.fstat(f.fileno()).st_size <= 16:
            return info
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            try:
                for _, _, _, exp, start, end in wire_batches(buf):
                    if exp == EXPERIMENT_ALLOC_FREE and end > start and buf[start] == ALLOC_FREE_INFO_BATCH:
                        (info.min_heap_addr, info.page_size), _ = varints(buf, start + 1, 2)
                        break
            except (WireError, IndexError):
                pass  # the decoder will say what is wrong
    return info


# One parsed event line: "M=3087 P=0 G=1 Experimental Time=1768864870144 Name=SpanAlloc Args=[...]".
LINE_RE = re.compile(r"M=-?\d+ P=(-?\d+) G=-?\d+ (\w+) Time=(\d+) (.*)")
SPAN_RE = re.compile(r"Name=(Span|SpanAlloc|SpanFree) Args=\[id=Value\{Uint64\((\d+)\)\}(?:, npages_value=Value\{Uint64\((\d+)\)\}, kindclass=Value\{Uint64\((\d+)\)\})?")
METRIC_RE = re.compile(r'Name="([^"]+)" Value=Value\{Uint64\((\d+)\)\}')
WALL_RE = re.compile(r"Wall=(\S+)")
FREE_OS_MEMORY_LOG = 'Category="pagealloc" Message="FreeOSMemory"'
GC_MARK = 'Name="GC concurrent mark phase"'


@dataclass
class Decoded:
    """Rows decoded from a ``-d=parsed`` dump, plus facts for the metadata."""

    ts: array = field(default_factory=lambda: array("q"))
    op: array = field(default_factory=lambda: array("B"))
    span: array = field(default_factory=lambda: array("Q"))
    npages: array = field(default_factory=lambda: array("I"))
    p: array = field(default_factory=lambda: array("i"))
    value: array = field(default_factory=lambda: array("Q"))
    kind: array = field(default_factory=lambda: array("H"))
    start: int | None = None  # Time of the first Sync
    wall: str | None = None
    gomaxprocs: int | None = None
    spans_at_start: int = 0
    implicit_frees: int = 0
    dropped_frees: int = 0

    _live: dict = field(default_factory=dict)  # span id -> npages of live spans
    _goal: int = 0  # last heap goal seen
    _pending_gc: int | None = None  # row of a gc row still waiting for its goal

    # The Go events, in trace order; both decoders feed these.
    def span_alloc(self, t: int, sid: int, npages: int, kind: int, p: int, at_start: bool) -> None:
        if sid in self._live:
            self.implicit_frees += 1
            self.add(t, OP_FREE, sid, self._live.pop(sid), p)
        self._live[sid] = npages
        self.spans_at_start += at_start
        self.add(t, OP_ALLOC, sid, npages, p, kind=kind)

    def span_free(self, t: int, sid: int, p: int) -> None:
        npages = self._live.pop(sid, None)
        if npages is None:
            self.dropped_frees += 1
        else:
            self.add(t, OP_FREE, sid, npages, p)

    def heap_goal(self, goal: int) -> None:
        self._goal = goal
        if self._pending_gc is not None:
            self.value[self._pending_gc] = goal
            self._pending_gc = None

    def gc_end(self, t: int, p: int) -> None:
        self._pending_gc = len(self.op)
        self.add(t, OP_GC, 0, 0, p, value=self._goal)

    def free_os_memory(self, t: int, p: int) -> None:
        self.add(t, OP_FREE_OS_MEMORY, 0, 0, p)

    def add(self, t: int, op: int, span: int, npages: int, p: int, value: int = 0, kind: int = 0) -> None:
        self.ts.append(t)
        self.op.append(op)
        self.span.append(span)
        self.npages.append(npages)
        self.p.append(p)
        self.value.append(value)
        self.kind.append(kind)

    def columns(self) -> dict[str, np.ndarray]:
        ts = np.frombuffer(self.ts, dtype=np.int64) - (self.start or 0)
        return {
            "ts": np.maximum(ts, 0),
            "op": np.frombuffer(self.op, dtype=np.uint8),
            "span": np.frombuffer(self.span, dtype=np.uint64),
            "npages": np.frombuffer(self.npages, dtype=np.uint32),
            "p": np.frombuffer(self.p, dtype=np.int32),
            "value": np.frombuffer(self.value, dtype=np.uint64),
            "kind": np.frombuffer(self.kind, dtype=np.uint16),
        }


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
            elif metric.group(1) == "/sched/gomaxprocs:threads" and d.gomaxprocs is None:
                d.gomaxprocs = int(metric.group(2))
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
        from pagealloc.trace.gowire import decode_wire

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
