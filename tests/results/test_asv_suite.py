"""The asv suite and its helpers, without running asv over commits (see
test_asv_history.py and test_nightly.py for that): the configuration,
discovery, the corpus from the manifest, skipping on commits that lack an
API, and the results reader / gate rules of pagealloc.results.asvresults."""

from __future__ import annotations

import importlib
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import pagealloc
from pagealloc.errors import UserError
from pagealloc.results.asvresults import Run, Value, load_results, runs_to_compare
from pagealloc.results.gate import (
    LOWER_IS_BETTER_TRACKS,
    NO_DIRECTION_TRACKS,
    compare_runs,
    direction,
    is_wall_clock,
    regressions,
)
from pagealloc.results.headline import from_run, headline
from pagealloc.results.tables import format_comparison, format_headline, format_mode_table

ROOT = Path(__file__).resolve().parents[2]
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
    modes = bench_replay.MODES
    assert modes[:3] == ["go1.14", "unlocked", "locked"] and set(pagealloc.MODES) <= set(modes)
    assert bench_replay.ReplayMetrics.params == [names, modes]
    speed = _corpus.trace_names("speed")
    assert bench_replay.Replay.params == [speed, modes] and sorted(speed) == sorted(_corpus.SPEED_TRACES)  # all bundled
    for cls in (bench_replay.Replay, bench_replay.ReplayMetrics):
        assert cls.param_names == ["trace", "mode"]
    for method in ("track_released_bytes", "track_retained_peak_bytes", "track_mutator_stall_ns",
                   "track_lock_hold_max_ns", "track_p_stall_ns", "track_p_stall_max_ns", "track_p_stall_p99_ns",
                   "track_alloc_latency_p99_ns", "track_alloc_latency_max_ns", "track_slowdown",
                   "track_virtual_ns_per_event", "track_scavenger_cpu_ns", "track_scavenger_ns_per_released_mib",
                   "track_wall_seconds_per_event"):
        assert hasattr(bench_replay.ReplayMetrics, method), method
    assert not hasattr(bench_replay.ReplayMetrics, "track_events_per_second")  # renamed: its inverse
    assert bench_replay.ReplayMetrics.track_released_bytes.unit == "bytes"
    assert bench_replay.ReplayMetrics.track_wall_seconds_per_event.unit == "seconds"
    assert hasattr(bench_replay.Replay, "time_replay") and hasattr(bench_replay.Replay, "peakmem_replay")
    assert bench_model.ScavengeOne.params[0] == ["unlocked", "locked"]  # scavenge_one's lock flag, not presets
    for cls, method in ((bench_model.Alloc, "time_alloc"), (bench_model.Free, "time_free"), (bench_model.Find, "time_find"),
                        (bench_model.ScavengeOne, "time_scavenge_one"), (bench_model.FillAligned, "time_fill_aligned")):
        assert hasattr(cls, method)


def test_heavy_classes_exist_only_when_enabled(monkeypatch):
    """Without PAGEALLOC_BENCH_HEAVY the Heavy classes are not defined, so the
    dashboard has no always-empty graphs for them."""
    assert not hasattr(bench_replay, "ReplayHeavy") and not hasattr(bench_replay, "ReplayMetricsHeavy")
    monkeypatch.setenv(_corpus.HEAVY_ENV, "1")
    heavy = importlib.reload(bench_replay)
    try:
        assert heavy.ReplayHeavy.params[0] == _corpus.trace_names("heavy")
        assert heavy.ReplayMetricsHeavy.params[1] == heavy.MODES
    finally:
        monkeypatch.delenv(_corpus.HEAVY_ENV)
        importlib.reload(bench_replay)


def test_published_benchmarks_keep_their_versions():
    """asv drops results whose benchmark version differs from the current
    one: the benchmarks published before keep the versions they had."""
    from asv_runner.discovery import disc_benchmarks

    found = {b.name.rsplit(".", 1)[-1]: b.version for b in disc_benchmarks(str(ROOT / "benchmarks"))
             if ".Replay." in b.name or ".ReplayMetrics." in b.name}
    for method, version in bench_replay.VERSIONS.items():
        assert found[method] == version, method
    assert all(found[m] == bench_replay.NEW_VERSION for m in found if m not in bench_replay.VERSIONS)


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
    assert _corpus.trace_names("speed") == ["a", "b"]  # no SPEED_TRACES here: the whole default set
    (tmp_path / "heavy/h.parquet").unlink()
    assert _corpus.trace_names("heavy") == [_corpus.NO_TRACES]


def test_corpus_reads_the_manifest_through_its_owner_without_importing_pagealloc(tmp_path):
    # benchmarks/_corpus.py uses pagealloc/trace/corpus.py, loaded by path: asv discovers benchmarks in a
    # process per parameter combination, against commits that may lack the module.
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); from benchmarks import _corpus; "
             "names = _corpus.trace_names('default'); "
             "assert not [m for m in sys.modules if m.startswith('pagealloc')], sorted(sys.modules); print(names)")
    p = subprocess.run([sys.executable, "-c", probe, str(ROOT)], capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    from pagealloc.trace.corpus import load

    assert p.stdout.strip() == str([e.name for e in load().select(sets=["default"])])


def test_replay_benchmarks_run_and_agree_with_replay(tmp_path, monkeypatch):
    """One small trace through setup_cache, setup and the benchmark bodies."""
    subprocess.run([sys.executable, "-m", "pagealloc", "synth", "burst-idle", "-o", str(tmp_path / "t.parquet"),
                    "--events", "3000"], check=True, capture_output=True)
    monkeypatch.setattr(_corpus, "TRACES", tmp_path)
    from pagealloc.sim.replay import replay

    b = bench_replay.ReplayMetrics()
    cache = b.setup_cache()
    for mode in pagealloc.MODES:
        b.setup(cache, "t", mode)
        want = replay(tmp_path / "t.parquet", mode)
        assert b.track_released_bytes(cache, "t", mode) == want.released_bytes
        assert b.track_mutator_stall_ns(cache, "t", mode) == want.p_stall_ns
        assert b.track_lock_hold_max_ns(cache, "t", mode) == want.lock_hold_max_ns
        assert b.track_retained_peak_bytes(cache, "t", mode) == want.retained_peak_bytes
        assert 0 < b.track_wall_seconds_per_event(cache, "t", mode) < 1
        for name in ("p_stall_ns", "alloc_latency_p99_ns", "slowdown", "scavenger_cpu_ns"):
            if hasattr(want, name):  # a multi-P field this commit has
                assert getattr(b, f"track_{name}")(cache, "t", mode) == getattr(want, name)
            else:
                with pytest.raises(NotImplementedError):
                    getattr(b, f"track_{name}")(cache, "t", mode)
    t = bench_replay.Replay()
    traces = t.setup_cache()
    t.setup(traces, "t", "locked")
    t.time_replay(traces, "t", "locked")


def test_inverse_tracks_fall_when_the_figure_rises():
    """Higher-is-better figures are tracked as inverses, so that asv's
    lower-is-better reading is right: a slower simulator (fewer events per
    wall second) gives a larger track_wall_seconds_per_event."""
    b = bench_replay.ReplayMetrics()
    b.m = {"events": 1000, "wall_seconds": 0.5, "throughput_events_per_vsec": 2e6,
           "released_bytes_per_scavenger_cpu_sec": 4 * 2**30}
    fast = (b.track_wall_seconds_per_event(None, "t", "go1.14"), b.track_virtual_ns_per_event(None, "t", "go1.14"),
            b.track_scavenger_ns_per_released_mib(None, "t", "go1.14"))
    b.m = {"events": 1000, "wall_seconds": 1.0, "throughput_events_per_vsec": 1e6,
           "released_bytes_per_scavenger_cpu_sec": 2 * 2**30}
    slow = (b.track_wall_seconds_per_event(None, "t", "go1.14"), b.track_virtual_ns_per_event(None, "t", "go1.14"),
            b.track_scavenger_ns_per_released_mib(None, "t", "go1.14"))
    assert fast == (0.0005, 500.0, 2**20 * 1e9 / (4 * 2**30))
    assert all(s == 2 * f for s, f in zip(slow, fast))


def test_benchmarks_skip_on_a_commit_without_the_api(monkeypatch):
    """What an older commit looks like to the suite: no pagealloc.replay, a
    ReplayResult without a field."""
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


def test_a_mode_the_commit_lacks_skips(monkeypatch, tmp_path):
    """An older commit had only unlocked and locked: go1.14 skips there."""
    import pagealloc.sim.replay as engine

    subprocess.run([sys.executable, "-m", "pagealloc", "synth", "churn", "-o", str(tmp_path / "t.parquet"),
                    "--events", "2000"], check=True, capture_output=True)
    monkeypatch.setattr(_corpus, "TRACES", tmp_path)
    monkeypatch.setattr(engine, "MODES", ("unlocked", "locked"))
    with pytest.raises(NotImplementedError, match="mode 'go1.14' is not in this commit"):
        bench_replay._replay_api("go1.14")
    m = bench_replay.ReplayMetrics()
    cache = m.setup_cache()
    assert cache["__modes__"] == ["unlocked", "locked"]
    with pytest.raises(NotImplementedError, match="not in this commit"):
        m.setup(cache, "t", "go1.14")
    m.setup(cache, "t", "locked")
    assert m.track_released_bytes(cache, "t", "locked") >= 0
    with pytest.raises(NotImplementedError):
        bench_replay.Replay().setup(bench_replay.Replay().setup_cache(), "t", "go1.14")


def test_microbenchmarks_skip_on_a_commit_without_the_api(monkeypatch):
    """A pagealloc without fill_aligned or PageAlloc.for_test (and so without engines)."""
    import pagealloc.runtime

    monkeypatch.delattr(pagealloc, "fill_aligned")
    with pytest.raises(NotImplementedError):
        bench_model.FillAligned().setup(8)
    monkeypatch.delattr(pagealloc.runtime, "page_alloc_class")
    monkeypatch.delattr(pagealloc.PageAlloc, "for_test")
    with pytest.raises(NotImplementedError):
        bench_model.Alloc().setup(8)


def _pages(p, attr: str = "bits") -> int:
    """Pages of the heap with that bit set: allocated ("bits") or released ("scavenged")."""
    return sum(getattr(chunk, attr).bit_count() for chunk in p.chunks.values())


def _bitmaps(p) -> dict:
    return {ci: (c.bits, c.scavenged) for ci, c in p.chunks.items()}


def _params(cls):
    # The fragmented heap's holes are 8-24 pages: 64-page requests are served by the free chunks
    # after it (bench_model.ROOM_CHUNKS), past a search of the whole fragmentation.
    return list(cls.params[0])


@pytest.mark.parametrize("npages", _params(bench_model.Alloc))
def test_alloc_benchmark_allocates_every_time(npages):
    """Alloc times OPS allocations that succeed, not searches that fail."""
    b = bench_model.Alloc()
    b.setup(npages)
    before = _pages(b.p)
    b.time_alloc(npages)
    assert _pages(b.p) - before == bench_model.OPS * npages


@pytest.mark.parametrize("npages", _params(bench_model.Free))
def test_free_benchmark_frees_every_span(npages):
    """Free times OPS frees of spans setup really allocated."""
    b = bench_model.Free()
    b.setup(npages)
    assert len(b.spans) == bench_model.OPS
    before = _pages(b.p)
    b.time_free(npages)
    assert before - _pages(b.p) == bench_model.OPS * npages


@pytest.mark.parametrize("npages", bench_model.Find.params[0])
def test_find_benchmark_is_read_only_and_finds_the_first_fit(npages):
    """Find times the first-fit search on the heap setup built, changing nothing (it runs many
    times per sample on one heap).  Runs of 64 and 512 pages do not fit: those time a failed
    search over the whole heap."""
    from pagealloc.runtime.invariants import naive_first_fit

    b = bench_model.Find()
    b.setup(npages)
    state = _bitmaps(b.p)
    b.time_find(npages)
    b.time_find(npages)
    assert _bitmaps(b.p) == state
    with b.p.heap_lock:
        assert b.p.find(npages)[0] == naive_first_fit(b.p, npages)
    assert (naive_first_fit(b.p, npages) != 0) == (npages < 64)


@pytest.mark.parametrize("mode", bench_model.ScavengeOne.params[0])
@pytest.mark.parametrize("max_pages", bench_model.ScavengeOne.params[1])
def test_scavenge_one_benchmark_releases_on_every_call(mode, max_pages):
    """Each of the OPS calls releases at least one page and at most max_pages, under the lock
    contract the mode names: locked holds the heap lock once around the batch, unlocked lets
    every call take it itself (Go 1.14's scavengeOne: at least once per call)."""
    b = bench_model.ScavengeOne()
    b.setup(mode, max_pages)
    before, lock = _pages(b.p, "scavenged"), b.p.heap_lock
    taken = lock.acquisitions
    b.time_scavenge_one(mode, max_pages)
    released = _pages(b.p, "scavenged") - before
    assert bench_model.OPS <= released <= bench_model.OPS * max_pages
    taken = lock.acquisitions - taken
    assert taken == 1 if mode == "locked" else taken >= bench_model.OPS
    assert not lock.held


@pytest.mark.parametrize("m", bench_model.FillAligned.params[0])
def test_fill_aligned_benchmark_words_give_it_work(m):
    """Go's BenchmarkFillAligned shape: 1000 sparse words, and for m > 1 most of them change."""
    b = bench_model.FillAligned()
    b.setup(m)
    b.time_fill_aligned(m)
    assert len(b.words) == 1000 and all(0 < w < 1 << 64 for w in b.words[:100])
    changed = sum(b.fill_aligned(w, m) != w for w in b.words)
    assert changed == 0 if m == 1 else changed > 500


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
    assert direction("bench_replay.ReplayMetrics.track_wall_seconds_per_event") == 1
    assert direction("bench_replay.ReplayMetrics.track_events_per_second") == -1  # older results
    assert direction("bench_replay.ReplayMetrics.track_released_bytes") == 0
    assert is_wall_clock("bench_replay.ReplayMetrics.track_wall_seconds_per_event")
    assert not is_wall_clock("bench_replay.ReplayMetrics.track_p_stall_ns")


def test_asv_reads_every_directed_benchmark_the_right_way():
    """asv compare and continuous take lower as better: every benchmark of the
    suite is lower-is-better or has no direction (listed in gate's
    NO_DIRECTION_TRACKS), never higher-is-better."""
    from asv_runner.discovery import disc_benchmarks

    for b in disc_benchmarks(str(ROOT / "benchmarks")):
        method = b.name.rsplit(".", 1)[-1]
        if method.startswith("track_"):
            assert method in LOWER_IS_BETTER_TRACKS or method in NO_DIRECTION_TRACKS, method
        else:
            assert direction(b.name) == 1, b.name


def test_gate_rules():
    T, E, R = "b.Replay.time_replay", "b.ReplayMetrics.track_events_per_second", "b.ReplayMetrics.track_released_bytes"
    S = "b.ReplayMetrics.track_mutator_stall_ns"
    old = _run("a", {(T, ("t", "locked")): 1.0, (E, ("t", "locked")): 100.0, (R, ("t", "locked")): 10.0,
                     (S, ("t", "locked")): 5.0, (T, ("u", "locked")): 1.0, (T, ("v", "locked")): 1.0,
                     (T, ("w", "locked")): 1.0})
    new = _run("b", {(T, ("t", "locked")): 1.6, (E, ("t", "locked")): 60.0, (R, ("t", "locked")): 100.0,
                     (S, ("t", "locked")): 2.0, (T, ("u", "locked")): None, (T, ("v", "locked")): 1.4,
                     (T, ("w", "locked")): math.nan})
    # Wall-clock figures are judged with asv's statistics: confidence intervals in both runs.
    for run, spread in ((old, 0.05), (new, 0.05)):
        for key in ((T, ("t", "locked")), (E, ("t", "locked"))):
            v = run.values[key].value
            run.values[key].ci = (v * (1 - spread), v * (1 + spread))
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


def test_one_sample_wall_clock_moves_are_unjudged_not_regressions():
    # scripts/compare on --quick results listed one-sample timing noise as regressions (issue 22).
    T, F, S = "b.Replay.time_replay", "bench_model.FillAligned.time_fill_aligned", "b.ReplayMetrics.track_p_stall_ns"
    old = _run("a", {(T, ("t", "locked")): 1.0, (F, (1,)): 1.0, (S, ("t", "locked")): 1.0})
    new = _run("b", {(T, ("t", "locked")): 1.96, (F, (1,)): 0.4, (S, ("t", "locked")): 1.96})
    status = {c.benchmark: c.status for c in compare_runs(old, new, 1.5)}
    assert status == {T: "unjudged", F: "unjudged", S: "regressed"}  # virtual time: deterministic, one sample tells
    assert [c.benchmark for c in regressions(compare_runs(old, new, 1.5))] == [S]
    text = format_comparison(compare_runs(old, new, 1.5), _Units("seconds"))
    worse, _, rest = text.partition("\n\n")
    assert "track_p_stall_ns" in worse and "time_replay" not in worse and "time_fill_aligned" not in worse
    assert "not judged: one sample" in rest and "time_replay" in rest and "time_fill_aligned" in rest
    assert "improved" not in text
    # One run with statistics is not enough: both need them.
    old.values[(T, ("t", "locked"))].ci = (0.99, 1.01)
    assert next(c.status for c in compare_runs(old, new, 1.5) if c.benchmark == T) == "unjudged"


class _Units:
    def __init__(self, unit):
        self.u = unit

    def unit(self, bench):
        return self.u

    def param_names(self, bench):
        return ["trace", "mode"]


def test_format_mode_table():
    S, H = "b.ReplayMetrics.track_mutator_stall_ns", "b.ReplayHeavy.time_replay"
    run = _run("a", {(S, ("t", "go1.14")): 2000.0, (S, ("t", "unlocked")): 2000.0, (S, ("t", "locked")): 1000.0,
                     (H, ("h", "go1.14")): math.nan, (H, ("h", "unlocked")): math.nan, (H, ("h", "locked")): math.nan})
    table = format_mode_table(run, _Units("ns"))
    header = table.splitlines()[0]
    assert header.index("go1.14") < header.index("unlocked") < header.index("locked")  # the baseline first
    line = next(x for x in table.splitlines() if "track_mutator" in x)
    assert "ReplayMetrics.track_mutator_stall_ns(t)" in line and "1.00  " in line and "0.50 -" in line  # locked better
    assert "ReplayHeavy" not in table  # skipped in every mode


class _Benchmarks:
    """benchmarks.json as Results reads it: each benchmark's unit and parameter names."""

    def __init__(self, names):
        self.names = names

    def unit(self, bench):
        return "seconds" if ".time_" in bench else "ns"

    def param_names(self, bench):
        return self.names[bench]


def test_mode_table_headings_come_from_each_benchmarks_own_parameters():
    # ScavengeOne's "mode" is scavenge_one's lock flag (unlocked, locked), not a replay preset: its
    # values must not land under the presets' go1.14 | unlocked headings (issue 22, blocker 1).
    S, O = "b.ReplayMetrics.track_p_stall_ns", "bench_model.ScavengeOne.time_scavenge_one"
    run = _run("a", {(S, ("t", "go1.14")): 2000.0, (S, ("t", "unlocked")): 2000.0, (S, ("t", "locked")): 1000.0,
                     (O, ("unlocked", 1)): 709e-6, (O, ("locked", 1)): 658e-6})
    table = format_mode_table(run, _Benchmarks({S: ["trace", "mode"], O: ["mode", "max_pages"]}))
    replay, micro = table.split("\n\n")
    assert [c.strip() for c in replay.splitlines()[0].strip("|").split("|")] == [
        "benchmark (trace)", "go1.14", "unlocked", "ratio", "locked", "ratio"]
    assert "ScavengeOne" not in replay and "track_p_stall_ns(t)" in replay
    assert [c.strip() for c in micro.splitlines()[0].strip("|").split("|")] == [
        "benchmark (max_pages)", "unlocked", "locked", "ratio"]
    cells = [c.strip() for c in next(x for x in micro.splitlines() if "ScavengeOne" in x).strip("|").split("|")]
    assert cells == ["ScavengeOne.time_scavenge_one(1)", "709us", "658us", "0.93"]


def test_wall_clock_rows_are_marked_only_beyond_noise():
    T = "b.Replay.time_replay"
    one_sample = _run("a", {(T, ("t", "go1.14")): 1.0, (T, ("t", "locked")): 1.5})
    line = next(x for x in format_mode_table(one_sample, _Units("seconds")).splitlines() if "time_replay" in x)
    assert "1.50  " in line and "+" not in line  # one sample each: noise unknown, no mark
    ci = {(T, ("t", "go1.14")): (0.9, 1.1), (T, ("t", "locked")): (1.4, 1.6)}
    apart = _run("a", {(T, ("t", "go1.14")): 1.0, (T, ("t", "locked")): 1.5}, ci)
    assert "1.50 +" in format_mode_table(apart, _Units("seconds"))
    ci[(T, ("t", "locked"))] = (1.05, 1.6)  # overlapping: within noise
    close = _run("a", {(T, ("t", "go1.14")): 1.0, (T, ("t", "locked")): 1.5}, ci)
    assert "+" not in next(x for x in format_mode_table(close, _Units("seconds")).splitlines() if "time_replay" in x)


def test_headline_leads_with_the_biggest_difference():
    M = "b.ReplayMetrics.track_"
    values = {}
    for trace, stall, hold in (("small", (100, 100, 110), (10, 10, 10)), ("big", (100, 100, 100), (10, 5, 400)),
                               ("flat", (7, 7, 7), (3, 3, 3))):
        for mode, s_, h in zip(("go1.14", "unlocked", "locked"), stall, hold):
            values[(M + "mutator_stall_ns", (trace, mode))] = float(s_)
            values[(M + "lock_hold_max_ns", (trace, mode))] = float(h)
            values[(M + "released_bytes", (trace, mode))] = 1e6
    text = format_headline(from_run(_run("a", values)))
    lines = text.splitlines()
    assert "go1.14 (baseline)" in lines[0] and lines[0].index("unlocked") < lines[0].index("locked")
    assert lines[2].startswith("| big ") and "longest heap-lock hold" in lines[2] and "(40x)" in lines[2] and "(0.5x)" in lines[2]
    assert lines[3].startswith("| small ") and "mutator stall" in lines[3] and "(1.1x)" in lines[3] and "(=)" in lines[3]
    assert len(lines) == 5 and "released" not in text  # identical in every mode: not a headline figure
    assert lines[4] == "no headline figure differs by 1% or more: flat"


def test_headline_uses_the_multi_p_figures_when_there_are_any():
    by_mode = {m: {"p_stall_ns": p, "alloc_latency_p99_ns": 5, "alloc_latency_max_ns": 9, "released_bytes": 1,
                   "mutator_stall_ns": s, "lock_hold_max_ns": 3} for m, p, s in (("go1.14", 10, 1), ("locked", 20, 2))}
    per_trace, same = headline({"t": by_mode})
    assert [line.field for line in per_trace[0]] == ["p_stall_ns"] and same == []
    for d in by_mode.values():
        del d["p_stall_ns"], d["alloc_latency_p99_ns"], d["alloc_latency_max_ns"]
    per_trace, _ = headline({"t": by_mode})
    assert [line.field for line in per_trace[0]] == ["mutator_stall_ns"]


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


def test_unknown_machine_is_an_error(tmp_path):
    m = tmp_path / "m"
    m.mkdir()
    (m / "machine.json").write_text("{}")
    (m / "abc-env.json").write_text(json.dumps({"version": 2, "commit_hash": "abc", "env_name": "env", "results": {},
                                                 "result_columns": [], "params": {"machine": "m"}}))
    results = load_results(tmp_path)
    assert len(results.for_machine("m")) == 1
    with pytest.raises(UserError, match="no results of machine 'nosuch' \\(there are: m\\)"):
        results.for_machine("nosuch")


def test_runs_to_compare(tmp_path):
    def run(commit, env):
        path = tmp_path / f"{commit}-{env}.json"
        path.write_text("{}")
        return Run(path=path, machine="m", commit=commit * 8, env=env, date=0)

    a_same, a_built, b_same = run("a", "same"), run("a", "built"), run("b", "same")
    old, new, warning = runs_to_compare([a_built, a_same, b_same], "a", "b")
    assert (old, new, warning) == (a_same, b_same, None)  # the environment both have
    old, new, warning = runs_to_compare([a_built, b_same], "a", "b")
    assert (old, new) == (a_built, b_same) and "no results in a common environment (built vs same)" in warning
    with pytest.raises(UserError, match="no asv results for commit c"):
        runs_to_compare([a_same], "a", "c")
