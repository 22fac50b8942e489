"""asv across commits, as asv.conf.json says: in a fresh clone, each commit is
built into a virtualenv (Python 3.11) and benchmarked.

The clone's oldest commit predates the replay engine: there the replay
benchmarks are skipped (NotImplementedError -> n/a), not failed, while the
model microbenchmark runs; at HEAD both run.  A small trace corpus
(PAGEALLOC_BENCH_TRACES) keeps it quick; the first run creates the
environment (pip installs numpy, pandas, pyarrow, matplotlib: a minute or two).

Slow, marked ``slow``; it runs in the default test command.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = r"^bench_replay\.ReplayMetrics\.track_released_bytes|^bench_model\.FillAligned"

pytestmark = pytest.mark.slow


def _git(repo, *args):
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def test_asv_run_builds_old_and_new_commits_in_a_fresh_clone(tmp_path):
    if shutil.which("python3.11") is None:
        pytest.skip("asv.conf.json asks for Python 3.11 and there is no python3.11 on PATH")
    if _git(ROOT, "rev-parse", "--is-shallow-repository") == "true":
        pytest.skip("shallow clone: no old commits to benchmark")
    repo = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True)
    oldest = _git(repo, "rev-list", "--max-parents=0", "HEAD").split()[0]
    head = _git(repo, "rev-parse", "HEAD")
    traces = tmp_path / "traces"
    traces.mkdir()
    subprocess.run([sys.executable, "-m", "pagealloc", "synth", "growth-storm", "-o", str(traces / "small.parquet"),
                    "--events", "3000"], check=True, capture_output=True)
    (tmp_path / "home").mkdir()
    env = {**os.environ, "HOME": str(tmp_path / "home"), "PAGEALLOC_BENCH_TRACES": str(traces)}
    env.pop("PYTHONPATH", None)
    asv = [sys.executable, "-m", "asv"]
    subprocess.run(asv + ["machine", "--yes", "--machine", "t"], cwd=repo, env=env, check=True, capture_output=True)
    outs = []
    for commit in (oldest, head):
        p = subprocess.run(asv + ["run", "--quick", "--machine", "t", "--show-stderr", "-b", BENCH, f"{commit}^!"],
                           cwd=repo, env=env, capture_output=True, text=True, timeout=1800)
        outs.append(p.stdout + p.stderr)
        assert p.returncode == 0, outs[-1][-5000:]

    def results(commit):
        files = [f for f in (repo / ".asv/results/t").glob(f"{commit[:8]}-*.json")]
        assert len(files) == 1, (sorted((repo / ".asv/results/t").iterdir()), outs[-1][-3000:])
        d = json.loads(files[0].read_text())
        assert d["env_name"].startswith("virtualenv-py3.11")
        return {name: row[0] for name, row in d["results"].items()}

    old, new = results(oldest), results(head)
    released = "bench_replay.ReplayMetrics.track_released_bytes"
    fill = "bench_model.FillAligned.time_fill_aligned"
    # The oldest commit: the replay benchmarks skip (NaN), the microbenchmark runs.
    assert all(isinstance(v, float) and math.isnan(v) for v in old[released]), old[released]
    assert "no pagealloc.replay in this commit" in outs[0]
    assert all(v is not None and v > 0 for v in old[fill]), old[fill]
    # HEAD: both run; released bytes are the replay's.
    assert all(v is not None and v >= 0 and not math.isnan(v) for v in new[released]), new[released]
    assert all(v is not None and v > 0 for v in new[fill]), new[fill]
