"""The recorded scavenger's long crits: the OS took its thread off the CPU mid-release.

A Go 1.14.6 recording's crits of 1 ms or more are its scavenger's thread off its CPU (another thread
ran there); the model's scavenger meets each once, in the release that ends the sleep it began in
(``PSchedule.off_cpu_ns``).  Its crit, and so Go's pacing after it, takes the time off the CPU in; its
hold of the heap lock and its CPU time do not (the recordings' Ps never waited behind such a crit).
"""

from __future__ import annotations

import pyarrow as pa

from pagealloc.sim.costmodel import CostModel
from pagealloc.sim.engine import Replay
from pagealloc.sim.goschedule import OFF_CPU_CRIT_NS, PSchedule
from pagealloc.trace.format import OP_ALLOC, OP_FREE, OP_GC

US, MS = 1_000, 1_000_000
GC_AT = 70 * MS
OFF = 3 * MS  # the window: 0.5 ms after the GC, 3 ms long


def _rows() -> list[tuple]:
    """(ts, op, span, npages, value, p): P0 maps ~150 MiB, frees most of it, and a GC with a small
    goal wakes the background scavenger."""
    rows, t = [], 0
    for sid in range(300):
        rows.append((t, OP_ALLOC, sid, 64, 0, 0))
        t += 200 * US
    for sid in range(290):
        rows.append((t, OP_FREE, sid, 64, 0, 0))
        t += 1 * US
    assert t < GC_AT
    rows.append((GC_AT, OP_GC, 0, 0, 8 << 20, 0))
    rows.append((GC_AT + 100 * MS, OP_ALLOC, 1000, 1, 0, 0))  # the program goes on: the scavenger works
    return rows


def _replay(iterations):
    table = pa.table({"ts": [0, GC_AT, 0], "p": [0, 0, 1], "state": ["user", "idle", "idle"], "reason": ["", "", ""]})
    sched = PSchedule.from_table(table, 2, iterations=iterations)
    engine = Replay("go1.14", CostModel(), gomaxprocs=2, psched=sched)
    engine.lock_line.log = log = []
    ts, op, span, npages, value, p = (list(c) for c in zip(*_rows()))
    engine.run_batch(ts, op, span, npages, value, p, first_row=0, label="off-cpu")
    engine.finish("off-cpu", 0.0)
    return engine.scavenger, [end - start for start, end, who in log if who == "scavenger"]


def test_a_release_after_the_os_took_the_recorded_scavengers_cpu_is_off_its_cpu_as_long():
    end = GC_AT + MS // 2 + OFF
    iterations = pa.table({"ts": [end], "outcome": ["sleep"], "crit_ns": [OFF]})
    assert OFF >= OFF_CPU_CRIT_NS
    plain, plain_holds = _replay(None)
    scav, holds = _replay(iterations)
    assert plain.crits.n > 10 and plain.crits.max < OFF_CPU_CRIT_NS
    assert scav.crits.max >= OFF  # one crit took the window in ...
    assert sum(c >= OFF_CPU_CRIT_NS for c in _crits(scav)) == 1  # ... once
    assert max(holds) < OFF_CPU_CRIT_NS and max(plain_holds) < OFF_CPU_CRIT_NS  # not holding the heap lock
    assert scav.cpu_ns < scav.crits.total - OFF + MS  # nor on a CPU
    # Go's pacing: a long crit asks for a long sleep (crit / 1%), so fewer releases in the same time
    assert scav.crits.n < plain.crits.n


def _crits(scav) -> list[int]:
    """Every crit of the histogram's buckets, by its lower edge (the long one is in a bucket of its own)."""
    from pagealloc.sim.histogram import _lower_bound

    return [_lower_bound(b) for b, n in enumerate(scav.crits.counts) for _ in range(n)]
