"""scripts/nightly end to end, in a temporary git repository (a copy of the project).

The copy has a one-trace corpus (a small synthetic trace).  Three nightly
runs, each benchmarking HEAD with ``--python=same`` (this Python, the
copy's own pagealloc through ASV_PYTHONPATH), 3 samples per timing:

1. the baseline commit, every benchmark: no earlier results, the gate passes;
2. an unchanged commit (a docs edit), a few replay benchmarks (BENCH):
   compared with 1, the gate passes,
   and both runs' results are kept;
3. a deliberately slowed commit (replay sleeps 1 s per call): the gate
   fails, exit status 1, and the summary names time_replay.

The published dashboard and the report of the last run are then opened in
headless Chromium (selenium + chromedriver, Debian's packages; .ci/run
installs them), served over http on loopback, and checked for console
errors, their plots and benchmark names.  Screenshots are left in the
temporary folder (the path is printed).

Slow (tens of seconds), marked ``slow``; it runs in the default test command.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

import pagealloc
from asvproject import browser as open_browser
from asvproject import commit_edit, git, make_project, shot_without_errors, synth, wait_for

BENCH = r"^bench_replay\.(Replay\.time_replay|ReplayMetrics\.track_(released_bytes|mutator_stall_ns))"
SLOWDOWN = """

# -- deliberately slowed (tests/results/test_nightly.py): the gate must catch this --
import time as _gate_time

_gate_replay = replay


def replay(*args, **kwargs):  # noqa: F811
    _gate_time.sleep(1.0)
    return _gate_replay(*args, **kwargs)
"""

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def nightly(tmp_path_factory):
    """The copy, and the three nightly runs: [(commit, status, output)]."""
    tmp = tmp_path_factory.mktemp("nightly")
    tiny = synth(tmp / "tiny.parquet", "burst-idle", 6000, 3, "tiny")
    repo, env = make_project(tmp, {"tiny": tiny})
    env["ASV_MACHINE"] = "gate-test"
    # Factor 3: the slowed commit is ~20x slower; an unchanged one must not
    # trip the gate on two busy shared cores (median of 3 samples each).
    cmd = [sys.executable, "scripts/nightly", "--python=same", "-a", "repeat=3", "-a", "warmup_time=0", "--factor", "3"]

    def run(bench):
        p = subprocess.run(cmd + ["--bench", bench], cwd=repo, env=env, capture_output=True, text=True, timeout=900)
        return git(repo, "rev-parse", "HEAD"), p.returncode, p.stdout + p.stderr

    # The baseline runs every benchmark (so the dashboard has a graph for
    # each one it lists); the later runs only BENCH.
    runs = [run(".")]
    commit_edit(repo, "README.md", "# pagealloc", "# pagealloc\n\nAn unchanged commit: documentation only.", "docs only")
    runs.append(run(BENCH))
    replay_py = repo / "pagealloc" / "sim" / "replay.py"
    replay_py.write_text(replay_py.read_text() + SLOWDOWN)
    git(repo, "commit", "-qam", "slow down replay (deliberately)")
    runs.append(run(BENCH))
    return repo, runs


def _show(out: str) -> str:
    return "\n--- nightly output ---\n" + out[-6000:]


def test_first_run_has_no_baseline_and_passes(nightly):
    _, runs = nightly
    commit, status, out = runs[0]
    assert status == 0, _show(out)
    assert "no earlier benchmarked commit" in out, _show(out)


def test_unchanged_commit_passes_and_both_results_are_kept(nightly):
    repo, runs = nightly
    commit, status, out = runs[1]
    assert status == 0, _show(out)
    assert f"{commit[:8]} against {runs[0][0][:8]}" in out, _show(out)
    assert "gate passed" in out, _show(out)
    kept = {json.loads(p.read_text())["commit_hash"] for p in (repo / ".asv/results/gate-test").glob("*.json")
            if p.name != "machine.json"}
    assert {runs[0][0], runs[1][0], runs[2][0]} <= kept


def test_slowed_commit_is_caught(nightly):
    _, runs = nightly
    commit, status, out = runs[2]
    assert status == 1, _show(out)
    assert f"{commit[:8]} against {runs[1][0][:8]}" in out, _show(out)
    assert "REGRESSED" in out and "FAILED" in out, _show(out)
    regressed = out.split("REGRESSED", 1)[1].split("\n\n", 1)[0]
    assert "Replay.time_replay(tiny, unlocked)" in regressed and "Replay.time_replay(tiny, locked)" in regressed, _show(out)
    # The deterministic metrics did not move: not in the regressions.
    assert "track_" not in regressed, _show(out)


# -- the published dashboard and the report, in a real browser --


@pytest.fixture(scope="module")
def browser(nightly, tmp_path_factory):
    repo, _ = nightly
    with open_browser(repo / ".asv" / "html", tmp_path_factory.mktemp("chromium-profile"),
                      tmp_path_factory.mktemp("screenshots")) as b:
        yield b


def test_dashboard_renders_in_a_browser(browser):
    driver, base, shots = browser
    driver.get(f"{base}/index.html")
    # asv's index loads index.json by XHR and lists the benchmarks.
    names = wait_for(driver, "const t = document.body.innerText; return t.includes('time_replay') && t", "the benchmark list")
    for name in ("time_replay", "track_released_bytes", "track_mutator_stall_ns"):
        assert name in names
    driver.save_screenshot(str(shots / "dashboard-index.png"))
    # One benchmark's graph: flot draws it on canvases.
    driver.get(f"{base}/index.html#bench_replay.Replay.time_replay")
    wait_for(driver, "return document.querySelectorAll('canvas.flot-base').length > 0", "the time_replay graph")
    wait_for(driver, "return document.body.innerText.includes('bench_replay.Replay.time_replay')", "the graph's title")
    shot_without_errors(driver, shots, "dashboard-time_replay")


def test_report_renders_in_a_browser(browser):
    driver, base, shots = browser
    driver.get(f"{base}/report/index.html")
    imgs = wait_for(driver, """
        const imgs = [...document.images];
        return imgs.length && imgs.every(i => i.complete) && imgs.map(i => [i.alt, i.naturalWidth]);
    """, "the report's images")
    alts = {alt: width for alt, width in imgs}
    assert all(w > 100 for w in alts.values()), alts
    modes = " vs ".join(pagealloc.MODES)
    stall = "P-stall" if "p_stall_ns" in {f.name for f in dataclasses.fields(pagealloc.ReplayResult)} else "mutator stall"
    expected = [f"released bytes per trace, {modes}", f"{stall} per trace, {modes}",
                "released bytes across commits", "replay wall time across commits"]
    for alt in expected:
        assert alt in alts, sorted(alts)
    assert any(alt.startswith(f"tiny: retained bytes over time, {modes}") for alt in alts), sorted(alts)
    text = driver.execute_script("return document.body.innerText")
    assert f"pagealloc report: {modes}" in text and "Headline" in text and "tiny" in text
    shot_without_errors(driver, shots, "report")
