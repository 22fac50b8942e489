"""Trace format v3: side tables (the Ps' schedule, scheduler events, scavenger iterations).

Written by TraceWriter beside v2's rows, read back by p_schedule /
sched_events / scavenger_iterations; files without them stay version 2 and
read as before; a broken side table is one ``pagealloc: error:`` line and
exit status 2 from ``pagealloc validate``.  The Go 1.14.6 record stream's
schedule records become these tables (pagealloc.trace.go114sched).
"""

from __future__ import annotations

import base64

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tracefiles import rewrite_metadata

from pagealloc.cli import main
from pagealloc.errors import UserError
from pagealloc.trace import (
    SIDE_TABLES,
    TraceWriter,
    iter_event_batches,
    make_metadata,
    p_schedule,
    read_trace,
    scavenger_iterations,
    sched_events,
    trace_metadata,
    validate_trace,
)
from pagealloc.trace.format import OP_ALLOC, OP_FREE
from pagealloc.trace.go114records import EVENTS, HEAP_BASE, MAGIC, RECORD, VERSION, import_records
from pagealloc.trace.go114sched import timing_summary

PAGE = 8192


def schedule(rows) -> pa.Table:
    ts, p, state, reason = zip(*rows)
    return pa.table({"ts": list(ts), "p": list(p), "state": list(state), "reason": list(reason)})


SCHED = schedule([(0, 0, "user", ""), (5, 1, "idle", ""), (9, 0, "sched", "preempt"), (9, 0, "scavenger", "")])


def write(path, tables=None):
    with TraceWriter(path, make_metadata("synthetic", name="t"), tables) as w:
        w.write(np.array([0, 10]), np.array([OP_ALLOC, OP_FREE]), np.array([3, 3]), np.array([2, 2]))
    return path


def test_side_table_round_trip_and_rows_unchanged(tmp_path):
    plain, side = write(tmp_path / "plain.parquet"), write(tmp_path / "side.parquet", {"p_schedule": SCHED})
    assert trace_metadata(plain)["version"] == 2 and "tables" not in trace_metadata(plain)
    meta = trace_metadata(side)
    assert (meta["version"], meta["tables"]) == (3, {"p_schedule": {"rows": 4}})
    got = p_schedule(side)
    assert got.schema == SIDE_TABLES["p_schedule"]
    assert got.to_pydict() == {"ts": [0, 5, 9, 9], "p": [0, 1, 0, 0], "state": ["user", "idle", "sched", "scavenger"],
                               "reason": ["", "", "preempt", ""]}
    assert p_schedule(plain) is None and scavenger_iterations(side) is None and sched_events(side) is None
    # The rows a v2 reader consumes are the same with and without the side table.
    a, b = (next(iter_event_batches(f)) for f in (plain, side))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert read_trace(side).equals(read_trace(plain))
    assert p_schedule(read_trace(side)).equals(got)  # read_trace keeps the side tables in its schema metadata
    assert pq.read_table(side).num_rows == 2  # any Parquet reader sees just the events


def test_a_side_table_read_lets_go_of_its_bytes_when_it_returns():
    """pyarrow's threaded read of a Python buffer could drop its last reference to the buffer on a pool
    thread after returning (28 of 200 reads of a recording's p_schedule): at the interpreter's exit that
    aborted the process (apache/arrow#34314).  The side tables are read on the calling thread."""
    import sys

    from pagealloc.trace.sidetables import read_parquet_bytes

    n = 50_000
    table = pa.table({"ts": np.arange(n, dtype=np.int64), "p": np.arange(n, dtype=np.int32) % 4,
                      "state": pa.array(["user", "idle"] * (n // 2)).dictionary_encode()})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, row_group_size=n // 8)
    data = sink.getvalue().to_pybytes()
    held = sys.getrefcount(data)
    for _ in range(50):
        got = read_parquet_bytes(data)
        assert sys.getrefcount(data) == held
        assert got.num_rows == n and got.column("ts").equals(table.column("ts"))



def _bad_blob(table: pa.Table):
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return base64.b64encode(sink.getvalue().to_pybytes())


BROKEN = [
    ("corrupt", lambda m: None, lambda kv: kv.update({b"pagealloc.p_schedule": base64.b64encode(b"PAR1 not parquet")}), "truncated or corrupt"),
    ("not-base64", lambda m: None, lambda kv: kv.update({b"pagealloc.p_schedule": b"%%%"}), "truncated or corrupt"),
    ("missing-key", lambda m: None, lambda kv: kv.pop(b"pagealloc.p_schedule"), "its key 'pagealloc.p_schedule' is missing"),
    ("row-count", lambda m: m["tables"]["p_schedule"].update(rows=7), None, "metadata says 7 rows but it has 4"),
    ("unknown-table", lambda m: m["tables"].update(martian={"rows": 0}), None, "unknown side table 'martian'"),
    ("v2-with-tables", lambda m: m.update(version=2), None, "side tables are format v3"),
    ("bad-state", None, lambda kv: kv.update({b"pagealloc.p_schedule": _bad_blob(schedule([(0, 0, "dancing", ""), (1, 0, "idle", ""), (2, 0, "idle", ""), (3, 0, "idle", "")]))}),
     "unknown state 'dancing'"),
    ("ts-backwards", None, lambda kv: kv.update({b"pagealloc.p_schedule": _bad_blob(schedule([(0, 0, "user", ""), (5, 0, "idle", ""), (4, 0, "user", ""), (6, 0, "idle", "")]))}),
     "row 2: ts 4 is negative or before the previous row's"),
    ("columns", None, lambda kv: kv.update({b"pagealloc.p_schedule": _bad_blob(pa.table({"ts": [0, 1, 2, 3], "p": [0] * 4, "state": ["idle"] * 4}))}),
     "expected ts, p, state, reason"),
]


@pytest.mark.parametrize("name,edit_meta,edit_keys,message", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_side_tables_one_line_exit_2(tmp_path, capfd, name, edit_meta, edit_keys, message):
    good = write(tmp_path / "good.parquet", {"p_schedule": SCHED})
    bad = rewrite_metadata(good, tmp_path / "bad.parquet", edit_meta, edit_keys)
    assert main(["validate", str(bad)]) == 2
    out, err = capfd.readouterr()
    lines = err.splitlines()
    assert out == "" and len(lines) == 1 and lines[0].startswith("pagealloc: error: ") and "Traceback" not in err, err
    assert message in lines[0], lines[0]
    with pytest.raises(UserError, match=message.split("(")[0][:20]):
        p_schedule(bad)


# --------------------------------------------------------------------------
# From a Go 1.14.6 record stream


def rec(ev, *words, p=-1, flags=0, x=0, ts=0):
    return (ts, EVENTS[ev] | flags << 8 | (p + 1) << 16 | x << 32, list(words) + [0] * (6 - len(words)))


def test_record_stream_schedule_and_iterations(tmp_path):
    base = HEAP_BASE
    records = [
        rec("start", MAGIC, VERSION, 4096, PAGE, 64 << 20, 0, ts=50),
        rec("procs", x=2, ts=60),
        rec("alloc", base, 1, 0, p=0, x=2, ts=100),  # the trace's clock starts here
        rec("run", 1, 0, 0, p=0, x=0, flags=0, ts=110),  # P0 runs a user goroutine
        rec("idle", p=-1, x=1, ts=120),  # P1 idle
        rec("run", 7, 0, 0, p=0, x=0, flags=3, ts=200),  # P0 runs the scavenger
        rec("scav_iter", 3000, 3000, 8192, 300000, np.float64(0.01).view(np.uint64), p=0, ts=210),
        rec("scav_sleep", 205, 205 + 300000, 300000, 1, p=0, x=0, ts=215),
        rec("stop", 7, 3, p=0, x=0, flags=1, ts=220),  # it parks
        rec("run", 1, 0, 0, p=0, x=0, flags=0, ts=230),
        rec("preempt_req", 230, x=0, ts=10_000_230),
        rec("stop", 1, 0, p=0, x=0, flags=3, ts=10_000_300),  # preempted by sysmon
        rec("timer_fire", 205 + 300000, 10_000_310, 1, 0, p=0, x=0, ts=10_000_320),  # schedule's checkTimers
        rec("scav_ready", p=0, flags=1, ts=10_000_330),
        rec("run", 7, 0, 0, p=0, x=0, flags=3, ts=10_000_400),
        rec("scav_woke", 10_000_195, p=0, ts=10_000_410),
        rec("stw", 0, p=0, flags=1, ts=10_000_500),
        rec("stw", 3, p=0, flags=0, ts=10_000_600),  # P0 goes on running the scavenger
        rec("sweep_done", 4, 1, p=1, ts=10_000_700),
        rec("free", base, 1, p=0, ts=10_000_800),
        rec("heap_lock", 0, 0, ts=10_000_900),  # version 5: the heap lock's totals before the end
        rec("end", 64 << 20, 0, 0, 0, 0, 2, ts=10_000_900),
    ]
    arr = np.zeros(len(records), RECORD)
    for i, r in enumerate(records):
        arr[i] = r
    path = tmp_path / "r.bin"
    arr.tofile(path)
    out = tmp_path / "t.parquet"
    import_records(str(path), str(out))
    validate_trace(out)
    s = p_schedule(out).to_pydict()
    assert list(zip(s["ts"], s["p"], s["state"], s["reason"])) == [
        (10, 0, "user", ""), (20, 1, "idle", ""), (100, 0, "scavenger", ""), (120, 0, "sched", "park"), (130, 0, "user", ""),
        (10_000_200, 0, "sched", "preempt"), (10_000_300, 0, "scavenger", ""),
        (10_000_400, 0, "stopped", "stw"), (10_000_400, 1, "stopped", "stw"),
        (10_000_500, 0, "scavenger", "start_the_world"), (10_000_500, 1, "sched", "start_the_world"),
    ]
    e = sched_events(out).to_pydict()
    assert list(zip(e["ts"], e["p"], e["event"], e["value"])) == [(10_000_130, 0, "preempt_request", 230), (10_000_600, 1, "sweep_done", 1)]
    it = scavenger_iterations(out).to_pylist()
    assert len(it) == 1
    row = it[0]
    assert {k: row[k] for k in ("ts", "p", "outcome", "crit_ns", "released_bytes", "sleep_ns", "wake_at", "timer_p", "fired_ts",
                                "fired_p", "fired_by", "woken_by", "ready_p", "next_run_ts", "next_run_p", "slept_ns")} == {
        "ts": 110, "p": 0, "outcome": "sleep", "crit_ns": 3000, "released_bytes": 8192, "sleep_ns": 300000,
        "wake_at": 105 + 300000, "timer_p": 0, "fired_ts": 10_000_220, "fired_p": 0, "fired_by": "preempt",
        "woken_by": "timer", "ready_p": 0, "next_run_ts": 10_000_300, "next_run_p": 0, "slept_ns": 10_000_195,
    }
    assert row["ewma"] == pytest.approx(0.01)
    summary = timing_summary(scavenger_iterations(out))
    assert (summary["iterations"], summary["parks"], summary["crit_p50_ns"], summary["fired_by"]) == (1, 0, 3000.0, {"preempt": 1})
    assert summary["late_p50_ns"] == 10_000_220 - (105 + 300000)


def test_a_timer_without_a_p_is_minus_one(tmp_path):
    """A sleep so short that its timer fired (and left its P's heap) before the record: timer_p -1, not 2**32 - 1."""
    base = HEAP_BASE
    records = [
        rec("start", MAGIC, VERSION, 4096, PAGE, 64 << 20, 0, ts=50),
        rec("alloc", base, 1, 0, p=0, x=2, ts=100),
        rec("scav_iter", 10, 10, 8192, 0, 0, p=0, ts=110),
        rec("scav_sleep", 105, 105, 0, 0, p=0, x=2**32 - 1, ts=115),
        rec("free", base, 1, p=0, ts=200),
        rec("heap_lock", 0, 0, ts=300),  # version 5: the heap lock's totals before the end
        rec("end", 64 << 20, 0, 0, 0, 0, 1, ts=300),
    ]
    arr = np.zeros(len(records), RECORD)
    for i, r in enumerate(records):
        arr[i] = r
    arr.tofile(tmp_path / "r.bin")
    import_records(str(tmp_path / "r.bin"), str(tmp_path / "t.parquet"))
    assert scavenger_iterations(tmp_path / "t.parquet").column("timer_p").to_pylist() == [-1]


def test_the_scavenger_timing_script_prints_the_table():
    """scripts/go114-scavenger-timing: a row per trace with the summary's figures; no P stream said; bad input exit 2."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    script = root / "scripts" / "go114-scavenger-timing"
    p = subprocess.run([sys.executable, str(script), "go114-service-p4", str(root / "traces" / "synth-churn.parquet")],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    (row,) = [line for line in p.stdout.splitlines() if line.startswith("| go114-service-p4 ")]
    cells = [c.strip() for c in row.split("|")[1:-1]]
    s = timing_summary(scavenger_iterations(root / "traces" / "go114-service-p4.parquet"))
    assert s["iterations"] > 100 and cells[1] == f"{s['iterations']:,}"
    assert cells[3] == f"{s['late_p50_ns'] / 1e3:,.1f} / {s['late_p90_ns'] / 1e3:,.1f}"
    assert f"netpoll {s['fired_by']['netpoll']}" in cells[4] and sum(s["fired_by"].values()) <= s["iterations"]
    assert "| synth-churn | (no P stream) |" in p.stdout
    p = subprocess.run([sys.executable, str(script), "nosuch.parquet"], capture_output=True, text=True, timeout=600)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "nosuch.parquet" in p.stderr


def test_the_scavenger_timing_script_splits_crit_by_what_the_p_ran_before(load_script):
    """--by-prior: a one-page release is keyed by its P's last state before the scavenger's run, or by how
    long that P had been out of user / GC / sweep work; larger releases are left out."""
    import subprocess
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "scripts" / "go114-scavenger-timing"
    script = load_script(path.name)
    schedule = pa.table({"ts": [0, 100, 110, 200, 500_000, 0, 100, 2_000_100, 2_000_200, 3_000_000],
                         "p": [0, 0, 0, 0, 0, 1, 1, 1, 1, 1],
                         "state": ["user", "sched", "scavenger", "idle", "scavenger",
                                   "gc_worker", "idle", "scavenger", "sweep", "scavenger"]})
    iterations = pa.table({"ts": [190, 500_090, 2_000_190, 3_000_090, 3_000_190],
                           "p": [0, 0, 1, 1, 1], "outcome": ["sleep"] * 5,
                           "released_bytes": [8192, 8192, 8192, 8192, 16384],
                           "crit_ns": [50, 60, 70, 80, 90]})
    got = script.by_prior(iterations, schedule)
    assert dict(got) == {"user": [50], "idle <1ms": [60], "idle >=1ms": [70], "sweep": [80]}
    root = path.parents[1]
    p = subprocess.run([sys.executable, str(path), "--by-prior", "go114-service-p4"], capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stderr
    (row,) = [line for line in p.stdout.splitlines() if line.startswith("| go114-service-p4 ")]
    counts = [int(c.split(",")[0]) for c in row.split("|")[2:-1]]
    it = scavenger_iterations(root / "traces" / "go114-service-p4.parquet").to_pandas()
    one_page = ((it.outcome == "sleep") & (it.released_bytes == 8192) & (it.crit_ns > 0)).sum()
    assert len(counts) == 5 and 0.95 * one_page <= sum(counts) <= one_page


def test_the_scavenger_timing_script_splits_crits_by_the_threads_wanting_a_cpu(load_script):
    """--by-threads: a one-page release is keyed by whether its P ran a goroutine (user, GC worker,
    sweeping) just before the scavenger's run, and by R, it and the other Ps running as crit began."""
    import subprocess
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "scripts" / "go114-scavenger-timing"
    script = load_script(path.name)
    schedule = pa.table({"ts": [0, 100, 110, 200, 500_000, 0, 100, 2_000_100, 2_000_200, 3_000_000, 0, 2_500_000],
                         "p": [0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2],
                         "state": ["user", "sched", "scavenger", "idle", "scavenger",
                                   "gc_worker", "idle", "scavenger", "sweep", "scavenger", "user", "idle"]})
    iterations = pa.table({"ts": [190, 500_090, 2_000_190, 3_000_090, 3_000_190],
                           "p": [0, 0, 1, 1, 1], "outcome": ["sleep"] * 5,
                           "released_bytes": [8192, 8192, 8192, 8192, 16384],
                           "crit_ns": [50, 60, 70, 80, 90]})
    got = script.by_threads(iterations, schedule)  # P 2 runs a goroutine up to 2.5 ms
    assert dict(got) == {("busy", 2): [50], ("idle", 2): [60, 70], ("busy", 1): [80]}
    p = subprocess.run([sys.executable, str(path), "--by-threads", "go114-service-p4"], capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    rows = [line for line in p.stdout.splitlines() if line.startswith("| go114-service-p4 ")]
    counts = [int(c.split(",")[0]) for row in rows for c in row.split("|")[3:-1]]
    assert [row.split("|")[2].strip() for row in rows] == ["busy", "idle"] and len(counts) == 10
    it = scavenger_iterations(path.parents[1] / "traces" / "go114-service-p4.parquet").to_pandas()
    one_page = ((it.outcome == "sleep") & (it.released_bytes == 8192) & (it.crit_ns > 0)).sum()
    assert 0.95 * one_page <= sum(counts) <= one_page


def test_the_scavenger_timing_script_holds_the_models_runs_after_a_gc_to_the_runtimes(load_script, tmp_path):
    """--after-gc: per trace, the GC wake-ups and how far PSchedule.after_gc puts the model's run from the
    runtime's, also for the runs another P took; a folder means its recordings, and a last row pools them."""
    import subprocess
    import sys
    from pathlib import Path


    from pagealloc.sim.replay import p_schedule_of

    path = Path(__file__).resolve().parents[2] / "scripts" / "go114-scavenger-timing"
    script = load_script(path.name)
    trace = path.parents[1] / "traces" / "go114-service-p4.parquet"
    err = script.after_gc_errors(trace)
    it = scavenger_iterations(trace).to_pandas()
    gc = it[(it.woken_by == "gc") & (it.ready_p >= 0) & (it.next_run_ts > 0)]
    sched = p_schedule_of(str(trace), trace_metadata(trace)["gomaxprocs"])
    first = gc.iloc[0]
    assert len(err) == len(gc) > 50 and set(err[:, 1]) == {0, 1}
    assert err[0, 0] == sched.after_gc(int(first.ready_p), int(first.ready_ts))[0] - first.next_run_ts
    assert err[:, 1].sum() == (gc.next_run_p != gc.ready_p).sum()
    for name in ("a", "b"):
        (tmp_path / f"{name}.parquet").symlink_to(trace)
    p = subprocess.run([sys.executable, str(path), "--after-gc", str(tmp_path)], capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stderr
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in p.stdout.splitlines() if line.startswith("| ") and "---" not in line}
    assert set(rows) == {"trace", "a", "b", "all 2"} and rows["a"] == rows["b"]
    assert rows["all 2"][0] == f"{2 * len(gc):,}" and rows["a"][1] == f"{np.mean(np.abs(err[:, 0]) <= 100_000):.0%}"
    assert rows["a"][4] == f"{int(err[:, 1].sum()):,}"


def test_the_scavenger_timing_script_holds_the_models_runs_after_its_own_ps_reschedule_to_the_runtimes(load_script, tmp_path):
    """--own-p: per trace, the timers their own P's schedule() fired, split by the P's scheduler stretch
    there (short; 100 µs or more with every CPU busy; or with one free), and how often running at the
    firing and the model's run (behind a GC worker, then runnext_start) land within 100 µs of the runtime's,
    and whether the model names the P that ran it."""
    import subprocess
    import sys
    from pathlib import Path

    from pagealloc.sim.replay import p_schedule_of
    from pagealloc.trace.cpuwait import recorded_cpus

    path = Path(__file__).resolve().parents[2] / "scripts" / "go114-scavenger-timing"
    script = load_script(path.name)
    trace = path.parents[1] / "traces" / "go114-service-p4.parquet"
    err = script.own_p_errors(trace)
    it = scavenger_iterations(trace).to_pandas()
    own = it[it.fired_by.isin(["reschedule", "preempt"]) & (it.woken_by == "timer") & (it.next_run_ts > 0)]
    meta = trace_metadata(trace)
    sched = p_schedule_of(str(trace), meta["gomaxprocs"])
    assert len(err) == len(own) > 40 and set(err[:, 0]) == {0, 1, 2}  # service-p4 has each part
    for row, r in zip(err, own.itertuples()):
        t, p = int(r.fired_ts), int(r.fired_p)
        model, host = sched.readied_run(p, t, recorded_cpus(meta, ""))
        assert tuple(row[1:]) == (model - r.next_run_ts, t - r.next_run_ts, r.next_run_p != p, host == r.next_run_p)
    busy = err[err[:, 0] == 1]  # its M off the CPU with every CPU busy: the stretch's end, not the firing
    assert np.all(np.abs(busy[:, 1]) <= 100_000) and np.all(np.abs(busy[:, 2]) > 100_000), busy
    (tmp_path / "a.parquet").symlink_to(trace)
    (tmp_path / "b.parquet").symlink_to(trace)
    p = subprocess.run([sys.executable, str(path), "--own-p", str(tmp_path)], capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stderr
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in p.stdout.splitlines() if line.startswith("| ") and "---" not in line}
    assert set(rows) == {"trace", "a", "b", "all 2"} and rows["a"] == rows["b"] and len(rows["a"]) == 12
    short = err[err[:, 0] == 0]
    assert rows["all 2"][0] == f"{2 * len(short):,}"
    assert rows["a"][1] == f"{np.mean(np.abs(short[:, 2]) <= 100_000):.0%} / {np.mean(np.abs(short[:, 1]) <= 100_000):.0%}"
    assert rows["a"][4] == f"{len(busy):,}" and rows["a"][5] == "0% / 100%" and rows["a"][7] == "100%"
    free = err[err[:, 0] == 2]  # a CPU free: another P's M stole it (service-p4: both; the model names one)
    assert rows["a"][10] == "100%" and rows["a"][11] == f"{np.mean(free[:, 4]):.0%}" and free[:, 4].sum() >= 1
