"""Heap traces in the pagealloc Parquet format v2 (v1 files are read too) (see traces/README.md).

The public API for other modules (the replay engine, the CLI, notebooks):

- ``iter_event_batches(src)``: per batch, numpy arrays ``ts, op, span, npages,
  value, p, kind`` (``op`` as OP_* codes), validated as they stream.
- ``read_trace(src)``: the whole trace as a validated ``pyarrow.Table``.
- ``validate_trace(src)``: check everything, return a ``TraceSummary``.
- ``TraceWriter``: write a trace file in batches.

``src`` is a file path, a ``pyarrow.Table`` or a ``pandas.DataFrame``.

Modules: ``format`` (schema, metadata, writer), ``read`` (streaming
validation), ``goimport`` (Go execution traces through ``gorows``, a
compiled decoder on Go's own reader, or ``go tool trace``),
``gowire`` (Go's trace wire format and a pure-Python decoder), ``gotool``
(finding and running Go), ``record`` (run a Go program traced), ``synth``
(synthetic scenarios).  Imports nothing of ours but ``pagealloc.errors``:
the simulation reads traces, traces know nothing of it.
"""

from pagealloc.trace.format import (
    BATCH_ROWS,
    FORMAT_VERSION,
    METADATA_KEY,
    OP_ALLOC,
    OP_FREE,
    OP_FREE_OS_MEMORY,
    OP_GC,
    OP_GC_START,
    OP_NAMES,
    SCHEMA,
    SIDE_TABLES,
    SOURCES,
    EventBatch,
    TraceWriter,
    make_metadata,
    open_trace,
)
from pagealloc.trace.read import (
    TraceSummary,
    iter_event_batches,
    iter_record_batches,
    p_schedule,
    read_trace,
    scavenger_iterations,
    sched_events,
    side_table,
    trace_metadata,
    validate_trace,
)

__all__ = [
    "BATCH_ROWS",
    "FORMAT_VERSION",
    "METADATA_KEY",
    "OP_ALLOC",
    "OP_FREE",
    "OP_FREE_OS_MEMORY",
    "OP_GC",
    "OP_GC_START",
    "OP_NAMES",
    "SCHEMA",
    "SIDE_TABLES",
    "SOURCES",
    "EventBatch",
    "TraceSummary",
    "TraceWriter",
    "iter_event_batches",
    "iter_record_batches",
    "make_metadata",
    "open_trace",
    "p_schedule",
    "read_trace",
    "scavenger_iterations",
    "sched_events",
    "side_table",
    "trace_metadata",
    "validate_trace",
]
