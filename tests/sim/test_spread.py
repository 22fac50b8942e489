"""Issue 20: every replay figure with its spread under seeded perturbation (pagealloc.sim.spread).

Seed 0 is the plain replay; each seed is deterministic; seed 0's F lies in
[F_min, F_max]; the headline calls a difference real only when the ranges
do not overlap; ``replay --seeds``, ``sweep --seeds`` and the report carry it.
"""

from __future__ import annotations

import json
from dataclasses import fields

import numpy as np
import pytest

from pagealloc.cli import main
from pagealloc.results.headline import WITHIN_SPREAD, headline
from pagealloc.results.tables import format_headline
from pagealloc.sim.costmodel import CostModel
from pagealloc.sim.presets import MODES, ReplayConfig
from pagealloc.sim.replay import replay
from pagealloc.sim.spread import (COST_RANGES, LATENESS_DECILES, SPREAD_FIGURES, TS_JITTER_NS, jittered_ts,
                                  perturbed_costs, replay_seed, replay_seeds, spread_record, uniforms)
from pagealloc.trace.synth import write_synthetic


@pytest.fixture(scope="module")
def trace(tmp_path_factory) -> str:
    """A small synthetic trace whose scavenger releases memory (timing recorded: its timestamps are jittered)."""
    path = tmp_path_factory.mktemp("spread") / "burst-idle.parquet"
    write_synthetic(str(path), "burst-idle", 6000, 1)
    return str(path)


def test_seed_0_is_the_plain_replay(trace):
    plain = replay(trace, "go1.14", label="t").deterministic()
    assert replay_seed(trace, ReplayConfig(), None, 0, "t").deterministic() == plain
    assert perturbed_costs(CostModel(), 0) == CostModel()


def test_each_seed_is_deterministic_and_perturbs(trace):
    a = replay_seed(trace, ReplayConfig(), None, 3, "t").deterministic()
    b = replay_seed(trace, ReplayConfig(), None, 3, "t").deterministic()
    assert a == b
    plain = replay(trace, "go1.14", label="t").deterministic()
    assert a["makespan_ns"] != plain["makespan_ns"] or a["released_bytes"] != plain["released_bytes"]


def test_the_draws_are_the_same_on_every_machine():
    """PCG64 + SeedSequence, turned into doubles here: pinned so that a platform or NumPy change shows."""
    assert uniforms(3, 1, "costs").tolist() == [0.14856451377763058, 0.5425410597319892, 0.26933124263715413]
    c = perturbed_costs(CostModel(), 1)
    assert (c.madvise_free_call_ns, c.alloc_ns, c.netpoll_late_ns, c.sysmon_late_ns) == (2369, 215, 68802, 75860)


def test_costs_stay_in_their_documented_ranges():
    base = CostModel()
    for seed in range(1, 60):
        c = perturbed_costs(base, seed)
        for f in fields(CostModel):
            v = getattr(c, f.name)
            if f.name in LATENESS_DECILES:
                d = LATENESS_DECILES[f.name]
                assert d[0] <= v <= d[-1], (seed, f.name, v)
            else:
                r, b = COST_RANGES[f.name], getattr(base, f.name)
                assert round(b * (1 - r)) <= v <= round(b * (1 + r)), (seed, f.name, v)
    # the same seed is one alternative machine for every trace and preset
    assert perturbed_costs(base, 5) == perturbed_costs(base, 5)


def test_jittered_timestamps_stay_in_order_and_near():
    ts = np.array([0, 0, 10, 10, 5_000, 5_001, 9_000_000], dtype=np.int64)
    for seed in range(1, 20):
        j = jittered_ts(ts, seed, "t")
        assert (np.diff(j) >= 0).all()
        assert ((j >= ts) & (j <= ts + TS_JITTER_NS)).all()
        assert (j == jittered_ts(ts, seed, "t")).all()
    assert (jittered_ts(ts, 0, "t") == ts).all()
    assert not (jittered_ts(ts, 1, "t") == jittered_ts(ts, 1, "other trace")).all()


def test_seed_0_lies_within_min_and_max(trace):
    per_mode = replay_seeds(trace, [ReplayConfig(mode=m) for m in MODES], 4, label="t")
    for runs in per_mode:
        rec = spread_record(runs)
        assert rec["seeds"] == 4
        assert rec == {**runs[0], **{k: v for k, v in rec.items() if k not in runs[0]}}  # seed 0's values kept
        for name in SPREAD_FIGURES:
            assert rec[f"{name}_min"] <= rec[name] <= rec[f"{name}_max"], name
        assert any(rec[f"{n}_min"] < rec[f"{n}_max"] for n in SPREAD_FIGURES)  # the seeds do move something


def _record(p_stall, lo, hi, released=100):
    return {"p_stall_ns": p_stall, "p_stall_ns_min": lo, "p_stall_ns_max": hi,
            "alloc_latency_p99_ns": 1, "alloc_latency_p99_ns_min": 1, "alloc_latency_p99_ns_max": 1,
            "alloc_latency_max_ns": 1, "alloc_latency_max_ns_min": 1, "alloc_latency_max_ns_max": 1,
            "released_bytes": released, "released_bytes_min": released, "released_bytes_max": released}


def test_headline_marks_real_differences_and_those_within_the_spread():
    metrics = {
        "apart": {"go1.14": _record(1000, 900, 1100), "locked": _record(2000, 1800, 2300)},
        "overlapping": {"go1.14": _record(1000, 700, 1500), "locked": _record(1300, 1000, 1600)},
    }
    per_trace, same = headline(metrics)
    lines = {group[0].trace: group[0] for group in per_trace}
    assert not same
    assert lines["apart"].real("locked") is True and lines["apart"].verdict("locked") == "real"
    assert lines["overlapping"].real("locked") is False and lines["overlapping"].verdict("locked") == WITHIN_SPREAD
    assert not lines["overlapping"].survives and lines["apart"].survives
    text = format_headline(metrics)
    apart_row = next(row for row in text.splitlines() if row.startswith("| apart"))
    overlap_row = next(row for row in text.splitlines() if row.startswith("| overlapping"))
    assert "real" in apart_row and WITHIN_SPREAD not in apart_row
    assert WITHIN_SPREAD in overlap_row and "[700ns..1.5us]" in overlap_row
    # without a spread (asv's history), nothing is judged
    plain = {t: {m: {k: v for k, v in d.items() if not k.endswith(("_min", "_max"))} for m, d in by.items()}
             for t, by in metrics.items()}
    assert headline(plain)[0][0][0].verdict("locked") == ""
    assert WITHIN_SPREAD not in format_headline(plain)


def test_replay_seeds_json_keeps_seed_0_and_adds_the_range(trace, capsys):
    assert main(["replay", trace, "--mode", "go1.14", "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert main(["replay", trace, "--mode", "go1.14", "--json", "--seeds", "3", "-j", "1"]) == 0
    spread = json.loads(capsys.readouterr().out)
    assert spread["seeds"] == 3
    for name in SPREAD_FIGURES:
        assert spread[name] == plain[name], name
        assert spread[f"{name}_min"] <= plain[name] <= spread[f"{name}_max"]
    assert main(["replay", trace, "--seeds", "3", "-j", "1"]) == 0
    table = capsys.readouterr().out
    assert "seeds min..max" in table and "range over 3 seeds" in table


def test_bad_seeds_is_one_line_and_exit_2(trace, capsys):
    assert main(["replay", trace, "--seeds", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--seeds" in err


def test_sweep_seeds_multiply_the_points_and_are_recorded(trace, tmp_path):
    from pagealloc.sweep import load_grid
    from pagealloc.sweep.replaycall import run_point

    grid_path = tmp_path / "g.toml"
    grid_path.write_text(f'traces = ["{trace}"]\nmodes = ["go1.14"]\n')
    grid = load_grid(grid_path)
    seeded = grid.with_seeds(3)
    assert len(seeded.points) == 3 * len(grid.points)
    assert seeded.points[0].id == grid.points[0].id  # seed 0 keeps its id
    assert len({p.id for p in seeded.points}) == 3
    rows = [run_point(p.as_task()) for p in seeded.points]
    assert [r["seed"] for r in rows] == [0, 1, 2] and all(r["status"] == "ok" for r in rows)
    plain = replay(trace, "go1.14", label="t")
    assert rows[0]["released_bytes"] == plain.released_bytes
    seed1 = replay_seed(trace, ReplayConfig(), None, 1, grid.points[0].trace)
    assert rows[1]["makespan_ns"] == seed1.makespan_ns


def test_parts_perturb_only_what_they_name():
    base = CostModel()
    only_costs = perturbed_costs(base, 2, ("costs",))
    assert (only_costs.netpoll_late_ns, only_costs.sysmon_late_ns) == (base.netpoll_late_ns, base.sysmon_late_ns)
    assert only_costs.alloc_ns != base.alloc_ns or only_costs.madvise_free_call_ns != base.madvise_free_call_ns
    only_late = perturbed_costs(base, 2, ("lateness",))
    assert [getattr(only_late, n) for n in COST_RANGES] == [getattr(base, n) for n in COST_RANGES]
    assert perturbed_costs(base, 2) == CostModel(**{**only_costs.as_dict(), "netpoll_late_ns": only_late.netpoll_late_ns,
                                                     "sysmon_late_ns": only_late.sysmon_late_ns})


def test_timestamps_alone_move_only_the_trace(trace):
    from pagealloc.sim.spread import seeded_inputs

    t, c = seeded_inputs(trace, ReplayConfig(), CostModel(), 4, "t", "synthetic", parts=("timestamps",))
    assert c == CostModel() and t is not trace
    t, c = seeded_inputs(trace, ReplayConfig(timing="closed"), CostModel(), 4, "t", "synthetic")
    assert t is trace and c != CostModel()  # closed timing does not follow timestamps


def test_replay_seeds_table_of_a_go114_recording_keeps_the_runtime_beside_the_model(capsys):
    """A recording's table under --seeds has the plain table's runtime rows (the reference rebuilt from
    the seed records' flat keys, scavenger wake-ups included), not only a synthetic trace's figures."""
    from pathlib import Path

    from pagealloc.sim.result import Reference

    path = str(Path(__file__).resolve().parents[2] / "traces" / "go114-burst-idle-p2.parquet")
    ref = replay(path, "go1.14").reference
    assert ref.scavenger_wakeups and Reference.from_flat(ref.flat()) == ref
    assert main(["replay", path, "--mode", "go1.14"]) == 0
    plain = capsys.readouterr().out
    assert main(["replay", path, "--mode", "go1.14", "--seeds", "2", "-j", "1"]) == 0
    seeded = capsys.readouterr().out
    runtime_rows = plain[plain.index("vs the real Go 1.14.6 runtime"):]
    assert "background scavenger woken by" in runtime_rows
    assert seeded.endswith(runtime_rows)  # seed 0's figures beside the runtime's, as without --seeds
