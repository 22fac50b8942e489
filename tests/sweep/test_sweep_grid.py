"""pagealloc sweep without Dask: the grid file, the results folder, the report, bad input.

Execution on Dask (LocalCluster, a real scheduler, killed workers, resume)
is in test_sweep_dask.py.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

import pagealloc
from pagealloc.cli import main
from pagealloc.errors import UserError
from pagealloc.sim.costmodel import CostModel
from pagealloc.sweep import grid as grid_module
from pagealloc.sweep import load_grid, read_results
from pagealloc.sim.presets import BASELINE_MODE, TIMINGS
from pagealloc.sweep.replaycall import knob_defaults, row_schema
from pagealloc.sweep.store import ResultsWriter
from pagealloc.trace.synth import write_synthetic


@pytest.fixture(scope="module")
def traces(tmp_path_factory) -> Path:
    """A folder with two tiny synthetic traces (as `pagealloc synth ... --events 2000`)."""
    d = tmp_path_factory.mktemp("traces")
    write_synthetic(str(d / "churn.parquet"), "churn", 2000, 1)
    write_synthetic(str(d / "burst-idle.parquet"), "burst-idle", 2000, 1)
    (d / "knobs").mkdir()  # one that releases memory, so retainExtraPercent shows
    write_synthetic(str(d / "knobs" / "frag.parquet"), "fragmentation", 5000, 1)
    return d


def grid_file(folder: Path, text: str, name: str = "grid.toml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_product_of_axes_with_ranges(traces):
    g = load_grid(grid_file(traces, """
        name = "small"
        traces = ["*.parquet"]
        modes = ["locked"]
        timings = ["recorded", "closed"]
        [cost]
        madvise_call_ns = {start = 1000, stop = 16000, factor = 4}
        madvise_page_ns = {start = 100, stop = 350, step = 100}
        page_fault_ns = {values = [700]}
        gc_ns = 600
    """))
    assert g.name == "small"
    assert len(g.points) == 2 * 1 * 2 * 3 * 3
    values = g.axis_values()
    assert values["trace"] == ["burst-idle", "churn"]  # globs sorted
    assert values["cost_madvise_call_ns"] == [1000, 4000, 16000]
    assert values["cost_madvise_page_ns"] == [100, 200, 300]  # stop 350 is not on the step
    assert values["cost_page_fault_ns"] == [700] and values["cost_gc_ns"] == [600]
    assert g.swept() == {"trace": 2, "timing": 2, "cost_madvise_call_ns": 3, "cost_madvise_page_ns": 3}
    assert len({p.id for p in g.points}) == len(g.points)
    p = g.points[0]
    assert Path(p.trace_path).is_absolute() and len(p.trace_sha256) == 64
    assert set(dict(p.cost)) == {f.name for f in dataclasses.fields(CostModel)}  # every field, defaults filled
    assert dict(p.cost)["alloc_ns"] == CostModel().alloc_ns


def test_defaults_are_every_preset_auto_timing_and_go_defaults(traces):
    g = load_grid(grid_file(traces, 'traces = ["churn.parquet"]'))
    assert [p.mode for p in g.points] == list(pagealloc.MODES)
    assert {p.timing for p in g.points} == {"recorded"}  # "auto", named: recorded for a trace not from Go 1.14
    assert all(dict(p.cost) == CostModel().as_dict() and p.cost_file == "" for p in g.points)
    go114 = {k: v for k, v in knob_defaults().items() if v is not None}  # Go 1.14's; gomaxprocs: the trace's
    assert go114 == {"retain_extra_percent": 10, "scavenge_percent": 1, "madvdontneed": False}
    assert all(dict(p.params) == go114 for p in g.points)


def test_points_list_is_a_union_of_products_over_top_level_defaults(traces):
    g = load_grid(grid_file(traces, """
        traces = ["churn.parquet"]
        modes = ["locked"]
        [[points]]
        cost = {madvise_call_ns = 1000}
        [[points]]
        traces = ["burst-idle.parquet", "churn.parquet"]
        modes = "unlocked"
        timings = ["closed"]
    """))
    got = [(p.trace, p.mode, p.timing, dict(p.cost)["madvise_call_ns"]) for p in g.points]
    default = CostModel().madvise_call_ns
    assert got == [("churn", "locked", "recorded", 1000),
                   ("burst-idle", "unlocked", "closed", default), ("churn", "unlocked", "closed", default)]


def test_points_merge_cost_axes_and_count_towards_the_limit(traces, monkeypatch):
    text = """
        traces = ["churn.parquet"]
        modes = ["locked"]
        [cost]
        alloc_ns = [100, 200]
        [[points]]
        cost = {free_ns = [1, 2, 3]}
        [[points]]
        cost = {alloc_ns = 300}
    """
    g = load_grid(grid_file(traces, text))
    got = [(dict(p.cost)["alloc_ns"], dict(p.cost)["free_ns"]) for p in g.points]
    free = CostModel().free_ns
    assert got == [(100, 1), (100, 2), (100, 3), (200, 1), (200, 2), (200, 3), (300, free)]
    monkeypatch.setattr(grid_module, "MAX_POINTS", 6)
    with pytest.raises(UserError, match=r"points\[1\]: the grid has more than the 6 points a sweep accepts"):
        load_grid(grid_file(traces, text))


def test_cost_files_are_bases_the_cost_axes_override(traces):
    (traces / "slow.toml").write_text("madvise_call_ns = 20000\npage_fault_ns = 1500\n")
    g = load_grid(grid_file(traces, """
        traces = ["churn.parquet"]
        modes = ["locked"]
        cost_files = ["slow.toml"]
        [cost]
        page_fault_ns = [500, 900]
    """))
    assert [(dict(p.cost)["madvise_call_ns"], dict(p.cost)["page_fault_ns"]) for p in g.points] == [(20000, 500),
                                                                                                   (20000, 900)]
    assert all(p.cost_file == str((traces / "slow.toml").resolve()) for p in g.points)


def test_trace_sets_from_a_manifest_and_traces_named_twice_count_once(traces):
    (traces / "manifest.json").write_text(json.dumps({"traces": [
        {"name": "churn", "file": "churn.parquet", "set": "default"},
        {"name": "burst-idle", "file": "burst-idle.parquet", "set": "heavy"}]}))
    g = load_grid(grid_file(traces, """
        manifest = "manifest.json"
        trace_sets = ["default", "heavy"]
        traces = ["churn.parquet", "c*.parquet"]
        modes = ["locked"]
    """))
    assert [p.trace for p in g.points] == ["churn", "burst-idle"]


def test_bundled_manifest_sets(traces):
    g = load_grid(grid_file(traces, 'trace_sets = ["default"]\nmodes = ["locked"]'))
    manifest = json.loads(grid_module.DEFAULT_MANIFEST.read_text())["traces"]
    assert [p.trace for p in g.points] == [Path(e["file"]).stem for e in manifest if e["set"] == "default"]


def test_point_id_is_the_replay_not_the_spelling(traces, tmp_path):
    a = load_grid(grid_file(traces, 'traces = ["churn.parquet"]\nmodes = ["locked"]'))
    (tmp_path / "churn.parquet").write_bytes((traces / "churn.parquet").read_bytes())  # same trace elsewhere
    # every parameter spelt out at its default, numbers as floats (10.0 is the replay 10 is)
    explicit = "\n".join(f"{k} = {json.dumps(v if isinstance(v, bool) else float(v))}"
                         for k, v in knob_defaults().items() if v is not None)
    b = load_grid(grid_file(tmp_path, f"""
        traces = ["churn.parquet"]
        modes = ["locked"]
        timings = ["recorded"]
        {explicit}
        [cost]
        madvise_call_ns = {CostModel().madvise_call_ns}
    """))
    assert [p.id for p in a.points] == [p.id for p in b.points]
    c = load_grid(grid_file(traces, 'traces = ["churn.parquet"]\nmodes = ["locked"]\n[cost]\nalloc_ns = 251'))
    assert c.points[0].id != a.points[0].id


def test_unknown_timings_and_knobs_are_refused(traces):
    """A grid naming a timing or a parameter the replay does not have gets one clear error."""
    with pytest.raises(UserError, match=r"timings: timing 'fast' is not supported by this pagealloc"):
        load_grid(grid_file(traces, 'traces = ["churn.parquet"]\ntimings = ["fast"]'))
    with pytest.raises(UserError, match=r"unknown key 'retain_percent'"):
        load_grid(grid_file(traces, 'traces = ["churn.parquet"]\nretain_percent = [5, 20]'))
    with pytest.raises(UserError, match=r"gomaxprocs: must be an integer in \[1, 65536\], got 1.5"):
        load_grid(grid_file(traces, 'traces = ["churn.parquet"]\ngomaxprocs = [1.5]'))


def test_parameters_are_swept(traces):
    g = load_grid(grid_file(traces, """
        traces = ["churn.parquet"]
        modes = ["go1.14"]
        timings = ["shifted"]
        retain_extra_percent = {start = 5, stop = 20, step = 5}
        scavenge_percent = [1, 4]
    """))
    swept = [{k: v for k, v in p.params if k in ("retain_extra_percent", "scavenge_percent")} for p in g.points]
    assert swept[:3] == [{"retain_extra_percent": 5, "scavenge_percent": 1},
                         {"retain_extra_percent": 5, "scavenge_percent": 4},
                         {"retain_extra_percent": 10, "scavenge_percent": 1}]
    assert len(g.points) == 8


# Bad grids: (grid text, the error's tail).  Each is one line and exit status 2 from the CLI.
BAD_GRIDS = [
    ('traces = ["churn.parquet"', "not a valid TOML grid"),
    ('traces = ["churn.parquet"]\nfoo = 1', "unknown key 'foo'"),
    ('traces = ["churn.parquet"]\n[cost]\nmadvise_ns = [1]', "cost: unknown cost-model field 'madvise_ns'"),
    ('traces = ["churn.parquet"]\n[cost]\nalloc_ns = [-1]', "cost.alloc_ns: must be an integer in [0, 1e+12], got -1"),
    ('traces = ["churn.parquet"]\n[cost]\nalloc_ns = [1.5]', "cost.alloc_ns: must be an integer"),
    ('traces = ["churn.parquet"]\n[cost]\nalloc_ns = [true]', "cost.alloc_ns: must be an integer"),
    ('traces = ["churn.parquet"]\n[cost]\nalloc_ns = [1e13]', "cost.alloc_ns: must be an integer"),
    ('traces = ["churn.parquet"]\n[cost]\nalloc_ns = []', "cost.alloc_ns: needs at least one value"),
    ('traces = ["churn.parquet"]\n[cost]\nalloc_ns = [5, 5]', "cost.alloc_ns: lists 5 twice"),
    ('traces = ["churn.parquet"]\n[cost]\nalloc_ns = {start = 1, stop = 9, step = 0}', "range step must be a positive"),
    ('traces = ["churn.parquet"]\n[cost]\nalloc_ns = {start = 9, stop = 1, step = 1}', "range stop 1 is below start 9"),
    ('traces = ["churn.parquet"]\n[cost]\nalloc_ns = {start = 1, stop = 9}', "a range table is {start, stop, step}"),
    ('traces = ["churn.parquet"]\n[cost]\nalloc_ns = {start = 1, stop = 9, step = 1, num = 2}', "a range table is"),
    ('traces = ["churn.parquet"]\n[cost]\nalloc_ns = {start = 1.5, stop = 9, step = 1}', "range start must be an int"),
    ('traces = ["churn.parquet"]\n[cost]\nalloc_ns = {start = 1, stop = 9, factor = 1}', "factor > 1"),
    ('traces = ["churn.parquet"]\n[cost]\nalloc_ns = {start = 0, stop = 100000000000, step = 1}', "more than the 10,000"),
    ('traces = ["churn.parquet"]\ncost = 3', "cost: must be a table"),
    ('traces = ["churn.parquet"]\nmodes = ["fast"]', "modes: mode 'fast' is not supported by this pagealloc"),
    ('traces = ["churn.parquet"]\nmodes = [1]', "modes: a mode is a string, got 1"),
    ('traces = ["churn.parquet"]\ntimings = ["bogus"]', "timings: timing 'bogus' is not supported"),
    ('traces = ["missing.parquet"]', "traces: missing.parquet: no such file"),
    ('traces = ["nothing*.parquet"]', "traces: 'nothing*.parquet' matches no file"),
    ('traces = ["notes.parquet"]', "traces: "),
    ("modes = ['locked']", "no traces: give traces = [paths or globs] or trace_sets"),
    ('traces = [""]', "traces: expected a path"),
    ('trace_sets = ["nightly"]\ntraces = ["churn.parquet"]', "has no set 'nightly'"),
    ('manifest = "nope.json"\ntrace_sets = ["default"]', "cannot read the trace manifest"),
    ('traces = ["churn.parquet"]\ncost_files = ["nope.toml"]', "cost_files: "),
    ('traces = ["churn.parquet"]\ncost_files = ["bad-cost.toml"]', "unknown cost 'alloc'"),
    ('traces = ["churn.parquet"]\ncost_files = ["a.toml", "b.toml"]', "two points are the same replay"),
    ('traces = ["churn.parquet"]\npoints = 3', "points: must be a non-empty array of tables"),
    ('traces = ["churn.parquet"]\n[[points]]\nmode = "locked"', "points[0]: unknown key 'mode'"),
    ('name = 3\ntraces = ["churn.parquet"]', "name: must be a non-empty string"),
    ('traces = ["churn.parquet"]\n[cost]\nalloc_ns = {start = 0, stop = 999, step = 1}\n'
     'free_ns = {start = 0, stop = 999, step = 1}', "the grid has more than the 250,000 points"),
]


@pytest.mark.parametrize("text, message", BAD_GRIDS, ids=[m for _, m in BAD_GRIDS])
def test_bad_grid_is_one_line_and_status_2(traces, tmp_path, capsys, text, message):
    (tmp_path / "churn.parquet").symlink_to(traces / "churn.parquet")
    (tmp_path / "notes.parquet").write_text("not parquet\n")
    (tmp_path / "bad-cost.toml").write_text("alloc = 3\n")
    (tmp_path / "a.toml").write_text("alloc_ns = 300\n")
    (tmp_path / "b.toml").write_text("alloc_ns = 300\n")
    path = grid_file(tmp_path, text, "bad.toml")
    assert main(["sweep", str(path), "-o", str(tmp_path / "out"), "--serial"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"pagealloc: error: {path}: "), err
    assert message in err, err
    assert not (tmp_path / "out").exists()  # nothing ran, nothing was written


def test_bad_cli_use_is_one_line_and_status_2(traces, tmp_path, capsys):
    g = grid_file(traces, 'traces = ["churn.parquet"]')
    for argv, message in [
        (["sweep", str(tmp_path / "none.toml"), "-o", str(tmp_path / "o")], "cannot read grid"),
        (["sweep", str(g), "-o", str(tmp_path / "o"), "--serial", "--workers", "2"], "--serial runs without Dask"),
        (["sweep", str(g), "-o", str(tmp_path / "o"), "--flush-seconds", "-1"], "--flush-seconds must be >= 0"),
        (["sweep", str(g), "-o", str(tmp_path / "o"), "--workers", "0"], "--workers must be at least 1"),
        (["sweep", str(g), "-o", str(tmp_path / "o"), "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"],
         "--workers sizes the embedded LocalCluster"),
        (["sweep", str(g)], "required: -o"),
        (["sweep-report", str(tmp_path / "nothing")], "no such results folder"),
        (["sweep-report", str(traces)], "not a sweep results folder"),
    ]:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("pagealloc: error: ") and message in err, (argv, err)


def test_output_that_is_not_a_results_folder_is_refused(traces, tmp_path, capsys):
    g = grid_file(traces, 'traces = ["churn.parquet"]\nmodes = ["locked"]')
    (tmp_path / "file").write_text("x")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "mine.txt").write_text("x")
    for out, message in [("file", "file: not a sweep results folder"), ("folder", "folder: not a sweep results folder")]:
        assert main(["sweep", str(g), "-o", str(tmp_path / out), "--serial"]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert (tmp_path / "folder" / "mine.txt").read_text() == "x"


def test_serial_sweep_rows_and_read_back(traces, tmp_path, capsys):
    g = grid_file(traces, """
        traces = ["knobs/frag.parquet"]
        retain_extra_percent = [5, 20]
        scavenge_percent = [1, 2.5]
        madvdontneed = [false, true]
        [cost]
        madvise_call_ns = [1000, 20000]
    """)
    out = tmp_path / "results.parquet"
    n = 16 * len(pagealloc.MODES)
    assert main(["sweep", str(g), "-o", str(out), "--serial"]) == 0
    assert f"{n} run ({n} ok, 0 failed)" in capsys.readouterr().out
    df = read_results(out)
    assert len(df) == n and df["point_id"].is_unique and set(df["status"]) == {"ok"}
    schema, kinds = row_schema()
    assert list(df.columns) == schema.names and "retained_timeline" in kinds["json_columns"]
    assert df.attrs["pagealloc-sweep"]["point_columns"][:3] == ["point_id", "trace", "mode"]
    for name, _ in pagealloc.ReplayResult.flat_fields():  # every result field flows through, the reference's flat
        assert name in df.columns
    assert isinstance(df["retained_timeline"][0], list) and df["retained_timeline"][0]
    assert str(df["released_bytes"].dtype) == "Int64"
    assert set(df["cost_madvise_call_ns"]) == {1000, 20000} and set(df["scavenge_percent"]) == {1.0, 2.5}
    assert set(zip(df["madvdontneed"], df["madvise_advice"])) == {(False, "MADV_FREE"), (True, "MADV_DONTNEED")}
    from importlib.metadata import version

    assert set(df["pagealloc_version"]) == {version("pagealloc")}
    assert df["commit"].str.fullmatch("[0-9a-f]{40}|unknown").all()
    # the rows are the replays: compare one with a direct replay
    row = df[(df["mode"] == "locked") & (df["cost_madvise_call_ns"] == 20000) & (df["retain_extra_percent"] == 20)
             & (df["scavenge_percent"] == 2.5) & df["madvdontneed"]].iloc[0]
    direct = pagealloc.replay(traces / "knobs" / "frag.parquet", "locked", cost_model=CostModel(madvise_call_ns=20000),
                              retain_extra_percent=20, scavenge_percent=2.5, madvdontneed=True)
    for name, value in direct.deterministic().items():
        got = row[name]
        if value is None:  # e.g. the reference_* fields of a trace without a reference: stored as NA
            import pandas as pd

            assert got is None or pd.isna(got), name
            continue
        assert (got == json.loads(json.dumps(value))) if isinstance(value, list) else got == value, name
    # the knobs matter: retaining more releases less
    by_retain = df[df["mode"] == "locked"].groupby("retain_extra_percent")["released_bytes"].sum()
    assert by_retain[5] > by_retain[20] > 0
    # a rerun runs nothing
    assert main(["sweep", str(g), "-o", str(out), "--serial"]) == 0
    assert "nothing to run" in capsys.readouterr().out
    assert len(read_results(out)) == len(df)


def test_failed_point_is_a_row_with_its_error(traces, tmp_path, capsys):
    import pandas as pd

    bad = traces.parent / "bad-rows"
    bad.mkdir(exist_ok=True)
    # a valid header, then a free of a span never allocated: found only while replaying
    pd.DataFrame({"ts": [0, 1], "op": ["alloc", "free"], "span": [1, 2], "npages": [1, 1]}).to_parquet(
        bad / "freed.parquet")
    g = grid_file(bad, 'traces = ["freed.parquet"]\nmodes = ["locked"]')
    out = tmp_path / "out"
    assert main(["sweep", str(g), "-o", str(out), "--serial"]) == 1
    captured = capsys.readouterr()
    assert "1 run (0 ok, 1 failed)" in captured.out
    assert captured.err.count("\n") == 1 and "1 of 1 points failed" in captured.err
    df = read_results(out)
    assert list(df["status"]) == ["error"]
    assert "UserError" in df["error"][0] and "free of unknown span 2" in df["error"][0]
    assert df["released_bytes"].isna().all() and df["trace"][0] == "freed" and df["mode"][0] == "locked"


def test_results_of_another_commit_are_not_resumed(traces, tmp_path, capsys):
    g = grid_file(traces, 'traces = ["churn.parquet"]\nmodes = ["locked"]')
    out = tmp_path / "out"
    point = load_grid(g).points[0]
    w = ResultsWriter(out, *row_schema())
    w.add({"point_id": point.id, "status": "ok", "error": "", "commit": "0" * 40, "pagealloc_version": "0.0.1"})
    w.close()
    assert main(["sweep", str(g), "-o", str(out), "--serial"]) == 2
    err = capsys.readouterr().err
    assert "holds results of pagealloc 0.0.1 at commit 0000000000000000000000000000000000000000" in err
    assert err.count("\n") == 1


def test_unreadable_part_is_an_error_and_half_written_parts_are_ignored(traces, tmp_path, capsys):
    g = grid_file(traces, 'traces = ["churn.parquet"]\nmodes = ["locked"]')
    out = tmp_path / "out"
    assert main(["sweep", str(g), "-o", str(out), "--serial"]) == 0
    (out / ".part-crashed.parquet").write_bytes(b"PAR1 half a part")  # what a crash mid-write leaves
    assert len(read_results(out)) == 1
    assert main(["sweep", str(g), "-o", str(out), "--serial"]) == 0
    assert not (out / ".part-crashed.parquet").exists()
    (out / "part-truncated.parquet").write_bytes(b"PAR1 truncated")
    assert main(["sweep-report", str(out), "-o", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err
    assert "part-truncated.parquet: unreadable results part" in err and err.count("\n") == 1


def test_sweep_report_plots_each_metric_against_each_swept_axis(traces, tmp_path, capsys):
    fom = tmp_path / "fom.parquet"  # FreeOSMemory: where the presets differ (locked scavengeAll, unlocked steps)
    write_synthetic(str(fom), "freeosmemory", 20000, 2)
    g = grid_file(traces, f"""
        traces = ["*.parquet", "knobs/frag.parquet", "{fom}"]
        [cost]
        madvise_call_ns = [1000, 20000]
        page_fault_ns = {{values = [1100]}}  # one value: not an axis
    """)
    out = tmp_path / "results"
    assert main(["sweep", str(g), "-o", str(out), "--serial"]) == 0
    rep = tmp_path / "report"
    assert main(["sweep-report", str(out), "-o", str(rep)]) == 0
    assert f"sweep-report: {rep / 'index.html'}" in capsys.readouterr().out
    page = (rep / "index.html").read_text()
    pngs = sorted(p.name for p in rep.glob("*.png") if "--vs-" not in p.name)
    from pagealloc.sweep.report import metrics

    shown = metrics(read_results(out))
    assert "mutator_stall_ns" in shown or "makespan_ns" in shown
    assert pngs == sorted(f"cost_madvise_call_ns--{m}.png" for m in shown)
    for png in pngs:
        assert f'src="{png}"' in page and (rep / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Against cost_madvise_call_ns" in page and "Against cost_page_fault_ns" not in page
    assert "wall_seconds" not in "".join(pngs)
    # relative to the baseline preset: one PNG per axis, the ratios taken at the same point
    from pagealloc.sweep.report import ratios_to_baseline

    base = BASELINE_MODE
    assert f"Relative to {base}" in page
    assert (rep / f"cost_madvise_call_ns--vs-{base}.png").exists()
    df = read_results(out)
    ratios = ratios_to_baseline(df, ["makespan_ns"], base)
    assert len(ratios) == len(df) - len(df[df["mode"] == base]) and base not in set(ratios["mode"])
    r = ratios.iloc[0]
    at = (df["trace"] == r["trace"]) & (df["cost_madvise_call_ns"] == r["cost_madvise_call_ns"])
    other, baseline = df[at & (df["mode"] == r["mode"])].iloc[0], df[at & (df["mode"] == base)].iloc[0]
    assert r["makespan_ns"] == pytest.approx(other["makespan_ns"] / baseline["makespan_ns"])


def test_example_grid_is_valid():
    """examples/sweep-small.toml, the README's example: 54 points over the bundled corpus."""
    g = load_grid(Path(__file__).resolve().parents[2] / "examples" / "sweep-small.toml")
    assert len(g.points) == 54
    assert g.swept() == {"trace": 2, "mode": 3, "cost_madvise_free_call_ns": 3, "retain_extra_percent": 3}


def test_every_timing_of_the_installed_replay_is_swept(traces, tmp_path):
    timings = TIMINGS
    g = grid_file(traces, f'traces = ["churn.parquet"]\nmodes = ["locked"]\ntimings = {json.dumps(list(timings))}')
    out = tmp_path / "out"
    assert main(["sweep", str(g), "-o", str(out), "--serial"]) == 0
    df = read_results(out)
    # "auto" is the point of the timing it stands for on this (synthetic) trace: recorded
    assert sorted(df["timing"]) == sorted(set(timings) - {"auto"}) and set(df["status"]) == {"ok"}
    closed = df[df["timing"] == "closed"].iloc[0]
    direct = pagealloc.replay(traces / "churn.parquet", "locked", timing="closed")
    assert closed["makespan_ns"] == direct.makespan_ns


def test_auto_timing_is_ordered_for_a_go_1_14_recording(traces):
    go114 = Path(__file__).resolve().parents[2] / "traces" / "go114-churn-p2.parquet"
    g = load_grid(grid_file(traces, f'traces = ["churn.parquet", "{go114}"]\nmodes = ["locked"]\ntimings = ["auto", "recorded"]'))
    assert [(p.trace, p.timing) for p in g.points] == [("churn", "recorded"), ("go114-churn-p2", "ordered"),
                                                       ("go114-churn-p2", "recorded")]


def test_gomaxprocs_is_an_axis_and_reaches_the_replay(traces):
    """gomaxprocs swept: each point replays with that many Ps (the result says so), and a
    point that does not name it keeps the trace's own (no gomaxprocs in its parameters)."""
    from pagealloc.sweep.replaycall import run_point

    g = load_grid(grid_file(traces, 'traces = ["churn.parquet"]\nmodes = ["locked"]\ngomaxprocs = [2, 4, 64]'))
    assert [dict(p.params)["gomaxprocs"] for p in g.points] == [2, 4, 64]
    rows = [run_point(p.as_task()) for p in g.points]
    assert [r["status"] for r in rows] == ["error", "ok", "ok"] and [r["gomaxprocs"] for r in rows[1:]] == [4, 64]
    assert "p 2 is not below the trace's gomaxprocs 2" in rows[0]["error"]  # the trace's Ps run P 0..3
    plain = load_grid(grid_file(traces, 'traces = ["churn.parquet"]\nmodes = ["locked"]'))
    assert "gomaxprocs" not in dict(plain.points[0].params)
