"""pagealloc report: the page and its PNGs, and one-line errors for bad input.
(The browser check of a report is in test_nightly.py.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import pagealloc
from pagealloc.cli import main
from pagealloc.results.report import plot_retained, retained_gap

BENCH = "bench_replay.ReplayMetrics.track_released_bytes"
COLUMNS = ["result", "params", "version", "started_at", "duration", "stats_ci_99_a", "stats_ci_99_b"]


def _asv_results(folder: Path, machine: str = "m", commits=(("aaaa1111", 1), ("bbbb2222", 2))) -> Path:
    """A minimal asv results folder (format version 2) with two commits."""
    mdir = folder / machine
    mdir.mkdir(parents=True)
    (mdir / "machine.json").write_text(json.dumps({"machine": machine, "version": 1}))
    params = [["'t'"], ["'unlocked'", "'locked'"]]
    for commit, date in commits:
        (mdir / f"{commit}-env.json").write_text(json.dumps({
            "commit_hash": commit * 5, "env_name": "env", "date": date * 1000, "params": {"machine": machine},
            "python": "3.11", "requirements": {}, "env_vars": {}, "result_columns": COLUMNS, "version": 2,
            "results": {
                BENCH: [[1e6 * date, 2e6 * date], params, "v1", 0, 1.0, [None, None], [None, None]],
                "bench_replay.Replay.time_replay": [[0.5, 0.7], params, "v1", 0, 1.0, [0.4, 0.6], [0.6, 0.8]],
                "bench_model.FillAligned.time_fill_aligned": [[1e-4, 2e-4], [["1", "2"]], "v1", 0, 1.0],
            },
        }))
    (folder / "benchmarks.json").write_text(json.dumps({
        BENCH: {"unit": "bytes", "param_names": ["trace", "mode"]},
        "bench_replay.Replay.time_replay": {"unit": "seconds", "param_names": ["trace", "mode"]},
        "version": 2,
    }))
    return folder


@pytest.fixture(scope="module")
def trace(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("trace") / "small.parquet"
    subprocess.run([sys.executable, "-m", "pagealloc", "synth", "freeosmemory", "-o", str(path), "--events", "4000"],
                   check=True, capture_output=True)
    return path


def test_report_page_and_pngs(trace, tmp_path, capsys):
    results = _asv_results(tmp_path / "results")
    out = tmp_path / "report"
    assert main(["report", str(trace), "--asv-results", str(results), "-o", str(out), "--jobs", "1"]) == 0
    assert str(out / "index.html") in capsys.readouterr().out
    page = (out / "index.html").read_text()
    # The trace is called by its metadata name (synth's default: the scenario), as info and replay call it.
    for png in ("retained-freeosmemory.png", "released.png", "stall.png", "commits-track_released_bytes.png",
                "commits-time_replay.png", "commits-microbenchmarks.png"):
        assert f'src="{png}"' in page, png
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    modes = " vs ".join(pagealloc.MODES)
    assert f"freeosmemory: retained bytes over time, {modes}" in page
    assert "2 commit(s)" in page and "aaaa1111" in page and "bbbb2222" in page
    assert "<script" not in page  # static page: nothing to fail in a browser
    # The first section is the headline: per trace, each preset against the baseline.
    assert page.index('<h2 id="headline">') < page.index("<h2", page.index('<h2 id="headline">') + 1)
    assert page.index('<h2 id="headline">') == page.index("<h2")
    headline = page[page.index('<h2 id="headline">'):page.index("<h2", page.index('<h2 id="headline">') + 1)]
    assert "Headline: each preset against" in headline and pagealloc.MODES[0] in headline
    assert "(baseline)</th>" in headline or "No headline figure differs by 1% or more in: freeosmemory" in headline


def test_retained_plot_says_where_modes_differ(tmp_path):
    same = {m: {"retained_timeline": [(0, 0), (10**9, 5 * 2**20)]} for m in ("go1.14", "unlocked", "locked")}
    png, caption = plot_retained("t", same, tmp_path)
    assert (tmp_path / png).exists() and "no difference; the lines lie on top of each other" in caption
    apart = {**same, "locked": {"retained_timeline": [(0, 0), (10**9, 2 * 2**20)]}}
    assert retained_gap(apart) == (3 * 2**20, "locked", 10**9)
    _, caption = plot_retained("t", apart, tmp_path)
    assert "Largest gap: 3MiB (locked vs go1.14 at 1.000 s)" in caption


def test_report_of_traces_only_and_of_results_only(trace, tmp_path):
    assert main(["report", str(trace), "-o", str(tmp_path / "a")]) == 0
    assert "Across commits" not in (tmp_path / "a" / "index.html").read_text()
    assert main(["report", "--asv-results", str(_asv_results(tmp_path / "r")), "-o", str(tmp_path / "b")]) == 0
    page = (tmp_path / "b" / "index.html").read_text()
    assert "Across commits" in page and "Summary per trace" not in page


def _cli(*args, cwd=None):
    p = subprocess.run([sys.executable, "-m", "pagealloc", "report", *args], capture_output=True, text=True, cwd=cwd)
    return p.returncode, p.stderr


def _bad_cases(tmp_path: Path, trace: Path):
    notparquet = tmp_path / "notes.txt"
    notparquet.write_text("hello")
    empty = tmp_path / "empty-results"
    empty.mkdir()
    badjson = _asv_results(tmp_path / "badjson")
    bad = badjson / "m" / "aaaa1111-env.json"
    bad.write_text("{")
    wrongfmt = _asv_results(tmp_path / "wrongfmt")
    old = wrongfmt / "m" / "bbbb2222-env.json"
    old.write_text(json.dumps({"version": 1, "results": {}}))
    two = _asv_results(tmp_path / "two")
    _asv_results(two, machine="other")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    return [
        ([str(tmp_path / "missing.parquet")], "missing.parquet"),
        ([str(notparquet)], "notes.txt"),
        (["--asv-results", str(tmp_path / "nope")], "nope"),
        (["--asv-results", str(notparquet)], "notes.txt"),
        (["--asv-results", str(empty)], "empty-results"),
        (["--asv-results", str(badjson)], str(bad)),
        (["--asv-results", str(wrongfmt)], str(old)),
        (["--asv-results", str(two)], "--machine"),
        (["--asv-results", str(two), "--machine", "nosuch"], "no results of machine 'nosuch'"),
        ([str(trace), "-o", str(blocker / "sub")], "a-file"),
        ([str(trace), "--jobs", "0"], "--jobs"),
        ([], "nothing to report"),
    ]


def test_bad_input_is_one_line_and_status_2(trace, tmp_path):
    for args, named in _bad_cases(tmp_path, trace):
        status, err = _cli(*args, "-o", str(tmp_path / "out")) if "-o" not in args else _cli(*args)
        lines = err.strip().splitlines()
        assert status == 2, (args, err)
        assert len(lines) == 1 and lines[0].startswith("pagealloc: error: "), (args, err)
        assert named in lines[0], (args, err)
        assert "Traceback" not in err


def _same_second_commits(repo: Path) -> tuple[str, str]:
    """A parent and its child committed in the same second, the child's hash sorting first (so that
    (date, hash) order puts the child before its parent)."""
    env = {"GIT_AUTHOR_DATE": "2026-12-01T12:00:00Z", "GIT_COMMITTER_DATE": "2026-12-01T12:00:00Z",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           "PATH": "/usr/bin:/bin"}
    git = lambda *a: subprocess.run(["git", "-C", str(repo), *a], check=True, capture_output=True, text=True,  # noqa: E731
                                    env=env).stdout.strip()
    git("init", "-q")
    git("commit", "-q", "--allow-empty", "-m", "parent")
    parent = git("rev-parse", "HEAD")
    git("commit", "-q", "--allow-empty", "-m", "child")
    for i in range(64):
        git("commit", "-q", "--amend", "--allow-empty", "-m", f"child {i}")  # another hash, same parent and second
        child = git("rev-parse", "HEAD")
        if child < parent:
            return parent, child
    raise AssertionError("no child hash below its parent's in 64 tries")


def test_across_commits_in_history_order_not_date_then_hash(tmp_path):
    from pagealloc.results.asvresults import Run, history_order, load_results
    from pagealloc.results.report import plot_across_commits

    repo = tmp_path / "repo"
    repo.mkdir()
    parent, child = _same_second_commits(repo)
    runs = [Run(Path(f"/x/{c}.json"), "m", c, "env", 1000) for c in (parent, child, "f" * 40)]
    runs[2].date = 500  # a commit this clone lacks keeps its place in date order
    assert [r.commit for r in sorted(runs, key=lambda r: (r.date, r.commit))] == ["f" * 40, child, parent]
    assert [r.commit for r in history_order(runs, repo)] == ["f" * 40, parent, child]
    assert [r.commit for r in history_order(runs, tmp_path / "not-a-repo")] == ["f" * 40, child, parent]
    # The report's axis: results kept inside the repository, as .asv/results is.
    folder = _asv_results(repo / ".asv" / "results", commits=(("aaaa1111", 1), ("bbbb2222", 2)))
    for commit, name in ((parent, "aaaa1111"), (child, "bbbb2222")):
        path = folder / "m" / f"{name}-env.json"
        data = json.loads(path.read_text())
        path.write_text(json.dumps({**data, "commit_hash": commit, "date": 1000}))
    _, plotted = plot_across_commits(load_results(folder), "m", tmp_path)
    assert [r.commit for r in plotted] == [parent, child]


def test_per_trace_bars_use_a_log_axis_when_one_trace_dwarfs_the_others(tmp_path, monkeypatch):
    import pagealloc.results.report as report

    seen = {}

    def keep(fig, out_dir, name):
        ax = fig.axes[0]
        seen[name] = (ax.get_xscale(), [p.get_width() + p.get_x() for p in ax.patches], [t.get_text() for t in ax.texts])
        report._plt().close(fig)
        return name

    monkeypatch.setattr(report, "_save", keep)
    modes = ("go1.14", "unlocked", "locked")
    wide = {"synth-contention": 7.6 * 2**30, "small": 3 * 2**20, "idle": 0}
    report.plot_per_mode({t: {m: {"released_bytes": v} for m in modes} for t, v in wide.items()},
                         "released_bytes", "released", "bytes", tmp_path, "wide.png")
    scale, ends, texts = seen["wide.png"]
    assert scale == "log"
    assert sorted(set(round(e, 3) for e in ends)) == [0.3, 3.0, round(7.6 * 1024, 3)]  # every bar ends at its value
    assert texts.count(" 0") == 3  # the idle trace's zeros are written, in each mode
    narrow = {"a": 2e6, "b": 3e6}
    report.plot_per_mode({t: {m: {"p_stall_ns": v} for m in modes} for t, v in narrow.items()},
                         "p_stall_ns", "stall", "ns", tmp_path, "narrow.png")
    assert seen["narrow.png"][0] == "linear"
