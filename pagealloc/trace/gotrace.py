"""What the Go-trace decoders share: the wire format's framing and the rows.

Not a Go file (Go's counterpart is ``internal/trace``): the 16-byte header,
the batch framing and LEB128 varints of Go's trace wire format (Go 1.23 to
1.26), ``read_header`` (the AllocFree experiment's page size and min heap
address, which Go's reader does not report), ``Rows`` and ``RowFacts``,
what every decoder hands the importer, and ``Decoded``, the in-memory rows
that the two Python decoders build through the same event methods.
``goimport`` (the text of ``go tool trace -d=parsed``), ``gowire`` (pure
Python) and ``gorows`` (the compiled ``tracerows``, whose Go code applies
``Decoded``'s rules) import this module and not each other's internals.
"""

from __future__ import annotations

import mmap
import os
import re
from array import array
from dataclasses import dataclass, field

import numpy as np

from pagealloc.errors import UserError
from pagealloc.trace.format import OP_ALLOC, OP_FREE, OP_FREE_OS_MEMORY, OP_GC, OP_GC_START

# Wire format (internal/trace/tracev2): batch kinds and the AllocFree experiment.
HEADER_RE = re.compile(rb"^go 1\.(\d+) trace\x00*$")
EV_EVENT_BATCH = 1
EV_EXPERIMENTAL_BATCH = 49
EV_END_OF_GENERATION = 52
EXPERIMENT_ALLOC_FREE = 1
ALLOC_FREE_INFO_BATCH = 1  # [min heap addr, page size, min heap align, fixed stack]
MIN_MINOR = 23  # traceallocfree appeared in Go 1.23
GO_REJECTS = "Go's trace reader cannot read it:"


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

@dataclass
class RowFacts:
    """What a decoder knows once it has read the whole trace, before the rows are written.

    Row numbers count every row the decoder produced (``calls``,
    ``annotations`` and ``in_call`` are sorted row numbers); ``calls`` is
    None for a decoder that does not read stacks.
    """

    start: int | None  # Time of the first Sync; ts = time - start
    wall: str | None
    gomaxprocs: int | None
    rows: int
    counts: np.ndarray  # rows per op code
    spans_at_start: int
    implicit_frees: int
    dropped_frees: int
    calls: np.ndarray | None  # gc_start rows whose stack shows debug.FreeOSMemory: one call each
    annotations: np.ndarray  # free_os_memory rows (pagealloc/FreeOSMemory log events)
    in_call: np.ndarray  # those logged from inside debug.FreeOSMemory (pagealloc record's annotation)


class Rows:
    """A decoder's result: ``facts`` and ``chunks()``, ``(first row number, raw columns)`` in order.

    Raw columns carry Go's clock in ``ts`` (the importer subtracts
    ``facts.start``).  Use as a context manager, or ``close()``.
    """

    facts: RowFacts

    def chunks(self):
        raise NotImplementedError

    def schedule(self) -> np.ndarray | None:
        """The scheduling records the P stream is built from (gosched.SCHED), or None when the
        decoder does not give them (pagealloc.trace.gowire)."""
        return None

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class Decoded(Rows):
    """Rows decoded in Python (from a ``-d=parsed`` dump or the wire format), plus facts for the metadata."""

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
    calls: array | None = None  # rows of gc_starts whose stack shows debug.FreeOSMemory (None: not looked for)
    in_call: array = field(default_factory=lambda: array("q"))  # free_os_memory rows logged inside FreeOSMemory
    sched: array | None = None  # gosched.SCHED records, 7 values each (None: not decoded)

    _live: dict = field(default_factory=dict)  # span id -> npages of live spans
    _goal: int = 0  # last heap goal seen
    _live_bytes: int = 0  # last heap_live seen (Go's HeapAlloc event / heap objects metric)
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

    def heap_live(self, live: int) -> None:
        self._live_bytes = live

    def gc_start(self, t: int, p: int) -> None:
        """A GC's mark phase begins; the row carries the last heap_live seen (0: none yet)."""
        self.add(t, OP_GC_START, 0, 0, p, value=self._live_bytes)

    def last_row_is_a_call(self) -> None:
        """The gc_start just added was started by debug.FreeOSMemory (its stack says so)."""
        self.calls.append(len(self.op) - 1)

    def last_row_is_in_call(self) -> None:
        """The free_os_memory row just added was logged from inside debug.FreeOSMemory."""
        self.in_call.append(len(self.op) - 1)

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

    def scheduled(self, t: int, g: int, p: int, code: int, a: int = 0, b: int = 0, c: int = 0) -> None:
        self.sched.extend((t, g, p, code, a, b, c))

    def schedule(self) -> np.ndarray | None:
        if self.sched is None:
            return None
        from pagealloc.trace.gosched import SCHED

        flat = np.frombuffer(self.sched, dtype=np.int64).reshape(-1, 7)
        out = np.zeros(len(flat), SCHED)
        for i, name in enumerate(SCHED.names):
            out[name] = flat[:, i]
        return out

    @property
    def facts(self) -> RowFacts:
        op = np.frombuffer(self.op, dtype=np.uint8)
        return RowFacts(
            start=self.start, wall=self.wall, gomaxprocs=self.gomaxprocs, rows=len(op),
            counts=np.bincount(op, minlength=5)[:5], spans_at_start=self.spans_at_start,
            implicit_frees=self.implicit_frees, dropped_frees=self.dropped_frees,
            calls=None if self.calls is None else np.frombuffer(self.calls, dtype=np.int64),
            annotations=np.flatnonzero(op == OP_FREE_OS_MEMORY), in_call=np.frombuffer(self.in_call, dtype=np.int64),
        )

    def chunks(self):
        yield 0, {**self.columns(), "ts": np.frombuffer(self.ts, dtype=np.int64)}

    def columns(self) -> dict[str, np.ndarray]:
        """The rows, ``ts`` in ns since ``start``."""
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
