"""The synthetic generator: exact event counts, byte-identical output for
the same arguments, valid traces, and the memory shape each scenario
promises.  (Speed is deliberately not a timed test.)"""

from __future__ import annotations

import numpy as np
import pytest

from pagealloc.cli import main
from pagealloc.trace import OP_ALLOC, OP_FREE, OP_FREE_OS_MEMORY, OP_GC, OP_GC_START, iter_event_batches, validate_trace
from pagealloc.trace.synth import SCENARIOS, synthesize

N = 30_000


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_same_arguments_give_byte_identical_files(tmp_path, capfd, scenario):
    a, b, c = (tmp_path / f"{x}.parquet" for x in "abc")
    for path, seed in ((a, 7), (b, 7), (c, 8)):
        assert main(["synth", scenario, "-o", str(path), "--events", str(N), "--seed", str(seed)]) == 0
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    assert capfd.readouterr().out.splitlines()[0] == f"{a}: {N} events of {scenario} (seed 7)"


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_scenarios_are_valid_with_exact_counts(tmp_path, scenario):
    path = tmp_path / "s.parquet"
    assert main(["synth", scenario, "-o", str(path), "--events", str(N), "--seed", "3"]) == 0
    s = validate_trace(path)
    assert s.events == N and s.metadata["events"] == N
    assert s.metadata["source"] == "synthetic"
    assert s.metadata["generator"] == {"name": "pagealloc synth", "scenario": scenario, "events": N, "seed": 3}
    assert s.counts["gc"] > 0 and s.counts["alloc"] > N // 3 and s.counts["free"] > N // 4
    assert s.first_ts == 0
    # Bounded heap: no scenario lets the live heap run away (well under 1 GiB).
    assert s.peak_pages * 8192 < 1 << 30


@pytest.mark.parametrize("events", [0, 1, 2, 17])
def test_tiny_traces(events):
    cols = synthesize("churn", events, 1)
    assert all(len(v) == events for v in cols.values())


def _live_mib(cols):
    n = cols["npages"].astype(np.int64)
    live = np.cumsum(np.where(cols["op"] == OP_ALLOC, n, 0) - np.where(cols["op"] == OP_FREE, n, 0))
    return live * 8192 / 2**20


def test_burst_idle_shrinks_and_idles():
    cols = synthesize("burst-idle", 60_000, 1)
    live = _live_mib(cols)
    gaps = np.diff(cols["ts"])
    assert live.min(initial=0) >= 0 and live[len(live) // 2 :].min() < live.max() / 3  # the heap shrinks
    assert gaps.max() >= 100_000_000  # idle periods of >= 100 ms with no events


def test_freeosmemory_rows_follow_the_release():
    cols = synthesize("freeosmemory", 60_000, 1)
    fom = np.flatnonzero(cols["op"] == OP_FREE_OS_MEMORY)
    live = _live_mib(cols)
    assert len(fom) >= 5
    assert all(live[i] < live[:i].max() / 2 for i in fom[1:])  # called when the working set is gone
    assert ((cols["p"][fom] >= 0) & (cols["p"][fom] < 4)).all()  # the calling goroutine's P
    # debug.FreeOSMemory runs a GC first: each row follows its own gc_start and gc rows
    assert (cols["op"][fom - 1] == OP_GC).all() and (cols["op"][fom - 2] == OP_GC_START).all()
    assert (cols["p"][fom - 1] == -1).all() and (cols["p"][fom - 2] == -1).all()


def test_every_gc_has_a_mark_start_before_it():
    cols = synthesize("churn", 50_000, 1)
    starts, ends = np.flatnonzero(cols["op"] == OP_GC_START), np.flatnonzero(cols["op"] == OP_GC)
    assert len(starts) == len(ends) > 3
    assert (starts < ends).all() and (ends[:-1] < starts[1:]).all()  # windows in order, never nested


def test_gc_rows_carry_goals_of_at_least_4_mib():
    cols = synthesize("churn", 50_000, 1)
    gc = cols["op"] == OP_GC
    start = cols["op"] == OP_GC_START
    assert (cols["value"][gc] >= 4 << 20).all() and (cols["value"][~gc & ~start] == 0).all()
    # a gc_start row carries the live heap then, which startCycle keeps 1 MiB below the goal
    assert (cols["value"][start] > 0).all()
    live_bytes = _live_mib(cols)[gc] * 2**20
    assert (cols["value"][gc] >= 2 * live_bytes).all()  # GOGC=100


def test_growth_storms_get_bigger():
    live = _live_mib(synthesize("growth-storm", 100_000, 1))
    third = len(live) // 3
    assert live[:third].max() < live[2 * third :].max()


def test_synth_streams_back_in_batches(tmp_path):
    path = tmp_path / "s.parquet"
    assert main(["synth", "fragmentation", "-o", str(path), "--events", "100000"]) == 0
    assert sum(len(b.ts) for b in iter_event_batches(path, batch_rows=10_000)) == 100_000


@pytest.mark.parametrize(
    "argv, text",
    [
        (["synth", "nope", "-o", "x.parquet"], "invalid choice: 'nope'"),
        (["synth", "churn", "-o", "x.parquet", "--events", "-1"], "--events must be >= 1"),
        (["synth", "churn", "-o", "x.parquet", "--events", "0"], "--events must be >= 1"),
        (["synth", "churn", "-o", "x.parquet", "--seed", "-2"], "--seed must be >= 0"),
        (["synth", "churn", "--events", "10"], "the following arguments are required: -o/--output"),
        (["synth", "churn", "-o", "/nonexistent-dir/x.parquet"], "/nonexistent-dir/x.parquet: cannot write"),
    ],
)
def test_synth_usage_errors(capfd, argv, text):
    assert main(argv) == 2
    err = capfd.readouterr().err
    assert err.startswith("pagealloc: error: ") and text in err and err.count("\n") == 1
