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

import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COPY = ["asv.conf.json", "pyproject.toml", "README.md", "benchmarks", "pagealloc", "scripts"]
BENCH = r"^bench_replay\.(Replay\.time_replay|ReplayMetrics\.track_(released_bytes|mutator_stall_ns))"
SLOWDOWN = """

# -- deliberately slowed (tests/test_nightly.py): the gate must catch this --
import time as _gate_time

_gate_replay = replay


def replay(*args, **kwargs):  # noqa: F811
    _gate_time.sleep(1.0)
    return _gate_replay(*args, **kwargs)
"""

pytestmark = pytest.mark.slow


def _git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True).stdout.strip()


def _ignore(_dir, names):
    return [n for n in names if n in ("__pycache__", ".asv") or n.endswith(".egg-info")]


@pytest.fixture(scope="module")
def nightly(tmp_path_factory):
    """The copy, and the three nightly runs: [(commit, status, output)]."""
    tmp = tmp_path_factory.mktemp("nightly")
    repo = tmp / "repo"
    repo.mkdir()
    for name in COPY:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, repo / name, ignore=_ignore)
        else:
            shutil.copy2(src, repo / name)
    traces = repo / "traces"
    traces.mkdir()
    subprocess.run([sys.executable, "-m", "pagealloc", "synth", "burst-idle", "-o", str(traces / "tiny.parquet"),
                    "--events", "6000", "--seed", "3", "--name", "tiny"], cwd=repo, check=True, capture_output=True)
    (traces / "manifest.json").write_text(json.dumps(
        {"format_version": 1, "traces": [{"name": "tiny", "file": "tiny.parquet", "set": "default"}]}))
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "baseline")
    home = tmp / "home"  # asv writes ~/.asv-machine.json
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "ASV_MACHINE": "gate-test", "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PAGEALLOC_GATE_FACTOR", None)
    # Factor 3: the slowed commit is ~20x slower; an unchanged one must not
    # trip the gate on two busy shared cores (median of 3 samples each).
    cmd = [sys.executable, "scripts/nightly", "--python=same", "-a", "repeat=3", "-a", "warmup_time=0", "--factor", "3"]

    def run(bench):
        p = subprocess.run(cmd + ["--bench", bench], cwd=repo, env=env, capture_output=True, text=True, timeout=900)
        return _git(repo, "rev-parse", "HEAD"), p.returncode, p.stdout + p.stderr

    # The baseline runs every benchmark (so the dashboard has a graph for
    # each one it lists); the later runs only BENCH.
    runs = [run(".")]
    readme = repo / "README.md"
    readme.write_text(readme.read_text() + "\nAn unchanged commit: documentation only.\n")
    _git(repo, "commit", "-qam", "docs only")
    runs.append(run(BENCH))
    replay_py = repo / "pagealloc" / "sim" / "replay.py"
    replay_py.write_text(replay_py.read_text() + SLOWDOWN)
    _git(repo, "commit", "-qam", "slow down replay (deliberately)")
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

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def browser(nightly, tmp_path_factory):
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        if os.environ.get("CI"):
            pytest.fail("chromium and chromedriver are needed (Debian: apt-get install chromium chromium-driver; .ci/run does)")
        pytest.skip("no chromium/chromedriver (Debian: apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    repo, _ = nightly
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(repo / ".asv" / "html")))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--window-size=1280,1000",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    shots = tmp_path_factory.mktemp("screenshots")
    print(f"\nscreenshots: {shots}")
    try:
        yield driver, f"http://127.0.0.1:{server.server_address[1]}", shots
    finally:
        driver.quit()
        server.shutdown()


def _errors(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def _wait(driver, predicate, what: str, timeout: float = 30.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            value = driver.execute_script(predicate)
        except Exception:  # noqa: BLE001 - page still loading
            value = None
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}; console: {_errors(driver)}")


def test_dashboard_renders_in_a_browser(browser):
    driver, base, shots = browser
    driver.get(f"{base}/index.html")
    # asv's index loads index.json by XHR and lists the benchmarks.
    names = _wait(driver, "const t = document.body.innerText; return t.includes('time_replay') && t", "the benchmark list")
    for name in ("time_replay", "track_released_bytes", "track_mutator_stall_ns"):
        assert name in names
    driver.save_screenshot(str(shots / "dashboard-index.png"))
    # One benchmark's graph: flot draws it on canvases.
    driver.get(f"{base}/index.html#bench_replay.Replay.time_replay")
    _wait(driver, "return document.querySelectorAll('canvas.flot-base').length > 0", "the time_replay graph")
    _wait(driver, "return document.body.innerText.includes('bench_replay.Replay.time_replay')", "the graph's title")
    time.sleep(0.5)
    driver.save_screenshot(str(shots / "dashboard-time_replay.png"))
    assert _errors(driver) == []


def test_report_renders_in_a_browser(browser):
    driver, base, shots = browser
    driver.get(f"{base}/report/index.html")
    imgs = _wait(driver, """
        const imgs = [...document.images];
        return imgs.length && imgs.every(i => i.complete) && imgs.map(i => [i.alt, i.naturalWidth]);
    """, "the report's images")
    alts = {alt: width for alt, width in imgs}
    assert all(w > 100 for w in alts.values()), alts
    expected = ["tiny: retained bytes over time, unlocked vs locked", "released bytes per trace, unlocked vs locked",
                "mutator stall per trace, unlocked vs locked", "released bytes across commits",
                "replay wall time across commits"]
    for alt in expected:
        assert alt in alts, sorted(alts)
    text = driver.execute_script("return document.body.innerText")
    assert "locked vs unlocked" in text and "tiny" in text
    driver.save_screenshot(str(shots / "report.png"))
    assert _errors(driver) == []
