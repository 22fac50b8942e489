"""Import the record stream of pagealloc's Go 1.14.6 recording runtime.

The runtime (``go114patch/pagealloc_record.go``) writes 64-byte records,
little-endian: ``ts`` (nanotime), a head word (event | flags << 8 |
uint16(P + 1) << 16 | x << 32) and six words whose meaning depends on the
event.  Records come in heap order: those of events under the heap lock are
written under it.

Rows of the trace (source ``go1.14-runtime``):

- each span allocation (``allocSpan``) -> ``alloc``: ``span`` = (base -
  0xc000000000) / 8 KiB (Go 1.14's linux/amd64 heap starts there, with no
  randomisation), ``kind`` = span class << 1, or 1 for a manual (stack,
  GC work buffer) span, ``p`` the P that allocated it (-1: none);
- each span free (``freeSpanLocked``) -> ``free``;
- each mark termination's pacing (``gcSetTriggerRatio``, where
  ``gcPaceScavenger`` runs) -> ``gc``, ``value`` = the new ``next_gc``;
- each mark start -> ``gc_start``, where the trace format has that op,
  ``value`` = ``heap_live`` then (what ``startCycle`` kept ``next_gc`` 1
  MiB above; 0 in a version 1 stream, which lacks it);
- each ``scavengeAll`` (``debug.FreeOSMemory``) -> ``free_os_memory``, at
  the moment it takes the heap lock: after the GC that FreeOSMemory ran.

Everything else becomes the **reference** (metadata key ``reference``):
what the real runtime released, by path (``scavengeRangeLocked`` with its
caller: background, growth, forced), its heap growths (``mheap.grow``), its
figures at each GC, and ``heap_sys`` / ``heap_released`` at the end.  Go
1.14 moves manual spans' bytes out of ``heap_sys``; the model keeps them in
the heap, so the reference's ``heap_sys_bytes`` and retained figures add
the live manual bytes back (``memstats_heap_sys_bytes`` keeps Go's own).

A version 3 stream also records the Ps' schedule and the background
scavenger's iterations; ``go114sched`` turns them into the trace's format
v3 side tables (``p_schedule``, ``sched_events``, ``scavenger_iterations``);
a version 4 stream adds sysmon's loop (its passes and sleeps, and each
stop for the world's request) to ``sched_events``; a version 5 stream the
Ps' waits for the heap lock (``heap_lock``); a version 6 stream sysmon's
release probe (``release_probe``: each probe's ts, the time of sysUnused's
calls and of its MADV_FREE, npidle and the Go page; trace.shootdown reads
its mean, which prices the replay's releases: ``replay.in_run_costs``).

A stream that is not one (wrong size, magic or version), has an unknown
event, or lacks the end record (the program crashed or was killed, or the
stream was cut short) is an error; so is one whose spans do not add up.
"""

from __future__ import annotations

import os

import numpy as np

from pagealloc.errors import UserError
from pagealloc.trace.format import OP_ALLOC, OP_FREE, OP_FREE_OS_MEMORY, OP_GC, OP_NAMES, PAGE_SIZE, Columns, TraceSource, TraceWriter, make_metadata
from pagealloc.trace import go114sched
from pagealloc.trace.shootdown import IN_RUN_COLUMNS
from pagealloc.trace.go114sched import (
    EV_IDLE,
    EV_PREEMPT_REQ,
    EV_RESUME,
    EV_RUN,
    EV_SCAV_ITER,
    EV_SCAV_PARK,
    EV_SCAV_READY,
    EV_SCAV_SLEEP,
    EV_SCAV_WOKE,
    EV_STOP,
    EV_STW,
    EV_STOP_REQUEST,
    EV_SWEEP_DONE,
    EV_SYSMON,
    EV_SYSMON_SLEEP,
    EV_TIMER_FIRE,
    EV_UNIDLE,
    side_tables,
)

MAGIC = 0x3143455243415050  # b"PPACREC1"
VERSION = 6  # 2: the mark start record carries heap_live; 3: the Ps' schedule and the scavenger's iterations; 4: sysmon's loop; 5: the heap lock's waits; 6: the release probe
READS_VERSIONS = (1, 2, 3, 4, 5, 6)  # a version 1 stream's gc_start rows say heap_live is not known (0)
RECORD = np.dtype([("ts", "<i8"), ("head", "<u8"), ("w", "<u8", (6,))])
HEAP_BASE = 0xC000000000  # arena hint 0x00c0 << 32
PAGE_SHIFT = 13
SOURCE = "go1.14-runtime"

# Event codes (pagealloc_record.go)
EV_START, EV_ALLOC, EV_FREE, EV_GC_START, EV_GC_END, EV_FOM_START, EV_FOM_END = 1, 2, 3, 4, 5, 6, 7
EV_SCAVENGE, EV_GROW, EV_PCACHE_FLUSH, EV_PROCS, EV_SET_GC_PERCENT, EV_END = 8, 9, 10, 11, 12, 13
# Version 3: the schedule (their codes and reader: pagealloc.trace.go114sched)
assert go114sched.EV_PROCS == EV_PROCS
# Version 5: the Ps' waits for the heap lock at the sites a row stands for (pagealloc_record.go's pageallocLock)
EV_LOCK_WAIT, EV_HEAP_LOCK = 31, 32
EV_PROBE = 33
EV_LAST = EV_PROBE
LAST_EVENT_OF = {1: EV_END, 2: EV_END, 3: EV_SCAV_READY, 4: EV_STOP_REQUEST, 5: EV_HEAP_LOCK, 6: EV_PROBE}  # by stream version
LOCK_SITES = ("refill", "alloc", "free", "free_manual")  # a wait's x, from 1
EVENTS = dict(
    start=EV_START, alloc=EV_ALLOC, free=EV_FREE, gc_start=EV_GC_START, gc_end=EV_GC_END, fom_start=EV_FOM_START,
    fom_end=EV_FOM_END, scavenge=EV_SCAVENGE, grow=EV_GROW, pcache_flush=EV_PCACHE_FLUSH, procs=EV_PROCS,
    set_gc_percent=EV_SET_GC_PERCENT, end=EV_END, run=EV_RUN, stop=EV_STOP, idle=EV_IDLE, unidle=EV_UNIDLE,
    resume=EV_RESUME, stw=EV_STW, preempt_req=EV_PREEMPT_REQ, sweep_done=EV_SWEEP_DONE, scav_iter=EV_SCAV_ITER,
    scav_sleep=EV_SCAV_SLEEP, scav_woke=EV_SCAV_WOKE, scav_park=EV_SCAV_PARK, timer_fire=EV_TIMER_FIRE,
    scav_ready=EV_SCAV_READY, sysmon=EV_SYSMON, sysmon_sleep=EV_SYSMON_SLEEP, stop_request=EV_STOP_REQUEST,
    lock_wait=EV_LOCK_WAIT, heap_lock=EV_HEAP_LOCK, probe=EV_PROBE,
)
MANUAL, FROM_CACHE, REFILLED, MARKING = 1, 2, 4, 8  # alloc flags
RELEASED_BY = ("background", "growth", "forced")  # scavenge record's x

# The trace format may have an op for a GC's mark start (format v2).
OP_GC_START = OP_NAMES.index("gc_start") if "gc_start" in OP_NAMES else None


def is_record_stream(path: str) -> bool:
    """Does the file start with a start record (so ``pagealloc import`` can tell it from a Go trace)?"""
    try:
        with open(path, "rb") as f:
            head = f.read(RECORD.itemsize)
    except OSError:
        return False
    return len(head) == RECORD.itemsize and np.frombuffer(head, RECORD)["w"][0, 0] == MAGIC


def read_records(path: str) -> np.ndarray:
    """The records of a stream, checked for shape, header, event codes and end."""
    try:
        size = os.path.getsize(path)
        recs = np.fromfile(path, dtype=RECORD)
    except OSError as e:
        raise UserError(f"{path}: cannot read the record stream ({e.strerror})") from None
    if len(recs) == 0 or recs[0]["w"][0] != MAGIC:
        raise UserError(f"{path}: not a record stream of pagealloc's Go 1.14 runtime (no start record)")
    if recs[0]["w"][1] not in READS_VERSIONS:
        raise UserError(f"{path}: record stream version {recs[0]['w'][1]} (this pagealloc reads versions "
                        f"{', '.join(map(str, READS_VERSIONS))})")
    if size % RECORD.itemsize:
        raise UserError(f"{path}: truncated record stream ({size} bytes is not a whole number of {RECORD.itemsize}-byte records)")
    ev = recs["head"] & 0xFF
    last = LAST_EVENT_OF[int(recs[0]["w"][1])]
    bad = np.flatnonzero((ev < EV_START) | (ev > last) | ((ev == EV_START) & (np.arange(len(recs)) > 0)))
    if len(bad):
        raise UserError(f"{path}: record {bad[0]}: unknown event {ev[bad[0]]} (a corrupt stream, or one from another patch)")
    ends = np.flatnonzero(ev == EV_END)
    if not len(ends):
        raise UserError(f"{path}: truncated record stream: no end record (the program crashed or was killed, or the stream was cut short)")
    if ends[0] != len(recs) - 1:
        raise UserError(f"{path}: record {ends[0] + 1}: a record after the end record")
    if recs[0]["w"][5] or recs[-1]["w"][4]:
        raise UserError(f"{path}: the runtime dropped {max(recs[0]['w'][5], recs[-1]['w'][4])} records made before it read its environment")
    return recs


class _Checker:
    """Span consistency of the rows, reported by record number (the trace validator's checks)."""

    def __init__(self, label: str, record_of_row: np.ndarray):
        from pagealloc.trace.read import Validator  # the same checks as every trace reader

        class ByRecord(Validator):
            def fail(self, row, message):
                raise UserError(f"{label}: record {record_of_row[row]}: {message}")

        self.validator = ByRecord(TraceSource(label, None, {}, 0, iter(())))

    def check(self, cols: Columns) -> None:
        self.validator.check(cols)


def _carries_heap_live(recs: np.ndarray) -> bool:
    """Whether the stream's mark start records carry heap_live (version 2 on)."""
    return recs[0]["w"][1] >= 2


def to_columns(recs: np.ndarray, label: str) -> tuple[Columns, np.ndarray]:
    """Trace rows from the records (checked), and each row's record number."""
    ev, head, w = recs["head"] & 0xFF, recs["head"], recs["w"]
    live = _carries_heap_live(recs)
    op_of = {EV_ALLOC: OP_ALLOC, EV_FREE: OP_FREE, EV_GC_END: OP_GC, EV_FOM_START: OP_FREE_OS_MEMORY}
    if OP_GC_START is not None:
        op_of[EV_GC_START] = OP_GC_START
    rows = np.flatnonzero(np.isin(ev, list(op_of)))
    e, wr = ev[rows], w[rows]
    spanop = (e == EV_ALLOC) | (e == EV_FREE)
    base = np.where(spanop, wr[:, 0], HEAP_BASE)
    bad = np.flatnonzero((base < HEAP_BASE) | (base & (PAGE_SIZE - 1) != 0) | (spanop & (wr[:, 1] == 0)))
    if len(bad):
        r = rows[bad[0]]
        raise UserError(f"{label}: record {r}: span base {int(w[r, 0]):#x} with {int(w[r, 1])} pages is not a span of the heap at {HEAP_BASE:#x}")
    lut = np.zeros(EV_LAST + 1, dtype=np.uint8)
    for code, op in op_of.items():
        lut[code] = op
    flags, x = (head[rows] >> 8) & 0xFF, head[rows] >> 32
    ts = recs["ts"][rows]
    ts = np.maximum.accumulate(ts - (ts[0] if len(ts) else 0))  # the clock is monotonic; never let a row go back
    cols = Columns(
        0,
        ts.astype(np.int64),
        lut[e],
        np.where(spanop, (base - HEAP_BASE) >> PAGE_SHIFT, 0).astype(np.uint64),
        np.where(spanop, wr[:, 1], 0).astype(np.uint32),
        (((head[rows] >> 16) & 0xFFFF).astype(np.int64) - 1).astype(np.int32),
        np.where(e == EV_GC_END, wr[:, 0], np.where(e == EV_GC_START, wr[:, 5] if live else 0, 0)).astype(np.uint64),
        np.where(e == EV_ALLOC, np.where(flags & MANUAL, 1, x << 1), 0).astype(np.uint16),
    )
    _Checker(label, rows).check(cols)
    return cols, rows


def reference(recs: np.ndarray, rows: np.ndarray, label: str) -> dict:
    """What the real runtime did: released bytes by path, growths, per-GC figures, the end."""
    ev, w, x = recs["head"] & 0xFF, recs["w"], recs["head"] >> 32
    t0 = recs["ts"][rows[0]] if len(rows) else recs["ts"][-1]
    ts = np.maximum(recs["ts"] - t0, 0)
    flags = (recs["head"] >> 8) & 0xFF
    live = _carries_heap_live(recs)
    manual_pages = np.where((ev == EV_ALLOC) & (flags & MANUAL != 0), w[:, 1].astype(np.int64), 0)
    manual_pages -= np.where((ev == EV_FREE) & (flags & MANUAL != 0), w[:, 1].astype(np.int64), 0)
    manual = np.cumsum(manual_pages) * PAGE_SIZE  # live manual bytes after each record

    scav = ev == EV_SCAVENGE
    who_bad = np.flatnonzero(scav & (x >= len(RELEASED_BY)))
    if len(who_bad):
        raise UserError(f"{label}: record {who_bad[0]}: scavenge by unknown caller {x[who_bad[0]]}")
    released = {name: np.cumsum(np.where(scav & (x == k), w[:, 1] * PAGE_SIZE, 0)) for k, name in enumerate(RELEASED_BY)}

    # Samples at each GC's pacing, each FreeOSMemory's end and the end, as the replay's retained timeline.
    sys_col = np.select([ev == EV_GC_END, ev == EV_FOM_END], [w[:, 2], w[:, 1]], w[:, 0]).astype(np.int64)
    rel_col = np.select([ev == EV_GC_END, ev == EV_FOM_END], [w[:, 3], w[:, 2]], w[:, 1]).astype(np.int64)
    samples = np.flatnonzero(np.isin(ev, [EV_GC_END, EV_FOM_END, EV_END]))
    timeline = [[int(ts[i]), int(sys_col[i] + manual[i] - rel_col[i])] for i in samples]
    released_timeline = [[int(ts[i]), *(int(released[n][i]) for n in RELEASED_BY)] for i in samples]

    def table(code: int, columns: list[str], values) -> dict:
        idx = np.flatnonzero(ev == code)
        return {"columns": columns, "rows": [[int(v) for v in values(i)] for i in idx]}

    end = w[-1]
    lock = heap_lock(recs, ts, label)
    procs = x[ev == EV_PROCS]
    after_init = np.arange(len(ev)) > np.argmax(ev == EV_PROCS)  # schedinit ends with the first procresize
    return {
        "runtime": "go1.14.6 (pagealloc recording patch)",
        "heap_sys_bytes": int(end[0]) + int(manual[-1]),
        "heap_released_bytes": int(end[1]),
        "retained_final_bytes": int(end[0]) + int(manual[-1]) - int(end[1]),
        "heap_inuse_bytes": int(end[2]),
        "memstats_heap_sys_bytes": int(end[0]),
        "manual_bytes": int(manual[-1]),
        "stacks_inuse_bytes": int(end[3]),
        "heap_growths": int((ev == EV_GROW).sum()),
        "released_bytes": {name: int(released[name][-1]) for name in RELEASED_BY},
        "scavenged_alloc_bytes": int(w[ev == EV_ALLOC, 2].sum()),
        "exit_code": int(np.int32(np.uint32(x[-1]))),
        "gomaxprocs": int(end[5]),
        "gomaxprocs_changes": [int(v) for v in procs[1:]] if len(procs) > 1 else [],
        "pcache_flushes": int((ev == EV_PCACHE_FLUSH).sum()),
        "set_gc_percent_calls": int(((ev == EV_SET_GC_PERCENT) & after_init).sum()),  # gcinit's own call excluded
        "allocs_from_cache": int(((ev == EV_ALLOC) & (flags & FROM_CACHE != 0)).sum()),
        "allocs_while_marking": int(((ev == EV_ALLOC) & (flags & MARKING != 0)).sum()),
        **({"heap_lock": lock} if lock is not None else {}),
        **({"release_probe": table(EV_PROBE, IN_RUN_COLUMNS, lambda i: [ts[i], *w[i, :4]])}
           if recs[0]["w"][1] >= 6 else {}),
        "retained_timeline": timeline,
        "released_timeline": {"columns": ["ts", *RELEASED_BY], "rows": released_timeline},
        "gc_end": table(
            EV_GC_END,
            ["ts", "next_gc", "heap_inuse", "heap_sys", "heap_released", "scavenge_goal", "last_next_gc", "manual_bytes"],
            lambda i: [ts[i], *w[i, :6], manual[i]],
        ),
        "gc_start": table(EV_GC_START, ["ts", "next_gc", "heap_inuse", "heap_sys", "heap_released", "scavenge_goal", "heap_live"],
                          lambda i: [ts[i], *w[i, :5], w[i, 5] if live else 0]),
        "free_os_memory": table(EV_FOM_END, ["ts", "released", "heap_sys", "heap_released", "retained"],
                                lambda i: [ts[i], *w[i, :3], sys_col[i] + manual[i] - rel_col[i]]),
        "growths": table(EV_GROW, ["ts", "npages", "growth_bytes", "heap_sys", "heap_released", "scavenge_goal", "retained"], lambda i: [ts[i], *w[i, :6]]),
        # Where the background scavenger released what, so that a replay can put its releases back (sim.reference).
        "background_releases": {
            "columns": ["before_row", "page", "npages"],
            "rows": [[int(np.searchsorted(rows, i)), int((w[i, 0] - HEAP_BASE) >> PAGE_SHIFT), int(w[i, 1])] for i in np.flatnonzero(scav & (x == 0))],
        },
    }


def heap_lock(recs: np.ndarray, ts: np.ndarray, label: str) -> dict | None:
    """The Ps' heap lock at the sites a row stands for (stream version 5 on; None before): how often
    they took it, how often and how long they waited for it (each wait from before lock() to holding
    it: the runtime's P-stall), the longest wait, the waits by P (index P + 1: 0 is no P) and by site.
    ``acquisitions`` is the recorder's count; Go 1.14 took the lock ``relocks_after_refill`` times more
    (``sim.reference.go114_acquisitions``)."""
    if recs[0]["w"][1] < 5:
        return None
    ev, w, x = recs["head"] & 0xFF, recs["w"], recs["head"] >> 32
    totals = np.flatnonzero(ev == EV_HEAP_LOCK)
    waits = np.flatnonzero(ev == EV_LOCK_WAIT)
    if len(totals) != 1:
        raise UserError(f"{label}: {len(totals)} heap-lock totals records, not 1 (a corrupt stream)")
    acquisitions, counted = (int(v) for v in w[totals[0], :2])
    bad = np.flatnonzero((x[waits] < 1) | (x[waits] > len(LOCK_SITES)))
    if counted != len(waits) or counted > acquisitions or len(bad):
        raise UserError(f"{label}: the heap-lock waits do not add up ({len(waits)} wait records, {counted} counted, "
                        f"{acquisitions} acquisitions{', a wait at an unknown site' if len(bad) else ''})")
    wait = w[waits, 0].astype(np.int64)
    p = ((recs["head"][waits] >> 16) & 0xFFFF).astype(np.int64)
    # A refilled page cache that could not serve the span: the recorder kept the lock for the heap path
    # (edits.toml: the refill stays where it happened in heap order), where Go 1.14 unlocks and takes it again
    flags = (recs["head"] >> 8) & 0xFF
    relocks = int(((ev == EV_ALLOC) & (flags & REFILLED != 0) & (flags & FROM_CACHE == 0)).sum())
    return {
        "acquisitions": acquisitions,
        "relocks_after_refill": relocks,
        "waits": counted,
        "wait_ns": int(wait.sum()),
        "wait_max_ns": int(wait.max()) if len(wait) else 0,
        "wait_ns_by_p": [int(v) for v in np.bincount(p, weights=wait, minlength=1).astype(np.int64)],
        "waits_by_site": {site: int((x[waits] == k).sum()) for k, site in enumerate(LOCK_SITES, 1)},
        # each wait, as it ended (ts on the rows' clock; p -1: no P), and how often it slept in the futex
        "wait_rows": {"columns": ["ts", "p", "site", "wait_ns", "sleeps"],
                      "rows": [[int(t), int(q) - 1, LOCK_SITES[int(k) - 1], int(v), int(n)]
                               for t, q, k, v, n in zip(ts[waits], p, x[waits], wait, w[waits, 1])]},
    }


def warnings_for(ref: dict) -> list[str]:
    """What the replay cannot follow in this recording."""
    out = []
    if ref["pcache_flushes"]:
        out.append(f"GOMAXPROCS changed while it ran ({ref['gomaxprocs_changes']}): {ref['pcache_flushes']} page caches went back to the heap, which the replay does not model")
    if ref["set_gc_percent_calls"]:
        out.append(f"the program called debug.SetGCPercent {ref['set_gc_percent_calls']} times; the replay paces the scavenger only at GCs")
    return out


def import_records(path: str, out: str, name: str | None = None, **metadata) -> dict:
    """Convert a record stream to a trace file with the reference in its metadata; return the metadata."""
    recs = read_records(path)
    cols, rows = to_columns(recs, path)
    if not (cols.op == OP_ALLOC).any():
        raise UserError(f"{path}: the record stream has no span allocations")
    ref = reference(recs, rows, path)
    fields = {
        "name": name or os.path.splitext(os.path.basename(path))[0],
        "go_version": "go1.14.6",
        "goos": "linux",
        "goarch": "amd64",
        "page_size": int(recs[0]["w"][3]),
        "min_heap_addr": HEAP_BASE,
        "gomaxprocs": ref["gomaxprocs"],
        "spans_at_start": 0,
        "importer": {"records": len(recs), "phys_page_size": int(recs[0]["w"][2])},
        "generator": {"name": "pagealloc import", "input": os.path.basename(path)},
    }
    fields.update({k: v for k, v in metadata.items() if v is not None})
    fields["reference"] = ref
    meta = make_metadata(SOURCE, **fields)
    tables = side_tables(recs, rows) if recs[0]["w"][1] >= 3 else None
    with TraceWriter(out, meta, tables) as writer:
        writer.write(cols.ts, cols.op, cols.span, cols.npages, cols.p, cols.value, cols.kind)
    return writer.metadata


__all__ = ["EVENTS", "MAGIC", "RECORD", "SOURCE", "import_records", "is_record_stream", "read_records", "reference", "to_columns", "warnings_for"]
