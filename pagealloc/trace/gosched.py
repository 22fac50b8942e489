"""The Ps' schedule of a Go >= 1.23 execution trace, as format v3's ``p_schedule`` and ``sched_events``.

Not a Go file.  The decoders (``tracerows``'s SCHED records, or the text of
``go tool trace -d=parsed`` in pagealloc.trace.goimport) reduce the trace's
Proc and goroutine state transitions, stop-the-world ranges, GC ends and
GOMAXPROCS to the same records (``SCHED``: ts, g, p, code, a, b, c); this
module turns them into the side tables the Go 1.14.6 recorder writes
(pagealloc.trace.go114sched), on the rows' clock (ns since the first Sync):

- ``p_schedule``: a goroutine starting on a P -> its kind (``user``;
  ``gc_worker`` for ``runtime.gcBgMarkWorker``, ``sweep`` for
  ``runtime.bgsweep``, ``scavenger`` for ``runtime.bgscavenge``,
  ``runtime`` for other goroutines whose outermost frame is in package
  runtime, such as the forcegc helper and the finalizer goroutine: any stack
  the trace gives for the goroutine says so); back from a syscall on another
  P -> its kind, reason ``syscall_return`` (on the P it kept: no change); a
  goroutine leaving its P -> ``sched`` with the reason (``park``, ``yield``,
  ``preempt``, ``suspend`` -- blocked with reason preempted, the GC's
  stack scan --, ``exit``; into a syscall it keeps its P: no change); a
  ProcStop (or a P taken from a syscall) -> ``idle``; a ProcStart ->
  ``sched``, reason ``wake``; a stop-the-world range -> every P ``stopped``
  (reason ``stw``) until it ends, then each P's state as the trace has it
  then (reason ``start_the_world``).  Unlike the recorder's, gc_worker rows
  have no reason (the trace does not give the worker's mode).
- ``sched_events``: ``preempt_request`` where a goroutine that ran for at
  least 10 ms (sysmon's forcePreemptNS) stops with reason preempted outside
  a stop-the-world: sysmon's preemption (the trace shows the stop, a few us
  after the request; the GC's preemptions, which come sooner, are left out;
  value = when it started running); ``sweep_done``, once per GC cycle
  (value = the cycles ended so far), where ``bgsweep`` parks (it parks once
  the cycle's sweeping is done) or, when the next cycle starts first, at the
  end of that cycle's sweep termination (``finishsweep_m`` sweeps what is
  left).
"""

from __future__ import annotations

from array import array

import numpy as np
import pyarrow as pa

from pagealloc.trace.sidetables import SIDE_TABLES

# tracerows.go's SCHED record layout (24 bytes, little-endian).
SCHED = np.dtype([("ts", "<i8"), ("g", "<i8"), ("p", "<i4"), ("code", "u1"), ("a", "u1"), ("b", "u1"), ("c", "u1")])
SCHED_GO, SCHED_PROC, SCHED_STW_BEGIN, SCHED_STW_END, SCHED_GC_END, SCHED_KIND, SCHED_PROCS = 1, 2, 3, 4, 5, 6, 7
# internal/trace's GoState and ProcState values
GO_UNDETERMINED, GO_NOT_EXIST, GO_RUNNABLE, GO_RUNNING, GO_WAITING, GO_SYSCALL = range(6)
GO_STATES = {"Undetermined": 0, "NotExist": 1, "Runnable": 2, "Running": 3, "Waiting": 4, "Syscall": 5}
PROC_UNDETERMINED, PROC_NOT_EXIST, PROC_RUNNING, PROC_IDLE = range(4)
PROC_STATES = {"Undetermined": 0, "NotExist": 1, "Running": 2, "Idle": 3}
# Goroutine kinds a stack can show (code -> p_schedule state); 0: a user goroutine.
GO_KINDS = ("user", "gc_worker", "sweep", "scavenger", "runtime")
KIND_FRAMES = {"runtime.gcBgMarkWorker": 1, "runtime.bgsweep": 2, "runtime.bgscavenge": 3}
KIND_RUNTIME = 4
FEED_CHUNK = 1 << 20  # records turned into Python ints at a time
STW_PREFIX = "stop-the-world ("
STW_SWEEP_TERM_NAME = "stop-the-world (GC sweep termination)"  # finishsweep_m ends the previous cycle's sweeping
FORCE_PREEMPT_NS = 10_000_000  # sysmon preempts a goroutine that ran this long (forcePreemptNS); the GC's preemptions come sooner


def stack_kind(funcs) -> int:
    """The kind a stack (its function names, innermost first) shows: tracerows.go's stackKind."""
    root = ""
    for f in funcs:
        if f in KIND_FRAMES:
            return KIND_FRAMES[f]
        if f != "runtime.goexit":
            root = f
    return KIND_RUNTIME if root.startswith("runtime.") and root != "runtime.main" else 0


class Kinds:
    """What each goroutine is, learnt from stacks; ``learn`` returns the kind when it is news
    (a specific kind over runtime over nothing), for the caller's SCHED_KIND record."""

    def __init__(self) -> None:
        self.of: dict[int, int] = {}
        self._stacks: dict[tuple, int] = {}

    def learn(self, g: int, funcs: tuple) -> int:
        if not funcs or g < 0:
            return 0
        k = self._stacks.get(funcs)
        if k is None:
            k = self._stacks[funcs] = stack_kind(funcs)
        old = self.of.get(g, 0)
        if k == 0 or k == old or (k == KIND_RUNTIME and old):
            return 0
        self.of[g] = k
        return k


_KIND_OF_G = -1  # a p_schedule row whose state is its goroutine's kind (known only at the end)
_STATES = {s: i for i, s in enumerate(GO_KINDS + ("sched", "idle", "stopped"))}  # a kind's code is its state's


class PStream:
    """Folds SCHED records, in order, into the Ps' schedule."""

    def __init__(self) -> None:
        self.kinds: dict[int, int] = {}
        self.nprocs = 0
        self.cycles = 0  # GC mark phases ended
        self.swept = 0  # cycles whose sweeping is known to have ended
        self.stw = 0  # stop-the-world ranges open
        self.running: dict[int, int] = {}  # P -> its goroutine
        self.since: dict[int, int] = {}  # P -> when that goroutine started on it
        self.idle: dict[int, bool] = {}
        self.gone: set[int] = set()  # Ps removed by a lower GOMAXPROCS
        self.last: dict[int, tuple] = {}  # P -> its last row (state, reason, g)
        # the p_schedule rows, column by column (compact: a long trace has millions): state is a code
        # or _KIND_OF_G, reason an index in self.reasons
        self.ts, self.p, self.state, self.reason, self.g = array("q"), array("i"), array("b"), array("B"), array("q")
        self.reasons: dict[str, int] = {}
        self.events: list[tuple] = []  # (ts, p, event, value)

    def feed(self, records: np.ndarray) -> None:
        for lo in range(0, len(records), FEED_CHUNK):
            self._feed(records[lo:lo + FEED_CHUNK])

    def _feed(self, rec: np.ndarray) -> None:
        for ts, g, p, code, a, b, c in zip(*(rec[n].tolist() for n in SCHED.names)):
            if code == SCHED_GO:
                self._goroutine(ts, g, p, a, b, c)
            elif code == SCHED_PROC:
                self._proc(ts, p, a, b)
            elif code == SCHED_KIND:
                self.kinds[g] = a
            elif code == SCHED_STW_BEGIN:
                if not self.stw:
                    for q in self._procs():
                        self._emit(ts, q, _STATES["stopped"], -1, "stw")
                self.stw += 1
            elif code == SCHED_STW_END and self.stw:
                if a:  # the next cycle's sweep termination finished the sweeping, if bgsweep had not
                    self._sweep_done(ts, p)
                self.stw -= 1
                if not self.stw:
                    for q in self._procs():
                        self._emit_state(ts, q, "start_the_world")
            elif code == SCHED_GC_END:
                self.cycles += 1
            elif code == SCHED_PROCS:
                self.nprocs = g

    def _procs(self) -> list[int]:
        """The Ps that exist: those below GOMAXPROCS and those seen, less those GOMAXPROCS removed."""
        return sorted((set(range(self.nprocs)) | set(self.last)) - self.gone)

    def _state(self, q: int) -> tuple:
        """(state, g) of P q as the trace has it now."""
        if self.idle.get(q):
            return _STATES["idle"], -1
        g = self.running.get(q)
        return (_KIND_OF_G, g) if g is not None else (_STATES["sched"], -1)

    def _emit(self, ts, p, state, g, reason="") -> None:
        if self.stw and reason != "stw":  # stopped until the world starts: _state(p) is written then
            self.last.setdefault(p, (None, None, None))
            return
        row = (state, reason, g)
        if self.last.get(p) == row:
            return
        self.last[p] = row
        self.ts.append(ts)
        self.p.append(p)
        self.state.append(state)
        self.reason.append(self.reasons.setdefault(reason, len(self.reasons)))
        self.g.append(g)

    def _emit_state(self, ts, p, reason) -> None:
        state, g = self._state(p)
        self._emit(ts, p, state, g, reason)

    def _goroutine(self, ts, g, p, old, new, preempted) -> None:
        if p < 0:
            return
        if new == GO_RUNNING:
            if old == GO_SYSCALL and self.running.get(p) == g:
                return  # back from a syscall on the P it kept
            self.running[p], self.since[p], self.idle[p] = g, ts, False
            self._emit(ts, p, _KIND_OF_G, g, "syscall_return" if old == GO_SYSCALL else "")
        elif new == GO_SYSCALL:
            if old == GO_UNDETERMINED:  # in a syscall when tracing began, on this P
                self.running[p], self.since[p], self.idle[p] = g, ts, False
                self._emit(ts, p, _KIND_OF_G, g)
        elif old == GO_RUNNING:
            reason = {GO_NOT_EXIST: "exit", GO_RUNNABLE: "preempt" if preempted else "yield"}.get(new, "suspend" if preempted else "park")
            started = self.since.get(p, ts)
            self.running.pop(p, None)
            self._emit(ts, p, _STATES["sched"], -1, reason)
            if reason == "preempt" and not self.stw and ts - started >= FORCE_PREEMPT_NS:
                self.events.append((ts, p, "preempt_request", started))
            if reason == "park" and self.kinds.get(g) == 2:  # bgsweep parks once the cycle's sweeping is done
                self._sweep_done(ts, p)

    def _sweep_done(self, ts, p) -> None:
        if self.swept < self.cycles:
            self.swept = self.cycles
            self.events.append((ts, p, "sweep_done", self.cycles))

    def _proc(self, ts, p, old, new) -> None:
        if new == PROC_IDLE:
            self.running.pop(p, None)
            self.idle[p] = True
            self.gone.discard(p)
            self._emit(ts, p, _STATES["idle"], -1)
        elif new == PROC_RUNNING:
            self.idle[p] = False
            self.gone.discard(p)
            self._emit_state(ts, p, "wake" if old == PROC_IDLE else "")
        elif new == PROC_NOT_EXIST:  # GOMAXPROCS lowered (in a stop-the-world)
            self.running.pop(p, None)
            self.idle[p] = True
            self.gone.add(p)
            self.stw, stw = 0, self.stw
            self._emit(ts, p, _STATES["stopped"], -1, "procresize")
            self.stw = stw

    def tables(self, start: int) -> dict[str, pa.Table]:
        """``p_schedule`` and ``sched_events`` (when the trace has any), ``ts`` in ns since ``start``."""
        if not len(self.ts):
            return {}
        state = np.frombuffer(self.state, np.int8).astype(np.int64)
        running = state == _KIND_OF_G
        g = np.frombuffer(self.g, np.int64)[running]
        state[running] = [self.kinds.get(gid, 0) for gid in g.tolist()]  # GO_KINDS index its state's
        names = np.array(list(_STATES), dtype=object)
        reasons = np.array(list(self.reasons), dtype=object)
        out = {"p_schedule": _table("p_schedule", {"ts": _rebase(np.frombuffer(self.ts, np.int64), start), "p": np.frombuffer(self.p, np.int32),
                                                   "state": names[state], "reason": reasons[np.frombuffer(self.reason, np.uint8)]})}
        if self.events:
            ts, p, ev, value = zip(*self.events)
            value = np.where(np.array(ev) == "preempt_request", _rebase(value, start), value)  # a time, on the rows' clock
            out["sched_events"] = _table("sched_events", {"ts": _rebase(ts, start), "p": p, "event": ev, "value": value})
        return out


def _rebase(ts, start: int) -> np.ndarray:
    return np.maximum(np.asarray(ts, np.int64) - start, 0)


def _table(name: str, cols: dict) -> pa.Table:
    schema = SIDE_TABLES[name]
    arrays = [pa.array(list(cols[f.name]), pa.string()).dictionary_encode().cast(f.type) if pa.types.is_dictionary(f.type)
              else pa.array(np.asarray(cols[f.name]), f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def side_tables(records: np.ndarray, start: int) -> dict[str, pa.Table]:
    """The P stream of a decoder's SCHED records (a structured array of ``SCHED``)."""
    stream = PStream()
    stream.feed(records)
    return stream.tables(start)


__all__ = ["SCHED", "PStream", "side_tables", "stack_kind"]
