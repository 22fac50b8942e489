"""A pure-Python decoder of Go execution traces (wire format of Go 1.23 to
1.26), for the events ``pagealloc import`` turns into rows; no Go needed.

``pagealloc import --decoder python`` uses it instead of ``go tool trace
-d=parsed``.  It walks the batches, reads each generation's frequency and
string table, and decodes every per-M event batch with the argument counts
of Go's ``internal/trace/tracev2`` specs (the event numbering is append-only,
so one table serves every version).  Heap-object, goroutine and other
events are skipped by count; span, GC, heap-goal, GOMAXPROCS and
user-log events are kept (with whether a GC start's or a log's stack shows
``runtime/debug.FreeOSMemory``, from the stack table), and ProcStart/ProcStop/ProcSteal/ProcStatus give
each M's current P (a P taken by ProcSteal is not followed, so a few rows
may name a P that Go's reader would not).

Timestamps are computed exactly as Go's reader does: per batch, base =
trunc(batch time x ns-per-tick), then each event adds trunc(delta x
ns-per-tick).  Order: the events of all Ms are merged by time; **ties**
(the trace clock ticks every 64 ns, so Ms often share a timestamp) go to
the lower M id, then to batch order; afterwards, as in Go's reader, any
timestamp not after the previous event's becomes previous + 1 ns.  Go's
reader breaks ties by its heap of Ms instead, and may also hold back an
event that is not yet causally possible, so the two decoders can order a
few same-tick events differently; the events themselves are the same.
"""

from __future__ import annotations

import datetime
import mmap
import re
from array import array

import numpy as np

from pagealloc.errors import UserError
from pagealloc.trace.gotrace import Decoded, WireError, read_header, uvarint, varints, wire_batches

# Event types (internal/trace/tracev2/events.go) and their argument counts, timestamp delta included.
EV_STACKS, EV_STACK, EV_STRINGS, EV_STRING, EV_CPU_SAMPLES, EV_FREQUENCY = 2, 3, 4, 5, 6, 8
EV_PROCS_CHANGE, EV_PROC_START, EV_PROC_STOP, EV_PROC_STEAL, EV_PROC_STATUS = 9, 10, 11, 12, 13
EV_GC_BEGIN, EV_GC_END, EV_HEAP_ALLOC, EV_HEAP_GOAL, EV_USER_LOG = 29, 30, 37, 38, 44
EV_SYNC, EV_CLOCK_SNAPSHOT = 50, 51
EV_SPAN, EV_SPAN_ALLOC, EV_SPAN_FREE = 128, 129, 130
PROC_RUNNING = 1
FREE_OS_MEMORY_FUNC = b"runtime/debug.FreeOSMemory"

NARGS = [0] * 256
for _ev, _n in {
    9: 3, 10: 3, 11: 1, 12: 4, 13: 3,  # procs
    14: 4, 15: 2, 16: 3, 17: 1, 18: 1, 19: 3, 20: 3, 21: 4, 22: 3, 23: 1, 24: 1, 25: 4,  # goroutines
    26: 3, 27: 1,  # STW
    28: 2, 29: 3, 30: 2, 31: 2, 32: 2, 33: 3, 34: 2, 35: 2, 36: 1, 37: 2, 38: 2,  # GC
    39: 2, 40: 5, 41: 3, 42: 4, 43: 4, 44: 5,  # annotations
    45: 3, 46: 3, 47: 4, 48: 5,  # Go 1.23 additions
    51: 4,  # clock snapshot
    128: 4, 129: 4, 130: 2, 131: 3, 132: 3, 133: 2, 134: 3, 135: 3, 136: 2,  # AllocFree experiment
}.items():
    NARGS[_ev] = _n
ROWS = {EV_PROCS_CHANGE, EV_GC_BEGIN, EV_GC_END, EV_HEAP_ALLOC, EV_HEAP_GOAL, EV_USER_LOG, EV_SPAN, EV_SPAN_ALLOC, EV_SPAN_FREE}
KEEP = ROWS | {EV_PROC_START, EV_PROC_STOP, EV_PROC_STATUS}
VARINT = re.compile(rb"[\x80-\xff]*[\x00-\x7f]")
SKIP = [re.compile(rb"(?:[\x80-\xff]*[\x00-\x7f]){%d}" % n) if n else None for n in range(8)]


class _Generation:
    def __init__(self):
        self.freq: float | None = None
        self.min_time: int | None = None
        self.wall: tuple[int, int] | None = None
        self.strings: dict[int, bytes] = {}
        self.stacks: dict[int, list[int]] = {}  # stack id -> its frames' function-name string ids
        self.events: dict[int, list[tuple[int, int, int]]] = {}  # m -> [(time, start, end)]
        self._fom: set[int] | None = None

    def free_os_memory_stacks(self) -> set[int]:
        """Ids of the stacks with a runtime/debug.FreeOSMemory frame (once the generation is read)."""
        if self._fom is None:
            ids = {i for i, name in self.strings.items() if name == FREE_OS_MEMORY_FUNC}
            self._fom = {sid for sid, funcs in self.stacks.items() if ids.intersection(funcs)}
        return self._fom


def _read_generations(buf, minor: int) -> list[_Generation]:
    gens: dict[int, _Generation] = {}
    for gen, m, time, exp, start, end in wire_batches(buf):
        g = gens.setdefault(gen, _Generation())
        g.min_time = time if g.min_time is None else min(g.min_time, time)
        if exp or start == end:
            continue
        head = buf[start]
        if head == EV_STRINGS:
            i = start + 1
            while i < end:
                if buf[i] != EV_STRING:
                    raise WireError(f"expected a string at byte {i}")
                (sid, n), i = varints(buf, i + 1, 2)
                g.strings[sid] = bytes(buf[i : i + n])
                i += n
        elif head == EV_STACKS:
            _read_stacks(buf, start, end, g)
        elif head == EV_CPU_SAMPLES:
            continue
        elif (head == EV_SYNC and minor >= 25) or (head == EV_FREQUENCY and minor < 25):
            _read_sync(buf, start, end, g, minor)
        else:
            g.events.setdefault(m, []).append((time, start, end))
    return [gens[k] for k in sorted(gens)]


def _read_stacks(buf, start: int, end: int, g: _Generation) -> None:
    i = start + 1
    while i < end:
        if buf[i] != EV_STACK:
            raise WireError(f"expected a stack at byte {i}")
        (sid, n), i = varints(buf, i + 1, 2)
        frames, i = varints(buf, i, 4 * n)  # pc, function name, file name, line
        g.stacks[sid] = frames[1::4]


def _read_sync(buf, start: int, end: int, g: _Generation, minor: int) -> None:
    i = start + (1 if minor >= 25 else 0)
    while i < end:
        ev = buf[i]
        if ev == EV_FREQUENCY:
            f, i = uvarint(buf, i + 1)
            g.freq = 1.0 / (f / 1e9)
        elif ev == EV_CLOCK_SNAPSHOT:
            (_, _, sec, nsec), i = varints(buf, i + 1, 4)
            g.wall = (sec, nsec)
        else:
            raise WireError(f"unexpected event {ev} in a sync batch")


def decode_wire(path: str) -> Decoded:
    """Decode the Go trace at ``path`` into rows, without the Go toolchain."""
    info = read_header(path)
    minor = int(info.version.split(".")[1])
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        try:
            return _decode(buf, minor)
        except (WireError, IndexError) as e:
            raise UserError(f"{path}: cannot decode the Go trace: {e or 'truncated'}") from None


def _decode(buf, minor: int) -> Decoded:
    gens = _read_generations(buf, minor)
    if not gens:
        return Decoded()
    times, ms = array("q"), array("Q")  # every event, for the order and the +1 ns rule
    kept: list[tuple[int, int, list[int], int]] = []  # (index into times, event type, args, P)
    procs: dict[int, int] = {}  # M -> current P
    for g in gens:
        if g.freq is None:
            raise WireError("a generation has no frequency event")
        freq = g.freq
        strings = g.strings
        for m in sorted(g.events):
            for btime, start, end in sorted(g.events[m]):
                last = int(btime * freq)
                i = start
                while i < end:
                    ev = buf[i]
                    n = NARGS[ev]
                    if not n:
                        raise WireError(f"unknown event type {ev} at byte {i}")
                    if ev in KEEP:
                        args, i = varints(buf, i + 1, n)
                        last += int(args[0] * freq)
                        if ev == EV_PROC_START or (ev == EV_PROC_STATUS and args[2] == PROC_RUNNING):
                            procs[m] = args[1]
                        elif ev == EV_PROC_STOP:
                            procs[m] = -1
                        else:
                            if ev == EV_USER_LOG:
                                args = [args[0], strings.get(args[2]), strings.get(args[3]), args[4] in g.free_os_memory_stacks()]
                            elif ev == EV_GC_BEGIN:
                                args = [args[0], args[1], args[2] in g.free_os_memory_stacks()]
                            kept.append((len(times), ev, args, procs.get(m, -1)))
                    else:
                        dt = VARINT.match(buf, i + 1)
                        last += int(uvarint(dt.group(), 0)[0] * freq)
                        i = SKIP[n - 1].match(buf, dt.end()).end() if n > 1 else dt.end()
                    times.append(last)
                    ms.append(m)
    t = np.frombuffer(times, dtype=np.int64)
    order = np.lexsort((np.frombuffer(ms, dtype=np.uint64), t))  # stable: ties keep batch order
    fixed = np.empty_like(t)
    idx = np.arange(len(t))
    fixed[order] = np.maximum.accumulate(t[order] - idx) + idx  # strictly increasing, as Go's reader
    return _rows(kept, fixed, gens[0])


def _rows(kept, fixed: np.ndarray, first: _Generation) -> Decoded:
    d = Decoded(calls=array("q"))
    d.start = int(first.min_time * first.freq)
    if first.wall:
        sec, nsec = first.wall
        d.wall = datetime.datetime.fromtimestamp(sec, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + f".{nsec:09d}Z"
    kept.sort(key=lambda k: fixed[k[0]])
    for index, ev, args, p in kept:
        t = int(fixed[index])
        if ev in (EV_SPAN, EV_SPAN_ALLOC):
            d.span_alloc(t, args[1], args[2], args[3], p, at_start=ev == EV_SPAN)
        elif ev == EV_SPAN_FREE:
            d.span_free(t, args[1], p)
        elif ev == EV_HEAP_GOAL:
            d.heap_goal(args[1])
        elif ev == EV_HEAP_ALLOC:
            d.heap_live(args[1])
        elif ev == EV_GC_BEGIN:
            d.gc_start(t, p)
            if args[2]:
                d.last_row_is_a_call()
        elif ev == EV_GC_END:
            d.gc_end(t, p)
        elif ev == EV_USER_LOG and args[1] == b"pagealloc" and args[2] == b"FreeOSMemory":
            d.free_os_memory(t, p)
            if args[3]:
                d.last_row_is_in_call()
        elif ev == EV_PROCS_CHANGE and d.gomaxprocs is None:
            d.gomaxprocs = args[1]
    return d
