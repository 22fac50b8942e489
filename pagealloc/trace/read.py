"""Reading traces: streaming validation, summaries, and the reader API.

``iter_event_batches`` is what the replay engine consumes: numpy arrays per
batch, checked on the fly.  ``validate_trace`` runs the same checks over a
whole trace and returns a ``TraceSummary`` (counts per op, duration,
live-heap peak) for ``pagealloc validate`` and ``pagealloc info``.

The checks, each reported as ``FILE: row N: ...`` for the first bad row
(rows are numbered from 0, as ``DataFrame.iloc``): nulls, integers out of
range for their column, unknown op, ``ts`` going backwards, ``alloc``/
``free`` with ``npages`` 0 or beyond the 48-bit address space, alloc of a
span that is already live, free of a span that is not live, a free whose
``npages`` differs from its alloc's, a live heap beyond 2**48 bytes, and
metadata event counts that disagree with the rows.  Memory grows with the
number of live spans, never with the length of the trace.

Format v3's side tables (the Ps' schedule, scheduler events, the background
scavenger's iterations) are read by ``p_schedule``, ``sched_events`` and
``scavenger_iterations``; ``validate_trace`` checks them too.  The event
readers (``iter_event_batches``) never decode them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pagealloc.errors import UserError
from pagealloc.trace.format import (
    ADDRESS_BITS,
    BATCH_ROWS,
    MAX_NPAGES,
    METADATA_KEY,
    OP_ALLOC,
    OP_FREE,
    OP_NAMES,
    PAGE_SIZE,
    SCHEMA,
    SIDE_TABLES,
    Columns,
    EventBatch,
    TraceSource,
    beyond_address_space,
    decode_side_table,
    iter_columns,
    open_trace,
)

_EMPTY_IDS = np.empty(0, dtype=np.uint64)


@dataclass
class TraceSummary:
    """What one pass over a valid trace learns about it."""

    label: str
    metadata: dict
    size_bytes: int | None = None
    events: int = 0
    counts: dict = field(default_factory=lambda: dict.fromkeys(OP_NAMES, 0))
    first_ts: int = 0
    last_ts: int = 0
    peak_pages: int = 0
    peak_ts: int = 0
    end_pages: int = 0
    end_spans: int = 0

    @property
    def duration_ns(self) -> int:
        return self.last_ts - self.first_ts if self.events else 0

    def to_dict(self) -> dict:
        return {
            "trace": self.label,
            "source": self.metadata.get("source", "user"),
            "name": self.metadata.get("name"),
            "events": self.events,
            "counts": dict(self.counts),
            "duration_ns": self.duration_ns,
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "live_heap_peak_bytes": self.peak_pages * PAGE_SIZE,
            "live_heap_peak_pages": self.peak_pages,
            "live_heap_peak_ts": self.peak_ts,
            "live_heap_end_bytes": self.end_pages * PAGE_SIZE,
            "live_spans_end": self.end_spans,
            "size_bytes": self.size_bytes,
            "metadata": self.metadata,
        }


class Validator:
    """Checks batches in order, carrying the live-span set between them.

    ``spans=False`` (``pagealloc replay --lenient``) drops the span
    consistency checks (double alloc, free of a span that is not live, free
    npages differing from the alloc's) and the live-heap tracking they need,
    including the 2**48-byte live-heap cap and the summary's live-heap
    figures; every other check still runs.
    """

    def __init__(self, src: TraceSource, spans: bool = True):
        self.src = src
        self.spans = spans
        self.summary = TraceSummary(src.label, src.metadata, src.size_bytes)
        self.last_ts: int | None = None
        self.live_ids = _EMPTY_IDS  # sorted span ids of live spans
        self.live_npages = np.empty(0, dtype=np.int64)
        self.live_rows = np.empty(0, dtype=np.int64)  # row of each live span's alloc
        self.live_pages = 0
        self.counts = np.zeros(len(OP_NAMES), dtype=np.int64)

    def fail(self, row: int, message: str):
        raise UserError(f"{self.src.label}: row {row}: {message}")

    def check(self, cols: Columns) -> None:
        """Check one normalised batch; raise UserError at its first bad row."""
        good = cols if cols.problem is None else cols.slice(0, cols.problem[0] - cols.start)
        problems = self._problems(good) if len(good) else []
        if cols.problem is not None:
            problems.append(cols.problem)
        if problems:
            self.fail(*min(problems))
        self._advance(good)

    def _problems(self, c: Columns) -> list[tuple[int, str]]:
        found = []

        def first(mask: np.ndarray, describe) -> None:
            if mask.any():
                i = int(np.argmax(mask))
                found.append((c.start + i, describe(i)))

        prev = np.empty_like(c.ts)
        prev[0] = c.ts[0] if self.last_ts is None else self.last_ts
        prev[1:] = c.ts[:-1]
        first(c.ts < prev, lambda i: f"ts {c.ts[i]} is before the previous row's ts {prev[i]} (rows must be in time order)")

        is_alloc, is_free = c.op == OP_ALLOC, c.op == OP_FREE
        spanop = is_alloc | is_free
        first(spanop & (c.npages == 0), lambda i: f"{OP_NAMES[c.op[i]]} of span {c.span[i]} with npages 0 (npages must be > 0)")
        # npages is uint32 here, so this can only trip if MAX_NPAGES shrinks; kept for clarity.
        first(spanop & (c.npages > MAX_NPAGES), lambda i: beyond_address_space(int(c.npages[i])))

        if not self.spans:
            return found
        found += self._span_problems(c, np.flatnonzero(spanop))

        delta = np.where(is_alloc, c.npages.astype(np.int64), 0) - np.where(is_free, c.npages.astype(np.int64), 0)
        live = self.live_pages + np.cumsum(delta)
        first(live > MAX_NPAGES, lambda i: f"live heap reaches {live[i]} pages ({live[i] * PAGE_SIZE} bytes), beyond the {ADDRESS_BITS}-bit address space")
        return found

    def _span_problems(self, c: Columns, rows: np.ndarray) -> list[tuple[int, str]]:
        """Double allocs, frees of spans that are not live, npages mismatches."""
        if not len(rows):
            return []
        order = rows[np.argsort(c.span[rows], kind="stable")]  # grouped by span, in row order
        span, op, npages = c.span[order], c.op[order], c.npages[order].astype(np.int64)
        new_group = np.r_[True, span[1:] != span[:-1]]
        # State before each event: from the previous event of the same span in
        # this batch, or from the live set carried over from earlier batches.
        was_live = np.r_[False, op[:-1] == OP_ALLOC]
        had_npages = np.r_[0, npages[:-1]]
        alloc_row = np.r_[0, c.start + order[:-1]]
        pos = np.searchsorted(self.live_ids, span[new_group])
        pos_ok = np.minimum(pos, max(len(self.live_ids) - 1, 0))
        carried = (pos < len(self.live_ids)) & (self.live_ids[pos_ok] == span[new_group]) if len(self.live_ids) else np.zeros(len(pos), bool)
        was_live[new_group] = carried
        if len(self.live_ids):
            had_npages[new_group] = np.where(carried, self.live_npages[pos_ok], 0)
            alloc_row[new_group] = np.where(carried, self.live_rows[pos_ok], 0)

        found = []
        checks = [
            ((op == OP_ALLOC) & was_live, lambda k: f"double alloc of span {span[k]}, which is already live (allocated at row {alloc_row[k]})"),
            ((op == OP_FREE) & ~was_live, lambda k: f"free of unknown span {span[k]} (not live: never allocated, or already freed)"),
            (
                (op == OP_FREE) & was_live & (npages != had_npages),
                lambda k: f"free of span {span[k]} with npages {npages[k]}, but it was allocated with npages {had_npages[k]} at row {alloc_row[k]}",
            ),
        ]
        for mask, describe in checks:
            if mask.any():
                hits = np.flatnonzero(mask)
                k = int(hits[np.argmin(order[hits])])  # earliest row, not smallest span
                found.append((c.start + int(order[k]), describe(k)))
        return found

    def _advance(self, c: Columns) -> None:
        """Fold a checked batch into the running state."""
        n = len(c)
        if not n:
            return
        s = self.summary
        if s.events == 0:
            s.first_ts = int(c.ts[0])
        s.events += n
        s.last_ts = self.last_ts = int(c.ts[-1])
        self.counts += np.bincount(c.op, minlength=len(OP_NAMES))[: len(OP_NAMES)]
        if not self.spans:
            return

        is_alloc, is_free = c.op == OP_ALLOC, c.op == OP_FREE
        delta = np.where(is_alloc, c.npages.astype(np.int64), 0) - np.where(is_free, c.npages.astype(np.int64), 0)
        live = self.live_pages + np.cumsum(delta)
        top = int(np.argmax(live))
        if live[top] > s.peak_pages:
            s.peak_pages, s.peak_ts = int(live[top]), int(c.ts[top])
        self.live_pages = int(live[-1])

        rows = np.flatnonzero(is_alloc | is_free)
        if len(rows):
            # The last event of each span in this batch decides whether it is live.
            order = rows[np.argsort(c.span[rows], kind="stable")]
            span = c.span[order]
            last = np.r_[span[1:] != span[:-1], True]
            touched, final = order[last], c.op[order[last]]
            keep = ~np.isin(self.live_ids, c.span[touched])
            born = touched[final == OP_ALLOC]
            ids = np.concatenate([self.live_ids[keep], c.span[born]])
            npg = np.concatenate([self.live_npages[keep], c.npages[born].astype(np.int64)])
            arow = np.concatenate([self.live_rows[keep], c.start + born])
            sort = np.argsort(ids, kind="stable")
            self.live_ids, self.live_npages, self.live_rows = ids[sort], npg[sort], arow[sort]

    def finish(self) -> TraceSummary:
        """Final checks (metadata counts) and the summary."""
        s = self.summary
        s.counts = {name: int(n) for name, n in zip(OP_NAMES, self.counts)}
        s.end_pages, s.end_spans = self.live_pages, len(self.live_ids)
        meta = self.src.metadata
        if "events" in meta and meta["events"] != s.events:
            raise UserError(f"{self.src.label}: metadata says {meta['events']} events but the file has {s.events} rows")
        for name, n in (meta.get("counts") or {}).items():
            if s.counts.get(name) != n:
                raise UserError(f"{self.src.label}: metadata counts {n} {name} events but the file has {s.counts.get(name, 0)}")
        return s


def _checked_columns(src: TraceSource, validator: Validator | None) -> Iterator[Columns]:
    """Normalised batches of ``src``; checked by ``validator`` (else only decoded)."""
    for cols in iter_columns(src):
        if validator is not None:
            validator.check(cols)
        elif cols.problem is not None:
            raise UserError(f"{src.label}: row {cols.problem[0]}: {cols.problem[1]}")
        yield cols
    if validator is not None:
        validator.finish()


def _checked(source, batch_rows: int, validate: bool, spans: bool = True) -> Iterator[Columns]:
    src = open_trace(source, batch_rows)
    return _checked_columns(src, Validator(src, spans) if validate else None)


def iter_event_batches(source, batch_rows: int = BATCH_ROWS, validate: bool = True, spans: bool = True) -> Iterator[EventBatch]:
    """Yield ``EventBatch(ts, op, span, npages, value, p, kind)`` numpy arrays per batch.

    ``source`` is a path, a ``pyarrow.Table`` or a ``pandas.DataFrame``.
    With ``validate`` (the default) every check runs as the batches stream
    by, so a bad row raises UserError before the batch holding it is
    yielded.  ``spans=False`` keeps every check but span consistency (see
    Validator).  Op codes are OP_ALLOC, OP_FREE, OP_GC, OP_FREE_OS_MEMORY, OP_GC_START.
    """
    for cols in _checked(source, batch_rows, validate, spans):
        yield cols.events()


def iter_record_batches(source, batch_rows: int = BATCH_ROWS, validate: bool = True) -> Iterator[pa.RecordBatch]:
    """Like ``iter_event_batches`` but yields canonical ``pyarrow.RecordBatch``es (with ``kind``)."""
    for cols in _checked(source, batch_rows, validate):
        yield cols.to_record_batch()


def trace_metadata(source) -> dict:
    """The metadata of a trace (``{"source": "user", ...}`` when it has none)."""
    return open_trace(source).metadata


def schedule_batches(source) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The ``ts``, ``p`` and ``op`` (codes) columns, batch by batch, unvalidated (the replay
    validates as it reads); ``p`` is -1 where the trace has no p column."""
    for cols in _checked(source, BATCH_ROWS, False, False):
        batch = cols.events()
        yield batch.ts, batch.p, batch.op


def validate_trace(source, batch_rows: int = BATCH_ROWS) -> TraceSummary:
    """Check a whole trace; return its summary or raise UserError at the first bad row."""
    src = open_trace(source, batch_rows)
    validator = Validator(src)
    for _ in _checked_columns(src, validator):
        pass
    for name in SIDE_TABLES:
        decode_side_table(src.schema, src.metadata, name, src.label)
    return validator.summary


def side_table(source, name: str) -> pa.Table | None:
    """The side table ``name`` (see format.SIDE_TABLES) of a trace, checked; None if the trace has none.

    ``source`` is a path or a ``pyarrow.Table`` from ``read_trace`` (its
    schema metadata carries the side tables).  Raises UserError when the
    table is corrupt or does not follow its schema.
    """
    src = open_trace(source)
    return decode_side_table(src.schema, src.metadata, name, src.label)


def p_schedule(source) -> pa.Table | None:
    """The Ps' schedule: ``ts`` (ns, the trace's clock), ``p``, ``state``, ``reason``; None without one.

    From ``ts`` on, P ``p`` is in ``state`` until its next row: running a
    goroutine (``user``, ``gc_worker`` with reason dedicated / fractional /
    idle, ``sweep``, ``scavenger``, ``runtime``), between goroutines in the
    scheduler (``sched``, reason: why its goroutine stopped -- park, yield,
    preempt, suspend, exit -- or wake when it left the idle list, or
    start_the_world), on the idle list (``idle``), or stopped for a
    stop-the-world (``stopped``).  Rows are in time order.
    """
    return side_table(source, "p_schedule")


def sched_events(source) -> pa.Table | None:
    """Scheduler events: ``ts``, ``p``, ``event`` (preempt_request: sysmon's retake asks P's goroutine to
    stop, value = when it started running; sweep_done: the cycle's sweeping ended, value = numgc; from
    Go 1.14 record stream version 4, p -1: sysmon_pass, value = its delay in us; sysmon_branch, a pass
    that took the all-idle / gcwaiting branch, value 1 if it slept; sysmon_retake, a pass whose retake took
    a P from a syscall; sysmon_sleep, value = when it woke;
    stop_request, a stop for the world asked for), ``value``."""
    return side_table(source, "sched_events")


def scavenger_iterations(source) -> pa.Table | None:
    """The background scavenger's iterations as the runtime ran them (see format.SIDE_TABLES); None without."""
    return side_table(source, "scavenger_iterations")


def iterations_where(iterations: pa.Table, outcome: str, column: str) -> list:
    """``column`` of the scavenger's iterations (``scavenger_iterations``) whose ``outcome`` is ``sleep``
    (it released and slept) or ``park``, in order."""
    return iterations.filter(pc.equal(iterations.column("outcome"), outcome)).column(column).to_pylist()


def read_trace(source) -> pa.Table:
    """A whole trace as a validated ``pyarrow.Table`` in the canonical schema.

    Accepts a path, a ``pyarrow.Table`` or a ``pandas.DataFrame`` (so a
    user's frame can be checked and normalised); the metadata is attached
    under the ``pagealloc`` schema-metadata key.  ``.to_pandas()`` gives a
    DataFrame.  Loads everything: for long traces prefer
    ``iter_event_batches``.
    """
    src = open_trace(source)
    batches = [cols.to_record_batch() for cols in _checked_columns(src, Validator(src))]
    table = pa.Table.from_batches(batches, schema=SCHEMA)
    side = {k: v for k, v in (src.schema.metadata or {}).items() if k.startswith(b"pagealloc.")}
    return table.replace_schema_metadata({METADATA_KEY: json.dumps(src.metadata).encode(), **side})
