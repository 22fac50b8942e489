"""Sweep results on disk: a folder of Parquet parts, appended as rows arrive.

``results.parquet/`` is a Parquet dataset: a marker file
(``_pagealloc_sweep.json``) and ``part-*.parquet`` files, one per flush,
all with the same schema.  A part is written under a dot name and renamed
when complete, so a crash of the sweep loses only the rows not yet
flushed (at most ``flush_seconds`` of finished replays, plus those in
flight) and never leaves a half-written part behind; readers skip dot
and underscore names.  A lock (``flock`` on ``_lock``) keeps two sweeps
from writing one folder at once.

``read_results(path)`` reads it all back as one pandas DataFrame.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pagealloc.errors import UserError

MARKER = "_pagealloc_sweep.json"
FORMAT = {"format": "pagealloc-sweep-results", "version": 1}
METADATA_KEY = b"pagealloc-sweep"


class ResultsWriter:
    """Appends rows to a results folder, one part per flush."""

    def __init__(self, path, schema: pa.Schema, kinds: dict, flush_seconds: float = 5.0, flush_rows: int = 1000):
        """``kinds``: which columns are what (``replaycall.row_schema``), kept in each part's metadata."""
        self.path = Path(path)
        meta = {**FORMAT, **kinds}
        self.schema = schema.with_metadata({METADATA_KEY: json.dumps(meta).encode()})
        self.flush_seconds, self.flush_rows = flush_seconds, flush_rows
        self.rows: list[dict] = []
        self.oldest = 0.0  # when the oldest unflushed row arrived
        self.written = 0
        self._open()

    def _open(self) -> None:
        path = self.path
        if path.exists() and not path.is_dir():
            raise UserError(f"{path}: exists and is not a sweep results folder")
        if path.is_dir() and any(path.iterdir()) and not (path / MARKER).exists():
            raise UserError(f"{path}: not a sweep results folder (no {MARKER}); give a new or empty -o")
        try:
            path.mkdir(parents=True, exist_ok=True)
            self._lock = open(path / "_lock", "w")
        except OSError as e:
            raise UserError(f"{path}: cannot create the results folder: {e.strerror or e}") from None
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"{path}: another sweep is writing to it") from None
        (path / MARKER).write_text(json.dumps(FORMAT) + "\n")
        for stale in path.glob(".part-*"):  # a part a crashed sweep was writing
            stale.unlink()

    def add(self, row: dict) -> None:
        if not self.rows:
            self.oldest = time.monotonic()
        self.rows.append(row)
        self.flush_if_due()

    def flush_if_due(self) -> None:
        if self.rows and (len(self.rows) >= self.flush_rows or time.monotonic() - self.oldest >= self.flush_seconds):
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        table = pa.Table.from_pylist(self.rows, schema=self.schema)
        name = f"part-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}.parquet"
        tmp = self.path / f".{name}"
        with open(tmp, "wb") as f:
            pq.write_table(table, f, compression="zstd")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path / name)
        self.written += len(self.rows)
        self.rows = []

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._lock.close()


def _parts(path: Path) -> list[Path]:
    if not path.exists():
        raise UserError(f"{path}: no such results folder")
    if not path.is_dir() or not (path / MARKER).exists():
        raise UserError(f"{path}: not a sweep results folder (no {MARKER})")
    return sorted(path.glob("part-*.parquet"))


def _read_parts(path: Path, columns: list[str] | None = None) -> pa.Table | None:
    tables = []
    for part in _parts(path):
        try:
            tables.append(pq.read_table(part, columns=columns))
        except (OSError, pa.ArrowException) as e:
            raise UserError(f"{part}: unreadable results part: {str(e).splitlines()[0]}") from None
    if not tables:
        return None
    try:
        return pa.concat_tables(tables, promote_options="none")
    except pa.ArrowInvalid as e:
        raise UserError(f"{path}: parts with different columns (written by different pagealloc versions?): "
                        f"{str(e).splitlines()[0]}") from None


def done_points(path) -> dict[str, tuple[str, str]]:
    """{point id: (commit, pagealloc version)} of the rows already in a results folder ({} if none)."""
    path = Path(path)
    if not path.exists() or (path.is_dir() and not any(path.iterdir())):
        return {}
    table = _read_parts(path, ["point_id", "commit", "pagealloc_version"])
    if table is None:
        return {}
    d = table.to_pydict()
    return {p: (c, v) for p, c, v in zip(d["point_id"], d["commit"], d["pagealloc_version"])}


def read_results(path):
    """A sweep's results as a pandas DataFrame: one row per point run, in the order they were written.

    Integer columns come back as pandas' nullable ``Int64`` (a failed point
    has no metrics: ``<NA>``), list-valued ReplayResult fields (such as
    ``retained_timeline``) as Python lists.  ``df.attrs["pagealloc-sweep"]``
    says which columns are the grid point's (``point_columns``) and which
    vary from run to run (``nondeterministic_columns``), as the pagealloc
    that wrote them saw it.  Raises UserError for a path that is not a
    sweep results folder or holds an unreadable part.
    """
    import pandas as pd

    path = Path(path)
    table = _read_parts(path)
    if table is None:
        raise UserError(f"{path}: the sweep has no results yet")
    meta = json.loads((table.schema.metadata or {}).get(METADATA_KEY, b"{}"))
    nullable = {pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}
    df = table.to_pandas(types_mapper=nullable.get)
    for name in meta.get("json_columns", []):
        df[name] = [json.loads(v) if isinstance(v, str) else None for v in df[name]]
    df.attrs[METADATA_KEY.decode()] = meta
    return df
