"""How closely a replay reproduces what the real Go 1.14.6 runtime did.

A trace recorded with ``pagealloc record --go 1.14`` (source
``go1.14-runtime``) carries the runtime's own figures under the metadata key
``reference`` (pagealloc.trace.go114records): released bytes by path, heap
growths, heap_sys and retained bytes at the end, a retained timeline.
``reference_fields`` turns them into the ``reference_*`` fields of a
ReplayResult, each with ``reference_*_ratio`` = model / real (``None`` where
the real figure is 0 and the model's is not; 1.0 where both are 0).

``address_walk`` answers the other half of "is the model Go 1.14?": it
replays only the trace's allocations and frees, in row order, on a bare
Go 1.14 heap (no scavenger, no timing: neither moves a span), and says how
many spans land at the recorded address and where the first one that does
not came from.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from pagealloc.errors import UserError
from pagealloc.runtime.malloc import ARENA_HINT_BASE, PAGE_SHIFT
from pagealloc.runtime.mheap import SMALL_SPAN_PAGES, MHeap
from pagealloc.runtime.mpagealloc_64bit import chunk_index, chunk_page_index
from pagealloc.trace.format import OP_ALLOC, OP_FREE, OP_FREE_OS_MEMORY, OP_GC
from pagealloc.trace.read import iter_event_batches, trace_metadata

SOURCE = "go1.14-runtime"

# Model field -> its figure in the reference.
COMPARED = {
    "released_bytes": lambda ref: sum(ref["released_bytes"].values()),
    "released_background_bytes": lambda ref: ref["released_bytes"]["background"],
    "released_growth_bytes": lambda ref: ref["released_bytes"]["growth"],
    "released_forced_bytes": lambda ref: ref["released_bytes"]["forced"],
    "retained_final_bytes": lambda ref: ref["retained_final_bytes"],
    "heap_sys_bytes": lambda ref: ref["heap_sys_bytes"],
    "heap_growths": lambda ref: ref["heap_growths"],
    "scavenged_alloc_bytes": lambda ref: ref["scavenged_alloc_bytes"],
}
# The ReplayResult fields this module fills (all None for other traces).
FIELDS = [f"reference_{name}{suffix}" for name in COMPARED for suffix in ("", "_ratio")] + ["reference_retained_timeline"]


def reference_of(metadata: dict, label: str) -> dict | None:
    """The trace's reference (checked), or None when the trace has none."""
    if metadata.get("source") != SOURCE:
        return None
    ref = metadata.get("reference")
    if not isinstance(ref, dict):
        raise UserError(f"{label}: a {SOURCE} trace without a 'reference' object in its metadata")
    try:
        values = {name: get(ref) for name, get in COMPARED.items()}
        timeline = ref["retained_timeline"]
    except (KeyError, TypeError) as e:
        raise UserError(f"{label}: metadata reference lacks {e}") from None
    bad = [n for n, v in values.items() if not isinstance(v, int) or isinstance(v, bool) or v < 0]
    if bad:
        raise UserError(f"{label}: metadata reference: {bad[0]} is {values[bad[0]]!r}, not a count of bytes or events")
    if not isinstance(timeline, list) or not all(isinstance(p, list) and len(p) == 2 for p in timeline):
        raise UserError(f"{label}: metadata reference: retained_timeline must be a list of [ts, bytes] pairs")
    return ref


def ratio(model, real) -> float | None:
    if real == 0:
        return 1.0 if model == 0 else None
    return model / real


def reference_fields(metadata: dict, result, label: str) -> dict:
    """``{field: value}`` for the reference_* fields of ``result`` (empty for a trace without a reference)."""
    ref = reference_of(metadata, label)
    if ref is None:
        return {}
    out = {}
    for name, get in COMPARED.items():
        real = get(ref)
        model = getattr(result, name, None)
        out[f"reference_{name}"] = real
        out[f"reference_{name}_ratio"] = None if model is None else ratio(model, real)
    out["reference_retained_timeline"] = [tuple(p) for p in ref["retained_timeline"]]
    return out


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
# Addresses


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
class AddressWalk:
    allocs: int = 0
    agreed: int = 0
    first_mismatch: Mismatch | None = None

    @property
    def agreement(self) -> float:
        return self.agreed / self.allocs if self.allocs else 0.0

    def to_dict(self) -> dict:
        return {"allocs": self.allocs, "agreed": self.agreed, "agreement": self.agreement,
                "first_mismatch": asdict(self.first_mismatch) if self.first_mismatch else None}


def address_walk(trace, kinds_known: bool = True) -> AddressWalk:
    """Place every span of ``trace`` on a bare Go 1.14 heap in row order; count the agreements.

    P ids choose the page cache as in Go's allocSpan (no P: no cache); a
    span under 16 pages skips the cache's lock only if small-object or
    manual, which does not move it, so ``kinds_known`` only matters for
    the accounting.
    """
    heap = MHeap()
    live: dict[int, tuple[int, int]] = {}
    walk = AddressWalk()
    row = 0
    for ts, op, span, npages, _value, p, kind in iter_event_batches(trace):
        for i, code in enumerate(op.tolist()):
            if code == OP_ALLOC:
                sid, n, pid, k = int(span[i]), int(npages[i]), int(p[i]), int(kind[i])
                small = not kinds_known or n >= SMALL_SPAN_PAGES or bool(k & 1 or k >> 2)
                base = heap.alloc_span(n, pid, small)
                live[sid] = (base, n)
                walk.allocs += 1
                model = (base - ARENA_HINT_BASE) >> PAGE_SHIFT
                if model == sid:
                    walk.agreed += 1
                elif walk.first_mismatch is None:
                    walk.first_mismatch = Mismatch(row + i, int(ts[i]), pid, n, k, sid, model, model < sid,
                                                   _free_in_model(heap, ARENA_HINT_BASE + (sid << PAGE_SHIFT), n))
            elif code == OP_FREE:
                base, n = live.pop(int(span[i]))
                heap.free_span(base, n)
        row += len(op)
    return walk


def _free_in_model(heap: MHeap, base: int, npages: int) -> bool:
    """Were the pages [base, base + npages) all free in the model's page allocator?"""
    pages = heap.pages
    for k in range(npages):
        addr = base + (k << PAGE_SHIFT)
        bits = pages.chunk_bits(chunk_index(addr))
        if bits is None or bits[0] >> chunk_page_index(addr) & 1:
            return False
    return True


__all__ = ["COMPARED", "FIELDS", "AddressWalk", "Mismatch", "address_walk", "free_os_memory_retained", "ratio", "reference_fields", "reference_of"]
