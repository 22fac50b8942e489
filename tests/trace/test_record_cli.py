"""pagealloc record's command line and its installed-Go path (issue 11 item 4, issue 13 items 4 and 9).

go test flags are split between the build and the test binary; --help reads
as help; --gomaxprocs reaches the program; the program's output shows
(``-q`` hides it); debug.FreeOSMemory() is captured in an unmodified
program (an -overlay of runtime/debug logs the annotation), and ``import``
warns about calls it can see in stacks but that carry no annotation.  The
tests that run Go need the ``record`` extra and skip without it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from pagealloc.cli import main
from pagealloc.errors import UserError
from pagealloc.trace import OP_FREE_OS_MEMORY, OP_GC, validate_trace
from pagealloc.trace.goimport import _drop_duplicate_annotations, decode_parsed, warnings_for
from pagealloc.trace.record import OVERLAID_FUNC, freeosmemory_overlay, split_test_flags
from test_trace_import import needs_go  # skips without Go


@pytest.mark.parametrize(
    "args, build, run",
    [
        (["-run", "^$", "-bench", "Code", "-benchtime", "40x"], [], ["-test.run", "^$", "-test.bench", "Code", "-test.benchtime", "40x"]),
        (["-bench=.", "-benchmem", "-v", "-count=2"], [], ["-test.bench=.", "-test.benchmem", "-test.v", "-test.count=2"]),
        (["-tags", "x,y", "-race", "-run", "T"], ["-tags", "x,y", "-race"], ["-test.run", "T"]),
        (["--test.run=X", "-args", "-n", "3", "plain"], [], ["-test.run=X", "-n", "3", "plain"]),
    ],
)
def test_go_test_flags_are_split_between_build_and_run(args, build, run):
    assert split_test_flags(args) == (build, run)


@pytest.mark.parametrize(
    "args, text",
    [
        (["-frobnicate"], "unknown go test flag -frobnicate (program arguments go after -args)"),
        (["-run"], "go test flag -run needs a value"),
        (["plain"], "unexpected argument 'plain' after the package"),
    ],
)
def test_bad_go_test_flags(args, text):
    with pytest.raises(UserError, match=text.replace("(", r"\(").replace(")", r"\)")):
        split_test_flags(args)


def test_help_reads_as_help(capsys):
    with pytest.raises(SystemExit):
        main(["record", "--help"])
    text = capsys.readouterr().out
    assert "`" not in text and "See pagealloc" not in text and ".py" not in text
    for flag in ("--go {installed,1.14}", "--go114-src PATH", "--gomaxprocs N", "--keep-raw FILE", "-q, --quiet"):
        assert flag in text
    assert "pagealloc record --go 1.14 --gomaxprocs 8" in text


@pytest.mark.parametrize("argv, text", [
    (["--gomaxprocs", "0", "--", "x.go"], "record: --gomaxprocs 0: must be between 1 and 1024"),
    (["--go", "1.13", "--", "x.go"], "argument --go: invalid choice: '1.13'"),
])
def test_bad_record_options(tmp_path, capfd, argv, text):
    assert main(["record", "-o", str(tmp_path / "o.parquet"), *argv]) == 2
    err = capfd.readouterr().err
    assert err.startswith("pagealloc: error: ") and text in err and err.count("\n") == 1


def test_the_overlay_annotates_free_os_memory(tmp_path):
    goroot = tmp_path / "goroot"
    debug = goroot / "src" / "runtime" / "debug"
    debug.mkdir(parents=True)
    (debug / "garbage.go").write_text(f"package debug\n\n{OVERLAID_FUNC}\n")
    overlay = json.loads(open(freeosmemory_overlay(str(tmp_path), str(goroot))).read())["Replace"]
    assert set(overlay) == {str(debug / "garbage.go"), str(debug / "zz_pagealloc_record.go")}
    patched = open(overlay[str(debug / "garbage.go")]).read()
    assert "func FreeOSMemory() {\n\tfreeOSMemory()\n\tpageallocAnnotateFreeOSMemory()\n}" in patched
    assert 'trace.Log(context.Background(), "pagealloc", "FreeOSMemory")' in open(overlay[str(debug / "zz_pagealloc_record.go")]).read()
    (debug / "garbage.go").write_text("package debug\n\nfunc FreeOSMemory() { other() }\n")
    with pytest.raises(UserError, match="is not the one-line function pagealloc record annotates"):
        freeosmemory_overlay(str(tmp_path / "again"), str(goroot))


def test_one_call_annotated_twice_is_one_row():
    op = np.array([0, OP_GC, OP_FREE_OS_MEMORY, OP_FREE_OS_MEMORY, 1, OP_GC, OP_FREE_OS_MEMORY], dtype=np.uint8)
    cols, dropped = _drop_duplicate_annotations({"op": op, "ts": np.arange(7)})
    assert dropped == 1 and list(cols["ts"]) == [0, 1, 2, 4, 5, 6]


GC_BEGIN = 'M=1 P=0 G=7 RangeBegin Time={t} Name="GC concurrent mark phase" Scope=None'


def test_free_os_memory_calls_are_seen_in_stacks():
    lines = [
        "M=-1 P=-1 G=-1 Sync Time=1 N=1 Trace=1 Mono=1 Wall=2026-01-02T03:04:05Z",
        GC_BEGIN.format(t=10), "Stack=", "\truntime.GC @ 0x1", "\truntime/debug.FreeOSMemory @ 0x2", "",
        GC_BEGIN.format(t=20), "Stack=", "\truntime.mallocgc @ 0x3", "",
        'M=1 P=0 G=7 Log Time=30 Task=0 Category="pagealloc" Message="FreeOSMemory"',
        GC_BEGIN.format(t=40), "Stack=", "\truntime/debug.FreeOSMemory @ 0x2", "",
    ]
    d = decode_parsed(lines)
    assert d.free_os_memory_gcs == 2
    meta = {"importer": {"free_os_memory_gcs": 2}, "counts": {"free_os_memory": 1}}
    (warning,) = warnings_for(meta)
    assert warning.startswith("2 GCs started by debug.FreeOSMemory (their stacks say so) but only 1 FreeOSMemory annotations")
    assert warnings_for({"importer": {"free_os_memory_gcs": 1}, "counts": {"free_os_memory": 1}}) == []


# Three debug.FreeOSMemory() calls and no annotation; exits with the status given as its last argument, if any.
PROGRAM = """package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
)

var keep [][]byte

func main() {
	fmt.Printf("PAGEALLOC_RECORD_FD=%q\\n", os.Getenv("PAGEALLOC_RECORD_FD"))
	for round := 0; round < 3; round++ {
		for i := 0; i < 400; i++ {
			keep = append(keep, make([]byte, 1<<(10+i%9)))
		}
		keep = keep[:len(keep)/4]
		debug.FreeOSMemory()
	}
	fmt.Println("hello from the program, GOMAXPROCS", runtime.GOMAXPROCS(0))
	fmt.Fprintln(os.Stderr, "and its stderr")
	if code, err := strconv.Atoi(os.Args[len(os.Args)-1]); err == nil && code != 0 {
		os.Exit(code)
	}
}
"""


@needs_go
def test_record_captures_free_os_memory_and_shows_the_output(tmp_path, capfd):
    prog = tmp_path / "fom.go"
    prog.write_text(PROGRAM)
    out = tmp_path / "o.parquet"
    assert main(["record", "--gomaxprocs", "3", "-o", str(out), "--", str(prog)]) == 0
    std = capfd.readouterr()
    assert "hello from the program, GOMAXPROCS 3" in std.out and "and its stderr" in std.err
    s = validate_trace(out)
    assert s.counts["free_os_memory"] == 3  # no annotation in the program
    assert s.metadata["gomaxprocs"] == 3 and s.metadata["importer"]["free_os_memory_gcs"] == 3
    assert "--gomaxprocs 3" in s.metadata["generator"]["command"]
    assert main(["record", "-q", "-o", str(out), "--", str(prog)]) == 0
    std = capfd.readouterr()
    assert "hello from the program" not in std.out + std.err and std.out.startswith(f"{out}: ")


@needs_go
def test_import_warns_about_calls_without_annotation(tmp_path, capfd):
    """A plain go test -trace of the program: FreeOSMemory in stacks, no annotation."""
    (tmp_path / "go.mod").write_text("module x\n\ngo 1.23\n")
    (tmp_path / "main.go").write_text(PROGRAM)
    (tmp_path / "main_test.go").write_text('package main\n\nimport "testing"\n\nfunc TestMain_(t *testing.T) { main() }\n')
    from pagealloc.trace.gotool import go_env, go_run

    r = go_run(["test", "-trace=" + str(tmp_path / "t.trace"), "."], cwd=str(tmp_path), env=go_env({"GODEBUG": "traceallocfree=1"}))
    assert r.returncode == 0, r.stderr
    capfd.readouterr()
    assert main(["import", str(tmp_path / "t.trace"), "-o", str(tmp_path / "t.parquet")]) == 0
    err = capfd.readouterr().err
    assert err.startswith(f"pagealloc: warning: {tmp_path / 't.parquet'}: 3 GCs started by debug.FreeOSMemory") and err.count("\n") == 1


def test_record_without_the_source_of_go114_says_where_to_get_it(tmp_path):
    prog = tmp_path / "p.go"
    prog.write_text(PROGRAM)
    env = {"PAGEALLOC_GO114_SRC": str(tmp_path / "nowhere.tar.gz")}
    r = subprocess.run([sys.executable, "-m", "pagealloc", "record", "--go", "1.14", "-o", str(tmp_path / "o.parquet"), "--", str(prog)],
                       env={**os.environ, **env}, capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr == f"pagealloc: error: PAGEALLOC_GO114_SRC {tmp_path / 'nowhere.tar.gz'}: no such file or directory (a go1.14.6 source tarball or tree)\n"
