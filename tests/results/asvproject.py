"""Shared by the tests that run asv and scripts/ end to end (test_nightly.py,
test_asv_quickstart.py): a temporary git copy of the project with a small
corpus, and a headless Chromium to look at what it published.

The copy runs in this Python (the shared virtualenv) with its own HOME
(asv writes ~/.asv-machine.json there); the scripts put the copy's own
pagealloc first on the benchmarks' path (ASV_PYTHONPATH), as an editable
install of a clone would.
"""

from __future__ import annotations

import contextlib
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

ROOT = Path(__file__).resolve().parents[2]
COPY = ["asv.conf.json", "pyproject.toml", "README.md", "benchmarks", "pagealloc", "scripts"]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True).stdout.strip()


def _ignore(_dir, names):
    return [n for n in names if n in ("__pycache__", ".asv") or n.endswith(".egg-info")]


def synth(path: Path, scenario: str, events: int, seed: int, name: str) -> Path:
    subprocess.run([sys.executable, "-m", "pagealloc", "synth", scenario, "-o", str(path), "--events", str(events),
                    "--seed", str(seed), "--name", name], check=True, capture_output=True)
    return path


def make_project(tmp: Path, traces: dict[str, Path]) -> tuple[Path, dict]:
    """(repo, env): a git copy of the project (one commit, "baseline") whose
    default corpus is ``traces`` ({name: a trace file to copy}), and the
    environment to run its scripts in."""
    repo = tmp / "repo"
    repo.mkdir()
    for name in COPY:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, repo / name, ignore=_ignore)
        else:
            shutil.copy2(src, repo / name)
    (repo / "traces").mkdir()
    entries = []
    for name, path in traces.items():
        shutil.copy2(path, repo / "traces" / f"{name}.parquet")
        entries.append({"name": name, "file": f"{name}.parquet", "set": "default"})
    (repo / "traces" / "manifest.json").write_text(json.dumps({"format_version": 1, "traces": entries}))
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "baseline")
    home = tmp / "home"  # asv writes ~/.asv-machine.json
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "PYTHONDONTWRITEBYTECODE": "1"}
    for var in ("PAGEALLOC_GATE_FACTOR", "PAGEALLOC_BENCH_HEAVY", "ASV_MACHINE"):
        env.pop(var, None)
    return repo, env


def commit_edit(repo: Path, path: str, old: str, new: str, message: str) -> str:
    """Replace ``old`` (once, it must be there) by ``new`` in ``path`` and commit; the new HEAD."""
    f = repo / path
    text = f.read_text()
    assert old in text, f"{path}: {old!r} not found"
    f.write_text(text.replace(old, new, 1))
    git(repo, "commit", "-qam", message)
    return git(repo, "rev-parse", "HEAD")


# -- a browser --


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextlib.contextmanager
def browser(html_dir: Path, profile: Path, shots: Path):
    """(driver, base URL, screenshot folder): headless Chromium on an http
    server of ``html_dir`` on loopback; skips (fails on CI) without Chromium."""
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        if os.environ.get("CI"):
            pytest.fail("chromium and chromedriver are needed (Debian: apt-get install chromium chromium-driver; .ci/run does)")
        pytest.skip("no chromium/chromedriver (Debian: apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(html_dir)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--window-size=1280,1000", f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    print(f"\nscreenshots: {shots}")
    try:
        yield driver, f"http://127.0.0.1:{server.server_address[1]}", shots
    finally:
        driver.quit()
        server.shutdown()


def console_errors(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def wait_for(driver, predicate: str, what: str, timeout: float = 30.0):
    """The first truthy value of the JavaScript ``predicate``, polled."""
    end = time.time() + timeout
    while time.time() < end:
        try:
            value = driver.execute_script(predicate)
        except Exception:  # noqa: BLE001 - page still loading
            value = None
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}; console: {console_errors(driver)}")


def shot_without_errors(driver, shots: Path, name: str) -> None:
    """A screenshot of what the page drew (after its last redraw), and no console errors."""
    time.sleep(0.5)
    driver.save_screenshot(str(shots / f"{name}.png"))
    assert console_errors(driver) == []
