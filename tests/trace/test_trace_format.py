"""Trace format v1: schema round-trip, user (pandas) files, the streaming
reader's arrays, and metadata handling."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pagealloc.errors import UserError
from pagealloc.trace import (
    METADATA_KEY,
    OP_ALLOC,
    OP_FREE,
    OP_FREE_OS_MEMORY,
    OP_GC,
    SCHEMA,
    TraceWriter,
    iter_event_batches,
    iter_record_batches,
    make_metadata,
    read_trace,
    trace_metadata,
    validate_trace,
)

ROWS = {
    "ts": [0, 10, 10, 25, 40, 41, 50],
    "op": ["alloc", "alloc", "free", "gc", "free_os_memory", "alloc", "free"],
    "span": [7, 9, 7, 0, 0, 7, 9],
    "npages": [1, 4, 1, 0, 0, 2, 4],
}
CODES = [OP_ALLOC, OP_ALLOC, OP_FREE, OP_GC, OP_FREE_OS_MEMORY, OP_ALLOC, OP_FREE]


def write(path, **cols):
    meta = make_metadata("synthetic", name="t")
    with TraceWriter(path, meta) as w:
        w.write(**cols)
    return path


def test_op_codes_are_the_documented_constants():
    assert (OP_ALLOC, OP_FREE, OP_GC, OP_FREE_OS_MEMORY) == (0, 1, 2, 3)


def test_round_trip_through_trace_writer(tmp_path):
    p = write(
        tmp_path / "t.parquet",
        ts=ROWS["ts"],
        op=CODES,
        span=ROWS["span"],
        npages=ROWS["npages"],
        p=[0, 1, 1, -1, -1, 0, 1],
        value=[0, 0, 0, 8 << 20, 0, 0, 0],
        kind=[40, 1, 0, 0, 0, 2, 0],
    )
    table = read_trace(p)
    assert table.schema.remove_metadata() == SCHEMA
    assert table.column("op").to_pylist() == ROWS["op"]
    assert table.column("value").to_pylist()[3] == 8 << 20
    assert table.column("kind").to_pylist() == [40, 1, 0, 0, 0, 2, 0]
    meta = json.loads(table.schema.metadata[METADATA_KEY])
    assert meta["source"] == "synthetic" and meta["version"] == 2 and meta["name"] == "t"
    assert meta["events"] == 7
    assert meta["counts"] == {"alloc": 3, "free": 2, "gc": 1, "free_os_memory": 1, "gc_start": 0}
    # On disk: the canonical types, op as a (dictionary-encoded) string column.
    disk = pq.ParquetFile(p).schema_arrow
    assert [disk.field(n).type for n in ("ts", "span", "npages", "p", "value", "kind")] == [
        pa.int64(), pa.uint64(), pa.uint32(), pa.int32(), pa.uint64(), pa.uint16()
    ]
    assert pq.ParquetFile(p).metadata.row_group(0).column(0).compression == "ZSTD"


def test_writer_is_byte_deterministic(tmp_path):
    cols = dict(ts=ROWS["ts"], op=CODES, span=ROWS["span"], npages=ROWS["npages"])
    a = write(tmp_path / "a.parquet", **cols).read_bytes()
    b = write(tmp_path / "b.parquet", **cols).read_bytes()
    assert a == b


def test_pandas_written_user_file_is_accepted(tmp_path):
    path = tmp_path / "user.parquet"
    pd.DataFrame(ROWS).to_parquet(path)  # int64 columns, string op, pandas metadata
    s = validate_trace(path)
    assert s.metadata["source"] == "user"
    assert s.events == 7 and s.counts == {"alloc": 3, "free": 2, "gc": 1, "free_os_memory": 1, "gc_start": 0}
    assert s.peak_pages == 6 and s.end_pages == 2 and s.end_spans == 1 and s.duration_ns == 50
    assert trace_metadata(path)["source"] == "user"


def test_event_batches_default_value_and_p(tmp_path):
    path = tmp_path / "user.parquet"
    pd.DataFrame(ROWS).to_parquet(path)
    (batch,) = list(iter_event_batches(path))
    assert batch._fields == ("ts", "op", "span", "npages", "value", "p", "kind")
    ts, op, span, npages, value, p, kind = batch
    assert op.tolist() == CODES
    assert (ts.dtype, op.dtype, span.dtype, npages.dtype, value.dtype, p.dtype, kind.dtype) == (
        np.int64, np.uint8, np.uint64, np.uint32, np.uint64, np.int32, np.uint16
    )
    assert value.tolist() == [0] * 7 and p.tolist() == [-1] * 7 and kind.tolist() == [0] * 7


def test_batches_stream_in_small_pieces(tmp_path):
    n = 10_000
    ts = np.arange(2 * n)
    op = np.r_[np.zeros(n, np.uint8), np.ones(n, np.uint8)]
    span = np.r_[np.arange(n), np.arange(n)]
    path = write(tmp_path / "t.parquet", ts=ts, op=op, span=span, npages=np.ones(2 * n))
    sizes = [len(b.ts) for b in iter_event_batches(path, batch_rows=4096)]
    assert sum(sizes) == 2 * n and max(sizes) <= 4096 and len(sizes) >= 5
    # Span state carries across batch boundaries: every free finds its alloc.
    assert validate_trace(path, batch_rows=1000).end_spans == 0


def test_state_is_carried_across_batches_for_errors(tmp_path):
    path = write(tmp_path / "t.parquet", ts=[0, 1, 2, 3], op=[0, 0, 1, 1], span=[5, 6, 5, 5], npages=[1, 1, 1, 1])
    with pytest.raises(UserError, match=r"row 3: free of unknown span 5"):
        validate_trace(path, batch_rows=1)


def test_dataframe_and_table_sources():
    df = pd.DataFrame(ROWS)
    assert read_trace(df).num_rows == 7
    assert validate_trace(pa.Table.from_pandas(df)).events == 7
    categorical = df.assign(op=df.op.astype("category"))
    assert [b.op.tolist() for b in iter_event_batches(categorical)] == [CODES]


def test_record_batches_are_canonical():
    (rb,) = list(iter_record_batches(pd.DataFrame(ROWS)))
    assert rb.schema == SCHEMA


def test_extension_and_pandas_index_columns_are_ignored(tmp_path):
    df = pd.DataFrame(ROWS).assign(x_note="hi")
    df.index = [10, 11, 12, 13, 14, 15, 17]  # e.g. a filtered frame: written as __index_level_0__
    path = tmp_path / "x.parquet"
    df.to_parquet(path)
    assert "__index_level_0__" in pq.ParquetFile(path).schema_arrow.names
    assert validate_trace(path).events == 7


def test_optional_columns_with_nulls_take_defaults():
    table = pa.table({**ROWS, "p": pa.array([0, None, 1, None, None, 0, 1], pa.int32())})
    (batch,) = list(iter_event_batches(table))
    assert batch.p.tolist() == [0, -1, 1, -1, -1, 0, 1]


def test_empty_trace_is_valid(tmp_path):
    path = write(tmp_path / "e.parquet", ts=[], op=[], span=[], npages=[])
    s = validate_trace(path)
    assert s.events == 0 and s.duration_ns == 0


def test_metadata_counts_must_match_rows(tmp_path):
    table = pa.Table.from_pandas(pd.DataFrame(ROWS), preserve_index=False)
    meta = make_metadata("synthetic", events=8)
    table = table.replace_schema_metadata({METADATA_KEY: json.dumps(meta)})
    with pytest.raises(UserError, match="metadata says 8 events but the file has 7 rows"):
        validate_trace(table)


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must hold a JSON object"),
        (json.dumps({"version": 4, "source": "user"}).encode(), "version 4 is not supported"),
        (json.dumps({"version": 1, "source": "martian"}).encode(), "source 'martian'"),
    ],
)
def test_bad_metadata(raw, message):
    table = pa.Table.from_pandas(pd.DataFrame(ROWS), preserve_index=False).replace_schema_metadata({METADATA_KEY: raw})
    with pytest.raises(UserError, match=message):
        validate_trace(table)
