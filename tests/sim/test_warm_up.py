"""Wall-clock figures must not depend on which mode runs first (issue 13, item 3).

The first replay in a process also paid pyarrow's first Parquet read and
the engine's first run (~0.2 s: 188k vs 322k events/s on burst-idle, when
the same two replays each alone gave 196k vs 204k).  Every place that
measures several replays in one process now warms up first, in every mode,
on the first rows of a trace.  Timing in a unit test would be flaky, so
this checks the order of the replays instead: in each process, a warm-up
in every mode comes before the first measured replay.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import pagealloc
import pagealloc.sim.replay as engine
from pagealloc.cli import main
from pagealloc.results import replays

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks import _corpus, bench_replay  # noqa: E402


@pytest.fixture(scope="module")
def traces(tmp_path_factory) -> list[Path]:
    out = []
    for i, scenario in enumerate(("churn", "freeosmemory")):
        path = tmp_path_factory.mktemp("traces") / f"t{i}.parquet"
        subprocess.run([sys.executable, "-m", "pagealloc", "synth", scenario, "-o", str(path), "--events", "6000",
                        "--name", f"trace-{i}"], check=True, capture_output=True)
        out.append(path)
    return out


@pytest.fixture
def calls(monkeypatch):
    """Every replay made, as (label, mode, rows replayed), through the real engine."""
    made = []
    real = engine.replay

    def spy(trace, mode="go1.14", **kwargs):
        result = real(trace, mode, **kwargs)  # a warm-up that fails would be no warm-up
        made.append((kwargs.get("label"), result.mode, result.events))
        return result

    spy.__module__ = real.__module__
    monkeypatch.setattr(engine, "replay", spy)
    monkeypatch.setattr(pagealloc, "replay", spy)
    monkeypatch.setattr(replays, "_warmed", set())  # a fresh process
    return made


def _warm_ups_first(made, warm_label, measured_labels):
    n = len(pagealloc.MODES)
    warm = made[:n]
    assert [(label, mode) for label, mode, _ in warm] == [(warm_label, m) for m in pagealloc.MODES], made
    assert all(0 < rows <= engine.WARM_UP_ROWS for _, _, rows in warm), made
    rest = made[n:]
    assert [label for label, _, _ in rest] == measured_labels, made
    assert all(rows == 6000 for _, _, rows in rest), made


def test_report_replays_warm_up_first(traces, calls):
    out = replays.replay_all(traces, jobs=1)
    assert list(out) == ["trace-0", "trace-1"] and all(list(by) == list(pagealloc.MODES) for by in out.values())
    _warm_ups_first(calls, str(traces[0]), [name for name in ("trace-0", "trace-1") for _ in pagealloc.MODES])


def test_cli_replay_warms_up_first(traces, calls, capsys):
    assert main(["replay", *map(str, traces), "--json"]) == 0
    _warm_ups_first(calls, str(traces[0]), [name for name in ("trace-0", "trace-1") for _ in pagealloc.MODES])
    assert '"trace": "trace-0"' in capsys.readouterr().out  # named as info names it


def test_benchmarks_warm_up_first(traces, calls, monkeypatch):
    monkeypatch.setattr(_corpus, "TRACES", traces[0].parent)
    metrics = bench_replay._metrics("default")
    assert metrics["__modes__"] == list(pagealloc.MODES)
    _warm_ups_first(calls, "warm-up", ["t0" for _ in pagealloc.MODES])
