"""How closely a replay reproduces what the real Go 1.14.6 runtime did.

A trace recorded with ``pagealloc record --go 1.14`` (source
``go1.14-runtime``) carries the runtime's own figures under the metadata key
``reference`` (pagealloc.trace.go114records): released bytes by path, heap
growths, heap_sys and retained bytes at the end, a retained timeline.
``reference_record`` turns them into a ReplayResult's ``reference``
record, each figure with its ratio = model / real (``None`` where
the real figure is 0 and the model's is not; 1.0 where both are 0).

``heap_walk`` answers the other half of "is the model Go 1.14?": it
replays the trace in row order on a bare Go 1.14 heap (no scavenger, no
timing: neither moves a span), says how many spans land at the recorded
address and where the first one that does not came from, and, with the
runtime's own background releases put back, what heap growth and
FreeOSMemory release and which scavenge goal each GC sets.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field

from pagealloc.errors import UserError
from pagealloc.sim.result import Reference
from pagealloc.runtime.malloc import ARENA_HINT_BASE, PAGE_SHIFT, PHYS_HUGE_PAGE_SIZE
from pagealloc.runtime.lock_futex import MUTATOR, SCAVENGER
from pagealloc.runtime.mheap import MHeap, span_kind_args, whole_huge_page
from pagealloc.runtime.mpagealloc_64bit import MIN_SCAV_ADDR, chunk_index, chunk_page_index
from pagealloc.trace.format import OP_ALLOC, OP_FREE, OP_FREE_OS_MEMORY, OP_GC, OP_GC_START
from pagealloc.trace.read import iter_event_batches, scavenger_iterations, trace_metadata

SOURCE = "go1.14-runtime"


def go114_acquisitions(lock: dict) -> int:
    """Heap-lock acquisitions at the rows' sites as Go 1.14 takes them: the recorder's, and once more for
    each heap path after a page-cache refill whose lock the recorder kept (trace.go114records.heap_lock).
    Imports before that count (session 17) have the recorder's alone: up to 4% short on churn."""
    return lock["acquisitions"] + lock.get("relocks_after_refill", 0)


# Model field -> its figure in the reference.
COMPARED = {
    "released_bytes": lambda ref: sum(ref["released_bytes"].values()),
    "released_background_bytes": lambda ref: ref["released_bytes"]["background"],
    "released_background_count": lambda ref: len(ref["background_releases"]["rows"]) if "background_releases" in ref else None,
    "released_background_whole_huge_pages": lambda ref: (
        sum(whole_huge_page(page << PAGE_SHIFT, npages << PAGE_SHIFT, PHYS_HUGE_PAGE_SIZE)
            for _, page, npages in ref["background_releases"]["rows"]) if "background_releases" in ref else None),
    "released_growth_bytes": lambda ref: ref["released_bytes"]["growth"],
    "released_forced_bytes": lambda ref: ref["released_bytes"]["forced"],
    "retained_final_bytes": lambda ref: ref["retained_final_bytes"],
    "heap_sys_bytes": lambda ref: ref["heap_sys_bytes"],
    "heap_growths": lambda ref: ref["heap_growths"],
    "scavenged_alloc_bytes": lambda ref: ref["scavenged_alloc_bytes"],
    "lock_acquisitions_mutator": lambda ref: go114_acquisitions(ref["heap_lock"]) if "heap_lock" in ref else None,
    "p_stall_ns": lambda ref: ref["heap_lock"]["wait_ns"] if "heap_lock" in ref else None,
    "p_stall_max_ns": lambda ref: ref["heap_lock"]["wait_max_ns"] if "heap_lock" in ref else None,
}
assert tuple(COMPARED) == Reference.COMPARED


def reference_of(metadata: dict, label: str) -> dict | None:
    """The trace's reference (checked), or None when the trace has none."""
    checked = _checked_reference(metadata, label)
    return checked[0] if checked is not None else None


def _checked_reference(metadata: dict, label: str) -> tuple[dict, dict] | None:
    """(the trace's reference, its COMPARED figures), checked; None when the trace has none."""
    if metadata.get("source") != SOURCE:
        return None
    ref = metadata.get("reference")
    if not isinstance(ref, dict):
        raise UserError(f"{label}: a {SOURCE} trace without a 'reference' object in its metadata")
    relocks = ref["heap_lock"].get("relocks_after_refill", 0) if isinstance(ref.get("heap_lock"), dict) else 0
    if isinstance(relocks, bool) or not isinstance(relocks, int) or relocks < 0:  # go114_acquisitions adds it
        raise UserError(f"{label}: metadata reference: heap_lock.relocks_after_refill is {relocks!r}, not a count of events")
    try:
        values = {name: get(ref) for name, get in COMPARED.items()}
        timeline = ref["retained_timeline"]
    except (KeyError, TypeError) as e:
        raise UserError(f"{label}: metadata reference lacks {e}") from None
    except ValueError as e:  # a background_releases row that is not (row, page, npages)
        raise UserError(f"{label}: metadata reference: background_releases: {e}") from None
    bad = [n for n, v in values.items() if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 0)]
    if bad:
        raise UserError(f"{label}: metadata reference: {bad[0]} is {values[bad[0]]!r}, not a count of bytes or events")
    if not isinstance(timeline, list) or not all(isinstance(p, list) and len(p) == 2 for p in timeline):
        raise UserError(f"{label}: metadata reference: retained_timeline must be a list of [ts, bytes] pairs")
    return ref, values


def ratio(model, real) -> float | None:
    if real == 0:
        return 1.0 if model == 0 else None
    return model / real


MAX_IDLE_TAIL_NS = 600 * 10**9  # a recorded program idles at most this long after its last heap event


def recorded_end_ns(metadata: dict, label: str, last_row_ns: int) -> int:
    """When the recorded program exited, on the trace's clock (its reference's last retained sample is
    its end record); 0 when the trace does not say.  A program may run on after its last heap event
    (burst-idle idles 200 ms), and the background scavenger with it; UserError for an end so far past
    ``last_row_ns`` that stepping the scavenger through it would take the replay forever."""
    ref = reference_of(metadata, label)
    end = ref["retained_timeline"][-1][0] if ref and ref["retained_timeline"] else 0
    if not isinstance(end, int) or end <= 0:
        return 0
    if end - last_row_ns > MAX_IDLE_TAIL_NS:
        raise UserError(f"{label}: metadata reference: the program's end ({end / 1e9:,.3f} s) is more than "
                        f"{MAX_IDLE_TAIL_NS // 10**9} s after its last row ({last_row_ns / 1e9:,.3f} s)")
    return end


def reference_record(metadata: dict, result, label: str, trace=None) -> Reference | None:
    """What the runtime did, with model / real for each figure of ``result``; None for a trace without a
    reference.  ``trace`` (its path or table): where its ``scavenger_iterations`` side table is read from."""
    checked = _checked_reference(metadata, label)
    if checked is None:
        return None
    ref, real = checked
    iterations = scavenger_iterations(trace) if trace is not None else None
    ratios = {name: None if value is None else ratio(getattr(result, name), value) for name, value in real.items()}
    return Reference(**real, ratios=ratios, retained_timeline=[tuple(p) for p in ref["retained_timeline"]],
                     scavenger_wakeups=runtime_wakeups(iterations))


def runtime_wakeups(iterations) -> dict[str, int] | None:
    """What woke the runtime's background scavenger, with its count (ReplayResult.scavenger_wakeups'
    counterpart): how each timer that fired was fired (trace.sidetables.P_FIRED_BY), and "gc" for a
    wakeScavenger that ended a sleep or a park.  None without the side table."""
    if iterations is None:
        return None
    woke = zip(iterations.column("fired_by").to_pylist(), iterations.column("woken_by").to_pylist())
    return dict(sorted(Counter("gc" if woken == "gc" else fired for fired, woken in woke if woken in ("gc", "timer")).items()))


def free_os_memory_retained(trace, result) -> list[tuple[int, int]]:
    """``[(model, real)]`` retained bytes just after each FreeOSMemory.

    After scavengeAll every free page is released, so retained is then the
    heap's in-use pages: exact whenever the spans and heap_sys agree, however
    differently the background scavenger ran before.  The model's samples
    are those of its retained timeline taken at free_os_memory rows.
    """
    ref = reference_of(trace_metadata(trace), str(trace))
    if ref is None:
        return []
    rows = ref["free_os_memory"]
    real = [row[rows["columns"].index("retained")] for row in rows["rows"]]
    sampled = [int(code) for batch in iter_event_batches(trace) for code in batch.op if code in (OP_GC, OP_FREE_OS_MEMORY)]
    if len(result.retained_timeline) != len(sampled) + 1:
        raise ValueError(f"the replay's timeline has {len(result.retained_timeline)} samples, not one per gc and free_os_memory row and the end")
    model = [r for (_, r), code in zip(result.retained_timeline, sampled) if code == OP_FREE_OS_MEMORY]
    return list(zip(model, real, strict=True))


# --------------------------------------------------------------------------
# The heap alone, row by row


@dataclass
class Mismatch:
    """The first alloc the model placed elsewhere than the recorded runtime did."""

    row: int
    ts: int
    p: int
    npages: int
    kind: int
    recorded_span: int
    model_span: int
    earlier: bool  # the model's address is below the recorded one: it saw free memory the runtime did not
    recorded_range_free_in_model: bool  # the recorded pages were free in the model at that moment


@dataclass
class HeapWalk:
    """What ``heap_walk`` found."""

    allocs: int = 0
    agreed: int = 0
    first_mismatch: Mismatch | None = None
    released: dict | None = None  # model's released bytes by path, the runtime's background releases put back
    goals: int = 0  # GCs whose scavenge goal was compared
    goals_agreed: int = 0
    first_goal_mismatch: dict | None = None  # {"gc": i, "row": r, "model": goal, "real": goal}
    background_not_free: int = 0  # recorded background releases of pages the model had allocated
    heap_growths: int = 0
    heap_sys_bytes: int = 0
    free_os_memory_retained: list = field(default_factory=list)  # [(model, real)] retained just after each FreeOSMemory

    @property
    def agreement(self) -> float:
        return self.agreed / self.allocs if self.allocs else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["agreement"] = self.agreement
        return d


def heap_walk(trace) -> HeapWalk:
    """Replay ``trace`` on a bare Go 1.14 heap in row order, with no scavenger and no timing.

    Spans: every alloc is placed as Go's allocSpan would (P ids choose the
    page cache; no P, no cache) and compared with the recorded address;
    neither the scavenger nor time moves a span, so this is the heap
    model's agreement alone.  On a go1.14-runtime trace the runtime's own
    background releases are put back where they happened (its background
    scavenger is paced by time, which is not the heap's business), so what
    heap growth and FreeOSMemory release here, and the scavenge goal after
    each GC, can be held against the reference exactly.
    """
    ref = reference_of(trace_metadata(trace), str(trace))
    releases = (ref or {}).get("background_releases")  # absent from recordings older than the key
    background = releases["rows"] if releases else []
    real_goals = [row[ref["gc_end"]["columns"].index("scavenge_goal")] for row in ref["gc_end"]["rows"]] if ref else []
    parks = _background_park_times(trace) if ref else []
    heap = MHeap()
    live: dict[int, tuple[int, int, bool]] = {}
    walk = HeapWalk()
    row = k = gcs = j = 0
    fom: list[int] = []
    for ts, op, span, npages, value, p, kind in iter_event_batches(trace):
        for i, code in enumerate(op.tolist()):
            while k < len(background) and background[k][0] <= row + i:
                walk.background_not_free += not _release(heap, *background[k][1:])
                k += 1
            while j < len(parks) and parks[j] < ts[i]:
                _searched_in_vain(heap)
                j += 1
            if code == OP_ALLOC:
                sid, n, pid, kd = int(span[i]), int(npages[i]), int(p[i]), int(kind[i])
                base = heap.alloc_span(n, pid, *span_kind_args(kd))
                live[sid] = (base, n, bool(kd & 1))  # manual: Go's allocManual (stacks, GC work buffers)
                walk.allocs += 1
                model = (base - ARENA_HINT_BASE) >> PAGE_SHIFT
                if model == sid:
                    walk.agreed += 1
                elif walk.first_mismatch is None:
                    walk.first_mismatch = Mismatch(row + i, int(ts[i]), pid, n, kd, sid, model, model < sid,
                                                   _free_in_model(heap, ARENA_HINT_BASE + (sid << PAGE_SHIFT), n))
            elif code == OP_FREE:
                base, n, manual = live.pop(int(span[i]))
                heap.free_span(base, n, int(p[i]), manual)
            elif code == OP_GC:
                heap.gc_done(int(value[i]))
                if gcs < len(real_goals):
                    walk.goals += 1
                    if heap.scavenge_goal == real_goals[gcs]:
                        walk.goals_agreed += 1
                    elif walk.first_goal_mismatch is None:
                        walk.first_goal_mismatch = {"gc": gcs, "row": row + i, "model": heap.scavenge_goal, "real": real_goals[gcs]}
                gcs += 1
            elif code == OP_GC_START:
                heap.gc_start(int(value[i]))
            elif code == OP_FREE_OS_MEMORY:
                heap.scavenge_all(locked=True)
                fom.append(heap.heap_retained())
        row += len(op)
    for rest in background[k:]:
        walk.background_not_free += not _release(heap, *rest[1:])
    walk.released = dict(heap.released_by) if releases is not None else None
    walk.heap_growths, walk.heap_sys_bytes = heap.growths, heap.heap_sys
    if ref:
        rows = ref["free_os_memory"]
        real = [r[rows["columns"].index("retained")] for r in rows["rows"]]
        walk.free_os_memory_retained = list(zip(fom, real, strict=True))
    return walk


def _background_park_times(trace) -> list[int]:
    """When the real background scavenger parked (its side table; none in older recordings)."""
    from pagealloc.trace.read import iterations_where

    table = scavenger_iterations(trace)
    return iterations_where(table, "park", "ts") if table is not None else []


def _searched_in_vain(heap: MHeap) -> None:
    """The real background scavenger parked here.  With retained over the goal it had searched: Go's
    scavengeOne found nothing, and an exhausted search leaves scavAddr at minScavAddr, so the next
    scavenge (a heap growth's) starts from the bottom as well and finds nothing either."""
    if heap.go_heap_retained() > heap.scavenge_goal:
        heap.pages.scav_addr = MIN_SCAV_ADDR


def _release(heap: MHeap, page: int, npages: int) -> bool:
    """Release pages the real background scavenger released, as scavengeRangeLocked did; False if not free here."""
    addr = ARENA_HINT_BASE + (page << PAGE_SHIFT)
    ci, base = chunk_index(addr), chunk_page_index(addr)
    chunk = heap.pages.chunks.get(ci)
    mask = ((1 << npages) - 1) << base
    if chunk is None or chunk.bits & mask or chunk.scavenged & mask:
        return False
    lock = heap.lock
    lock.running(SCAVENGER)
    with lock:
        heap.pages.scavenge_range_locked(ci, base, npages)
    lock.running(MUTATOR)
    return True


def _free_in_model(heap: MHeap, base: int, npages: int) -> bool:
    """Were the pages [base, base + npages) all free in the model's page allocator?"""
    pages = heap.pages
    for k in range(npages):
        addr = base + (k << PAGE_SHIFT)
        bits = pages.chunk_bits(chunk_index(addr))
        if bits is None or bits[0] >> chunk_page_index(addr) & 1:
            return False
    return True


__all__ = ["COMPARED", "HeapWalk", "Mismatch", "heap_walk", "free_os_memory_retained", "ratio", "reference_record", "reference_of"]
