"""The Go trace importer and the recorder.

The decoder of ``go tool trace -d=parsed`` lines is tested on hand-written
lines (no Go needed); the importer on a small real trace committed under
tests/fixtures/ (needs Go: the ``record`` extra); the recorder on tiny
programs written to a temporary folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pagealloc.cli import main
from pagealloc.errors import UserError
from pagealloc.trace import OP_ALLOC, OP_FREE, OP_FREE_OS_MEMORY, OP_GC, read_trace, validate_trace
from pagealloc.trace.goimport import decode_parsed, import_go_trace, read_header

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
GO_TRACE = FIXTURES / "freeosmemory.gotrace"


def have_go() -> bool:
    try:
        from pagealloc.trace.gotool import find_go

        find_go()
        return True
    except UserError:
        return False


needs_go = pytest.mark.skipif(not have_go(), reason="needs Go (pip install '.[record]')")


def span(kind, t, sid, npages=None, kc=None, p=0):
    args = f"id=Value{{Uint64({sid})}}"
    if npages is not None:
        args += f", npages_value=Value{{Uint64({npages})}}, kindclass=Value{{Uint64({kc})}}"
    return f"M=1 P={p} G=1 Experimental Time={t} Name={kind} Args=[{args}]"


def metric(t, name, value, p=0):
    return f'M=1 P={p} G=1 Metric Time={t} Name="{name}" Value=Value{{Uint64({value})}}'


DUMP = [
    "M=-1 P=-1 G=-1 Sync Time=1000 N=1 Trace=1010 Mono=1011 Wall=2026-01-02T03:04:05.000000006Z",
    metric(1001, "/sched/gomaxprocs:threads", 4),
    "Stack=",
    "\truntime.traceLocker.Gomaxprocs @ 0x475603",
    "\t\t/go/src/runtime/traceruntime.go:282",
    "",
    span("Span", 1100, 5, 1, 72),
    metric(1150, "/gc/heap/goal:bytes", 4194304),
    span("SpanAlloc", 1200, 9, 4, 1, p=1),
    span("SpanFree", 1300, 5, p=-1),
    span("SpanFree", 1350, 77),  # not live: dropped
    'M=2 P=1 G=9 RangeEnd Time=1400 Name="GC concurrent mark phase" Scope=None Attributes=[]',
    span("SpanAlloc", 1450, 12, 2, 40),
    metric(1500, "/gc/heap/goal:bytes", 8327234, p=1),
    'M=2 P=1 G=9 Log Time=1600 Task=0 Category="other" Message="FreeOSMemory"',
    'M=2 P=1 G=9 Log Time=1700 Task=0 Category="pagealloc" Message="FreeOSMemory"',
    span("SpanAlloc", 1800, 9, 3, 2),  # 9 is still live: implicit free first
    'M=2 P=0 G=9 RangeEnd Time=1900 Name="GC concurrent mark phase" Scope=None Attributes=[]',
    metric(1950, "/sched/gomaxprocs:threads", 8),
]


def test_decode_parsed_lines():
    d = decode_parsed(DUMP)
    cols = d.columns()
    assert cols["ts"].tolist() == [100, 200, 300, 400, 450, 700, 800, 800, 900]
    assert cols["op"].tolist() == [OP_ALLOC, OP_ALLOC, OP_FREE, OP_GC, OP_ALLOC, OP_FREE_OS_MEMORY, OP_FREE, OP_ALLOC, OP_GC]
    assert cols["span"].tolist() == [5, 9, 5, 0, 12, 0, 9, 9, 0]
    assert cols["npages"].tolist() == [1, 4, 1, 0, 2, 0, 4, 3, 0]  # frees carry their alloc's npages
    assert cols["kind"].tolist() == [72, 1, 0, 0, 40, 0, 0, 2, 0]
    assert cols["p"].tolist() == [0, 1, -1, 1, 0, 1, 0, 0, 0]
    # The first gc row takes the goal published after it; the last, with none after it, the last known goal.
    assert cols["value"].tolist() == [0, 0, 0, 8327234, 0, 0, 0, 0, 8327234]
    assert (d.start, d.wall, d.gomaxprocs) == (1000, "2026-01-02T03:04:05.000000006Z", 4)
    assert (d.spans_at_start, d.implicit_frees, d.dropped_frees) == (1, 1, 1)
    assert validate_trace(_frame(cols)).events == 9


def _frame(cols):
    import pandas as pd

    from pagealloc.trace import OP_NAMES

    return pd.DataFrame({**cols, "op": [OP_NAMES[c] for c in cols["op"]]})


def test_header_and_info_batch_of_the_fixture():
    info = read_header(str(GO_TRACE))
    assert info.version == "1.26"
    assert info.page_size == 8192
    assert info.min_heap_addr == 0x129021C00000


@pytest.mark.parametrize(
    "content, text",
    [
        (b"", "not a Go execution trace"),
        (b"PAR1 this is no Go trace", "not a Go execution trace"),
        (b"go 1.21 trace\x00\x00\x00", "Go 1.21 trace; heap span events need Go >= 1.23"),
    ],
)
def test_import_rejects_files_that_are_not_go_traces(tmp_path, capfd, content, text):
    path = tmp_path / "x.trace"
    path.write_bytes(content)
    assert main(["import", str(path), "-o", str(tmp_path / "out.parquet")]) == 2
    err = capfd.readouterr().err
    assert err == f"pagealloc: error: {path}: {text}" + err.split(text, 1)[1]
    assert err.count("\n") == 1 and not (tmp_path / "out.parquet").exists()


def test_import_missing_file(tmp_path, capfd):
    assert main(["import", str(tmp_path / "none.trace"), "-o", str(tmp_path / "o.parquet")]) == 2
    assert capfd.readouterr().err == f"pagealloc: error: {tmp_path / 'none.trace'}: no such file\n"


@needs_go
def test_import_the_real_fixture(tmp_path, capfd):
    out = tmp_path / "fx.parquet"
    assert main(["import", str(GO_TRACE), "-o", str(out), "--go-version", "go1.27.3"]) == 0
    assert capfd.readouterr().out == f"{out}: 352 events (210 alloc, 132 free, 4 gc, 2 free_os_memory, 4 gc_start)\n"
    s = validate_trace(out)
    m = s.metadata
    assert m["source"] == "go-trace" and m["go_version"] == "go1.27.3" and m["name"] == "freeosmemory"
    assert (m["page_size"], m["min_heap_addr"], m["gomaxprocs"], m["go_trace_version"]) == (8192, 0x129021C00000, 2, "1.26")
    assert m["spans_at_start"] > 0 and m["recorded_at"].startswith("20")
    assert m["importer"] == {"decoder": "pagealloc tracerows (Go's internal/trace)", "implicit_frees": 0, "dropped_frees": 0,
                             "duplicate_annotations": 0, "free_os_memory_gcs": 2, "unannotated_calls": 0}
    t = read_trace(out).to_pandas()
    ts = t.ts.to_numpy()
    assert ts[0] >= 0 and np.all(np.diff(ts) >= 0)
    # Spans alive at the start come first, as allocs; gc rows carry a heap goal >= 4 MiB.
    assert (t.op.iloc[: m["spans_at_start"]] == "alloc").all()
    assert (t[t.op == "gc"].value >= 4 << 20).all()
    # Each annotated FreeOSMemory is followed by the GC that debug.FreeOSMemory runs.
    fom = np.flatnonzero(t.op == "free_os_memory")
    assert len(fom) == 2 and all((t.op.iloc[i:] == "gc").any() for i in fom)
    # Go's span ids are page offsets from the min heap address: live spans never overlap.
    pages: set[int] = set()
    for op, sid, n in zip(t.op, t.span, t.npages):
        block = set(range(sid, sid + n))
        if op == "alloc":
            assert not pages & block
            pages |= block
        elif op == "free":
            pages -= block


def test_python_decoder_on_the_fixture_needs_no_go(tmp_path, capfd, monkeypatch):
    monkeypatch.setenv("PAGEALLOC_GO", str(tmp_path / "no-go"))  # the pure-Python path must not need Go
    out = tmp_path / "py.parquet"
    assert main(["import", str(GO_TRACE), "-o", str(out), "--decoder", "python"]) == 0
    assert capfd.readouterr().out == f"{out}: 352 events (210 alloc, 132 free, 4 gc, 2 free_os_memory, 4 gc_start)\n"
    m = validate_trace(out).metadata
    assert m["importer"]["decoder"] == "pagealloc.trace.gowire (pure Python)"
    assert (m["min_heap_addr"], m["gomaxprocs"], m["spans_at_start"]) == (0x129021C00000, 2, 68)
    assert (m["importer"]["free_os_memory_gcs"], m["importer"]["unannotated_calls"]) == (2, 0)


@needs_go
def test_the_text_and_python_decoders_agree_on_the_fixture():
    from pagealloc.trace.goimport import decode

    (go, _), (py, _) = decode(str(GO_TRACE), "text"), decode(str(GO_TRACE), "python")
    a, b = go.columns(), py.columns()
    for name in a:
        assert np.array_equal(a[name], b[name]), name
    assert (go.start, go.wall, go.gomaxprocs, go.spans_at_start) == (py.start, py.wall, py.gomaxprocs, py.spans_at_start)
    for name in ("calls", "annotations", "in_call"):  # the Python decoder reads the stack table too
        assert np.array_equal(getattr(go.facts, name), getattr(py.facts, name)), name


def decoded(path: str, decoder: str):
    """Every raw row (one array per column) and the facts of a decoder's result."""
    from pagealloc.trace.goimport import decode

    rows, _ = decode(path, decoder)
    with rows:
        chunks = [cols for _, cols in rows.chunks()]
        return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}, rows.facts


def assert_same_rows(path: str):
    """The compiled decoder (tracerows) gives exactly the rows and facts of the text decoder."""
    (fast, ff), (text, ft) = decoded(path, "go"), decoded(path, "text")
    assert set(fast) == set(text) == {"ts", "op", "span", "npages", "p", "value", "kind"}
    for name in text:
        assert fast[name].dtype == text[name].dtype and np.array_equal(fast[name], text[name]), name
    for name, value in vars(ft).items():
        other = getattr(ff, name)
        assert (np.array_equal(value, other) if isinstance(value, np.ndarray) else value == other), name
    fast_sched, text_sched = decoded_schedule(path, "go"), decoded_schedule(path, "text")
    assert len(fast_sched) > 0 and fast_sched.dtype == text_sched.dtype and np.array_equal(fast_sched, text_sched)  # the P stream's records
    return ff


def decoded_schedule(path: str, decoder: str):
    from pagealloc.trace.goimport import decode

    rows, _ = decode(path, decoder)
    with rows:
        return rows.schedule()


@needs_go
def test_the_compiled_decoder_gives_the_text_decoders_rows_on_the_fixture():
    f = assert_same_rows(str(GO_TRACE))
    assert f.rows == 352 and f.calls.tolist() == [158, 294] and f.annotations.tolist() == [157, 293] and not len(f.in_call)


@needs_go
def test_the_compiled_decoder_gives_the_text_decoders_rows_on_a_recorded_program(tmp_path):
    prog = tmp_path / "alloc.go"
    prog.write_text(PROGRAM.replace("sink = nil", "sink = nil\n\tdebug.FreeOSMemory()").replace('"os"', '"os"\n\t"runtime/debug"'))
    raw = tmp_path / "raw.trace"
    assert main(["record", "-q", "-o", str(tmp_path / "o.parquet"), "--keep-raw", str(raw), "--", str(prog), "-n", "400"]) == 0
    f = assert_same_rows(str(raw))
    assert f.counts[OP_ALLOC] >= 400 and len(f.calls) == len(f.annotations) == len(f.in_call) == 1


def test_the_compiled_decoders_source_ships_with_the_package():
    from pagealloc.trace.gorows import SOURCE

    assert SOURCE.is_file() and "internal/trace" in SOURCE.read_text()
    assert '"gosrc/*.go"' in (Path(__file__).parents[2] / "pyproject.toml").read_text()


def test_python_decoder_rejects_a_truncated_trace(tmp_path, capfd):
    bad = tmp_path / "cut.trace"
    bad.write_bytes(GO_TRACE.read_bytes()[:300_000])
    assert main(["import", str(bad), "-o", str(tmp_path / "o.parquet"), "--decoder", "python"]) == 2
    err = capfd.readouterr().err
    assert err.startswith(f"pagealloc: error: {bad}: cannot decode the Go trace: truncated") and err.count("\n") == 1


@pytest.mark.parametrize("decoder", ["python", pytest.param("go", marks=needs_go)])
def test_import_without_allocfree_events(tmp_path, capfd, decoder):
    assert main(["import", str(FIXTURES / "no-allocfree.gotrace"), "-o", str(tmp_path / "o.parquet"), "--decoder", decoder]) == 2
    assert "no heap span events; record it with GODEBUG=traceallocfree=1" in capfd.readouterr().err


@needs_go
def test_import_truncated_go_trace(tmp_path, capfd):
    bad = tmp_path / "cut.trace"
    bad.write_bytes(GO_TRACE.read_bytes()[:300_000])
    assert main(["import", str(bad), "-o", str(tmp_path / "o.parquet")]) == 2
    err = capfd.readouterr().err
    assert err.startswith(f"pagealloc: error: {bad}: Go's trace reader cannot read it: ") and err.count("\n") == 1


# ---------------------------------------------------------------- recorder

PROGRAM = """package main

import (
	"flag"
	"fmt"
	"os"
)

var sink [][]byte

func main() {
	n := flag.Int("n", 100, "allocations")
	flag.Parse()
	for i := 0; i < *n; i++ {
		sink = append(sink, make([]byte, 64<<10))
	}
	sink = nil
	fmt.Fprintln(os.Stderr, "args:", flag.Args())
}
"""


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.stat().st_mtime_ns for p in folder.rglob("*")}


@needs_go
def test_record_a_go_file_without_touching_its_folder(tmp_path, capfd):
    src = tmp_path / "prog"
    src.mkdir()
    (src / "alloc.go").write_text(PROGRAM)
    before = snapshot(src)
    out = tmp_path / "out.parquet"
    assert main(["record", "-o", str(out), "--name", "tiny", "--", str(src / "alloc.go"), "-n", "300", "extra"]) == 0
    assert snapshot(src) == before
    s = validate_trace(out)
    assert s.counts["alloc"] >= 300 and s.metadata["name"] == "tiny"
    assert s.metadata["program"] == str(src / "alloc.go") and s.metadata["args"] == ["-n", "300", "extra"]
    assert s.metadata["go_version"].startswith("go1.") and s.metadata["goos"] and s.metadata["goarch"]
    assert s.metadata["generator"]["name"] == "pagealloc record"


@needs_go
def test_record_a_package_directory_and_a_test_package(tmp_path, monkeypatch):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "main.go").write_text(PROGRAM)
    (pkg / "go.mod").write_text("module example.com/pkg\n\ngo 1.23\n")
    (pkg / "lib_test.go").write_text(
        'package main\n\nimport "testing"\n\nfunc BenchmarkAlloc(b *testing.B) {\n'
        "\tfor i := 0; i < b.N; i++ {\n\t\tsink = append(sink, make([]byte, 1<<20))\n\t}\n\tsink = nil\n}\n"
    )
    before = snapshot(pkg)
    out = tmp_path / "dir.parquet"
    assert main(["record", "-o", str(out), "--", str(pkg), "-n", "50"]) == 0
    assert validate_trace(out).counts["alloc"] >= 50
    monkeypatch.chdir(pkg)
    out = tmp_path / "bench.parquet"
    assert main(["record", "-o", str(out), "--", "test", ".", "-run", "^$", "-bench", "Alloc", "-benchtime", "40x"]) == 0
    s = validate_trace(out)
    assert s.counts["alloc"] >= 40 and s.metadata["program"] == "go test ."
    assert snapshot(pkg) == before  # no pkg.test, no trace file left behind


@needs_go
def test_record_reports_a_program_that_exits(tmp_path, capfd):
    prog = tmp_path / "exit.go"
    prog.write_text('package main\n\nimport "os"\n\nfunc main() { os.Exit(3) }\n')
    assert main(["record", "-o", str(tmp_path / "o.parquet"), "--", str(prog)]) == 2
    err = capfd.readouterr().err
    assert err.startswith(f"pagealloc: error: {prog} exited with status 3 (its output is above); ") and err.count("\n") == 1
    assert "main must return" in err


@needs_go
def test_record_rejects_a_library_package(tmp_path, capfd):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "lib.go").write_text("package lib\n\nfunc F() int { return 1 }\n")
    assert main(["record", "-o", str(tmp_path / "o.parquet"), "--", str(lib)]) == 2
    assert capfd.readouterr().err == f"pagealloc: error: {lib}: package lib, not main; record a library's tests or benchmarks with 'test PKG'\n"


@pytest.mark.parametrize(
    "target, text",
    [
        ([], "record: missing TARGET"),
        (["nowhere/prog.go"], "nowhere/prog.go: no such file or directory"),
        (["test"], "record: 'test' needs a package"),
        (["test", "encoding/json", "-trace=x.out"], "go test flag -trace=x.out is not allowed here"),
    ],
)
def test_record_bad_targets(tmp_path, capfd, target, text):
    assert main(["record", "-o", str(tmp_path / "o.parquet"), "--", *target]) == 2
    err = capfd.readouterr().err
    assert err.startswith("pagealloc: error: ") and text in err and err.count("\n") == 1


def test_record_without_go_says_how_to_get_it(tmp_path):
    prog = tmp_path / "p.go"
    prog.write_text(PROGRAM)
    env = {**os.environ, "PAGEALLOC_GO": str(tmp_path / "no-go-here")}
    r = subprocess.run([sys.executable, "-m", "pagealloc", "record", "-o", str(tmp_path / "o.parquet"), "--", str(prog)], env=env, capture_output=True, text=True)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith("pagealloc: error: ") and "pip install 'pagealloc[record]'" in r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


@needs_go
def test_a_large_trace_is_announced_before_decoding(tmp_path, capfd, monkeypatch):
    import pagealloc.trace.goimport as goimport

    monkeypatch.setattr(goimport, "LARGE_TRACE", 1000)
    out = tmp_path / "fx.parquet"
    assert main(["import", str(GO_TRACE), "-o", str(out)]) == 0
    err = capfd.readouterr().err
    assert err.startswith(f"pagealloc: note: {GO_TRACE} is a large execution trace (") and err.count("\n") == 1
    assert "pagealloc tracerows (Go's internal/trace)) takes about 0 s" in err


@needs_go
def test_without_the_compiled_decoder_import_falls_back_to_go_tool_trace(tmp_path, capfd, monkeypatch):
    import pagealloc.trace.gorows as gorows

    broken = tmp_path / "tracerows.go"
    broken.write_text("package main\n\nfunc main() { undefined() }\n")
    monkeypatch.setattr(gorows, "SOURCE", broken)
    monkeypatch.setattr(gorows, "cache_dir", lambda: tmp_path / "cache")  # not XDG_CACHE_HOME: Go's build cache follows it
    out = tmp_path / "fx.parquet"
    assert main(["import", str(GO_TRACE), "-o", str(out)]) == 0
    err = capfd.readouterr().err
    assert err.startswith("pagealloc: note: pagealloc's trace decoder does not build with go1.") and err.count("\n") == 1
    assert "using go tool trace -d=parsed instead" in err
    assert validate_trace(out).metadata["importer"]["decoder"] == "go tool trace -d=parsed"
    assert main(["import", str(GO_TRACE), "-o", str(out), "--decoder", "go"]) == 2  # asked for: one line, exit 2
    err = capfd.readouterr().err
    assert err.startswith("pagealloc: error: pagealloc's trace decoder does not build with go1.") and err.count("\n") == 1
