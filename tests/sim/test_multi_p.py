"""The multi-P engine: every P an actor contending for the heap lock (issue 11).

A single-P trace gives exactly the two-actor engine's figures; a locked
FreeOSMemory stalls the other Ps by its hold, an unlocked one by a step;
per-P order, causality across Ps, determinism; bad P ids.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pagealloc.errors import UserError
from pagealloc.sim.costmodel import CostModel
from pagealloc.sim.replay import MODES, TIMINGS, Replay, replay
from pagealloc.trace.format import OP_ALLOC, OP_FREE, OP_FREE_OS_MEMORY, OP_GC

sys.path.insert(0, str(Path(__file__).parent))
from single_p_traces import SHAPES, single_p_trace  # noqa: E402

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "single_p_figures.json"
MiB = 1 << 20


def frame(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["ts", "op", "span", "npages", "value", "p"]).astype(
        {"ts": "int64", "span": "uint64", "npages": "uint32", "value": "uint64", "p": "int32"})


OLD_ENGINE_COSTS = CostModel(futex_wake_ns=0, cold_max_ns=0, cold_busy_max_ns=0, madvise_free_page_ns=15,
                             madvise_free_first_page_ns=15, vma_split_ns=0, tlb_shootdown_ns=0,
                             scavenge_heap_ns=0, unlock_wake_ns=0)  # 15: its day's madvise_free_page_ns


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("mode", MODES)
def test_one_p_gives_the_two_actor_engines_figures(shape, mode):
    """The pinned figures come from the engine this one replaced (one mutator and
    the scavenger), which had no futex wake-up, no cold crit after a sleep, no first-MADV_FREE
    price, no VMA split, no TLB shootdown, no heap side of a background release and 15 ns per page
    of MADV_FREE (price them as it did to compare) and whose
    scavenger woke exactly when it asked, on no P (scavenger_timers="exact").  Its
    unlocked FreeOSMemory ran its steps back to back; this one lets the
    background scavenger step in between, so there only the total released
    may be compared."""
    want = json.loads(FIXTURE.read_text())[f"{shape}|{mode}"]
    want = {k.replace("mutator_stall", "p_stall"): v for k, v in want.items()}  # the old name of the same figure
    got = json.loads(json.dumps(replay(single_p_trace(shape), mode, label=shape, scavenger_timers="exact",
                                       cost_model=OLD_ENGINE_COSTS).deterministic()))
    if shape == "freeosmemory" and mode == "unlocked":
        assert got["released_bytes"] == want["released_bytes"]
        return
    assert {k: got[k] for k in want} == want


# P0 allocates eight whole chunks (32 MiB) and frees them; a GC with a huge goal
# keeps the background scavenger parked.  At T, P0 calls FreeOSMemory; 1, 2 and
# 3 us later P1, P2 and P3 each allocate a 20-page span (too big for the page
# cache: the heap lock).
T = 50_000_000  # well after P0 has touched its 32 MiB (first touches fault: ~9 ms)
CONTENDED = (
    [(1000 * i, "alloc", i + 1, 512, 0, 0) for i in range(8)]
    + [(10_000 + 1000 * i, "free", i + 1, 512, 0, 0) for i in range(8)]
    + [(20_000, "gc", 0, 0, 1 << 40, -1), (T, "free_os_memory", 0, 0, 0, 0)]
    + [(T + 1000 * k, "alloc", 100 + k, 20, 0, k) for k in (1, 2, 3)]
)


def test_a_locked_free_os_memory_stalls_the_other_ps_by_its_hold():
    c = CostModel()
    r = replay(frame(CONTENDED), "go1.14", cost_model=c)
    assert r.gomaxprocs == 4 and r.released_forced_bytes == 32 * MiB
    H = r.lock_hold_max_ns  # FreeOSMemory: one critical section releasing all eight chunks
    assert H >= 8 * (c.madvise_free_call_ns + c.madvise_free_page_ns * 1024)
    W = c.futex_wake_ns  # each waiter waited past the spin, slept, and pays its wake-up
    h = c.alloc_ns + c.mspan_refill_ns + c.lock_ns  # each waiter's own hold (its P's mspan cache is empty)
    # The lock passes on at each release (the wake-up delays only the sleeper): P1 gets it at
    # T + H, P2 when P1 releases it, P3 when P2 does.
    assert r.p_stall_by_p == [0, H - 1000 + W, H + h - 2000 + W, H + 2 * h - 3000 + W]
    assert r.p_stall_ns == sum(r.p_stall_by_p)
    assert r.p_stall_max_ns == max(r.p_stall_by_p)
    assert r.alloc_latency_max_ns >= r.p_stall_max_ns + c.alloc_ns  # latency: the wait included
    locked = replay(frame(CONTENDED), "locked", cost_model=c)
    assert locked.p_stall_by_p == r.p_stall_by_p  # the scavenger is parked: same as go1.14


def test_an_unlocked_free_os_memory_stalls_them_by_one_step_at_most():
    c = CostModel()
    locked = replay(frame(CONTENDED), "go1.14", cost_model=c)
    r = replay(frame(CONTENDED), "unlocked", cost_model=c)
    assert locked.released_forced_bytes == 32 * MiB
    # Between its steps the other Ps allocate, first fit, from the top chunk's memory it has not
    # released yet, so it releases their 3 x 20 pages less, and they need no re-touch.
    assert r.released_forced_bytes == 32 * MiB - 3 * 20 * 8192
    assert r.scavenged_alloc_bytes < locked.scavenged_alloc_bytes
    # a chunk of pages P0 wrote and nothing freed before: each goes to the kernel's lazyfree list
    step = c.madvise_free_call_ns + c.madvise_free_first_page_ns * 1024 + c.chunk_scan_ns + c.lock_ns
    assert r.lock_hold_max_ns < 2 * step  # no section releases more than about a chunk
    assert 0 < r.p_stall_max_ns <= 2 * step + c.futex_wake_ns
    assert r.p_stall_ns < locked.p_stall_ns / 5
    assert r.lock_acquisitions_mutator > locked.lock_acquisitions_mutator + 8  # a section per chunk


def test_a_free_waits_for_its_alloc_on_another_p():
    """P1 frees a span P0 allocates; P0 is held up by a locked FreeOSMemory, so the
    alloc completes late: the free runs after it, not at its own timestamp."""
    rows = CONTENDED[:-3] + [(T + 500, "alloc", 200, 20, 0, 0), (T + 600, "free", 200, 20, 0, 1)]
    engine_log = []
    r = _replay_logged(frame(rows), "go1.14", engine_log)
    (alloc,) = [e for e in engine_log if e[1] == len(rows) - 2]
    (free,) = [e for e in engine_log if e[1] == len(rows) - 1]
    assert alloc[3] > T + 500 and free[3] >= alloc[4] > T + 600  # started after the alloc completed
    assert r.events == len(rows)


def test_ordered_timing_keeps_the_recorded_order_across_ps():
    """P0's first span (fresh memory: page faults) keeps it busy past its next
    row's timestamp.  Under recorded timing P1's later row runs first and takes
    the address P0's row had in the recording; under ordered timing it waits
    for P0's row to start, and the wait is order_wait_ns, not lock stall."""
    rows = [(0, "alloc", 0, 300, 0, 0), (10_000, "alloc", 300, 20, 0, 0), (20_000, "alloc", 320, 20, 0, 1)]
    runs = {}
    for timing in ("recorded", "ordered"):
        log = []
        r = _replay_logged(frame(rows), "go1.14", log, timing=timing)
        runs[timing] = (r, {row: (start, end) for _, row, _, start, end in log}, [e[1] for e in log])
    (rec, rec_t, rec_order), (ordd, ord_t, ord_order) = runs["recorded"], runs["ordered"]
    assert rec_t[0][1] > 20_000  # P0 is still busy at P1's timestamp
    assert rec_order == [0, 2, 1] and rec.address_agreement == 1 / 3  # span ids are the recorded pages
    assert ord_order == [0, 1, 2] and ordd.address_agreement == 1.0
    assert ord_t[2][0] == ord_t[1][0] == rec_t[1][0]  # P1 starts when P0's row does
    assert ordd.order_wait_ns == ord_t[1][0] - 20_000 and rec.order_wait_ns == 0
    assert ordd.timing == "ordered" and replay(frame(rows), "go1.14").timing == "recorded"  # auto, not from Go 1.14


def _replay_logged(df, mode, log, **kw):
    """replay() with the engine's event log captured, on the default engine's Replay (either engine:
    the compiled one's class takes no new __init__, so a subclass sets the log)."""
    import pagealloc.sim.replay as replay_module
    from pagealloc.sim import engines

    class Logged(engines.replay_class(None)):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self.log = log

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(replay_module, "Replay", Logged, raising=False)
        mp.setattr(replay_module, "replay_class", lambda engine=None: Logged, raising=False)
        mp.setattr(engines, "replay_class", lambda engine=None: Logged)
        return replay(df, mode, **kw)


def test_p_ids_must_be_below_gomaxprocs(tmp_path):
    from pagealloc.trace.format import TraceWriter, make_metadata
    import numpy as np

    path = tmp_path / "t.parquet"
    with TraceWriter(str(path), make_metadata("user", gomaxprocs=2)) as w:
        w.write(ts=np.array([0, 1], np.int64), op=np.array([OP_ALLOC, OP_ALLOC], np.uint8),
                span=np.array([1, 2], np.uint64), npages=np.array([1, 1], np.uint32), p=np.array([0, 2], np.int32))
    with pytest.raises(UserError, match=r"row 1: p 2 is not below the trace's gomaxprocs 2"):
        replay(str(path))


def test_no_p_column_with_several_ps_is_an_error(tmp_path):
    from pagealloc.trace.format import TraceWriter, make_metadata
    import numpy as np
    import pyarrow.parquet as pq

    path = tmp_path / "t.parquet"
    with TraceWriter(str(path), make_metadata("user", gomaxprocs=4)) as w:
        w.write(ts=np.array([0], np.int64), op=np.array([OP_ALLOC], np.uint8), span=np.array([1], np.uint64),
                npages=np.array([1], np.uint32))
    table = pq.read_table(path)
    pq.write_table(table.drop(["p"]), path)  # keeps the metadata, loses the column
    with pytest.raises(UserError, match="gomaxprocs 4 but the trace has no p column"):
        replay(str(path))


def test_no_p_column_runs_on_one_p_with_a_page_cache():
    df = pd.DataFrame({"ts": [0, 1, 2], "op": ["alloc"] * 3, "span": [1, 2, 3], "npages": [1, 1, 1]})
    r = replay(df)
    assert r.gomaxprocs == 1 and len(r.p_stall_by_p) == 1
    assert r.lock_acquisitions_mutator == 3  # grow, cache refill + mspan refill, then a lock-free hit


# -- properties --

@st.composite
def traces(draw):
    """Valid multi-P traces: spans allocated and freed by any P, GCs and FreeOSMemory."""
    n = draw(st.integers(2, 40))
    rows, live, ts, nxt = [], {}, 0, 1
    for _ in range(n):
        ts += draw(st.sampled_from([0, 1, 500, 5_000, 200_000]))
        p = draw(st.integers(-1, 3))
        what = draw(st.sampled_from(["alloc"] * 4 + ["free"] * 3 + ["gc", "free_os_memory"]))
        if what == "free" and live:
            sid = draw(st.sampled_from(sorted(live)))
            rows.append((ts, "free", sid, live.pop(sid), 0, p))
        elif what == "gc":
            rows.append((ts, "gc", 0, 0, draw(st.sampled_from([0, 1 << 20, 1 << 30])), -1))
        elif what == "free_os_memory":
            rows.append((ts, "free_os_memory", 0, 0, 0, p))
        else:
            npages = draw(st.sampled_from([1, 3, 20, 512, 700]))
            rows.append((ts, "alloc", nxt, npages, 0, p))
            live[nxt] = npages
            nxt += 1
    return rows


@given(rows=traces(), mode=st.sampled_from(MODES), timing=st.sampled_from(TIMINGS))
@settings(max_examples=60, deadline=None)
def test_order_causality_counts_and_determinism(rows, mode, timing):
    log = []
    r = _replay_logged(frame(rows), mode, log, timing=timing, check=True)
    assert r.events == len(rows) == len(log)
    by_p = {}
    for pid, row, code, start, end in log:
        by_p.setdefault(pid, []).append((row, start, end))
        assert end >= start >= (rows[row][0] if timing != "closed" else 0)
    for runs in by_p.values():  # each P runs its own events in trace order, one after another
        assert [x[0] for x in runs] == sorted(x[0] for x in runs)
        assert all(b[1] >= a[2] or rows[b[0]][1] == "free_os_memory" or rows[a[0]][1] == "free_os_memory"
                   for a, b in zip(runs, runs[1:]))
    done = {}
    for pid, row, code, start, end in log:  # a span's free starts after its alloc completed
        if code == OP_ALLOC:
            done[rows[row][2]] = end
        elif code == OP_FREE:
            assert start >= done[rows[row][2]]
    assert sum(r.p_stall_by_p) + r.runtime_stall_ns == r.p_stall_ns
    if timing == "ordered":  # every row runs in trace order, across Ps, none starting before the one ahead
        assert [e[1] for e in log] == list(range(len(rows)))
        assert all(a[3] <= b[3] for a, b in zip(log, log[1:]))
    else:
        assert r.order_wait_ns == 0
    again = replay(frame(rows), mode, timing=timing)
    assert again.deterministic() == r.deterministic()


@given(rows=traces())
@settings(max_examples=30, deadline=None)
def test_recorded_timing_on_one_p_is_the_single_mutator_order(rows):
    """On one P, recorded timing runs events in trace order, each at max(ts, previous end)
    (with the scavenger needing no P: on a P it would delay them by its runs; and the P's unlock unpriced
    for a scavenger asleep behind its hold: priced, it moves the P's next event by unlock_wake_ns)."""
    one = [(t, op, s, n, v, 0) for t, op, s, n, v, _ in rows]
    log = []
    _replay_logged(frame(one), "go1.14", log, scavenger_timers="exact",
                   cost_model=CostModel(unlock_wake_ns=0))
    assert [e[1] for e in log] == list(range(len(one)))
    prev_end = 0
    for pid, row, code, start, end in log:
        assert start == max(one[row][0], prev_end)
        prev_end = end if code != OP_FREE_OS_MEMORY or end > start else prev_end


def _replay_core_built() -> bool:
    from pagealloc.runtime.engines import mpagealloc_compiled
    from pagealloc.sim import engine, engines

    return mpagealloc_compiled is not None and engines.replay_class("compiled") is not engine.Replay


@pytest.mark.skipif(not _replay_core_built(), reason="the compiled replay core was not built")
@given(rows=traces(), mode=st.sampled_from(MODES), timing=st.sampled_from(TIMINGS))
@settings(max_examples=80, deadline=None)
def test_both_engines_give_the_same_figures_and_event_log(rows, mode, timing):
    """The compiled replay core (sim/engines.py) and the Python simulation: same result, field by
    field (wall clock aside), and the same (P, row, op, start, end) of every event."""
    from pagealloc.runtime import engines

    runs = {}
    for engine in ("python", "compiled"):
        log = []
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(engines, "DEFAULT_ENGINE", engine)  # its Replay and its MHeap's PageAlloc
            r = _replay_logged(frame(rows), mode, log, timing=timing)
        wall = ("wall_seconds", "replay_events_per_wall_second")
        runs[engine] = ({k: v for k, v in r.to_dict().items() if k not in wall}, log)
    assert runs["compiled"] == runs["python"]


def test_every_engine_field_is_in_the_result():
    engine = Replay("go1.14", CostModel())
    engine.run_batch([0], [OP_GC], [0], [0], [0], [0], first_row=0, label="t")
    r = engine.finish("t", 0.0)
    for key in ("gomaxprocs", "p_stall_ns", "p_stall_max_ns", "p_stall_p99_ns", "alloc_latency_p99_ns",
                "alloc_latency_max_ns", "makespan_ns", "recorded_duration_ns", "throughput_events_per_vsec",
                "slowdown", "scavenger_cpu_ns", "released_bytes_per_scavenger_cpu_sec", "p_stall_by_p"):
        assert key in r.to_dict()
