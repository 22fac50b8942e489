"""Import a Go execution trace (``GODEBUG=traceallocfree=1``, Go >= 1.23).

The events come from the toolchain's own reader, ``internal/trace``: by
default through ``tracerows`` (pagealloc.trace.gorows, a small Go program
of ours built once against the installed Go, which writes binary rows that
are streamed into the trace file), or through the text of ``go tool trace
-d=parsed`` (``decoder="text"``: the fallback when tracerows does not build
with the installed Go, and the oracle tracerows is tested against; it
prints every event, minutes per GiB of trace).  Both apply the same rules:

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
  ``FreeOSMemory`` become ``free_os_memory`` rows, one per call
  (``match_free_os_memory``): a GC mark phase whose stack shows
  ``runtime/debug.FreeOSMemory`` is one call (``free_os_memory_gcs``).
  ``pagealloc record`` builds programs so that ``debug.FreeOSMemory()``
  logs the annotation right after it returns, so the GC that call ran,
  and its frees, precede the row, and the replay's scavengeAll sees the
  heap Go's did; a program's own annotations (before or after its calls)
  then repeat calls and are dropped (``duplicate_annotations``), and
  without record's they stand for the calls they are matched to.  Calls
  left without an annotation (``unannotated_calls``) are calls the replay
  will not see, and ``warnings_for`` says so.

The Ps' schedule: both Go decoders also give the trace's goroutine and Proc
state transitions, stop-the-world ranges, GC ends and GOMAXPROCS as the same
scheduling records, which pagealloc.trace.gosched turns into format v3's
``p_schedule`` and ``sched_events`` side tables on the rows' clock; the
pure-Python decoder gives none (the replay then derives a schedule from the
rows).

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
Go's reader does not report (pagealloc.trace.gotrace).  pagealloc.trace.gowire decodes the whole
binary trace in pure Python instead (``--decoder python``, no Go needed);
it finds the same events and calls, but orders a few of them differently
(see there).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from array import array
from dataclasses import dataclass

import numpy as np

from pagealloc.errors import UserError
from pagealloc.trace.format import OP_ALLOC, TraceWriter, make_metadata
from pagealloc.trace.gosched import (
    GO_RUNNING,
    GO_STATES,
    GO_SYSCALL,
    PROC_STATES,
    SCHED_GC_END,
    SCHED_GO,
    SCHED_KIND,
    SCHED_PROC,
    SCHED_PROCS,
    SCHED_STW_BEGIN,
    SCHED_STW_END,
    STW_PREFIX,
    STW_SWEEP_TERM_NAME,
    Kinds,
    side_tables,
)
from pagealloc.trace.gotool import find_go, go_env, last_line
from pagealloc.trace.gotrace import GO_REJECTS, MIN_MINOR, Decoded, GoTraceInfo, Rows, read_header

# One parsed event line: "M=3087 P=0 G=1 Experimental Time=1768864870144 Name=SpanAlloc Args=[...]".
LINE_RE = re.compile(r"M=-?\d+ P=(-?\d+) G=-?\d+ (\w+) Time=(\d+) (.*)")
SPAN_RE = re.compile(r"Name=(Span|SpanAlloc|SpanFree) Args=\[id=Value\{Uint64\((\d+)\)\}(?:, npages_value=Value\{Uint64\((\d+)\)\}, kindclass=Value\{Uint64\((\d+)\)\})?")
METRIC_RE = re.compile(r'Name="([^"]+)" Value=Value\{Uint64\((\d+)\)\}')
WALL_RE = re.compile(r"Wall=(\S+)")
FREE_OS_MEMORY_LOG = 'Category="pagealloc" Message="FreeOSMemory"'
GC_MARK = 'Name="GC concurrent mark phase"'
FREE_OS_MEMORY_FRAME = "runtime/debug.FreeOSMemory "  # a stack line: "\truntime/debug.FreeOSMemory @ 0x543966"
# "M=1 P=0 G=1 StateTransition Time=5 GoID=7 Running->Waiting Reason="chan receive"" (or ProcID=0 Idle->Running)
TRANSITION_RE = re.compile(r'M=-?\d+ P=(-?\d+) G=(-?\d+) StateTransition Time=(\d+) (GoID|ProcID)=(\d+) (\w+)->(\w+) Reason="(.*)"$')
STW, STW_SWEEP_TERM = 'Name="' + STW_PREFIX, 'Name="' + STW_SWEEP_TERM_NAME + '"'


class _Transition:
    """A goroutine StateTransition line whose stacks (TransitionStack=, Stack=) are still being read."""

    def __init__(self, t: int, p: int, g_event: int, g: int, old: int, new: int, preempted: int):
        self.t, self.p, self.g_event, self.g, self.old, self.new, self.preempted = t, p, g_event, g, old, new, preempted
        self.stacks: dict[str, list[str]] = {"TransitionStack=": [], "Stack=": []}
        self.reading: list[str] | None = None

    def line(self, line: str) -> None:
        head = line.rstrip("\n")
        if head in self.stacks:
            self.reading = self.stacks[head]
        elif self.reading is not None and line.startswith("\t") and not line.startswith("\t\t"):
            self.reading.append(head[1:].rsplit(" @ ", 1)[0])

    def done(self, d: Decoded, kinds: Kinds) -> None:
        """Its records, as tracerows writes them: what its stacks say the goroutine is, then the transition."""
        for stack, mine in ((self.stacks["TransitionStack="], True), (self.stacks["Stack="], self.g_event == self.g)):
            k = kinds.learn(self.g, tuple(stack)) if mine else 0
            if k:
                d.scheduled(self.t, self.g, -1, SCHED_KIND, k)
        old, new = self.old, self.new
        if old != new and (old == GO_RUNNING or new in (GO_RUNNING, GO_SYSCALL)):
            d.scheduled(self.t, self.g, self.p, SCHED_GO, old, new, self.preempted)


def _transition(d: Decoded, line: str) -> _Transition | None:
    m = TRANSITION_RE.match(line.rstrip("\n"))
    if m is None:
        return None
    p, g_event, t, res, rid = int(m.group(1)), int(m.group(2)), int(m.group(3)), m.group(4), int(m.group(5))
    if res == "ProcID":
        old, new = PROC_STATES[m.group(6)], PROC_STATES[m.group(7)]
        if old != new:
            d.scheduled(t, -1, rid, SCHED_PROC, old, new)
        return None
    return _Transition(t, p, g_event, rid, GO_STATES[m.group(6)], GO_STATES[m.group(7)], int(m.group(8) == "preempted"))


def decode_parsed(lines) -> Decoded:
    """Turn ``go tool trace -d=parsed`` output lines into trace rows and scheduling records."""
    d = Decoded(calls=array("q"), sched=array("q"))
    kinds = Kinds()
    stack_of = None  # "call" or "log": the last event's stack may show debug.FreeOSMemory
    transition = None  # a goroutine's StateTransition, until its stacks are read
    for line in lines:
        if transition is not None:
            if not line.startswith("M="):
                transition.line(line)
                continue
            transition.done(d, kinds)
            transition = None
        if not line.startswith("M="):  # stack frames and blank lines
            if stack_of and FREE_OS_MEMORY_FRAME in line:
                d.last_row_is_a_call() if stack_of == "call" else d.last_row_is_in_call()
                stack_of = None
            continue
        stack_of = None
        if " StateTransition " in line:
            transition = _transition(d, line)
        elif "Name=Span" in line:
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
            elif metric.group(1) == "/sched/gomaxprocs:threads":
                d.scheduled(int(LINE_RE.match(line).group(3)), int(metric.group(2)), -1, SCHED_PROCS)
                if d.gomaxprocs is None:
                    d.gomaxprocs = int(metric.group(2))
        elif " RangeBegin " in line and GC_MARK in line:
            m = LINE_RE.match(line)
            d.gc_start(int(m.group(3)), int(m.group(1)))
            stack_of = "call"
        elif " RangeEnd " in line and GC_MARK in line:
            m = LINE_RE.match(line)
            d.gc_end(int(m.group(3)), int(m.group(1)))
            d.scheduled(int(m.group(3)), -1, int(m.group(1)), SCHED_GC_END)
        elif (" RangeBegin " in line or " RangeEnd " in line) and STW in line:
            m = LINE_RE.match(line)
            d.scheduled(int(m.group(3)), -1, int(m.group(1)), SCHED_STW_BEGIN if " RangeBegin " in line else SCHED_STW_END, int(STW_SWEEP_TERM in line))
        elif " Log " in line and FREE_OS_MEMORY_LOG in line:
            m = LINE_RE.match(line)
            d.free_os_memory(int(m.group(3)), int(m.group(1)))
            stack_of = "log"
        elif " Sync " in line and d.start is None:
            m = LINE_RE.match(line)
            d.start = int(m.group(3))
            wall = WALL_RE.search(line)
            d.wall = wall.group(1) if wall else None
    if transition is not None:
        transition.done(d, kinds)
    return d


def decode_go_trace(path: str) -> Decoded:
    """Run ``go tool trace -d=parsed`` on ``path`` and decode its output (the text decoder)."""
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


DECODERS = {
    "go": "pagealloc tracerows (Go's internal/trace)",
    "text": "go tool trace -d=parsed",
    "python": "pagealloc.trace.gowire (pure Python)",
}
# Bytes of Go trace per second each decoder reads here (2 cores), for the note on a large trace.
DECODE_RATE = {"go": 80e6, "text": 1e6, "python": 3e6}
LARGE_TRACE = 256 << 20


def decode(go_trace: str, decoder: str = "auto", note=None, large_note: str | None = None) -> tuple[Rows, str]:
    """Decode with ``decoder``: ``go`` (compiled), ``text``, ``python``, or ``auto``.

    ``auto``: ``go`` if Go is installed (``text`` if pagealloc's decoder does
    not build with it, saying so through ``note``), else ``python``.
    """
    if decoder == "auto":
        try:
            find_go()
            decoder = "go"
        except UserError:
            decoder = "python"
        if decoder == "go":
            from pagealloc.trace.gorows import BuildError, tracerows_binary

            try:
                tracerows_binary()
            except BuildError as e:
                (note or _stderr_note)(f"{e}; using go tool trace -d=parsed instead (much slower on large traces)")
                decoder = "text"
    _note_large(go_trace, decoder, note or _stderr_note, large_note)
    if decoder == "go":
        from pagealloc.trace.gorows import decode_rows

        return decode_rows(go_trace), decoder
    if decoder == "text":
        return decode_go_trace(go_trace), decoder
    if decoder == "python":
        from pagealloc.trace.gowire import decode_wire  # lazily: most imports use Go's reader

        return decode_wire(go_trace), decoder
    raise ValueError(f"unknown decoder {decoder!r}")


def _stderr_note(text: str) -> None:
    print(f"pagealloc: note: {text}", file=sys.stderr, flush=True)


def _note_large(go_trace: str, decoder: str, note, large_note: str | None) -> None:
    """Before decoding: say so when the trace is large, with about how long it will take."""
    size = os.path.getsize(go_trace)
    if size >= LARGE_TRACE:
        what = large_note or f"{go_trace} is a large execution trace ({size / 2**20:,.0f} MiB); decoding it"
        note(f"{what} ({DECODERS[decoder]}) takes about {_duration(size / DECODE_RATE[decoder])}")


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def import_go_trace(go_trace: str, out: str, name: str | None = None, decoder: str = "auto", note=None, large_note: str | None = None, **metadata) -> dict:
    """Convert a Go execution trace to a trace file; return its metadata.

    ``decoder``: ``go`` (pagealloc's compiled ``tracerows`` on Go's own
    reader), ``text`` (``go tool trace -d=parsed``, Go's reader too, much
    slower), ``python`` (pagealloc.trace.gowire, no Go needed) or ``auto``
    (go when Go is installed).  ``note`` receives what the user should
    know before a long decode (default: a line on stderr), which begins with
    ``large_note`` (default: the trace's name and size).  ``metadata``
    adds or overrides fields (``go_version``, ``goos``, ``goarch``,
    ``program``, ``args``, ``generator`` ...), since the trace itself
    records none of them.
    """
    info = read_header(go_trace)
    go_error = None
    try:
        rows, decoder = decode(go_trace, decoder, note, large_note)
    except UserError as e:
        # auto: Go 1.27's reader rejects some traces its runtime wrote ("inconsistent status for proc",
        # at GOMAXPROCS 8 on 2 cores) although their events are whole; the Python decoder reads them.
        if decoder != "auto" or GO_REJECTS not in str(e) or "inconsistent status" not in str(e):
            raise
        go_error = str(e).split(GO_REJECTS, 1)[1].strip()
        rows, decoder = decode(go_trace, "python", note, large_note)
    with rows:
        f = rows.facts
        if not f.counts[OP_ALLOC]:
            raise UserError(f"{go_trace}: no heap span events; record it with GODEBUG=traceallocfree=1 (Go >= 1.{MIN_MINOR})")
        calls = match_free_os_memory(f.calls, f.annotations, f.in_call)
        fields = {
            "name": name or os.path.splitext(os.path.basename(go_trace))[0],
            "page_size": info.page_size,
            "min_heap_addr": info.min_heap_addr,
            "gomaxprocs": f.gomaxprocs,
            "recorded_at": f.wall,
            "go_trace_version": info.version,
            "spans_at_start": f.spans_at_start,
            "importer": {
                "decoder": DECODERS[decoder],
                "implicit_frees": f.implicit_frees,
                "dropped_frees": f.dropped_frees,
                "duplicate_annotations": len(calls.dropped),
                "free_os_memory_gcs": calls.calls,
                **({"unannotated_calls": calls.unannotated} if calls.calls is not None else {}),
                **({"go_reader_error": go_error} if go_error else {}),
            },
            "generator": {"name": "pagealloc import", "input": os.path.basename(go_trace)},
        }
        fields.update({k: v for k, v in metadata.items() if v is not None})
        start = f.start or 0
        sched = rows.schedule()
        tables = side_tables(sched, start) if sched is not None else {}
        meta = make_metadata("go-trace", **fields)
        with TraceWriter(out, meta, tables=tables) as w:
            for lo, cols in rows.chunks():
                n = len(cols["ts"])
                drop = calls.dropped[(calls.dropped >= lo) & (calls.dropped < lo + n)] - lo
                if len(drop):
                    keep = np.ones(n, dtype=bool)
                    keep[drop] = False
                    cols = {k: v[keep] for k, v in cols.items()}
                cols["ts"] = np.maximum(cols["ts"] - start, 0)
                w.write(**cols)
    return w.metadata


@dataclass
class CallMatch:
    """debug.FreeOSMemory calls and the annotation rows that stand for them."""

    calls: int | None  # calls seen (GCs whose stack shows debug.FreeOSMemory); None: stacks not read
    unannotated: int  # calls with no annotation: the replay will not see them
    dropped: np.ndarray  # row numbers of annotations that repeat a call already annotated


def match_free_os_memory(calls, annotations, in_call) -> CallMatch:
    """One ``free_os_memory`` row per debug.FreeOSMemory call.

    Each GC whose stack shows ``runtime/debug.FreeOSMemory`` is one call.
    ``pagealloc record``'s annotation is logged from inside the call, once
    it has returned, so it is the row of its call (the nearest call before
    it).  A program's own annotations (logged before the call, as earlier
    docs said, or after it) go to the calls still without a row: each call,
    in order, takes the last free annotation before it and after the
    previous call, else the first after it (which maximises the calls
    annotated); the annotations left over repeat a call and are dropped.
    Without stacks (``calls`` None) or without any call seen, an
    annotation right after another (no row between) is dropped as the same
    call twice.
    """
    annotations = np.asarray(annotations, dtype=np.int64)
    if calls is None or not len(calls):
        dup = annotations[1:][np.diff(annotations) == 1] if len(annotations) else annotations
        return CallMatch(None if calls is None else 0, 0, dup)
    calls = np.asarray(calls, dtype=np.int64)
    inside = set(np.asarray(in_call, dtype=np.int64).tolist())
    annotated = np.zeros(len(calls), dtype=bool)
    for a in sorted(inside):
        k = int(np.searchsorted(calls, a)) - 1  # the nearest call before it
        if k >= 0 and not annotated[k]:
            annotated[k] = True
    # The program's annotations, by interval: interval k lies between call k-1 and call k.
    free: dict[int, list[int]] = {}
    for a in annotations.tolist():
        if a not in inside:
            free.setdefault(int(np.searchsorted(calls, a)), []).append(a)
    kept = set()
    for k in np.flatnonzero(~annotated).tolist():
        before, after = free.get(k), free.get(k + 1)
        if before:
            kept.add(before.pop())
        elif after:
            kept.add(after.pop(0))
        else:
            continue
        annotated[k] = True
    dropped = sorted(a for left in free.values() for a in left if a not in kept)
    return CallMatch(len(calls), int((~annotated).sum()), np.array(dropped, dtype=np.int64))


def warnings_for(meta: dict) -> list[str]:
    """What the replay of an imported trace will miss: FreeOSMemory calls without an annotation."""
    importer = meta.get("importer") or {}
    out = []
    if importer.get("go_reader_error"):
        out.append(f"Go's trace reader rejected the trace ({importer['go_reader_error']}); pagealloc's Python decoder read it instead")
    seen = importer.get("free_os_memory_gcs")
    missing = importer.get("unannotated_calls")
    if missing is None:  # an older import: compare the counts
        annotated = (meta.get("counts") or {}).get("free_os_memory", 0)
        missing = 0 if seen is None else max(seen - annotated, 0)
    if not missing:
        return out
    return out + [
        f"{seen} GCs started by debug.FreeOSMemory (their stacks say so) but {missing} of them without a FreeOSMemory annotation: "
        "the replay will not run scavengeAll for those (record with pagealloc record, which annotates every call, "
        'or log trace.Log(ctx, "pagealloc", "FreeOSMemory") after each call)'
    ]


__all__ = ["DECODERS", "Decoded", "GoTraceInfo", "decode", "decode_go_trace", "decode_parsed", "import_go_trace", "match_free_os_memory", "read_header", "warnings_for"]
