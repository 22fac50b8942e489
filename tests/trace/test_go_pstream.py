"""The Ps' schedule of Go >= 1.23 execution traces (pagealloc.trace.gosched; issue 19, item 3).

The rules on hand-written scheduling records and ``-d=parsed`` lines (no Go
needed); the import of the committed fixture and of a CPU-bound program
recorded at GOMAXPROCS 2 (needs Go); a bad side table of an import still
fails with one line and exit 2.  That the compiled and the text decoders
give the same records is test_trace_import's ``assert_same_rows``.
"""

from __future__ import annotations

import numpy as np
import pytest

from pagealloc.cli import main
from pagealloc.errors import UserError
from pagealloc.sim.goschedule import PSchedule
from pagealloc.sim.replay import p_schedule_of, replay
from pagealloc.trace import read
from pagealloc.trace.goimport import decode_parsed, import_go_trace
from pagealloc.trace.gosched import (
    GO_NOT_EXIST,
    GO_RUNNABLE,
    GO_RUNNING,
    GO_SYSCALL,
    GO_UNDETERMINED,
    GO_WAITING,
    PROC_IDLE,
    PROC_RUNNING,
    PROC_UNDETERMINED,
    SCHED,
    SCHED_GC_END,
    SCHED_GO,
    SCHED_KIND,
    SCHED_PROC,
    SCHED_PROCS,
    SCHED_STW_BEGIN,
    SCHED_STW_END,
    side_tables,
    stack_kind,
)
from pagealloc.trace.sidetables import P_STATES
from test_trace_import import GO_TRACE, needs_go
from test_trace_v3 import _bad_blob
from tracefiles import rewrite_metadata

MS = 1_000_000


def records(*recs) -> np.ndarray:
    """(ts, g, p, code, a, b, c) tuples as tracerows writes them."""
    out = np.zeros(len(recs), SCHED)
    for i, r in enumerate(recs):
        out[i] = tuple(r) + (0,) * (7 - len(r))
    return out


def rows(tables) -> list[tuple]:
    t = tables["p_schedule"]
    return list(zip(t.column("ts").to_pylist(), t.column("p").to_pylist(), t.column("state").to_pylist(), t.column("reason").to_pylist()))


def events(tables) -> list[tuple]:
    t = tables["sched_events"]
    return list(zip(t.column("ts").to_pylist(), t.column("p").to_pylist(), t.column("event").to_pylist(), t.column("value").to_pylist()))


def test_goroutines_on_ps_become_states_and_the_time_base_is_the_rows():
    """Two Ps; a user goroutine runs, is preempted after 12 ms (sysmon's: an event), a GC worker runs,
    parks, the P goes idle and wakes; ts and the preemption's value are ns since the first Sync (1000)."""
    t = side_tables(records(
        (1000, 2, -1, SCHED_PROCS),
        (1000, -1, 0, SCHED_PROC, PROC_UNDETERMINED, PROC_RUNNING),
        (1000, -1, 1, SCHED_PROC, PROC_UNDETERMINED, PROC_IDLE),
        (1000, 7, 0, SCHED_GO, GO_UNDETERMINED, GO_RUNNING),
        (12 * MS + 1000, 7, 0, SCHED_GO, GO_RUNNING, GO_RUNNABLE, 1),
        (12 * MS + 2000, 9, -1, SCHED_KIND, 1),  # a stack showed runtime.gcBgMarkWorker
        (12 * MS + 2000, 9, 0, SCHED_GO, GO_RUNNABLE, GO_RUNNING),
        (12 * MS + 5000, 9, 0, SCHED_GO, GO_RUNNING, GO_WAITING),
        (12 * MS + 6000, -1, 0, SCHED_PROC, PROC_RUNNING, PROC_IDLE),
        (13 * MS, -1, 1, SCHED_PROC, PROC_IDLE, PROC_RUNNING),
        (13 * MS, 7, 1, SCHED_GO, GO_RUNNABLE, GO_RUNNING),
        (14 * MS, 7, 1, SCHED_GO, GO_RUNNING, GO_RUNNABLE, 1),  # preempted after 1 ms: the GC's, no event
    ), start=1000)
    assert rows(t) == [
        (0, 0, "sched", ""), (0, 1, "idle", ""), (0, 0, "user", ""),
        (12 * MS, 0, "sched", "preempt"), (12 * MS + 1000, 0, "gc_worker", ""), (12 * MS + 4000, 0, "sched", "park"),
        (12 * MS + 5000, 0, "idle", ""), (13 * MS - 1000, 1, "sched", "wake"), (13 * MS - 1000, 1, "user", ""),
        (14 * MS - 1000, 1, "sched", "preempt"),
    ]
    assert events(t) == [(12 * MS, 0, "preempt_request", 0)]


def test_syscalls_stop_the_world_and_the_sweeper():
    """A goroutine keeps its P through a syscall; one whose P was taken comes back on another
    (syscall_return); a stop-the-world stops every P and restores each; bgsweep parking ends the sweep."""
    t = side_tables(records(
        (0, 2, -1, SCHED_PROCS),
        (0, 5, 0, SCHED_GO, GO_RUNNABLE, GO_RUNNING),
        (10, 5, 0, SCHED_GO, GO_RUNNING, GO_SYSCALL),
        (20, 5, 0, SCHED_GO, GO_SYSCALL, GO_RUNNING),  # back on the P it kept: nothing new
        (30, 5, 0, SCHED_GO, GO_RUNNING, GO_SYSCALL),
        (40, -1, 0, SCHED_PROC, PROC_RUNNING, PROC_IDLE),  # sysmon took the P
        (50, -1, 1, SCHED_PROC, PROC_IDLE, PROC_RUNNING),
        (50, 5, 1, SCHED_GO, GO_SYSCALL, GO_RUNNING),
        (60, -1, 1, SCHED_STW_BEGIN),
        (61, 5, 1, SCHED_GO, GO_RUNNING, GO_RUNNABLE, 1),  # inside the stop-the-world: not written, no event
        (62, 5, 1, SCHED_GO, GO_RUNNABLE, GO_RUNNING),
        (70, -1, 1, SCHED_STW_END),
        (80, -1, 1, SCHED_GC_END),
        (90, 3, -1, SCHED_KIND, 2),  # runtime.bgsweep
        (90, 3, 0, SCHED_GO, GO_RUNNABLE, GO_RUNNING),
        (95, 3, 0, SCHED_GO, GO_RUNNING, GO_WAITING),
        (99, 5, 1, SCHED_GO, GO_RUNNING, GO_NOT_EXIST),
    ), start=0)
    assert rows(t) == [
        (0, 0, "user", ""), (40, 0, "idle", ""), (50, 1, "sched", "wake"), (50, 1, "user", "syscall_return"),
        (60, 0, "stopped", "stw"), (60, 1, "stopped", "stw"), (70, 0, "idle", "start_the_world"), (70, 1, "user", "start_the_world"),
        (90, 0, "sweep", ""), (95, 0, "sched", "park"), (99, 1, "sched", "exit"),
    ]
    assert events(t) == [(95, 0, "sweep_done", 1)]


def test_a_cycles_sweeping_ends_once_when_bgsweep_parks_or_at_the_next_sweep_termination():
    t = side_tables(records(
        (0, 1, -1, SCHED_PROCS),
        (0, 3, -1, SCHED_KIND, 2),
        (10, -1, 0, SCHED_GC_END),
        (20, -1, 0, SCHED_STW_BEGIN, 1),  # cycle 2's sweep termination: bgsweep had not finished cycle 1's
        (30, -1, 0, SCHED_STW_END, 1),
        (40, 3, 0, SCHED_GO, GO_RUNNABLE, GO_RUNNING),
        (50, 3, 0, SCHED_GO, GO_RUNNING, GO_WAITING),  # it parks late: cycle 1 is already done
        (60, -1, 0, SCHED_GC_END),
        (70, 3, 0, SCHED_GO, GO_WAITING, GO_RUNNING),
        (80, 3, 0, SCHED_GO, GO_RUNNING, GO_WAITING),  # cycle 2's, by bgsweep
        (90, -1, 0, SCHED_STW_BEGIN, 1),
        (95, -1, 0, SCHED_STW_END, 1),
    ), start=0)
    assert events(t) == [(30, 0, "sweep_done", 1), (80, 0, "sweep_done", 2)]


@pytest.mark.parametrize("funcs,kind", [
    (("runtime.gopark", "runtime.gcBgMarkWorker", "runtime.gcBgMarkStartWorkers.gowrap1"), 1),
    (("runtime.gopark", "runtime.goparkunlock", "runtime.bgsweep", "runtime.gcenable.gowrap1"), 2),
    (("runtime.gopark", "runtime.bgscavenge", "runtime.gcenable.gowrap2"), 3),
    (("runtime.gopark", "runtime.goparkunlock", "runtime.forcegchelper"), 4),
    (("runtime.gopark", "runtime.chanrecv1", "main.main", "runtime.main", "runtime.goexit"), 0),
    (("runtime.mallocgc", "main.worker", "runtime.goexit"), 0),
])
def test_what_a_stack_says_a_goroutine_is(funcs, kind):
    assert stack_kind(funcs) == kind


def test_the_text_decoder_reads_transitions_and_their_stacks():
    """-d=parsed lines: a goroutine's status stack names bgscavenge (a kind record first), a proc transition,
    another goroutine's unblocking stack (not the resource's: ignored), a stop-the-world."""
    lines = [
        'M=1 P=0 G=-1 StateTransition Time=10 ProcID=0 Undetermined->Running Reason=""',
        'M=1 P=0 G=4 StateTransition Time=11 GoID=3 Undetermined->Running Reason=""',
        "TransitionStack=",
        "\truntime.bgscavenge @ 0x42e704",
        "\t\t/go/src/runtime/mgcscavenge.go:650",
        "",
        'M=1 P=0 G=4 StateTransition Time=12 GoID=8 Waiting->Runnable Reason=""',
        "Stack=",
        "\truntime.bgsweep @ 0x1",
        "\t\t/go/src/runtime/mgcsweep.go:1",
        "",
        'M=1 P=0 G=3 StateTransition Time=13 GoID=3 Running->Runnable Reason="preempted"',
        'M=1 P=0 G=3 RangeBegin Time=14 Name="stop-the-world (GC sweep termination)" Scope=Goroutine(3)',
    ]
    sched = decode_parsed(lines).schedule()
    got = [tuple(r) for r in sched.tolist()]
    assert got == [
        (10, -1, 0, SCHED_PROC, PROC_UNDETERMINED, PROC_RUNNING, 0),
        (11, 3, -1, SCHED_KIND, 3, 0, 0),
        (11, 3, 0, SCHED_GO, GO_UNDETERMINED, GO_RUNNING, 0),
        (13, 3, 0, SCHED_GO, GO_RUNNING, GO_RUNNABLE, 1),
        (14, -1, 0, SCHED_STW_BEGIN, 1, 0, 0),  # the GC's sweep termination
    ]


def per_p_time(table, end: int) -> dict[int, dict[str, int]]:
    """ns each P spent in each state, from its rows to ``end``."""
    out = {}
    ts, p, state = table.column("ts").to_numpy(), table.column("p").to_numpy(), np.array(table.column("state").to_pylist())
    for q in np.unique(p).tolist():
        m = p == q
        dur = np.diff(np.append(ts[m], end))
        out[q] = {s: int(dur[state[m] == s].sum()) for s in set(state[m].tolist())}
    return out


def check_schedule(path, gomaxprocs: int):
    """A p_schedule as the reader returns it: known states, per-P times in order, P ids below GOMAXPROCS."""
    table = read.p_schedule(path)
    assert table is not None and table.num_rows > 0
    assert set(table.column("state").to_pylist()) <= set(P_STATES)
    ts, p = table.column("ts").to_numpy(), table.column("p").to_numpy()
    assert p.min() >= 0 and p.max() < gomaxprocs
    for q in range(gomaxprocs):
        assert (np.diff(ts[p == q]) >= 0).all()
    return table


@needs_go
def test_the_fixtures_import_carries_its_p_stream(tmp_path):
    out = tmp_path / "fx.parquet"
    meta = import_go_trace(str(GO_TRACE), str(out), decoder="go")
    assert meta["version"] == 3 and set(meta["tables"]) == {"p_schedule", "sched_events"}
    summary = read.validate_trace(out)
    table = check_schedule(out, meta["gomaxprocs"])
    time = per_p_time(table, summary.last_ts)
    running = sum(t.get("user", 0) for t in time.values()) / (len(time) * summary.last_ts)
    assert 0.05 < running < 0.9, running  # the workload allocates, pauses 1 ms and calls FreeOSMemory
    assert all(t.get("gc_worker", 0) > 0 for t in time.values())  # both Ps ran the GC's mark workers
    ev = read.sched_events(out)
    sweeps = [v for e, v in zip(ev.column("event").to_pylist(), ev.column("value").to_pylist()) if e == "sweep_done"]
    assert sweeps == sorted(set(sweeps)) and 1 <= len(sweeps) <= meta["counts"]["gc"]
    # The rows' clock: cycle k's sweeping ends after its gc row (the k-th) and before the next one.
    gc = read.read_trace(out).to_pandas().query("op == 'gc'").ts.to_numpy()
    for t, e, k in zip(ev.column("ts").to_pylist(), ev.column("event").to_pylist(), ev.column("value").to_pylist()):
        if e == "sweep_done":
            assert gc[k - 1] < t and (k == len(gc) or t < gc[k]), (t, k)
    assert p_schedule_of(str(out), meta["gomaxprocs"]).derived is False


@needs_go
def test_the_python_decoder_gives_no_p_stream_so_the_replay_derives_one(tmp_path):
    out = tmp_path / "fx.parquet"
    meta = import_go_trace(str(GO_TRACE), str(out), decoder="python")
    assert "tables" not in meta and read.p_schedule(out) is None
    assert p_schedule_of(str(out), meta["gomaxprocs"]).derived is True


CPU_BOUND = """package main

import (
	"flag"
	"time"
)

var sink [][]byte
var result uint64

func spin(d time.Duration, done chan<- uint64) {
	x := uint64(1)
	for end := time.Now().Add(d); time.Now().Before(end); {
		for i := 0; i < 100000; i++ {
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
	done <- x
}

func main() {
	ms := flag.Int("ms", 300, "how long the two goroutines spin")
	flag.Parse()
	done := make(chan uint64)
	go spin(time.Duration(*ms)*time.Millisecond, done)
	go spin(time.Duration(*ms)*time.Millisecond, done)
	for i := 0; i < *ms; i++ {
		sink = append(sink, make([]byte, 64<<10))
		if len(sink) > 64 {
			sink = nil
		}
		time.Sleep(time.Millisecond)
	}
	result = <-done + <-done
}
"""


@needs_go
def test_cpu_bound_goroutines_at_gomaxprocs_2_run_for_long_stretches_and_are_preempted(tmp_path, monkeypatch):
    prog = tmp_path / "cpu.go"
    prog.write_text(CPU_BOUND)
    out = tmp_path / "cpu.parquet"
    assert main(["record", "-q", "--gomaxprocs", "2", "-o", str(out), "--", str(prog), "-ms", "300"]) == 0
    summary = read.validate_trace(out)
    table = check_schedule(out, 2)
    ts, p, state = table.column("ts").to_numpy(), table.column("p").to_numpy(), np.array(table.column("state").to_pylist())
    for q in (0, 1):  # each P runs a spinning goroutine for a whole sysmon period at least once
        m = p == q
        stretch = np.diff(np.append(ts[m], summary.last_ts))[state[m] == "user"]
        assert stretch.max() >= 9 * MS, (q, stretch.max())
    time = per_p_time(table, summary.last_ts)
    assert sum(t.get("user", 0) for t in time.values()) >= 0.5 * 2 * 300 * MS  # two goroutines spun 300 ms each
    ev = read.sched_events(out).to_pandas()
    pre = ev[ev.event == "preempt_request"]
    assert len(pre) >= 5 and ((pre.ts - pre.value) >= 10 * MS).all() and set(pre.p) == {0, 1}
    assert (np.array(table.column("reason").to_pylist()) == "preempt").sum() >= len(pre)

    # The replay follows the recorded schedule: the fallback is not built.
    def no_fallback(*a, **k):
        raise AssertionError("the replay derived the schedule from the rows")

    monkeypatch.setattr(PSchedule, "from_rows", classmethod(no_fallback))
    used = []
    real = PSchedule.from_table.__func__
    monkeypatch.setattr(PSchedule, "from_table", classmethod(lambda cls, *a, **k: used.append(1) or real(cls, *a, **k)))
    result = replay(str(out), "go1.14")
    assert used and result.events == summary.events


@needs_go
def test_a_bad_side_table_of_an_import_fails_with_one_line(tmp_path, capfd):
    good = tmp_path / "fx.parquet"
    import_go_trace(str(GO_TRACE), str(good), decoder="go")
    table = read.p_schedule(good)
    broken = table.to_pandas()
    broken["state"] = broken["state"].astype(str)
    broken.loc[3, "state"] = "dancing"
    import pyarrow as pa

    bad = rewrite_metadata(good, tmp_path / "bad.parquet", edit_keys=lambda kv: kv.update({b"pagealloc.p_schedule": _bad_blob(pa.Table.from_pandas(broken, preserve_index=False))}))
    capfd.readouterr()
    assert main(["replay", "--mode", "go1.14", str(bad)]) == 2
    out, err = capfd.readouterr()
    assert err.count("\n") == 1 and err.startswith("pagealloc: error: ") and "unknown state 'dancing'" in err and "Traceback" not in err, err
    with pytest.raises(UserError, match="unknown state"):
        read.p_schedule(bad)
