"""Trace format v3's side tables: whole Parquet tables beside the event rows.

Not a Go file.  A v3 trace carries, besides v2's rows, small tables of its
own (the Ps' schedule, scheduler events, the background scavenger's
iterations as the Go 1.14.6 runtime ran them), each a zstd Parquet file,
base64 under the schema-metadata key ``pagealloc.<name>`` and listed in the
metadata's ``tables``.  ``format`` re-exports these names.
"""

from __future__ import annotations

import base64
import binascii
import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pagealloc.errors import UserError


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= 200 else text[:197] + "..."


def _is_string(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)

# Side tables (v3): name -> canonical schema.  Strings are dictionary columns.
_STR = pa.dictionary(pa.int8(), pa.string())
SIDE_TABLES = {
    # The Ps' schedule: from ts on, P p is in state (see P_STATES) for reason.
    "p_schedule": pa.schema([("ts", pa.int64()), ("p", pa.int32()), ("state", _STR), ("reason", _STR)]),
    # Scheduler events that are not states: sysmon's preemption requests, the end of each cycle's sweeping.
    "sched_events": pa.schema([("ts", pa.int64()), ("p", pa.int32()), ("event", _STR), ("value", pa.int64())]),
    # One row per background scavenger iteration (a release and its sleep, or a park), as the runtime ran it.
    "scavenger_iterations": pa.schema(
        [
            ("ts", pa.int64()),  # the iteration's record (after scavengeOne), or the park
            ("p", pa.int32()),  # the P the scavenger ran on
            ("outcome", _STR),  # sleep | park
            ("crit_ns", pa.int64()),  # crit as measured (wall time of scavengeOne)
            ("crit_used_ns", pa.int64()),  # after the fallback and the 10 ms cap
            ("released_bytes", pa.int64()),
            ("sleep_ns", pa.int64()),  # sleep asked for (adjust * crit * 100)
            ("ewma", pa.float64()),  # scavengeEWMA before this iteration
            ("wake_at", pa.int64()),  # when the timer was set to fire (-1: none)
            ("timer_p", pa.int32()),  # the P whose timer heap held it
            ("fired_ts", pa.int64()),  # when it fired (-1: never, e.g. woken first by a GC)
            ("fired_p", pa.int32()),  # the P whose M ran it
            ("fired_by", _STR),  # P_FIRED_BY
            ("woken_by", _STR),  # timer | gc (pacing change) | none
            ("ready_ts", pa.int64()),
            ("ready_p", pa.int32()),  # the P whose run queue got the scavenger
            ("next_run_ts", pa.int64()),  # when it ran next (-1: not before the end)
            ("next_run_p", pa.int32()),
            ("slept_ns", pa.int64()),  # what scavengeSleep returned (-1 for a park)
        ]
    ),
}
P_STATES = ("user", "gc_worker", "sweep", "scavenger", "runtime", "sched", "idle", "stopped")
# How the scavenger's timer fired: the P rescheduling (after its goroutine stopped, 'preempt' when preempted),
# an M back from netpoll at its timeout ('netpoll') or earlier, an M that sysmon started for overdue timers,
# an M started for other work ('wakep'), findrunnable on its own P, or stolen from another P.
P_FIRED_BY = ("reschedule", "preempt", "netpoll", "netpoll_early", "sysmon", "wakep", "findrunnable", "steal", "none")
SIDE_KEY_PREFIX = "pagealloc."


# --------------------------------------------------------------------------
# Side tables (v3)


def side_key(name: str) -> bytes:
    return f"{SIDE_KEY_PREFIX}{name}".encode()


def encode_side_table(name: str, table: pa.Table) -> bytes:
    """A side table as the base64 text of a zstd Parquet file (in the canonical schema of ``name``)."""
    table = table.cast(SIDE_TABLES[name]) if table.schema != SIDE_TABLES[name] else table
    sink = pa.BufferOutputStream()
    strings = [f.name for f in table.schema if pa.types.is_dictionary(f.type)]
    ints = {f.name: "DELTA_BINARY_PACKED" for f in table.schema if pa.types.is_integer(f.type)}  # ts in order: ~3x smaller
    pq.write_table(table, sink, compression="zstd", compression_level=9, use_dictionary=strings, column_encoding=ints, store_schema=True)
    return base64.b64encode(sink.getvalue().to_pybytes())


def _check_side_listing(schema: pa.Schema, meta: dict, label: str) -> None:
    """A v3 file's ``tables``: known names, each with its key in the schema metadata and a row count."""
    tables = meta.get("tables")
    if tables is None:
        return
    if meta.get("version", 0) < 3:
        raise UserError(f"{label}: metadata lists side tables but says version {meta.get('version')} (side tables are format v3)")
    if not isinstance(tables, dict):
        raise UserError(f"{label}: metadata 'tables' must be a JSON object (side table name -> its row count)")
    present = schema.metadata or {}
    for name, info in tables.items():
        if name not in SIDE_TABLES:
            raise UserError(f"{label}: unknown side table {name!r} (format v3 side tables: {', '.join(SIDE_TABLES)})")
        if not isinstance(info, dict) or not isinstance(info.get("rows"), int) or info["rows"] < 0:
            raise UserError(f"{label}: side table {name!r}: metadata must give its row count as {{\"rows\": N}}")
        if side_key(name) not in present:
            raise UserError(f"{label}: side table {name!r} is listed but its key {side_key(name).decode()!r} is missing")


def read_parquet_bytes(data: bytes) -> pa.Table:
    """A Parquet table from ``data``, read on the calling thread.  pyarrow's threaded read of a Python
    buffer can drop its last reference to the buffer on a pool thread after the read has returned; at
    the interpreter's exit that thread cannot take the GIL and the process aborts ("terminate called
    without an active exception", apache/arrow#34314: 5% of processes that read side tables, under load)."""
    with pq.ParquetFile(pa.BufferReader(data), pre_buffer=False) as pf:
        return pf.read(use_threads=False)


def decode_side_table(schema: pa.Schema, meta: dict, name: str, label: str) -> pa.Table | None:
    """The side table ``name`` of an opened file (None if it has none), checked.

    Checks: the bytes decode to a Parquet table with exactly the table's
    columns (integer types that fit, strings for dictionary columns), the row
    count the metadata gives, no nulls, ``ts`` >= 0 and non-decreasing, ``p``
    >= -1, and state / fired_by values from P_STATES / P_FIRED_BY.
    """
    if name not in SIDE_TABLES:
        raise ValueError(f"unknown side table {name!r}")
    info = (meta.get("tables") or {}).get(name)
    if info is None:
        return None
    raw = (schema.metadata or {}).get(side_key(name))
    where = f"{label}: side table {name!r}"
    try:
        table = read_parquet_bytes(base64.b64decode(raw, validate=True))
    except (binascii.Error, ValueError, pa.ArrowException, OSError) as e:
        raise UserError(f"{where}: truncated or corrupt ({_one_line(e)})") from None
    want = SIDE_TABLES[name]
    if table.schema.names != want.names:
        raise UserError(f"{where}: columns {', '.join(table.schema.names)}; expected {', '.join(want.names)}")
    if table.num_rows != info["rows"]:
        raise UserError(f"{where}: metadata says {info['rows']} rows but it has {table.num_rows}")
    for f in want:
        col = table.column(f.name)
        if col.null_count:
            raise UserError(f"{where}: column {f.name!r} has nulls")
        t = col.type
        if pa.types.is_dictionary(f.type):
            ok = _is_string(t) or (pa.types.is_dictionary(t) and _is_string(t.value_type))
        elif pa.types.is_floating(f.type):
            ok = pa.types.is_floating(t)
        else:
            ok = pa.types.is_integer(t)
        if not ok:
            raise UserError(f"{where}: column {f.name!r} has type {t}; expected {f.type}")
    try:
        table = table.cast(want)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise UserError(f"{where}: a value does not fit its column ({_one_line(e)})") from None
    ts = table.column("ts").to_numpy()
    if len(ts) and (ts.min() < 0 or (np.diff(ts) < 0).any()):
        row = int(np.argmax(ts < 0)) if ts.min() < 0 else int(np.argmax(np.diff(ts) < 0)) + 1
        raise UserError(f"{where}: row {row}: ts {ts[row]} is negative or before the previous row's (rows must be in time order)")
    for col in ("p", "timer_p", "fired_p", "ready_p", "next_run_p"):
        if col in want.names and len(ts) and table.column(col).to_numpy().min() < -1:
            raise UserError(f"{where}: column {col!r} has a P id below -1")
    for col, allowed in (("state", P_STATES), ("fired_by", P_FIRED_BY)):
        if col in want.names:
            bad = set(table.column(col).combine_chunks().dictionary.to_pylist()) - set(allowed)
            if bad:
                raise UserError(f"{where}: unknown {col} {sorted(bad)[0]!r} ({col} values: {', '.join(allowed)})")
    return table


