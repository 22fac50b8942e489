"""The bad-input matrix, through the real CLI (subprocesses).

Every bad input, for every command that reads it (``replay``, ``validate``,
``info``, ``report``; ``import`` for Go execution traces), must exit with
status 2 and print exactly one line on stderr, ``pagealloc: error: ...``,
naming the file (relative, as given) and the row where there is one; no
traceback, nothing on stdout.  ``--lenient`` must replay past the two
skippable kinds of rows and count them, and nothing else.

Speed: a fresh ``pagealloc`` process spends ~0.5 s of CPU importing numpy,
pyarrow and pandas, and the matrix has ~100 cases.  So one helper process
(ZYGOTE) imports them once and forks a child per case; the child is the
console script from there on (``sys.exit(pagealloc.cli.main())`` with the
case's argv, in the case's folder, its own fd 1 and 2 going to files, an
uncaught exception printed as the interpreter would and exit status 1).
test_real_console_script runs a sample of cases through the installed
``pagealloc`` script itself and requires identical results.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tracefiles import rewrite_metadata

import pagealloc

PAGEALLOC = Path(sys.executable).with_name("pagealloc")
CLI = [str(PAGEALLOC)] if PAGEALLOC.exists() else [sys.executable, "-m", "pagealloc"]

# --------------------------------------------------------------------------
# The inputs, written once into one folder (the processes run in it).

GOOD = {"ts": [0, 10, 20], "op": ["alloc", "alloc", "free"], "span": [1, 2, 1], "npages": [1, 4, 1]}


def _table(**changes) -> pa.Table:
    cols = {**GOOD, **changes}
    types = {"ts": pa.int64(), "span": pa.uint64(), "npages": pa.uint32()}
    return pa.table({k: v if isinstance(v, pa.Array) else pa.array(v, types.get(k)) for k, v in cols.items()})


def _write(table: pa.Table):
    return lambda path: pq.write_table(table, path)


def _bytes(data: bytes):
    return lambda path: path.write_bytes(data)


def _truncated(path: Path) -> None:
    pq.write_table(_table(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _with_probe(after) -> pa.Table:
    """The good trace with a TLB shootdown probe in its metadata (trace.format.MACHINE_PROBE_KEY) whose
    "after" half is ``after`` (None: left out)."""
    from pagealloc.trace import METADATA_KEY

    probes = {"before": {"madv_free_go_page_ns": 2300, "tlb_shootdown_ns": 9000}}
    if after is not None:
        probes["after"] = after
    doc = {"format": "pagealloc-trace", "version": 2, "source": "user", "generator": {"machine_probe": probes}}
    return _table().replace_schema_metadata({METADATA_KEY: json.dumps(doc)})


I64 = pa.int64()
# (id, file name, how to make it or None, row or None, what the message must say)
TRACES = [
    ("missing-file", "missing.parquet", None, None, "no such file"),
    ("empty-file", "empty.parquet", _bytes(b""), None, "empty file, not a Parquet trace"),
    ("not-parquet", "csv.parquet", _bytes(b"ts,op,span,npages\n0,alloc,1,1\n"), None, "not a Parquet file"),
    ("truncated-parquet", "truncated.parquet", _truncated, None, "truncated or corrupt Parquet file"),
    ("missing-column", "no-npages.parquet", _write(_table().drop_columns(["npages"])), None, "missing required column npages"),
    ("extra-column", "extra.parquet", _write(_table(colour=["r", "g", "b"])), None, "unknown column 'colour'"),
    ("wrong-type-ts-string", "ts-string.parquet", _write(_table(ts=pa.array(["0", "10", "20"]))), None,
     "column 'ts' has type string; expected an integer type (int64)"),
    ("wrong-type-npages-float", "npages-float.parquet", _write(_table(npages=pa.array([1.0, 4.0, 1.0]))), None,
     "column 'npages' has type double; expected an integer type (uint32)"),
    ("unknown-op", "unknown-op.parquet", _write(_table(op=["alloc", "malloc", "free"])), 1, "unknown op 'malloc'"),
    ("zero-npages", "zero-npages.parquet", _write(_table(npages=[1, 0, 1])), 1, "alloc of span 2 with npages 0"),
    ("negative-npages", "negative-npages.parquet", _write(_table(npages=pa.array([1, -3, 1], I64))), 1, "npages -3 is negative"),
    ("npages-beyond-48-bit", "huge-npages.parquet", _write(_table(npages=pa.array([1, 2**36, 1], I64))), 1,
     "npages 68719476736 is beyond the 48-bit address space"),
    ("free-unknown-span", "free-unknown.parquet", _write(_table(span=[1, 2, 3])), 2, "free of unknown span 3"),
    ("double-alloc", "double-alloc.parquet", _write(_table(span=[1, 1, 1])), 1, "double alloc of span 1"),
    ("ts-backwards", "ts-backwards.parquet", _write(_table(ts=[0, 10, 5])), 2, "ts 5 is before the previous row's ts 10"),
    ("empty-trace", "no-rows.parquet", _write(_table(ts=[], op=pa.array([], pa.string()), span=[], npages=[])), None,
     "the trace has no events"),
    ("only-frees", "only-frees.parquet", _write(_table(op=["free", "free", "free"], span=[1, 2, 3])), 0, "free of unknown span 1"),
    ("machine-probe-negative", "bad-probe.parquet", _write(_with_probe({"madv_free_go_page_ns": 2300, "tlb_shootdown_ns": -5})),
     None, "metadata generator.machine_probe must be"),
    ("machine-probe-missing-after", "half-probe.parquet", _write(_with_probe(None)), None,
     "metadata generator.machine_probe must be"),
    ("machine-probe-traffic-not-ns", "traffic-probe.parquet",
     _write(_with_probe({"madv_free_go_page_ns": 2300, "tlb_shootdown_ns": 9000, "memory_traffic_ns": 2.5})), None,
     "metadata generator.machine_probe must be"),
    ("machine-probe-mean-absurd", "mean-probe.parquet",
     _write(_with_probe({"madv_free_go_page_ns": 2300, "tlb_shootdown_ns": 9000, "tlb_shootdown_mean_ns": 10**12})),
     None, "metadata generator.machine_probe must be"),
    ("machine-probe-wake-negative", "wake-probe.parquet",  # a lock waiter's way back to a CPU (session 16)
     _write(_with_probe({"madv_free_go_page_ns": 2300, "tlb_shootdown_ns": 9000, "wake_busy_mean_ns": -1})),
     None, "metadata generator.machine_probe must be"),
]
TRACE_COMMANDS = ["replay", "validate", "info", "report"]  # every command with TRACE arguments
SKIPPABLE = {"free-unknown-span": 1, "double-alloc": 1, "only-frees": 3}  # rows --lenient skips
NOT_SKIPPABLE = ["unknown-op", "zero-npages", "negative-npages", "npages-beyond-48-bit", "ts-backwards", "empty-trace"]

COST_MODELS = [
    ("cost-model-bad-toml", "bad.toml", b"alloc_ns = = 3\n", "bad.toml: not a valid TOML cost model"),
    ("cost-model-bad-json", "bad.json", b"{alloc_ns: 3", "bad.json: not a valid JSON cost model"),
    ("cost-model-unknown-key", "unknown.toml", b"bogus_ns = 3\n", "unknown.toml: unknown cost 'bogus_ns'"),
    ("cost-model-negative-value", "negative.json", b'{"madvise_call_ns": -1}', "negative.json: madvise_call_ns must be a whole number"),
    ("cost-model-missing-file", "absent.toml", None, "absent.toml: cannot read cost model"),
]
COST_COMMANDS = ["replay", "report"]  # every command with --cost-model

GO_TRACES = [
    ("missing-file", "missing.gotrace", None, "missing.gotrace: no such file"),
    ("empty-file", "empty.gotrace", b"", "empty.gotrace: not a Go execution trace"),
    ("not-a-go-trace", "text.gotrace", b"hello, not a trace\n", "text.gotrace: not a Go execution trace"),
]


def _report_out(case_id: str) -> list[str]:
    return ["-o", f"report-{case_id}"]


def _cases() -> dict[str, tuple[list[str], int, list[str]]]:
    """{test id: (argv after ``pagealloc``, exit status, substrings of the one stderr line)}."""
    cases = {}
    for cid, name, _, row, text in TRACES:
        where = f"{name}: row {row}: " if row is not None else f"{name}: "
        for cmd in TRACE_COMMANDS:
            extra = _report_out(cid) if cmd == "report" else []
            cases[f"{cid}-{cmd}"] = ([cmd, name, *extra], 2, [where, text])
        if cid in NOT_SKIPPABLE:
            cases[f"{cid}-replay-lenient"] = (["replay", "--lenient", name], 2, [where, text])
    for cid, name, _, text in COST_MODELS:
        for cmd in COST_COMMANDS:
            extra = _report_out(cid) if cmd == "report" else []
            cases[f"{cid}-{cmd}"] = ([cmd, "good.parquet", "--cost-model", name, *extra], 2, [text])
    for cid, name, _, text in GO_TRACES:
        cases[f"{cid}-import"] = (["import", name, "-o", f"{cid}.parquet"], 2, [text])
    cases["unknown-mode-replay"] = (["replay", "good.parquet", "--mode", "sideways"], 2,
                                    ["--mode: unknown preset sideways (choose all, or from go1.14, unlocked, locked)"])
    cases["recorded-crit-without-iterations-replay"] = (["replay", "good.parquet", "--scavenger-crit", "recorded"], 2,
                                                        ["good.parquet: --scavenger-crit recorded needs a Go 1.14.6 recording"])
    cases["level-crit-without-iterations-replay"] = (["replay", "good.parquet", "--scavenger-crit", "level"], 2,
                                                     ["good.parquet: --scavenger-crit level needs a Go 1.14.6 recording"])
    cases["reference-end-far-replay"] = (["replay", "far-end.parquet"], 2,
                                         ["far-end.parquet: metadata reference: the program's end", "more than 600 s after"])
    cases["reference-short-release-replay"] = (["replay", "short-release.parquet"], 2,
                                               ["short-release.parquet: metadata reference: background_releases:"])
    cases["reference-relocks-negative-replay"] = (["replay", "bad-relocks.parquet"], 2,
                                                  ["bad-relocks.parquet: metadata reference: heap_lock.relocks_after_refill "
                                                   "is -3, not a count of events"])
    cases["reference-release-probe-replay"] = (["replay", "bad-release-probe.parquet"], 2,
                                               ["bad-release-probe.parquet: metadata reference.release_probe must have columns"])
    cases["reference-release-probe-npidle-negative"] = (["replay", "probe-npidle-negative.parquet"], 2,
                                                        ["probe-npidle-negative.parquet: metadata reference.release_probe "
                                                         "must have columns", "npidle >= 0"])
    cases["reference-release-probe-npidle-over-gomaxprocs"] = (
        ["replay", "probe-npidle-over.parquet"], 2,
        ["probe-npidle-over.parquet: metadata reference.release_probe has a probe with 5 idle Ps, more than GOMAXPROCS 2"])
    cases["reference-release-probe-npidle-over-gomaxprocs-info"] = (
        ["info", "probe-npidle-over.parquet"], 2, ["probe-npidle-over.parquet: metadata reference.release_probe has a probe"])
    cases["cli-no-subcommand"] = ([], 2, ["the following arguments are required: COMMAND"])
    cases["cli-unknown-subcommand"] = (["frobnicate"], 2, ["invalid choice: 'frobnicate'"])
    missing = {
        "replay": ([], "pagealloc replay: the following arguments are required: TRACE"),
        "validate": ([], "pagealloc validate: the following arguments are required: TRACE"),
        "info": ([], "pagealloc info: the following arguments are required: TRACE"),
        "import": (["x.gotrace"], "pagealloc import: the following arguments are required: -o/--output"),
        "report": ([], "report: nothing to report: give TRACE files and/or --asv-results DIR"),
    }
    for cmd, (args, text) in missing.items():
        cases[f"cli-missing-argument-{cmd}"] = ([cmd, *args], 2, [text])
    for cmd in [*TRACE_COMMANDS, "import"]:
        args = ["good.gotrace", "-o", "x.parquet"] if cmd == "import" else ["good.parquet"]
        cases[f"cli-unknown-flag-{cmd}"] = ([cmd, *args, "--frob"], 2, ["unrecognized arguments: --frob"])
    return cases


CASES = _cases()


def _far_end(path: Path) -> None:
    """A Go 1.14.6 recording whose reference says the program exited a day after its last row."""
    def later(doc):
        doc["reference"]["retained_timeline"][-1][0] += 86_400 * 10**9
    rewrite_metadata(Path(__file__).resolve().parents[2] / "traces" / "go114-freeosmemory-p2.parquet", path, later)


def _short_release(path: Path) -> None:
    """A Go 1.14.6 recording whose reference has a background release of two fields, not (row, page, npages)."""
    def shorter(doc):
        doc["reference"]["background_releases"]["rows"][0] = doc["reference"]["background_releases"]["rows"][0][:2]
    rewrite_metadata(Path(__file__).resolve().parents[2] / "traces" / "go114-freeosmemory-p2.parquet", path, shorter)


def _bad_relocks(path: Path) -> None:
    """A Go 1.14.6 recording whose reference has the heap lock's figures (stream version 5) with a negative
    count of heap paths the recorder ran under a refill's lock (session 17): it would lower Go's count."""
    def relocks(doc):
        doc["reference"]["heap_lock"] = {"acquisitions": 10, "relocks_after_refill": -3, "waits": 0, "wait_ns": 0,
                                         "wait_max_ns": 0}
    rewrite_metadata(Path(__file__).resolve().parents[2] / "traces" / "go114-freeosmemory-p2.parquet", path, relocks)


def _bad_probe(path: Path, row: tuple[int, ...] = (10, 5_000, 9_000, 1, 0)) -> None:
    """A Go 1.14.6 recording (GOMAXPROCS 2) with sysmon's release probe (stream version 6) of 20 ``row``s;
    by default one whose MADV_FREE took longer than the sysUnused calls it is one of."""
    def probe(doc):
        doc["reference"]["release_probe"] = {"columns": ["ts", "unused_ns", "madv_free_ns", "npidle", "page"],
                                             "rows": [list(row)] * 20}
    rewrite_metadata(Path(__file__).resolve().parents[2] / "traces" / "go114-freeosmemory-p2.parquet", path, probe)


def _make_inputs(folder: Path) -> None:
    pq.write_table(_table(), folder / "good.parquet")
    _far_end(folder / "far-end.parquet")
    _short_release(folder / "short-release.parquet")
    _bad_relocks(folder / "bad-relocks.parquet")
    _bad_probe(folder / "bad-release-probe.parquet")
    _bad_probe(folder / "probe-npidle-negative.parquet", (10, 5_000, 4_000, -1, 0))  # idle Ps: not a count
    _bad_probe(folder / "probe-npidle-over.parquet", (10, 5_000, 4_000, 5, 0))  # 5 idle Ps of GOMAXPROCS 2
    (folder / "good.gotrace").write_bytes(b"go 1.23 trace\x00\x00\x00")
    for _, name, make, _, _ in TRACES:
        if make is not None:
            make(folder / name)
    for _, name, data, _ in COST_MODELS:
        if data is not None:
            (folder / name).write_bytes(data)
    for _, name, data, _ in GO_TRACES:
        if data is not None:
            (folder / name).write_bytes(data)


ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "COLUMNS": "200", "OPENBLAS_NUM_THREADS": "1"}


def _run(folder: Path, argv: list[str]) -> subprocess.CompletedProcess:
    """The installed console script, in its own interpreter."""
    return subprocess.run([*CLI, *argv], cwd=folder, capture_output=True, text=True, timeout=120, env=ENV)


# Reads {"cwd", "tmp", "jobs", "runs": {id: argv}} on stdin; forks a child per
# run (at most ``jobs`` at a time) that does what the console script does;
# prints {id: [status, stdout, stderr]}.
ZYGOTE = r"""
import json, os, sys, traceback
import numpy, pandas, pyarrow, pyarrow.parquet  # the expensive imports, done once
import pagealloc.cli, pagealloc.sim.replay, pagealloc.trace
pagealloc.cli.build_parser()  # imports every command module

req = json.load(sys.stdin)
def child(key, argv):
    for fd, suffix in ((1, "out"), (2, "err")):
        f = os.open(os.path.join(req["tmp"], f"{key}.{suffix}"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(f, fd)
        os.close(f)
    os.chdir(req["cwd"])
    sys.argv = ["pagealloc", *argv]
    try:
        code = pagealloc.cli.main()
    except SystemExit as e:
        code = e.code
    except BaseException:
        traceback.print_exc()
        code = 1
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)

pending, running, status = list(req["runs"].items()), {}, {}
while pending or running:
    while pending and len(running) < req["jobs"]:
        key, argv = pending.pop()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            child(key, argv)
        running[pid] = key
    pid, st = os.wait()
    status[running.pop(pid)] = os.waitstatus_to_exitcode(st)
out = {}
for key, code in status.items():
    text = [open(os.path.join(req["tmp"], f"{key}.{s}")).read() for s in ("out", "err")]
    out[key] = [code, *text]
json.dump(out, sys.stdout)
"""


def _run_many(folder: Path, tmp: Path, runs: dict[str, list[str]]) -> dict[str, subprocess.CompletedProcess]:
    """Each argv as if given to the console script in ``folder``, forked from one ZYGOTE."""
    if not runs:
        return {}
    request = {"cwd": str(folder), "tmp": str(tmp), "jobs": (os.cpu_count() or 2) + 1, "runs": runs}
    proc = subprocess.run([sys.executable, "-c", ZYGOTE], input=json.dumps(request), capture_output=True,
                          text=True, timeout=600, env=ENV)
    assert proc.returncode == 0, proc.stderr
    return {key: subprocess.CompletedProcess(runs[key], code, out, err)
            for key, (code, out, err) in json.loads(proc.stdout).items()}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bad-input")
    _make_inputs(folder)
    return folder


@pytest.fixture(scope="module")
def results(request, inputs, tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    """The CLI's result for every case selected in this session (all forked at once)."""
    wanted = {
        item.callspec.params["case"]
        for item in request.session.items
        if item.originalname == "test_bad_input" and item.module is sys.modules[__name__]
    }
    runs = {c: CASES[c][0] for c in sorted(wanted)}
    runs.update(LENIENT_RUNS)
    return _run_many(inputs, tmp_path_factory.mktemp("bad-input-output"), runs)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    """The single ``pagealloc: error:`` line of a failed run (asserting there is exactly one)."""
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("pagealloc: error: "), lines[0]
    return lines[0]


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input(results, inputs, case):
    argv, status, texts = CASES[case]
    proc = results[case]
    line = one_error_line(proc)
    assert proc.returncode == status, (proc.returncode, line)
    for text in texts:
        assert text in line, line
    assert proc.stdout == "", proc.stdout
    # Nothing half-written: no Parquet output from import, no report (an empty folder may stay).
    if "-o" in argv:
        out = inputs / argv[argv.index("-o") + 1]
        assert not out.exists() or (out.is_dir() and not any(out.iterdir()))


# One case per command through the installed script itself.
REAL = ["missing-file-replay", "ts-backwards-validate", "unknown-op-info", "not-a-go-trace-import", "only-frees-report"]


def test_real_console_script(results, inputs, tmp_path):
    """The installed ``pagealloc`` gives exactly what the forked runs gave."""
    with ThreadPoolExecutor(max_workers=(os.cpu_count() or 2) + 1) as pool:
        real = dict(zip(REAL, pool.map(lambda c: _run(inputs, CASES[c][0]), REAL)))
    forked = results if set(REAL) <= set(results) else _run_many(inputs, tmp_path, {c: CASES[c][0] for c in REAL})
    for case in REAL:
        got, want = real[case], forked[case]
        assert (got.returncode, got.stdout, got.stderr) == (want.returncode, want.stdout, want.stderr), case


def _reads(option: str | None = None, dest: str | None = None) -> set[str]:
    """The subcommands of the real parser with that option, or that positional argument."""
    import argparse

    from pagealloc.cli.entry import build_parser

    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return {name for name, parser in sub.choices.items()
            if any(option in a.option_strings if option else (not a.option_strings and a.dest == dest)
                   for a in parser._actions)}


def test_every_command_that_reads_an_input_file_is_in_the_matrix():
    """The matrix follows the command line: a command that takes TRACE files, a --cost-model or a
    Go recording has every bad file of that kind as a case (``report`` arrived after the matrix
    and was missed until this was checked), plus a missing argument and an unknown flag."""
    assert _reads(dest="traces") == set(TRACE_COMMANDS)
    assert _reads(option="--cost-model") == set(COST_COMMANDS)
    assert _reads(dest="go_trace") == {"import"}
    for cmd in TRACE_COMMANDS:
        assert {f"{t[0]}-{cmd}" for t in TRACES} <= set(CASES), cmd
    for cmd in COST_COMMANDS:
        assert {f"{t[0]}-{cmd}" for t in COST_MODELS} <= set(CASES), cmd
    assert {f"{t[0]}-import" for t in GO_TRACES} <= set(CASES)
    for cmd in [*TRACE_COMMANDS, "import"]:
        assert {f"cli-missing-argument-{cmd}", f"cli-unknown-flag-{cmd}"} <= set(CASES), cmd
    assert {f"{cid}-replay-lenient" for cid in NOT_SKIPPABLE} <= set(CASES)
    assert not set(NOT_SKIPPABLE) & set(SKIPPABLE) and set(NOT_SKIPPABLE) | set(SKIPPABLE) <= {t[0] for t in TRACES}


# --------------------------------------------------------------------------
# --lenient: the skippable rows are skipped and counted, in the JSON and in the table.


LENIENT_RUNS = {
    **{f"lenient-{cid}": ["replay", "--lenient", "--check", "--json", next(t[1] for t in TRACES if t[0] == cid)]
       for cid in SKIPPABLE},
    "lenient-table": ["replay", "--lenient", "--mode", "locked", "double-alloc.parquet"],
}


@pytest.mark.parametrize("cid", list(SKIPPABLE))
def test_lenient_replays_past_skippable_rows(results, cid):
    proc = results[f"lenient-{cid}"]
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["mode"] for r in rows] == list(pagealloc.MODES)
    for r in rows:
        assert r["skipped_events"] == SKIPPABLE[cid]
        assert r["events"] == 3 - SKIPPABLE[cid]


def test_lenient_table_shows_skipped_events(results):
    proc = results["lenient-table"]
    assert proc.returncode == 0, proc.stderr
    (row,) = [line.split() for line in proc.stdout.splitlines() if line.startswith("skipped_events")]
    assert row == ["skipped_events", "1"]


# --------------------------------------------------------------------------
# The same rules through the Python API, and the engine's own span checks.


def frame(*rows) -> "pd.DataFrame":
    import pandas as pd

    return pd.DataFrame(list(rows), columns=["ts", "op", "span", "npages"])


LENIENT_STILL_FAILS = {
    "ts-backwards": (frame((0, "alloc", 1, 1), (5, "free", 9, 1), (4, "alloc", 2, 1)), "row 2: ts 4 is before"),
    "zero-npages": (frame((0, "alloc", 1, 1), (1, "free", 9, 1), (2, "alloc", 2, 0)), "row 2: alloc of span 2 with npages 0"),
    "unknown-op": (frame((0, "alloc", 1, 1), (1, "free", 9, 1), (2, "realloc", 1, 1)), "row 2: unknown op 'realloc'"),
    "free-npages-mismatch": (frame((0, "alloc", 1, 4), (1, "free", 9, 1), (2, "free", 1, 3)),
                             "row 2: free of span 1 with npages 3, but it was allocated with npages 4"),
}


@pytest.mark.parametrize("which", list(LENIENT_STILL_FAILS))
def test_lenient_relaxes_only_span_consistency(which):
    from pagealloc.errors import UserError
    from pagealloc.sim.replay import replay

    df, text = LENIENT_STILL_FAILS[which]
    with pytest.raises(UserError, match=f"^<dataframe>: {text}"):
        replay(df, "unlocked", lenient=True)


def test_first_bad_row_wins_without_lenient():
    from pagealloc.errors import UserError
    from pagealloc.sim.replay import replay

    df = frame((0, "alloc", 1, 1), (1, "alloc", 2, 1), (2, "free", 7, 1), (3, "alloc", 1, 1), (2, "free", 2, 1))
    with pytest.raises(UserError, match=r"^<dataframe>: row 2: free of unknown span 7"):
        replay(df, "locked")
    r = replay(df.iloc[:4], "locked", lenient=True)
    assert (r.events, r.skipped_events) == (2, 2)


@pytest.mark.parametrize("lenient", [False, True])
def test_engine_checks_spans_itself(lenient):
    """Replay.run_batch (unvalidated input) rejects or skips, naming the trace row (first_row + i)."""
    from pagealloc.sim.costmodel import CostModel
    from pagealloc.errors import UserError
    from pagealloc.sim.replay import Replay
    from pagealloc.trace.format import OP_ALLOC, OP_FREE

    batches = [  # (ts, op, span, npages, value, p), first_row, the error without --lenient
        (([0, 1], [OP_ALLOC, OP_ALLOC], [1, 1], [2, 2], [0, 0], [0, 0]), 100, "t: row 101: alloc of span 1, which is already live"),
        (([2], [OP_FREE], [5], [1], [0], [0]), 102, "t: row 102: free of unknown span 5"),
    ]
    for cols, first_row, message in batches:
        engine = Replay("unlocked", CostModel(), lenient=lenient)
        if lenient:
            engine.run_batch(*cols, first_row=first_row, label="t")
            engine.drain("t")
            assert engine.skipped == 1
        else:
            with pytest.raises(UserError, match=f"^{message}"):
                engine.run_batch(*cols, first_row=first_row, label="t")
                engine.drain("t")
