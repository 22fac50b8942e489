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
