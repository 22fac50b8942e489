"""pagealloc compare (and scripts/compare, its wrapper): the suite's rules, --gate, one-line errors;
pagealloc replay-figures and go114-fidelity as subcommands (issue 18)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pagealloc.cli import main

ROOT = Path(__file__).resolve().parents[2]
COLUMNS = ["result", "params", "version", "started_at", "duration", "stats_ci_99_a", "stats_ci_99_b"]
STALL = "bench_replay.ReplayMetrics.track_p_stall_ns"
TIME = "bench_model.FillAligned.time_fill_aligned"
OLD, NEW = "a" * 40, "b" * 40


def _results(folder: Path, stall_after: float, time_after: float, ci: bool = False) -> Path:
    """Two commits of one machine: a virtual-time figure and a one-sample (or, with ``ci``, sampled) timing."""
    mdir = folder / "m"
    mdir.mkdir(parents=True)
    (mdir / "machine.json").write_text(json.dumps({"machine": "m", "version": 1}))
    for commit, date, stall, t in ((OLD, 1, 100.0, 1e-4), (NEW, 2, stall_after, time_after)):
        ci_a, ci_b = ([t * 0.99], [t * 1.01]) if ci else ([None], [None])
        (mdir / f"{commit[:8]}-env.json").write_text(json.dumps({
            "commit_hash": commit, "env_name": "env", "date": date * 1000, "params": {"machine": "m"}, "version": 2,
            "result_columns": COLUMNS, "results": {
                STALL: [[stall], [["'t'"], ["'go1.14'"]], "v1", 0, 1.0, [None], [None]],
                TIME: [[t], [["1"]], "v1", 0, 1.0, ci_a, ci_b],
            }}))
    (folder / "benchmarks.json").write_text(json.dumps({
        STALL: {"unit": "ns", "param_names": ["trace", "mode"]}, TIME: {"unit": "seconds", "param_names": ["m"]},
        "version": 2}))
    return folder


def test_one_sample_timing_noise_is_not_a_regression_and_only_gate_fails(tmp_path, capsys):
    results = _results(tmp_path / "r", stall_after=300.0, time_after=1.96e-4)
    assert main(["compare", OLD, NEW, "--results", str(results)]) == 0  # a report: whatever changed
    out = capsys.readouterr().out
    worse = out.split("got worse:", 1)[1].split("\n\n", 1)[0]
    assert "track_p_stall_ns(t, go1.14)" in worse and "time_fill_aligned" not in worse
    assert "not judged: one sample" in out and "FillAligned.time_fill_aligned(1)" in out.split("not judged", 1)[1]
    assert main(["compare", OLD, NEW, "--results", str(results), "--gate"]) == 1
    captured = capsys.readouterr()
    assert "compare: gate FAILED: 1 benchmark value(s) regressed" in captured.err


def test_gate_passes_when_only_unjudged_timings_moved(tmp_path, capsys):
    results = _results(tmp_path / "r", stall_after=100.0, time_after=1.96e-4)
    assert main(["compare", OLD, NEW, "--results", str(results), "--gate"]) == 0
    assert "compare: gate passed" in capsys.readouterr().out
    # With asv's statistics (several samples) the same timing move is judged, and gated.
    sampled = _results(tmp_path / "s", stall_after=100.0, time_after=1.96e-4, ci=True)
    assert main(["compare", OLD, NEW, "--results", str(sampled), "--gate"]) == 1


def test_scripts_compare_is_the_subcommand(tmp_path):
    results = _results(tmp_path / "r", stall_after=300.0, time_after=1e-4)
    p = subprocess.run([sys.executable, str(ROOT / "scripts" / "compare"), OLD, NEW, "--results", str(results), "--gate"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 1 and "track_p_stall_ns(t, go1.14)" in p.stdout, p.stdout + p.stderr
    p = subprocess.run([sys.executable, str(ROOT / "scripts" / "compare"), OLD, "c" * 40, "--results", str(results)],
                       capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and p.stderr.startswith("pagealloc: error: "), p.stderr


@pytest.mark.parametrize("argv, message", [
    (["compare", OLD, NEW, "--results", "/nonexistent/results"], "no such asv results folder"),
    (["compare", OLD, NEW, "--factor", "1"], "--factor must be greater than 1"),
    (["go114-fidelity", "synth-churn"], "no go1.14-runtime trace named synth-churn"),
    (["replay-figures", "--mode", "nosuch"], "unknown preset nosuch"),
    (["replay-figures", "--manifest", "/nonexistent.json"], "cannot read the trace manifest"),
])
def test_bad_input_is_one_line_and_status_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pagealloc: error: ") and message in err, err


def test_replay_figures_prints_a_deterministic_line_per_trace_and_mode(tmp_path):
    trace = tmp_path / "tiny.parquet"
    subprocess.run([sys.executable, "-m", "pagealloc", "synth", "freeosmemory", "-o", str(trace), "--events", "3000"],
                   check=True, capture_output=True)
    (tmp_path / "manifest.json").write_text(json.dumps({"traces": [{"name": "tiny", "file": "tiny.parquet"}]}))
    argv = [sys.executable, str(ROOT / "scripts" / "replay-figures"), "--manifest", str(tmp_path / "manifest.json"),
            "--mode", "go1.14", "--mode", "locked"]
    first, second = (subprocess.run(argv, capture_output=True, text=True, check=True).stdout for _ in range(2))
    assert first == second  # no wall-clock field
    lines = [json.loads(x) for x in first.splitlines()]
    assert [(x["trace"], x["mode"]) for x in lines] == [("tiny", "go1.14"), ("tiny", "locked")]
    assert "wall_seconds" not in lines[0] and lines[0]["events"] == 3000
