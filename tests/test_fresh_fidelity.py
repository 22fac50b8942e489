"""scripts/fresh-fidelity's summary lines, on made-up runs (recording them needs Go 1.14.6: see
tests/trace/test_go114_record.py for the fresh-service recording at the issue's bounds)."""

from __future__ import annotations


def _runs(*pairs):
    return [{"model_mib": m, "real_mib": r, "model_n": 10 * m, "real_n": 10 * r} for m, r in pairs]


def test_pairs_compares_the_model_with_its_run_and_go_runs_with_each_other(load_script):
    pairs = load_script("fresh-fidelity")._pairs
    # The model follows each run exactly; the Go runs are 1, 3 and 10 MiB: no two within 0.5-2x in bytes.
    line = pairs(_runs((1, 1), (3, 3), (10, 10)))
    assert line.startswith("bytes within 0.5-2x: model against its own run 100%, a Go run against another 0%, "
                           "the model against another run 0%;")
    # The model is 3x off each run (out), while two of the Go runs are alike (2 of 6 ordered pairs in).
    line = pairs(_runs((3, 1), (3.6, 1.2), (30, 10)))
    assert "bytes within 0.5-2x: model against its own run 0%, a Go run against another 33%" in line
    assert "count within 0.67-1.5x: model against its own run 0%, a Go run against another 33%" in line
    # One run: there is no other run to compare with.
    assert "a Go run against another -" in pairs(_runs((1, 1)))


def test_own_crits_line_tells_which_misses_the_runtime_crits_explain(load_script):
    own_crits = load_script("fresh-fidelity")._own_crits

    def run(count, nbytes, own_count, own_bytes, long_crits):
        return {"released_background_count": count, "released_background_bytes": nbytes, "long_crits": long_crits,
                "own_crits": {"released_background_count": own_count, "released_background_bytes": own_bytes}}

    # Run 1 is out in bytes and in when fed Go's crits; run 2 is in both ways; run 3 is in, and out when fed.
    line = own_crits([run(1.0, 0.32, 1.1, 0.66, 5), run(1.0, 1.0, 1.0, 1.0, 1), run(1.0, 1.06, 0.97, 2.49, 0)])
    assert line == ("fed the runtime's own crits: 2 of 3 within the bounds (1 of the model's misses in, 1 of its "
                    "hits out); runtime crits of 1 ms or more: 6 in 3 runs, 5 in the model's misses")


def test_around_and_busy_lines_count_the_runs_each_applies_to(load_script):
    """Session 22's lines: the runs sysmon's in-run probe priced, priced with the probes around the run only
    (recordings before record stream version 6 have no such replay: None), and the runs recorded beside
    other processes' load."""
    script = load_script("fresh-fidelity")

    def run(count, nbytes, around, busy=False):
        return {"released_background_count": count, "released_background_bytes": nbytes, "busy": busy,
                "around": None if around is None else {"released_background_count": around[0],
                                                       "released_background_bytes": around[1]}}

    # Run 1 is in both ways; run 2 is out in bytes and in from the probes around; run 3 has no in-run probe.
    rows = [run(1.0, 1.0, (1.1, 0.9), busy=True), run(1.0, 2.3, (1.0, 1.5)), run(0.9, 0.8, None)]
    assert script._around(rows) == ("priced with the probes around the run only: 2 of 2 within the bounds "
                                    "(1 of the model's misses in, 0 of its hits out)")
    assert script._around([run(1.0, 1.0, None)]).endswith("(the recordings predate sysmon's in-run probe)")
    # Session 28's line, the same count over the runs priced by the probe's level about each release's time
    for r, mean in zip(rows, [(1.0, 2.2), (1.0, 1.9), None]):
        r["mean"] = None if mean is None else {"released_background_count": mean[0], "released_background_bytes": mean[1]}
    assert script._mean(rows) == ("priced at the in-run probe's mean over the run: 1 of 2 within the bounds "
                                  "(1 of the model's misses in, 1 of its hits out)")
    assert script._busy(rows) == ("recorded beside other load (other processes above 10% of the CPUs): 1 of 3 "
                                  "runs, 1 of them within the bounds")


def test_redrawn_line_names_the_runs_that_hinge_on_the_draw_of_the_crits(load_script):
    """Session 29's line: each run fed the runtime's own crits in another order (4 draws); a run out on
    some draw hinges on which release met the OS's preemptions, and the model's misses among those."""
    script = load_script("fresh-fidelity")

    def ratios(count, nbytes):
        return {"released_background_count": count, "released_background_bytes": nbytes}

    def run(name, count, nbytes, draws):
        return {"name": name, **ratios(count, nbytes), "redrawn": [ratios(*d) for d in draws]}

    rows = [run("service-0", 1.0, 2.6, [(1.0, 2.5), (1.0, 1.9), (1.0, 2.4), (1.0, 1.0)]),  # a miss that hinges
            run("service-1", 1.0, 1.0, [(1.0, 1.0)] * 4),
            run("service-2", 1.0, 0.4, [(1.0, 0.9)] * 4),  # a miss that the draws do not reach
            run("service-3", 1.1, 1.2, [(1.0, 0.45), (1.0, 1.0), (1.6, 1.0), (1.0, 1.0)])]  # a hit that hinges
    assert script._redrawn(rows) == (
        "fed the runtime's own crits in another order within each 32 one-page releases (4 draws a run): 12 of "
        "16 draws within the bounds; runs out on some draw: 2 of 4 (service-0 2 of 4, service-3 2 of 4); the "
        "model's misses among them: 1 of 2")
    assert script._redrawn(rows[1:2]).endswith("runs out on some draw: 0 of 1; the model's misses among them: 0 of 0")
