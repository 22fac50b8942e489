"""The asv suite and its helpers, without running asv over commits (see
test_asv_history.py and test_nightly.py for that): the configuration,
discovery, the corpus from the manifest, skipping on commits that lack an
API, and the results reader / gate rules of pagealloc.results.asvresults."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pagealloc.errors import UserError
from pagealloc.results.asvresults import Run, Value, load_results
from pagealloc.results.gate import compare_runs, direction, regressions
from pagealloc.results.tables import format_mode_table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import _corpus, bench_model, bench_replay  # noqa: E402


def _asv_conf() -> dict:
    text = (ROOT / "asv.conf.json").read_text()
    return json.loads(re.sub(r"^\s*//.*$", "", text, flags=re.M))


def test_asv_conf():
    conf = _asv_conf()
    assert conf["repo"] == "." and conf["branches"] == ["main"]
    assert conf["environment_type"] == "virtualenv" and conf["pythons"] == ["3.11"]
    assert conf["benchmark_dir"] == "benchmarks"
    assert (conf["env_dir"], conf["results_dir"], conf["html_dir"]) == (".asv/env", ".asv/results", ".asv/html")
    # The wheel build needs no network: setuptools and wheel come from the environment.
    assert "--no-build-isolation" in conf["build_command"][0]
    for req in ("setuptools", "wheel", "numpy", "pandas", "pyarrow"):
        assert req in conf["matrix"]["req"]
    gitignore = (ROOT / ".gitignore").read_text().split()
    assert ".asv/results/" in gitignore and ".asv/html/" in gitignore


def test_asv_check_discovers_the_suite(tmp_path):
    p = subprocess.run([sys.executable, "-m", "asv", "check", "--python=same"], cwd=ROOT, capture_output=True,
                       text=True, timeout=300, env={**os.environ, "HOME": str(tmp_path)})
    assert p.returncode == 0, p.stdout + p.stderr
    assert "No problems found" in p.stdout


def test_benchmark_names_and_params():
    names = _corpus.trace_names("default")
    for cls in (bench_replay.Replay, bench_replay.ReplayMetrics):
        assert cls.params == [names, ["unlocked", "locked"]] and cls.param_names == ["trace", "mode"]
    assert bench_replay.ReplayHeavy.params[0] == _corpus.trace_names("heavy")
    for method in ("track_released_bytes", "track_retained_peak_bytes", "track_mutator_stall_ns",
                   "track_lock_hold_max_ns", "track_events_per_second"):
        assert hasattr(bench_replay.ReplayMetrics, method)
    assert bench_replay.ReplayMetrics.track_released_bytes.unit == "bytes"
    assert hasattr(bench_replay.Replay, "time_replay") and hasattr(bench_replay.Replay, "peakmem_replay")
    for cls, method in ((bench_model.Alloc, "time_alloc"), (bench_model.Free, "time_free"), (bench_model.Find, "time_find"),
                        (bench_model.ScavengeOne, "time_scavenge_one"), (bench_model.FillAligned, "time_fill_aligned")):
        assert hasattr(cls, method)


def test_corpus_follows_the_manifest(tmp_path, monkeypatch):
    (tmp_path / "heavy").mkdir()
    for f in ("a.parquet", "b.parquet", "heavy/h.parquet"):
        (tmp_path / f).write_bytes(b"x")
    (tmp_path / "manifest.json").write_text(json.dumps({"traces": [
        {"name": "b", "file": "b.parquet", "set": "default"},
        {"name": "a", "file": "a.parquet", "set": "default"},
        {"name": "gone", "file": "gone.parquet", "set": "default"},
        {"name": "h", "file": "heavy/h.parquet", "set": "heavy"},
    ]}))
    monkeypatch.setattr(_corpus, "TRACES", tmp_path)
    assert _corpus.trace_names("default") == ["b", "a"]  # manifest order; missing files left out
    assert _corpus.trace_names("heavy") == ["h"]
    (tmp_path / "manifest.json").unlink()  # without a manifest: the folders
    assert _corpus.trace_names("default") == ["a", "b"]
    assert _corpus.trace_names("heavy") == ["h"]
    (tmp_path / "heavy/h.parquet").unlink()
    assert _corpus.trace_names("heavy") == [_corpus.NO_TRACES]


def test_replay_benchmarks_run_and_agree_with_replay(tmp_path, monkeypatch):
    """One small trace through setup_cache, setup and the benchmark bodies."""
    subprocess.run([sys.executable, "-m", "pagealloc", "synth", "burst-idle", "-o", str(tmp_path / "t.parquet"),
                    "--events", "3000"], check=True, capture_output=True)
    monkeypatch.setattr(_corpus, "TRACES", tmp_path)
    from pagealloc.sim.replay import replay

    b = bench_replay.ReplayMetrics()
    cache = b.setup_cache()
    for mode in ("unlocked", "locked"):
        b.setup(cache, "t", mode)
        want = replay(tmp_path / "t.parquet", mode)
        assert b.track_released_bytes(cache, "t", mode) == want.released_bytes
        assert b.track_mutator_stall_ns(cache, "t", mode) == want.mutator_stall_ns
        assert b.track_lock_hold_max_ns(cache, "t", mode) == want.lock_hold_max_ns
        assert b.track_retained_peak_bytes(cache, "t", mode) == want.retained_peak_bytes
        assert b.track_events_per_second(cache, "t", mode) > 0
    t = bench_replay.Replay()
    traces = t.setup_cache()
    t.setup(traces, "t", "locked")
    t.time_replay(traces, "t", "locked")
    with pytest.raises(NotImplementedError):  # heavy traces are opt-in
        h = bench_replay.ReplayHeavy()
        h.setup(h.setup_cache(), "t", "locked")


def test_benchmarks_skip_on_a_commit_without_the_api(monkeypatch):
    """What an older commit looks like to the suite: no pagealloc.replay, a
    ReplayResult without a field, a pagealloc without PageAlloc.for_test."""
    import pagealloc

    monkeypatch.delattr(pagealloc, "replay")  # no function exported ...
    monkeypatch.setitem(sys.modules, "pagealloc.replay", None)  # ... and no submodule
    m = bench_replay.ReplayMetrics()
    cache = m.setup_cache()
    with pytest.raises(NotImplementedError, match="no pagealloc.replay"):
        m.setup(cache, "x", "locked")
    with pytest.raises(NotImplementedError):
        bench_replay.Replay().setup({"x": b""}, "x", "locked")
    m.m = {"released_bytes": 1}
    with pytest.raises(NotImplementedError):  # asv's SkipNotImplemented: a skip, not a failure
        m.track_lock_hold_max_ns(cache, "x", "locked")
    monkeypatch.delattr(pagealloc, "fill_aligned")
    with pytest.raises(NotImplementedError):
        bench_model.FillAligned().setup(8)
    monkeypatch.delattr(pagealloc.PageAlloc, "for_test")
    with pytest.raises(NotImplementedError):
        bench_model.Alloc().setup(8)


@pytest.mark.parametrize("cls,params", [
    (bench_model.Alloc, (8,)), (bench_model.Free, (8,)), (bench_model.Find, (64,)),
    (bench_model.ScavengeOne, ("unlocked", 1)), (bench_model.ScavengeOne, ("locked", 64)),
    (bench_model.FillAligned, (16,)),
])
def test_microbenchmarks_run(cls, params):
    b = cls()
    b.setup(*params)
    method = next(getattr(b, n) for n in dir(b) if n.startswith("time_"))
    method(*params)


def test_scavenge_one_benchmark_has_work_for_every_call():
    """The prepared heap has more free, unscavenged runs than the batch takes."""
    b = bench_model.ScavengeOne()
    b.setup("unlocked", 64)
    released = [b.p.scavenge_one(b.nbytes, False) for _ in range(bench_model.OPS)]
    assert all(r > 0 for r in released)


# -- pagealloc.results (asvresults, gate, tables) --


def _run(commit, values, ci=None):
    r = Run(path=Path(f"/x/{commit}.json"), machine="m", commit=commit, env="e", date=0)
    for (bench, params), v in values.items():
        r.values[(bench, params)] = Value(v, (ci or {}).get((bench, params)))
    return r


def test_direction():
    assert direction("bench_replay.Replay.time_replay") == 1
    assert direction("bench_replay.Replay.peakmem_replay") == 1
    assert direction("bench_replay.ReplayMetrics.track_mutator_stall_ns") == 1
    assert direction("bench_replay.ReplayMetrics.track_events_per_second") == -1
    assert direction("bench_replay.ReplayMetrics.track_released_bytes") == 0


def test_gate_rules():
    T, E, R = "b.Replay.time_replay", "b.ReplayMetrics.track_events_per_second", "b.ReplayMetrics.track_released_bytes"
    S = "b.ReplayMetrics.track_mutator_stall_ns"
    old = _run("a", {(T, ("t", "locked")): 1.0, (E, ("t", "locked")): 100.0, (R, ("t", "locked")): 10.0,
                     (S, ("t", "locked")): 5.0, (T, ("u", "locked")): 1.0, (T, ("v", "locked")): 1.0,
                     (T, ("w", "locked")): 1.0})
    new = _run("b", {(T, ("t", "locked")): 1.6, (E, ("t", "locked")): 60.0, (R, ("t", "locked")): 100.0,
                     (S, ("t", "locked")): 2.0, (T, ("u", "locked")): None, (T, ("v", "locked")): 1.4,
                     (T, ("w", "locked")): math.nan})
    status = {(c.benchmark, c.params[0]): c.status for c in compare_runs(old, new, 1.5)}
    assert status[(T, "t")] == "regressed"  # slower by 1.6x
    assert status[(E, "t")] == "regressed"  # events/s fell by 1.67x: higher is better
    assert status[(R, "t")] == "changed"  # released bytes: no direction, never gated
    assert status[(S, "t")] == "improved"
    assert status[(T, "u")] == "failed"
    assert status[(T, "v")] == "same"  # 1.4x < factor
    assert status[(T, "w")] == "same"  # skipped now
    assert {(c.benchmark, c.params[0]) for c in regressions(compare_runs(old, new, 1.5))} == {(T, "t"), (E, "t"), (T, "u")}
    # Overlapping 99% confidence intervals: noise, not a regression.
    ci = {(T, ("t", "locked")): (0.5, 2.0)}
    noisy_old = _run("a", {(T, ("t", "locked")): 1.0}, ci)
    noisy_new = _run("b", {(T, ("t", "locked")): 1.6}, {(T, ("t", "locked")): (1.2, 2.2)})
    assert [c.status for c in compare_runs(noisy_old, noisy_new, 1.5)] == ["noise"]


def test_format_mode_table():
    E = "b.ReplayMetrics.track_mutator_stall_ns"
    run = _run("a", {(E, ("t", "unlocked")): 2000.0, (E, ("t", "locked")): 1000.0,
                     ("b.ReplayHeavy.time_replay", ("h", "unlocked")): math.nan,
                     ("b.ReplayHeavy.time_replay", ("h", "locked")): math.nan})

    class R:
        def unit(self, b):
            return "ns"

    table = format_mode_table(run, R())
    assert "ReplayMetrics.track_mutator_stall_ns(t)" in table and "0.50" in table
    assert "ReplayHeavy" not in table  # skipped in both modes
    line = next(x for x in table.splitlines() if "track_mutator" in x)
    assert line.startswith("| L |")  # locked stalls less: better


def test_load_results_errors(tmp_path):
    with pytest.raises(UserError, match="no such asv results folder"):
        load_results(tmp_path / "nope")
    with pytest.raises(UserError, match="no asv results in it"):
        load_results(tmp_path)
    m = tmp_path / "m"
    m.mkdir()
    (m / "machine.json").write_text("{}")
    (m / "abc.json").write_text("{not json")
    with pytest.raises(UserError, match=re.escape(str(m / "abc.json"))):
        load_results(tmp_path)
    (m / "abc.json").write_text(json.dumps({"version": 1}))
    with pytest.raises(UserError, match="not an asv results file"):
        load_results(tmp_path)
