"""Every way a trace file can be bad: ``pagealloc validate`` (and ``info``)
must exit with status 2 and print exactly one line, ``pagealloc: error:``,
naming the file (and the first bad row), never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pagealloc.cli import main
from pagealloc.trace import METADATA_KEY

GOOD = {
    "ts": [0, 5, 9, 12],
    "op": ["alloc", "alloc", "free", "free"],
    "span": [1, 2, 1, 2],
    "npages": [1, 3, 1, 3],
}


def frame(**changes) -> pd.DataFrame:
    """GOOD with some columns replaced (pandas writes them as int64/string)."""
    return pd.DataFrame({**GOOD, **changes})


def rows(*events) -> pd.DataFrame:
    return pd.DataFrame(list(events), columns=["ts", "op", "span", "npages"])


def run_cli(capfd, *argv) -> str:
    assert main(list(argv)) == 2
    out, err = capfd.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("pagealloc: error: ")
    assert "Traceback" not in err
    return lines[0]


# (id, what to write, expected row or None for file-level errors, expected text)
ROW_ERRORS = [
    ("unknown-op", frame(op=["alloc", "malloc", "free", "free"]), 1, "unknown op 'malloc'"),
    ("ts-backwards", frame(ts=[0, 5, 4, 12]), 2, "ts 4 is before the previous row's ts 5"),
    ("ts-negative", frame(ts=[-5, 5, 9, 12]), 0, "ts -5 is negative"),
    ("npages-zero", frame(npages=[1, 0, 1, 3]), 1, "alloc of span 2 with npages 0 (npages must be > 0)"),
    ("npages-negative", frame(npages=[1, 3, -1, 3]), 2, "npages -1 is negative"),
    ("npages-beyond-48-bit", frame(npages=[1, 2**36, 1, 2**36]), 1, "npages 68719476736 is beyond the 48-bit address space (68719476736 * 8192 > 2**48)"),
    ("npages-too-wide", frame(npages=[1, 2**33, 1, 2**33]), 1, "npages 8589934592 does not fit uint32"),
    ("double-alloc", rows((0, "alloc", 42, 1), (1, "alloc", 7, 1), (2, "alloc", 42, 1)), 2, "double alloc of span 42, which is already live (allocated at row 0)"),
    ("free-unknown", rows((0, "alloc", 1, 1), (1, "free", 42, 1)), 1, "free of unknown span 42"),
    ("free-twice", rows((0, "alloc", 1, 1), (1, "free", 1, 1), (2, "free", 1, 1)), 2, "free of unknown span 1"),
    ("free-npages-mismatch", rows((0, "alloc", 7, 1), (1, "free", 7, 2)), 1, "free of span 7 with npages 2, but it was allocated with npages 1 at row 0"),
    ("span-negative", frame(span=[1, -2, 1, -2]), 1, "span -2 is negative"),
    ("p-out-of-range", frame(p=[0, -2, 0, 0]), 1, "p -2 is out of range"),
    ("kind-too-wide", frame(kind=[0, 0, 70000, 0]), 2, "kind 70000 does not fit uint16"),
    ("live-heap-beyond-48-bit", rows(*[(i, "alloc", i, 2**32 - 1) for i in range(9)]), 8, "beyond the 48-bit address space"),
    ("first-bad-row-wins", rows((0, "alloc", 1, 1), (1, "alloc", 1, 1), (2, "bogus", 0, 0)), 1, "double alloc"),
]


@pytest.mark.parametrize("df, row, text", [c[1:] for c in ROW_ERRORS], ids=[c[0] for c in ROW_ERRORS])
def test_row_errors_name_file_and_row(tmp_path, capfd, df, row, text):
    path = tmp_path / "bad.parquet"
    df.to_parquet(path)
    line = run_cli(capfd, "validate", str(path))
    assert line.startswith(f"pagealloc: error: {path}: row {row}: ") and text in line, line


def test_null_in_required_column(tmp_path, capfd):
    path = tmp_path / "null.parquet"
    pq.write_table(pa.table({**GOOD, "span": pa.array([1, None, 1, 2], pa.uint64())}), path)
    assert run_cli(capfd, "validate", str(path)) == f"pagealloc: error: {path}: row 1: column 'span' is null"


def test_row_numbers_count_across_batches(tmp_path, capfd):
    n = 200_000  # several record batches
    df = pd.DataFrame({"ts": range(n), "op": ["alloc"] * n, "span": range(n), "npages": [1] * n})
    df.loc[150_001, "span"] = 17
    path = tmp_path / "long.parquet"
    df.to_parquet(path, row_group_size=30_000)
    line = run_cli(capfd, "validate", str(path))
    assert line.endswith(f"{path}: row 150001: double alloc of span 17, which is already live (allocated at row 17)")


def _write_bytes(data: bytes):
    def make(path):
        path.write_bytes(data)
    return make


def _truncated(path):
    frame().to_parquet(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _table(**cols):
    def make(path):
        pq.write_table(pa.table(cols), path)
    return make


def _with_metadata(raw: bytes):
    def make(path):
        table = pa.Table.from_pandas(frame(), preserve_index=False)
        pq.write_table(table.replace_schema_metadata({METADATA_KEY: raw}), path)
    return make


FILE_ERRORS = [
    ("missing", None, "no such file"),
    ("empty", _write_bytes(b""), "empty file, not a Parquet trace"),
    ("not-parquet", _write_bytes(b"ts,op,span,npages\n0,alloc,1,1\n"), "not a Parquet file"),
    ("truncated", _truncated, "truncated or corrupt Parquet file"),
    ("missing-column", lambda p: frame().drop(columns=["npages"]).to_parquet(p), "missing required column npages"),
    ("missing-columns", lambda p: frame()[["ts", "op"]].to_parquet(p), "missing required columns span, npages"),
    ("unknown-column", lambda p: frame().assign(npage=1).to_parquet(p), "unknown column 'npage'"),
    ("float-ts", lambda p: frame(ts=[0.0, 1.5, 2.0, 3.0]).to_parquet(p), "column 'ts' has type double; expected an integer type (int64)"),
    ("int-op", lambda p: frame(op=[0, 0, 1, 1]).to_parquet(p), "column 'op' has type int64; expected string or dictionary of strings"),
    ("string-span", lambda p: frame(span=["a", "b", "a", "b"]).to_parquet(p), "column 'span' has type large_string"),
    ("bool-npages", _table(**{**GOOD, "npages": [True, True, True, True]}), "column 'npages' has type bool"),
    ("bad-metadata-json", _with_metadata(b"{oops"), "metadata key 'pagealloc' is not valid JSON"),
    ("future-version", _with_metadata(json.dumps({"version": 4}).encode()), "trace format version 4 is not supported"),
    ("metadata-count-mismatch", _with_metadata(json.dumps({"version": 1, "source": "user", "events": 5}).encode()), "metadata says 5 events but the file has 4 rows"),
]


@pytest.mark.parametrize("make, text", [c[1:] for c in FILE_ERRORS], ids=[c[0] for c in FILE_ERRORS])
@pytest.mark.parametrize("command", ["validate", "info"])
def test_bad_files_name_the_file(tmp_path, capfd, make, text, command):
    path = tmp_path / "bad.parquet"
    if make is not None:
        make(path)
    line = run_cli(capfd, command, str(path))
    assert line.startswith(f"pagealloc: error: {path}: {text}"), line


def test_directory_is_not_a_trace(tmp_path, capfd):
    assert run_cli(capfd, "validate", str(tmp_path)).endswith("is a directory, not a Parquet trace file")


def test_validate_checks_every_file(tmp_path, capfd):
    good, bad, missing = tmp_path / "good.parquet", tmp_path / "bad.parquet", tmp_path / "missing.parquet"
    frame().to_parquet(good)
    frame(ts=[0, 5, 4, 12]).to_parquet(bad)
    assert main(["validate", str(bad), str(missing), str(good)]) == 2
    out, err = capfd.readouterr()
    assert out == f"{good}: ok: 4 events (2 alloc, 2 free, 0 gc, 0 free_os_memory, 0 gc_start), source user\n"
    lines = err.splitlines()
    assert len(lines) == 2, err
    assert lines[0].startswith(f"pagealloc: error: {bad}: row 2:")
    assert lines[1] == f"pagealloc: error: {missing}: no such file"


def test_real_process_exit_code_and_no_traceback(tmp_path):
    path = tmp_path / "bad.parquet"
    rows((0, "alloc", 1, 1), (1, "free", 42, 1)).to_parquet(path)
    r = subprocess.run([sys.executable, "-m", "pagealloc", "validate", str(path)], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr == f"pagealloc: error: {path}: row 1: free of unknown span 42 (not live: never allocated, or already freed)\n"
    r = subprocess.run([sys.executable, "-m", "pagealloc", "info", "--json", str(tmp_path / "nope.parquet")], capture_output=True, text=True)
    assert (r.returncode, r.stdout) == (2, "")
    assert r.stderr == f"pagealloc: error: {tmp_path / 'nope.parquet'}: no such file\n"
