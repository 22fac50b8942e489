"""Trace format v3 (reads v1, v2): the Parquet schema, its metadata, side tables, and streaming I/O.

One row per event, in time order (see traces/README.md for the full
specification).  Required columns: ``ts`` int64 (ns since trace start,
non-decreasing), ``op`` string or dictionary of strings, ``span`` uint64,
``npages`` uint32.  Optional: ``p`` int32 (P id, -1 unknown), ``value``
uint64 (``gc``: next heap goal in bytes), ``kind`` uint16 (Go's span
kind/class).  Metadata is one JSON object under the schema-metadata key
``pagealloc``; a file without it is a user trace (``source: user``).

Readers accept any integer type for integer columns as long as every value
fits the canonical type, so a pandas ``DataFrame`` of int64 columns written
with ``df.to_parquet`` is a valid trace.  Columns whose name starts with
``x_`` and pandas' index columns (``__index_level_0__`` ...) are ignored;
any other unknown column is an error, so that a typo cannot hide a column.

Version 3 adds **side tables**: small tables that are not events (the Ps'
schedule, the background scavenger's iterations), each stored as a Parquet
file of its own, base64-encoded, under the schema-metadata key
``pagealloc.<name>`` and listed in the metadata's ``tables``.  The event rows
are v2's, so readers of the rows never see them; a file without side
tables is written as version 2.  See ``SIDE_TABLES`` and traces/README.md.

Everything here streams record batches: memory depends on the batch size
(and on the row-group size of the file), never on the trace length.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass, field
from typing import Iterator, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pagealloc.errors import UserError

FORMAT_VERSION = 3  # written only when a file has side tables; otherwise 2 (SIDE_TABLES)
PLAIN_VERSION = 2  # a file without side tables
READ_VERSIONS = (1, 2, 3)  # v1 is v2 without gc_start rows (no mark windows); v3 is v2 with side tables
METADATA_KEY = b"pagealloc"
SOURCES = ("go-trace", "synthetic", "user", "go1.14-runtime")  # go1.14-runtime: pagealloc record --go 1.14

# Op codes, as the numpy ``op`` arrays carry them; OP_NAMES[code] is the name.
OP_ALLOC = 0
OP_FREE = 1
OP_GC = 2
OP_FREE_OS_MEMORY = 3
OP_GC_START = 4  # v2: a GC's mark phase starts (Go: gcStart sets gcBlackenEnabled)
OP_NAMES = ("alloc", "free", "gc", "free_os_memory", "gc_start")

PAGE_SIZE = 8192
ADDRESS_BITS = 48
MAX_NPAGES = (1 << ADDRESS_BITS) // PAGE_SIZE  # npages * 8192 must not exceed 2**48

# Canonical column types, in file order; the first four are required.
OP_TYPE = pa.dictionary(pa.int8(), pa.string())
SCHEMA = pa.schema(
    [
        ("ts", pa.int64()),
        ("op", OP_TYPE),
        ("span", pa.uint64()),
        ("npages", pa.uint32()),
        ("p", pa.int32()),
        ("value", pa.uint64()),
        ("kind", pa.uint16()),
    ]
)
REQUIRED = ("ts", "op", "span", "npages")
OPTIONAL_DEFAULTS = {"p": -1, "value": 0, "kind": 0}
IGNORED_PREFIXES = ("x_", "__index_level_")

from pagealloc.trace.sidetables import (  # noqa: E402 - v3's side tables, which need the errors above only
    P_FIRED_BY,
    P_STATES,
    SIDE_KEY_PREFIX,
    SIDE_TABLES,
    _check_side_listing,
    _is_string,
    _one_line,
    decode_side_table,
    encode_side_table,
    side_key,
)

BATCH_ROWS = 65_536  # rows per record batch when reading, and per row group when writing


class EventBatch(NamedTuple):
    """One batch of events as numpy arrays (what the replay engine consumes).

    ``op`` holds OP_* codes (uint8); ``value`` and ``kind`` are 0 and ``p``
    is -1 where the file has no such column.
    """

    ts: np.ndarray  # int64
    op: np.ndarray  # uint8
    span: np.ndarray  # uint64
    npages: np.ndarray  # uint32
    value: np.ndarray  # uint64
    p: np.ndarray  # int32
    kind: np.ndarray  # uint16 (0 where the file has no such column)


@dataclass
class Columns:
    """A normalised batch: every canonical column as a numpy array."""

    start: int  # row number of the first row in the whole trace
    ts: np.ndarray
    op: np.ndarray
    span: np.ndarray
    npages: np.ndarray
    p: np.ndarray
    value: np.ndarray
    kind: np.ndarray
    problem: tuple[int, str] | None = field(default=None)  # first bad row found while normalising

    def __len__(self) -> int:
        return len(self.ts)

    def slice(self, lo: int, hi: int | None = None) -> "Columns":
        """Rows ``lo:hi`` (``start`` follows)."""
        return Columns(self.start + lo, *(getattr(self, c)[lo:hi] for c in SCHEMA.names))

    @staticmethod
    def concat(parts: list["Columns"]) -> "Columns":
        return Columns(parts[0].start, *(np.concatenate([getattr(p, c) for p in parts]) for c in SCHEMA.names))

    def events(self) -> EventBatch:
        return EventBatch(self.ts, self.op, self.span, self.npages, self.value, self.p, self.kind)

    def to_record_batch(self) -> pa.RecordBatch:
        arrays = [pa.array(getattr(self, c), type=SCHEMA.field(c).type if c != "op" else None) for c in SCHEMA.names]
        arrays[1] = pa.DictionaryArray.from_arrays(pa.array(self.op.astype(np.int8)), pa.array(OP_NAMES))
        return pa.RecordBatch.from_arrays(arrays, schema=SCHEMA)


# --------------------------------------------------------------------------
# Metadata


def make_metadata(source: str, **fields) -> dict:
    """A metadata dict with the format header first; ``None`` values are dropped."""
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}")
    meta = {"format": "pagealloc-trace", "version": PLAIN_VERSION, "source": source}
    meta.update({k: v for k, v in fields.items() if v is not None})
    return meta


def parse_metadata(schema: pa.Schema, label: str) -> dict:
    """The file's metadata dict; ``{"source": "user"}`` style default when absent."""
    raw = (schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        return make_metadata("user")
    try:
        meta = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{label}: metadata key 'pagealloc' is not valid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise UserError(f"{label}: metadata key 'pagealloc' must hold a JSON object")
    version = meta.get("version")
    if version not in READ_VERSIONS:
        versions = " and ".join(map(str, READ_VERSIONS))
        raise UserError(f"{label}: trace format version {version!r} is not supported (this pagealloc reads versions {versions})")
    if meta.get("source", "user") not in SOURCES:
        raise UserError(f"{label}: metadata source {meta.get('source')!r} is not one of {', '.join(SOURCES)}")
    meta.setdefault("source", "user")
    _check_side_listing(schema, meta, label)
    _check_machine_probe(meta, label)
    return meta


MACHINE_PROBE_KEY = "machine_probe"  # generator.machine_probe: what `pagealloc record` measured beside the program
PROBE_FIELDS = ("madv_free_go_page_ns", "tlb_shootdown_ns")  # trace.shootdown.machine_probe's figures, ns
# added since (memory_traffic_ns session 9, the rest session 13): a probe without them is still read
PROBE_LATER_FIELDS = ("memory_traffic_ns", "tlb_shootdown_mean_ns", "memory_traffic_mean_ns", "alloc_traffic_mean_ns",
                      "alloc_traffic_narrow_mean_ns",  # since session 15
                      "wake_busy_mean_ns", "wake_free_ns")  # since session 16
# generator.machine_probe's widths: the busy threads beside the probe, and (session 15) the narrow
# allocprobe's, one per other CPU, where GOMAXPROCS - 1 exceeds it
PROBE_WIDTHS = ("busy_threads", "busy_threads_narrow")


def _check_machine_probe(meta: dict, label: str) -> None:
    """generator.machine_probe, where present, is {"before": probe, "after": probe}, each probe a whole
    number of ns per PROBE_FIELDS (and per PROBE_LATER_FIELDS it has) under a second: the replay prices
    the TLB shootdown and the memory traffic's share from it."""
    generator = meta.get("generator")
    if not isinstance(generator, dict) or MACHINE_PROBE_KEY not in generator:
        return
    kept = generator[MACHINE_PROBE_KEY]
    probes = [kept.get(k) for k in ("before", "after")] if isinstance(kept, dict) else [None]
    for probe in probes:
        if not isinstance(probe, dict) or not all(
                type(probe.get(f)) is int and 0 <= probe[f] < 10**9
                for f in (*PROBE_FIELDS, *(f for f in PROBE_LATER_FIELDS if f in probe))):
            raise UserError(f"{label}: metadata generator.{MACHINE_PROBE_KEY} must be {{\"before\": probe, "
                            f"\"after\": probe}}, each probe {{{', '.join(PROBE_FIELDS)}}} (and {', '.join(PROBE_LATER_FIELDS)} "
                            "where given) in whole ns under 1 s, "
                            f"got {json.dumps(kept)[:120]}")
    widths = [kept.get(w) for w in PROBE_WIDTHS if w in kept]
    if not all(type(w) is int and 1 <= w <= 1 << 20 for w in widths) or (
            len(widths) == 2 and widths[1] >= widths[0]):
        raise UserError(f"{label}: metadata generator.{MACHINE_PROBE_KEY}: {' and '.join(PROBE_WIDTHS)} must be whole "
                        f"numbers of threads, the narrow one fewer, got {json.dumps({w: kept.get(w) for w in PROBE_WIDTHS})}")


# --------------------------------------------------------------------------
# Opening sources (path, pyarrow Table, pandas DataFrame)


@dataclass
class TraceSource:
    """An opened trace: label for messages, schema, metadata, row count, batches."""

    label: str
    schema: pa.Schema
    metadata: dict
    num_rows: int
    _batches: Iterator[pa.RecordBatch]
    size_bytes: int | None = None

    def record_batches(self) -> Iterator[pa.RecordBatch]:
        return self._batches


def open_trace(source, batch_rows: int = BATCH_ROWS) -> TraceSource:
    """Open a trace file path, a ``pyarrow.Table`` or a ``pandas.DataFrame``.

    Checks the columns, their types and the metadata; raises UserError naming
    the file on any problem.  Row contents are checked while iterating.
    """
    if isinstance(source, (str, os.PathLike)):
        return _open_file(os.fspath(source), batch_rows)
    if isinstance(source, pa.Table):
        table, label = source, "<table>"
    else:
        import pandas as pd

        if not isinstance(source, pd.DataFrame):
            raise TypeError(f"expected a path, pyarrow.Table or pandas.DataFrame, not {type(source).__name__}")
        try:
            table = pa.Table.from_pandas(source, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise UserError(f"<dataframe>: cannot convert to Arrow: {e}") from None
        label = "<dataframe>"
    check_schema(table.schema, label)
    batches = iter(table.to_batches(max_chunksize=batch_rows))
    return TraceSource(label, table.schema, parse_metadata(table.schema, label), table.num_rows, batches)


def _open_file(path: str, batch_rows: int) -> TraceSource:
    if not os.path.exists(path):
        raise UserError(f"{path}: no such file")
    if os.path.isdir(path):
        raise UserError(f"{path}: is a directory, not a Parquet trace file")
    size = os.path.getsize(path)
    if size == 0:
        raise UserError(f"{path}: empty file, not a Parquet trace")
    try:
        with open(path, "rb") as f:
            head = f.read(4)
        pf = pq.ParquetFile(path)
    except PermissionError:
        raise UserError(f"{path}: permission denied") from None
    except (pa.ArrowException, OSError) as e:
        if head == b"PAR1":
            raise UserError(f"{path}: truncated or corrupt Parquet file ({_one_line(e)})") from None
        raise UserError(f"{path}: not a Parquet file") from None
    schema = pf.schema_arrow
    check_schema(schema, path)
    meta = parse_metadata(schema, path)
    if _is_string(schema.field("op").type):
        pf = pq.ParquetFile(path, read_dictionary=["op"])
    return TraceSource(path, schema, meta, pf.metadata.num_rows, _file_batches(pf, path, batch_rows), size)


def _file_batches(pf: pq.ParquetFile, path: str, batch_rows: int) -> Iterator[pa.RecordBatch]:
    try:
        yield from pf.iter_batches(batch_size=batch_rows)
    except (pa.ArrowException, OSError) as e:
        raise UserError(f"{path}: truncated or corrupt Parquet file ({_one_line(e)})") from None


def check_schema(schema: pa.Schema, label: str) -> None:
    """Raise UserError unless the columns and their types follow format v1."""
    names = schema.names
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UserError(f"{label}: duplicate column {dup[0]!r}")
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        raise UserError(f"{label}: missing required column{'s' if len(missing) > 1 else ''} {', '.join(missing)} (a trace needs ts, op, span, npages)")
    unknown = [n for n in names if n not in SCHEMA.names and not n.startswith(IGNORED_PREFIXES)]
    if unknown:
        raise UserError(
            f"{label}: unknown column {unknown[0]!r} (format v1 columns: {', '.join(SCHEMA.names)}; "
            "prefix your own columns with 'x_' to have them ignored)"
        )
    for name in SCHEMA.names:
        if name not in names:
            continue
        t = schema.field(name).type
        if name == "op":
            ok = _is_string(t) or (pa.types.is_dictionary(t) and _is_string(t.value_type))
            want = "string or dictionary of strings"
        else:
            ok = pa.types.is_integer(t)
            want = f"an integer type ({SCHEMA.field(name).type})"
        if not ok:
            raise UserError(f"{label}: column {name!r} has type {t}; expected {want}")


# --------------------------------------------------------------------------
# Normalising batches into numpy arrays

_INT_RANGES = {  # column: (min, max) accepted for every row
    "ts": (0, 2**63 - 1),
    "span": (0, 2**64 - 1),
    "npages": (0, 2**32 - 1),
    "p": (-1, 2**31 - 1),
    "value": (0, 2**64 - 1),
    "kind": (0, 2**16 - 1),
}


def normalise(batch: pa.RecordBatch, start: int) -> Columns:
    """Convert one record batch to canonical numpy columns.

    Never raises for bad rows: the first bad row (nulls, out-of-range
    integers, unknown op) is returned in ``Columns.problem`` so that the
    validator can report whichever problem comes first in the trace.
    """
    n = batch.num_rows
    problems: list[tuple[int, str]] = []
    cols = {}
    names = batch.schema.names
    for name, ftype in zip(SCHEMA.names, SCHEMA.types):
        if name == "op":
            cols[name] = _op_codes(batch.column(names.index("op")), start, problems)
            continue
        if name not in names:
            cols[name] = np.full(n, OPTIONAL_DEFAULTS[name], dtype=ftype.to_pandas_dtype())
            continue
        arr = batch.column(names.index(name))
        if arr.null_count:
            if name in REQUIRED:
                row = int(np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False))[0])
                problems.append((start + row, f"column {name!r} is null"))
            arr = arr.fill_null(OPTIONAL_DEFAULTS.get(name, 0))
        values = arr.to_numpy(zero_copy_only=False)
        lo, hi = _INT_RANGES[name]
        bad = _out_of_range(values, lo, hi)
        if bad is not None:
            problems.append((start + bad, _range_message(name, int(values[bad]), ftype)))
        cols[name] = values.astype(ftype.to_pandas_dtype(), copy=False)
    return Columns(start, problem=min(problems) if problems else None, **cols)


def beyond_address_space(npages: int) -> str:
    return f"npages {npages} is beyond the {ADDRESS_BITS}-bit address space ({npages} * {PAGE_SIZE} > 2**{ADDRESS_BITS})"


def _range_message(name: str, v: int, ftype: pa.DataType) -> str:
    if name == "npages" and v > MAX_NPAGES:
        return beyond_address_space(v)
    if name == "p" and v < 0:
        return f"p {v} is out of range (a P id, or -1 for unknown)"
    if v < 0:
        return f"{name} {v} is negative"
    return f"{name} {v} does not fit {ftype}"


def _out_of_range(values: np.ndarray, lo: int, hi: int) -> int | None:
    info = np.iinfo(values.dtype)
    mask = np.zeros(len(values), dtype=bool)
    if info.min < lo:
        mask |= values < lo
    if info.max > hi:
        mask |= values > np.array(hi, dtype=values.dtype)
    return int(np.argmax(mask)) if mask.any() else None


_OP_INDEX = {name: code for code, name in enumerate(OP_NAMES)}


def _op_codes(arr: pa.Array, start: int, problems: list) -> np.ndarray:
    if not pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_encode()
    if arr.null_count:
        row = int(np.flatnonzero(arr.is_null().to_numpy(zero_copy_only=False))[0])
        problems.append((start + row, "column 'op' is null"))
        arr = arr.fill_null(arr.dictionary[0]) if len(arr.dictionary) else arr
    words = arr.dictionary.to_pylist()
    lut = np.array([_OP_INDEX.get(w, 255) for w in words] or [255], dtype=np.uint8)
    codes = lut[arr.indices.fill_null(0).to_numpy(zero_copy_only=False)]
    bad = np.flatnonzero(codes == 255)
    if len(bad):
        word = words[int(arr.indices[int(bad[0])].as_py())]
        problems.append((start + int(bad[0]), f"unknown op {word!r} (ops are {', '.join(OP_NAMES)})"))
    return codes


def iter_columns(src: TraceSource) -> Iterator[Columns]:
    """Normalised batches of an opened trace, with their starting row numbers."""
    start = 0
    for batch in src.record_batches():
        if batch.num_rows:
            yield normalise(batch, start)
        start += batch.num_rows


# --------------------------------------------------------------------------
# Writing


class TraceWriter:
    """Stream events into a trace file: v2, or v3 with side tables (zstd, 65 536-row groups).

    The file appears atomically at ``path`` on ``close()``; event counts are
    added to the metadata then, so the caller need not know them up front.
    """

    def __init__(self, path: str | os.PathLike, metadata: dict, tables: dict | None = None):
        """``tables``: side tables (name -> ``pyarrow.Table``); with any, the file is format v3."""
        self.path = os.fspath(path)
        self.metadata = dict(metadata)
        self.tables = {name: t for name, t in (tables or {}).items() if t is not None}
        unknown = set(self.tables) - set(SIDE_TABLES)
        if unknown:
            raise ValueError(f"unknown side table {sorted(unknown)[0]!r}")
        self.counts = np.zeros(len(OP_NAMES), dtype=np.int64)
        self._tmp = f"{self.path}.tmp-{os.getpid()}"
        self._pending: list[Columns] = []
        self._pending_rows = 0
        try:
            self._writer = pq.ParquetWriter(
                self._tmp,
                SCHEMA,
                compression="zstd",
                compression_level=9,
                use_dictionary=["op", "p", "kind"],
                column_encoding={"ts": "DELTA_BINARY_PACKED", "span": "DELTA_BINARY_PACKED", "npages": "DELTA_BINARY_PACKED", "value": "DELTA_BINARY_PACKED"},
                store_schema=False,  # op reads back as string; metadata comes from the key-value footer
                write_statistics=["ts"],
            )
        except OSError as e:
            raise self._write_error(e) from None

    def _write_error(self, e: OSError) -> UserError:
        """The OS's reason, naming the file asked for, not the temporary one."""
        reason = os.strerror(e.errno) if e.errno else _one_line(e).replace(self._tmp, self.path)
        return UserError(f"{self.path}: cannot write: {reason}")

    def write(self, ts, op, span, npages, p=None, value=None, kind=None) -> None:
        """Append events given as numpy arrays (``op`` as OP_* codes)."""
        n = len(ts)
        cols = Columns(
            0,
            np.asarray(ts, dtype=np.int64),
            np.asarray(op, dtype=np.uint8),
            np.asarray(span, dtype=np.uint64),
            np.asarray(npages, dtype=np.uint32),
            np.full(n, -1, np.int32) if p is None else np.asarray(p, dtype=np.int32),
            np.zeros(n, np.uint64) if value is None else np.asarray(value, dtype=np.uint64),
            np.zeros(n, np.uint16) if kind is None else np.asarray(kind, dtype=np.uint16),
        )
        self.counts += np.bincount(cols.op, minlength=len(OP_NAMES))[: len(OP_NAMES)]
        self._pending.append(cols)
        self._pending_rows += n
        if self._pending_rows >= BATCH_ROWS:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        """Write the pending rows as full row groups (and the remainder if final)."""
        merged = Columns.concat(self._pending)
        n = len(merged)
        end = n if final else n - n % BATCH_ROWS
        for lo in range(0, end, BATCH_ROWS):
            part = merged.slice(lo, min(lo + BATCH_ROWS, end))
            self._writer.write_batch(part.to_record_batch(), row_group_size=BATCH_ROWS)
        rest = merged.slice(end)
        self._pending = [rest] if len(rest) else []
        self._pending_rows = len(rest)

    def close(self) -> dict:
        """Finish the file and return its metadata."""
        self.metadata["events"] = int(self.counts.sum())
        self.metadata["counts"] = {name: int(c) for name, c in zip(OP_NAMES, self.counts)}
        if self._pending_rows:
            self._flush(final=True)
        side = {}
        if self.tables:
            self.metadata["version"] = FORMAT_VERSION
            self.metadata["tables"] = {name: {"rows": t.num_rows} for name, t in self.tables.items()}
            side = {side_key(name).decode(): encode_side_table(name, t) for name, t in self.tables.items()}
        self._writer.add_key_value_metadata({METADATA_KEY.decode(): json.dumps(self.metadata, sort_keys=False), **side})
        self._writer.close()
        try:
            os.replace(self._tmp, self.path)
        except OSError as e:
            os.unlink(self._tmp)
            raise self._write_error(e) from None
        return self.metadata

    def abort(self) -> None:
        try:
            self._writer.close()
        finally:
            if os.path.exists(self._tmp):
                os.unlink(self._tmp)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()
