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
from pagealloc.trace.goimport import decode_parsed, match_free_os_memory, warnings_for
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


@pytest.mark.parametrize("calls, annotations, in_call, dropped, unannotated", [
    # The program's annotation before each call (earlier docs' convention), and record's inside it after: record's stay.
    ([10, 20, 30], [9, 12, 19, 22, 29, 32], [12, 22, 32], [9, 19, 29], 0),
    # Only the program's, before each call (a plain go test -trace): one each, where they are.
    ([10, 20, 30], [9, 19, 29], [], [], 0),
    # Only the program's, after each call.
    ([10, 20, 30], [11, 21, 31], [], [], 0),
    # Before and after each call, both the program's: one of the two per call.
    ([10, 20, 30], [9, 11, 19, 21, 29, 31], [], [11, 21, 31], 0),
    # No annotation: every call is missing.
    ([10, 20, 30], [], [], [], 3),
    # A call annotated, the next not.
    ([10, 20], [11], [11], [], 1),
])
def test_each_free_os_memory_call_is_one_row(calls, annotations, in_call, dropped, unannotated):
    m = match_free_os_memory(np.array(calls), np.array(annotations), np.array(in_call))
    assert (m.calls, m.unannotated, m.dropped.tolist()) == (len(calls), unannotated, dropped)


def test_without_stacks_an_annotation_right_after_another_is_the_same_call():
    m = match_free_os_memory(None, np.array([2, 3, 6]), np.array([], dtype=np.int64))
    assert (m.calls, m.unannotated, m.dropped.tolist()) == (None, 0, [3])


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
    f = d.facts
    assert f.calls.tolist() == [0, 3] and f.annotations.tolist() == [2] and not len(f.in_call)
    meta = {"importer": {"free_os_memory_gcs": 2, "unannotated_calls": 1}, "counts": {"free_os_memory": 1}}
    (warning,) = warnings_for(meta)
    assert warning.startswith("2 GCs started by debug.FreeOSMemory (their stacks say so) but 1 of them without a FreeOSMemory annotation")
    assert warnings_for({"importer": {"free_os_memory_gcs": 1, "unannotated_calls": 0}, "counts": {"free_os_memory": 1}}) == []
    assert len(warnings_for({"importer": {"free_os_memory_gcs": 2}, "counts": {"free_os_memory": 1}})) == 1  # an older import


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
    # each probe also ran allocprobe (Go's allocation beside the call), built with this Go
    probes = s.metadata["generator"]["machine_probe"]
    assert all(type(probes[half]["alloc_traffic_mean_ns"]) is int for half in ("before", "after")), probes
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


# Three debug.FreeOSMemory() calls, annotated by the program itself before each call, after it, or not at all.
ANNOTATING = """package main

import (
	"context"
	"os"
	"runtime/debug"
	"runtime/trace"
)

var keep [][]byte

func annotate() { trace.Log(context.Background(), "pagealloc", "FreeOSMemory") }

func main() {
	convention := os.Args[len(os.Args)-1]
	for round := 0; round < 3; round++ {
		for i := 0; i < 400; i++ {
			keep = append(keep, make([]byte, 1<<(10+i%9)))
		}
		keep = keep[:len(keep)/4]
		if convention == "before" {
			annotate()
		}
		debug.FreeOSMemory()
		if convention == "after" {
			annotate()
		}
	}
}
"""


def _fom_rows_follow_their_gc(path) -> bool:
    """Each free_os_memory row comes after a gc row, with no gc_start between (the call's GC has ended)."""
    from pagealloc.trace import read_trace

    ops = read_trace(path).column("op").to_pylist()
    last = {}
    for i, op in enumerate(ops):
        if op == "free_os_memory" and not (last.get("gc", -1) > last.get("gc_start", -1) >= 0):
            return False
        last[op] = i
    return True


@needs_go
@pytest.mark.parametrize("convention, duplicates", [("before", 3), ("after", 3), ("none", 0)])
def test_record_gives_one_row_per_free_os_memory_call(tmp_path, capfd, convention, duplicates):
    """Issue 22: a program that annotates its calls itself, before them as earlier docs said, had 6 rows for 3 calls."""
    prog = tmp_path / "annotating.go"
    prog.write_text(ANNOTATING)
    out = tmp_path / "o.parquet"
    assert main(["record", "-o", str(out), "--", str(prog), convention]) == 0
    assert capfd.readouterr().err == ""  # no warning
    s = validate_trace(out)
    importer = s.metadata["importer"]
    assert s.counts["free_os_memory"] == importer["free_os_memory_gcs"] == 3
    assert (importer["duplicate_annotations"], importer["unannotated_calls"]) == (duplicates, 0)
    assert _fom_rows_follow_their_gc(out)  # record's own annotations stand, logged once the call returned


@needs_go
@pytest.mark.parametrize("convention, rows", [("before", 3), ("after", 3), ("none", 0)])
def test_import_of_a_plain_trace_matches_the_programs_annotations(tmp_path, capfd, convention, rows):
    """A plain go test -trace (no record overlay): the program's annotations, one per call, where it put them."""
    (tmp_path / "go.mod").write_text("module x\n\ngo 1.23\n")
    (tmp_path / "main.go").write_text(ANNOTATING)
    (tmp_path / "main_test.go").write_text(f'package main\n\nimport ("os"; "testing")\n\nfunc TestMain_(t *testing.T) {{ os.Args = []string{{"x", "{convention}"}}; main() }}\n')
    from pagealloc.trace.gotool import go_env, go_run

    r = go_run(["test", "-trace=" + str(tmp_path / "t.trace"), "."], cwd=str(tmp_path), env=go_env({"GODEBUG": "traceallocfree=1"}))
    assert r.returncode == 0, r.stderr
    capfd.readouterr()
    out = tmp_path / "t.parquet"
    assert main(["import", str(tmp_path / "t.trace"), "-o", str(out)]) == 0
    err = capfd.readouterr().err
    s = validate_trace(out)
    importer = s.metadata["importer"]
    assert s.counts["free_os_memory"] == rows and importer["free_os_memory_gcs"] == 3
    assert (importer["duplicate_annotations"], importer["unannotated_calls"]) == (0, 3 - rows)
    assert ("3 of them without a FreeOSMemory annotation" in err) == (rows == 0)
    if convention == "after":
        assert _fom_rows_follow_their_gc(out)


@needs_go
def test_record_prints_the_programs_output_and_nothing_of_the_test_binary(tmp_path, capfd):
    prog = tmp_path / "hello.go"
    prog.write_text('package main\n\nimport "fmt"\n\nvar sink []byte\n\nfunc main() {\n\tsink = make([]byte, 1<<20)\n\tfmt.Println("hello")\n}\n')
    out = tmp_path / "o.parquet"
    assert main(["record", "-o", str(out), "--", str(prog)]) == 0
    std = capfd.readouterr()
    assert std.out == f"hello\n{out}: " + std.out.split(f"{out}: ", 1)[1] and "PASS" not in std.out + std.err


def test_the_shootdown_probe_runs_as_many_busy_threads_as_the_program_has_other_ps():
    """record's probe competes for the CPUs as the program's Ps would: GOMAXPROCS - 1 threads (the
    CPUs less one when it is not set, at most four per CPU, at least one)."""
    from pagealloc.trace.record import _other_ps

    cpus = os.cpu_count() or 2
    assert _other_ps({"GOMAXPROCS": "4"}) == min(3, 4 * cpus)
    assert _other_ps({"GOMAXPROCS": "1"}) == 1
    assert _other_ps({}) == max(cpus - 1, 1) == _other_ps({"GOMAXPROCS": "lots"})
    assert _other_ps({"GOMAXPROCS": "1024"}) == 4 * cpus


def test_allocprobe_reads_a_narrow_width_only_where_the_ps_outnumber_the_other_cpus(monkeypatch):
    """probe_machine runs allocprobe beside the program's other Ps, and again beside one goroutine per
    other CPU where that is fewer (the price follows the Ps running, session 15); a narrow run that
    fails leaves the wide reading alone, and a wide one that fails leaves a note and neither."""
    import pagealloc.trace.record as record

    monkeypatch.setattr(record, "machine_probe", lambda others: {"madv_free_go_page_ns": 4_000, "tlb_shootdown_ns": 20_000})
    widths = []

    def traffic(allocprobe, others, runtime):
        widths.append(others)
        return {7: 15_000, 1: 5_000}.get(others)

    monkeypatch.setattr(record, "_alloc_traffic", traffic)
    wide_and_narrow = record.probe_machine(7, "allocprobe", None, 1)
    assert (wide_and_narrow["alloc_traffic_mean_ns"], wide_and_narrow["alloc_traffic_narrow_mean_ns"]) == (15_000, 5_000)
    assert widths == [7, 1]
    assert "alloc_traffic_narrow_mean_ns" not in record.probe_machine(1, "allocprobe", None, 1)  # one width
    assert "alloc_traffic_narrow_mean_ns" not in record.probe_machine(7, "allocprobe", None, 3)  # narrow failed
    assert "alloc_traffic_mean_ns" not in record.probe_machine(3, "allocprobe", None, 1)  # wide failed
    assert record.other_cpus() == max((os.cpu_count() or 2) - 1, 1)


@needs_go
def test_an_allocprobe_that_does_not_build_leaves_a_note_and_the_python_probe(tmp_path, capfd, monkeypatch):
    """allocprobe is a measurement beside the recording, not the recording: if it does not build, record
    says so in one line and keeps the Python probe's traffic reading."""
    import pagealloc.trace.record as record

    broken = tmp_path / "allocprobe.go"
    broken.write_text("package main\n\nfunc main() { undefined() }\n")
    monkeypatch.setattr(record, "ALLOC_PROBE_SOURCE", broken)
    prog = tmp_path / "fom.go"
    prog.write_text(PROGRAM)
    out = tmp_path / "o.parquet"
    assert main(["record", "-q", "-o", str(out), "--", str(prog)]) == 0
    notes = [line for line in capfd.readouterr().err.splitlines() if "allocprobe" in line]
    assert len(notes) == 1 and notes[0].startswith("pagealloc: note: allocprobe did not build ("), notes
    probes = validate_trace(out).metadata["generator"]["machine_probe"]
    assert not any("alloc_traffic_mean_ns" in probes[half] for half in ("before", "after"))
