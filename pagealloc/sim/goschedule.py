"""When the background scavenger's timer fires, and on which P it then runs: Go 1.14.6's scheduler.

Not a Go file: the parts of proc.go, time.go and netpoll_epoll.go that
decide when a goroutine sleeping on a timer runs again, reduced to rules
over the Ps' schedule (what each P ran when).  The scavenger is a
goroutine: ``scavengeSleep`` puts a timer on the heap of the P it ran on,
and in Go 1.14 (../shared/reference/go114-facts.md, "When the background
scavenger really runs"):

1. the timer's P is running a goroutine at the deadline: only that P runs
   its timers (``checkTimers`` from ``schedule``), so the timer fires at the
   P's next reschedule — a goroutine blocking, yielding, or being preempted
   by sysmon after 10 ms (golang/go#38860, fixed in Go 1.16);
2. the timer's P is idle and another P is running: an M blocks in
   ``netpoll(delay)``, which sleeps the delay truncated to whole
   milliseconds (a delay under 1 ms becomes 1 ms) and returns ~70 us after
   that, polling once more (1 ms) if the timer is not due yet
   (``netpoll_fires``); a P that goes idle first steals the timer in
   ``findrunnable``;
3. every P is idle: sysmon sleeps until the timer and starts an M, ~80 us
   late, with no floor -- if it has looked since they went idle: after a
   few ms with no P idle and no stop for the world it looks only every
   10 ms, and until it does netpoll's whole milliseconds of rule 2 fire
   the timer (``sysmon.Sysmon``; rule 2's timers too when it looks first);
4. the timer's P is in the scheduler: its ``checkTimers`` runs before it
   starts its next goroutine, when the stretch ends.  Most last ~130 ns;
   the long ones (its M off the CPU for ms: 2 vCPUs shared) end late, as
   the recordings' timers fired (predicting each real timer from its real
   P and deadline, the mean lateness comes closer on every recording).
   Likewise a timer rule 1 fired: the scavenger it readied onto the P's
   ``runnext`` starts when that P's M is back, if the other Ps take every
   CPU meanwhile; with a CPU free wakep's M steals it (``runnext_start``).

The woken M of rules 2 and 3 takes the head of the idle list (``pidle_head``:
the P that went idle last) and the scavenger runs there; the model keeps
what it does to that list itself (``model_idle``); inside a stop for the
world there is none to take (stopTheWorld took them), so the timer waits for
the restart.  A timer due when the
world restarts is stolen by the M that ``startTheWorld``'s ``wakep`` starts.
A P that finishes a goroutine and finds no other work steals a due timer
in ``findrunnable`` (``steal_points``; so does one whose goroutine a GC's
stack scan suspended; a goroutine stopping for the world is not one).  A
timer a GC's ``wakeScavenger`` stopped stays in its P's heap
until that P's scheduler clears it, and the next sleep resets it there
(``deleted_timer_cleared``).  When the scavenger holds a P whose goroutine a
preemption requeued, wakep's M may run that goroutine on an idle P
(``_migrate``).  After a GC, ``gcMarkTermination``
readies the scavenger onto the GC's P behind ``bgsweep``, inside its
stop-the-world: that P runs it when its GC worker stops, unless a P that
runs out of work steals it first (``after_gc``), or an idle P's M that
woke for other work passes through ``findrunnable`` (the recorded
scavenger's GC-readied runs on a woken idle P leave that pass behind:
``without_scavenger``).  Once it has run on a P,
its next timer lives on that P.

The OS's part, where the recording has it: a recorded crit of 1 ms or more
is the scavenger's thread taken off its CPU mid-release (another thread ran
there; "Session 20").  The model's release of the same turn is off its CPU
as long (``off_cpu_ns``): the one that ends the sleep it was in when the
runtime's was taken off, or one that starts nearer that recorded release
than the one before it, a little ahead of it ("Session 21").  Its crit, and
so Go's pacing after it, takes that time in; its hold of the heap lock and
its CPU time do not.

The Ps' schedule comes from the trace (format v3's ``p_schedule``,
recorded by the Go 1.14.6 runtime, with the real scavenger's own runs
taken out: ``without_scavenger``) or, for traces without one, is derived
from the rows (``from_rows``: a P runs from one of its rows to the next
when they are less than ``DERIVED_GAP_NS`` apart, and is idle otherwise;
after a GC the scavenger then runs when the cycle's sweeping ends).  The times are the trace's; the replay's virtual time
follows them (ordered and recorded timings start each row at its timestamp
unless its P is behind).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right

import numpy as np
import pyarrow.compute as pc

from pagealloc.sim.sysmon import Sysmon

NETPOLL_LATE_NS = 70_000  # netpoll's epoll_wait returns ~70 us after its whole milliseconds (CostModel.netpoll_late_ns)
SYSMON_LATE_NS = 80_000  # with every P idle, sysmon fires a timer ~80 us late (CostModel.sysmon_late_ns)
FORCE_PREEMPT_NS = 10_000_000  # sysmon's retake preempts a goroutine that ran this long (forcePreemptNS)
DERIVED_GAP_NS = 1_000_000  # derived schedule: a P with rows closer than this runs in between
WAKEP_NS = 20_000  # a pass of an idle P this close to a recorded scavenger wake-up is wakep's, for it
WAKEP_PASS_NS = 50_000  # ... and lasts at most this long (the M spins, finds nothing, parks)
RESTART_WAKEP_NS = 24_000  # startTheWorld's wakep M steals a due timer this long after the restart (median)
WAKEP_DONE_NS = 16_000  # wakep's M puts the P back this long after the goroutine's wake-up (medians: 8 + 7 us)
RUNNEXT_STOLEN_NS = 100_000  # a P's scheduler stretch this long after its timer fired: its M off the CPU
RUNNEXT_STEAL_NS = 35_000  # ... and with a CPU free wakep's M steals what it readied this long after (median 39 us)
REQUEUED = ("preempt", "yield")  # a goroutine that stops so goes to the global run queue (goschedImpl)
# GC mark workers schedule() runs before the P's run queue (findRunnableGCWorker comes before runqget);
# an idle-priority worker runs only when findrunnable finds nothing else, so nothing waits behind it
PRIORITY_WORKERS = ("dedicated", "fractional")
# a goroutine a GC's stack scan suspended (suspendG: it parks itself _Gpreempted in preemptPark, off every
# run queue, until the scanner's resumeG readies it on the scanner's P): its P goes into schedule() with
# nothing of its own, so findrunnable steals from the other Ps' run queues
SUSPENDED = "suspend"
# wakep's M takes such a goroutine when the woken scavenger holds its P longer than this, on the model's
# clock: the recordings' 30 us from the timer's firing to the release's record, less the 6 us by which
# the model's run is shorter than the runtime's at the median (18 against 24 us, go114-service-p4)
WAKEP_TAKES_NS = 24_000
# a recorded crit this long is the OS running another thread on the scavenger's CPU mid-release ("Sessions 17, 20")
OFF_CPU_CRIT_NS = 1_000_000

class RowsToSchedule:
    """Derives the Ps' schedule from a trace's rows, batch by batch (``PSchedule.from_rows``'s rule).

    Memory is the schedule's: each P's run starts and idle points, and one (gc time, last free) per
    cycle; never the rows, so a long trace's replay stays flat in memory.
    """

    def __init__(self) -> None:
        self.runs: dict[int, list] = {}  # P -> arrays of the times its runs start
        self.idles: dict[int, list] = {}  # P -> arrays of the times it goes idle (after a row, but its last)
        self.last: dict[int, int] = {}  # P -> time of its last row so far
        self.cycles: list[list] = []  # [gc row time, the cycle's last free row time or None]

    def add(self, ts, p, op=None) -> None:
        """The next rows, in trace order: times, P ids and, for the sweep rule, op codes."""
        ts, p = np.asarray(ts, dtype=np.int64), np.asarray(p)
        for q in np.unique(p).tolist():
            t = ts[p == q]
            prev = self.last.get(q)
            rows = t if prev is None else np.concatenate(([prev], t))  # the P's previous row leads
            gap_after = np.diff(rows) >= DERIVED_GAP_NS  # per row of ``rows`` but the last
            starts = gap_after if prev is not None else np.concatenate(([True], gap_after))
            self.runs.setdefault(q, []).append(t[starts])
            self.idles.setdefault(q, []).append(rows[:-1][gap_after] + 1)  # idle just after a run's last row
            self.last[q] = int(t[-1])
        if op is not None:
            self._cycles(ts, np.asarray(op))

    def _cycles(self, ts, op) -> None:
        """Each gc row (a mark termination) opens a cycle; its sweeping ends at the last free row before
        the next gc row (the frees a trace records after a GC are the sweeper's)."""
        from pagealloc.trace.format import OP_FREE, OP_GC

        gcs = np.flatnonzero(op == OP_GC)
        frees = np.flatnonzero(op == OP_FREE)
        if self.cycles and len(frees) and (not len(gcs) or frees[0] < gcs[0]):  # the open cycle's frees
            self.cycles[-1][1] = int(ts[frees[np.searchsorted(frees, gcs[0] if len(gcs) else len(op)) - 1]])
        ends = np.append(gcs[1:], len(op))
        last = np.searchsorted(frees, ends) - 1  # the last free row before each cycle's end
        for g, k in zip(gcs.tolist(), last.tolist()):
            self.cycles.append([int(ts[g]), int(ts[frees[k]]) if k >= 0 and frees[k] > g else None])

    def nprocs(self) -> int:
        return max(self.last, default=0) + 1

    def schedule(self, gomaxprocs: int, **late) -> "PSchedule":
        """The derived PSchedule of Ps 0..gomaxprocs-1 (rows of other Ps are not the program's)."""
        per_ts, per_state = [], []
        for q in range(max(gomaxprocs, 1)):
            if q not in self.last:
                per_ts.append(np.zeros(0, np.int64))
                per_state.append(np.zeros(0, np.int8))
                continue
            run_ts = np.concatenate(self.runs[q])
            idle_ts = np.concatenate([*self.idles[q], [self.last[q] + 1]])  # and after its last row
            both_t = np.concatenate((run_ts, idle_ts))
            both_s = np.concatenate((np.full(len(run_ts), RUNNING, np.int8), np.full(len(idle_ts), IDLE, np.int8)))
            order = np.argsort(both_t, kind="stable")
            per_ts.append(both_t[order])
            per_state.append(both_s[order])
        sched = PSchedule(per_ts, per_state, derived=True, **late)
        sched.cycles = [tuple(c) for c in self.cycles]
        sched.cycle_starts = [start for start, _ in sched.cycles]
        return sched


# p_schedule states: running a goroutine, or not (in the scheduler, idle, stopped for the world)
RUNNING_STATES = ("user", "gc_worker", "sweep", "scavenger", "runtime")
IDLE, RUNNING, SCHED = 0, 1, 2
NETPOLL_POLL_NS = 1_000_000  # netpoll's shortest wait, and its unit: whole milliseconds (netpoll_epoll.go)
_NEVER = 1 << 62  # a time past any trace's end


def _never(t: int) -> bool:
    return False


def _all_idle_spans(arrays: list) -> list[tuple[int, int]]:
    """(start, end) spans in which every P is idle, from per-P (times, states) arrays (every P is
    idle before its first change; the last span may run on to _NEVER)."""
    if not arrays:
        return []
    t = np.concatenate([tt for tt, _ in arrays])
    delta = np.concatenate([np.diff((ss != IDLE).astype(np.int64), prepend=0) for _, ss in arrays])
    order = np.argsort(t, kind="stable")
    t, busy = t[order], np.cumsum(delta[order])
    last = np.r_[t[1:] != t[:-1], True] if len(t) else np.zeros(0, bool)  # the count after a time's changes
    t, idle = t[last], busy[last] == 0
    before = np.r_[True, idle[:-1]]  # idle before each change time
    starts = [0] + t[idle & ~before].tolist()
    ends = t[~idle & before].tolist() + [_NEVER]
    return list(zip(starts, ends))


def _steal_points(ts: np.ndarray, state: np.ndarray) -> list:
    """The times a P goes idle straight after running a goroutine (directly or through the scheduler)."""
    idle = state == IDLE
    ran = np.zeros(len(state), bool)
    ran[1:] = state[:-1] == RUNNING
    ran[2:] |= (state[1:-1] == SCHED) & (state[:-2] == RUNNING)
    return ts[idle & ran].tolist()


def _outside(points: list, begins: list, ends: list) -> list:
    """``points`` (sorted) but those inside a stop for the world [begin, end]."""
    if not begins:
        return points
    out = []
    for t in points:
        i = bisect_right(begins, t) - 1
        if i < 0 or t > ends[i]:
            out.append(t)
    return out


def _stopped_runs(stopped: np.ndarray) -> list[tuple[int, int]]:
    """(first, after) row indices of each run of ``stopped`` rows that a row follows (start-the-world)."""
    out = []
    n = len(stopped)
    k = 0
    while k < n:
        if not stopped[k]:
            k += 1
            continue
        e = k
        while e < n and stopped[e]:
            e += 1
        if e < n:
            out.append((k, e))
        k = e
    return out


def _stops(ts: np.ndarray, state: np.ndarray, stopped: np.ndarray, runs: list) -> tuple[list, list, list]:
    """One P's stops for the world, as (begin, end, resumed) lists: from the reschedule point whose
    scheduler stretch leads into ``stopped`` (its goroutine stopped for the stop-the-world) to the
    first state after the stopped stretch (start-the-world), and how the P resumed there: RUNNING
    straight away (the P of the goroutine that stopped the world: it goes on without schedule()),
    IDLE after a pass (procresize put it on the idle list: no local work), or SCHED (an M took it
    into schedule()).  ``runs``: ``_stopped_runs(stopped)``."""
    begins, ends, resumed = [], [], []
    n = len(ts)
    for k, e in runs:
        b = k
        while b > 0 and state[b - 1] == SCHED and not stopped[b - 1]:
            b -= 1
        begins.append(int(ts[b]))
        ends.append(int(ts[e]))
        how = int(state[e])
        if how == SCHED and e + 1 < n and state[e + 1] == IDLE:
            how = IDLE
        resumed.append(how)
    return begins, ends, resumed


def _world_stopped(ts: np.ndarray, runs: list) -> list[tuple[int, int]]:
    """One P's stops for the world (``runs``: ``_stopped_runs``) as (its first ``stopped`` row, the first
    row after: start-the-world).  The stopped row is the world stopped; ``_stops`` begins earlier, at the
    reschedule leading into it."""
    return [(int(ts[k]), int(ts[e])) for k, e in runs]


def without_scavenger(ts: np.ndarray, state: np.ndarray, scavenger: np.ndarray,
                      gc_runs: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, list]:
    """One P's recorded states with the real scavenger's runs taken out: the model runs its own
    scavenger, so the recorded one must not make the P look busy, nor decide when a timer fires or a
    P steals.  Each scavenger stretch goes with the scheduler stretch after it, and with the wake-up
    before it when the P was idle and woke only to run it (it stays idle).  Otherwise what the P did
    next starts where the scavenger started (the stretch lasted crit, microseconds).  A run a preemption
    cut in two (scavenger, sched, scavenger: its M off the CPU for ms mid-crit, and the goroutine, which
    took over the preempted one's time slice from ``runnext``, preempted when it came back) is one run:
    what follows it starts where its first stretch started, not the P in the scheduler until then.

    ``gc_runs`` (sorted): the starts of the recorded runs a GC readied (``wakeScavenger``).  An idle P
    that woke and ran one of those did not wake for it: the GC readies it inside its stop-the-world,
    where ``ready`` finds no idle P to ``wakep``, so the M was started for other work (start-the-world's
    ``wakep``, another goroutine's ``ready``) and found it in ``findrunnable``.  That wake stays, as a
    pass (the P idle again where the scavenger started), and the pass is a steal point: returned, with
    the states, as the third item."""
    n = len(ts)
    ts, state, drop = ts.copy(), state.copy(), scavenger.copy()
    passes = []
    began = {}  # each stretch's run's start
    for i in np.flatnonzero(scavenger).tolist():
        resumed = i >= 2 and scavenger[i - 2] and drop[i - 1]  # scavenger, sched, scavenger: one run, cut
        start = began[i] = began[i - 2] if resumed else ts[i]
        j = i + 1
        if j < n and state[j] == SCHED and not scavenger[j]:
            drop[j] = True
            j += 1
        woken_for_it = (i >= 2 and state[i - 1] == SCHED and state[i - 2] == IDLE
                        and ts[i] - ts[i - 1] <= WAKEP_PASS_NS)  # not an M in the scheduler all along
        if woken_for_it and gc_runs is not None and _contains(gc_runs, ts[i]):
            drop[i], state[i] = False, IDLE  # the pass ends where the scavenger started
            passes.append(int(ts[i]))
            if j < n and state[j] == IDLE and not scavenger[j]:
                drop[j] = True
            continue
        if woken_for_it:
            drop[i - 1] = True
        if j < n and not scavenger[j]:
            if woken_for_it and state[j] == IDLE:
                drop[j] = True
            else:
                ts[j] = min(ts[j], start)
    keep = ~drop
    return ts[keep], state[keep], passes


def gc_readied_runs(iterations) -> dict[int, np.ndarray] | None:
    """{P: sorted starts of the recorded scavenger's runs on P that a GC's wakeScavenger readied}, from a
    trace's ``scavenger_iterations`` table (None without one, or without its wake-up columns)."""
    if iterations is None or not {"woken_by", "next_run_ts", "next_run_p"} <= set(iterations.column_names):
        return None
    woken, run, p = (iterations.column(c).to_numpy(zero_copy_only=False) for c in ("woken_by", "next_run_ts", "next_run_p"))
    keep = (woken == "gc") & (run >= 0)
    return {int(q): np.sort(run[keep & (p == q)]) for q in np.unique(p[keep]).tolist()}


def off_cpu_windows(iterations) -> tuple[list, list, list]:
    """(starts, ends, turns) of the recorded scavenger's crits of OFF_CPU_CRIT_NS or more, each [its
    record less its crit, its record): the OS ran another thread on its CPU mid-crit (docs/fidelity-log.md,
    "Session 17": such crits are a few a run, 1-5 ms inside a ~30 us release), sorted and disjoint.  A
    window's turn begins halfway between the start of the recorded release before it and its own: a model
    release that starts from there on is nearer that recorded release than any other (``off_cpu_ns``)."""
    if iterations is None or not {"crit_ns", "outcome"} <= set(iterations.column_names):
        return [], [], []
    ts, crit = iterations.column("ts").to_numpy(), iterations.column("crit_ns").to_numpy()
    outcome = iterations.column("outcome").to_numpy(zero_copy_only=False)
    released = outcome == "sleep"
    order = np.argsort(ts[released])
    began, crit = (ts[released] - crit[released])[order], crit[released][order]
    keep = np.flatnonzero(crit >= OFF_CPU_CRIT_NS)
    before = np.where(keep > 0, began[np.maximum(keep - 1, 0)], began[keep])
    starts = began[keep]
    return starts.tolist(), (starts + crit[keep]).tolist(), (before + (starts - before) // 2).tolist()


def _contains(sorted_values: np.ndarray, value: int) -> bool:
    k = int(np.searchsorted(sorted_values, value))
    return k < len(sorted_values) and sorted_values[k] == value


def scavenger_wakes(ts: np.ndarray, state: np.ndarray, scavenger: np.ndarray) -> np.ndarray:
    """When the recorded scavenger was made runnable on this P: the scheduler entry before each of its
    runs (its run's start when there is none)."""
    i = np.flatnonzero(scavenger)
    before = np.clip(i - 1, 0, None)
    from_sched = (i > 0) & (state[before] == SCHED) & ~scavenger[before]
    return np.where(from_sched, ts[before], ts[i])


def without_wake_blips(ts: np.ndarray, state: np.ndarray, wakes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One P's recorded states without the passes the recorded scavenger's wake-ups caused on it:
    ``ready`` calls ``wakep`` when a P is idle and no M spins, and the M it starts takes an idle P,
    finds nothing and puts it back (an idle P in the scheduler for microseconds).  The model wakes
    its own scavenger; a pass left in would put that P at the head of the idle list, which decides
    where the next timer's M runs (``pidle_head``)."""
    if not len(wakes) or len(ts) < 3:
        return ts, state
    j = np.arange(1, len(ts) - 1)
    blip = (state[j] == SCHED) & (state[j - 1] == IDLE) & (state[j + 1] == IDLE) & (ts[j + 1] - ts[j] <= WAKEP_PASS_NS)
    k = np.searchsorted(wakes, ts[j] - WAKEP_NS)
    near = (k < len(wakes)) & (wakes[np.minimum(k, len(wakes) - 1)] <= ts[j] + WAKEP_NS)
    drop = np.zeros(len(ts), bool)
    hit = j[blip & near]
    drop[hit] = drop[hit + 1] = True
    return ts[~drop], state[~drop]


def _worker_waits(ts: np.ndarray, kind: np.ndarray) -> tuple[list, list, list]:
    """One P's runs of a priority GC mark worker that a scheduler pass leads into, as (from, start,
    until) lists: ``from`` the pass's first row, ``start`` the worker's, ``until`` the first row after it
    that is neither the worker nor a stop for the world (the P's next reschedule).  ``kind``: per row
    _PASS (the scheduler, or the recorded scavenger, which the model replaces), _WORKER, _STOPPED or 0."""
    froms, starts, untils = [], [], []
    for i in np.flatnonzero(kind == _WORKER).tolist():
        k = i
        while k > 0 and kind[k - 1] == _PASS:
            k -= 1
        j = i + 1
        while j < len(ts) and kind[j] in (_WORKER, _STOPPED):
            j += 1
        if k < i and j < len(ts):
            froms.append(int(ts[k]))
            starts.append(int(ts[i]))
            untils.append(int(ts[j]))
    return froms, starts, untils


_PASS, _WORKER, _STOPPED = 1, 2, 3  # _worker_waits' row kinds

# One P's recorded rows as PSchedule.behind_queued_user reads them (``_row_kinds``)
_K_SCHED, _K_IDLE, _K_STOPPED, _K_USER, _K_SWEEP, _K_WORKER, _K_OTHER = range(7)
_ROW_KIND = {"sched": _K_SCHED, "idle": _K_IDLE, "stopped": _K_STOPPED, "user": _K_USER, "sweep": _K_SWEEP,
             "gc_worker": _K_WORKER}


def _row_kinds(labels: list, index: np.ndarray) -> np.ndarray:
    """Per row of a p_schedule table (its dictionary-encoded state), its _K_ kind."""
    codes = np.array([_ROW_KIND.get(s, _K_OTHER) for s in labels], dtype=np.int8)
    return codes[index]


class PSchedule:
    """Per P, its state changes in time order: ``ts[p]`` (ns) and ``state[p]`` (IDLE, RUNNING, SCHED).

    ``derived``: True when built from the rows rather than recorded.
    ``netpoll_late_ns`` / ``sysmon_late_ns``: the timers' lateness (the cost model's).
    """

    def __init__(self, ts: list, state: list, derived: bool, *, netpoll_late_ns: int = NETPOLL_LATE_NS,
                 sysmon_late_ns: int = SYSMON_LATE_NS, stops: list | None = None, requeues: list | None = None,
                 worker_waits: list | None = None, preempts: list | None = None, rows: list | None = None,
                 stop_requests: list | None = None, passes: list | None = None,
                 world_stops: list | None = None, sysmon_passes: list | None = None,
                 off_cpu: tuple[list, list, list] | None = None) -> None:
        arrays = [(np.asarray(tt, dtype=np.int64), np.asarray(ss, dtype=np.int64)) for tt, ss in zip(ts, state)]
        # Python ints in lists (bisect over them is the hot query), converted in C by numpy
        self.ts = [tt.tolist() for tt, _ in arrays]
        self.state = [ss.tolist() for _, ss in arrays]
        self.nprocs = len(ts)
        # reschedule points (a goroutine stops: into SCHED or IDLE) and idle entries, per P
        self.resched = [tt[ss != RUNNING].tolist() for tt, ss in arrays]
        self.derived = derived
        # per P, its stops for the world (``_stops``: begin and end lists; recorded schedules only)
        self.stops = stops or [([], [], []) for _ in range(self.nprocs)]
        self.restarts = sorted({end for _, ends, _ in self.stops for end in ends})  # start-the-world times
        # a P going idle after running a goroutine went through findrunnable, which steals from the
        # other Ps' run queues (an idle entry after start-the-world is procresize's pidleput: it is
        # not; nor is a goroutine stopping for a stop-the-world: its P parks in gcstopm); of the passes
        # (an idle P's M through the scheduler), those ``without_scavenger`` kept for a GC's wake-up, and those
        # of a P whose goroutine a stack scan suspended (SUSPENDED)
        self.steal_points = [_outside(sorted(_steal_points(tt, ss) + (passes[q] if passes else [])), stop[0], stop[1])
                             for q, ((tt, ss), stop) in enumerate(zip(arrays, self.stops))]
        self.netpoll_late_ns, self.sysmon_late_ns = netpoll_late_ns, sysmon_late_ns
        # the Ps the model itself put on the idle list, and when: its scavenger's P when it sleeps,
        # and the P wakep's M passes through after each of its wake-ups (the recorded ones are taken out)
        self.model_idle: dict[int, int] = {}
        # per P, its reschedule points whose goroutine went to the global run queue (recorded schedules)
        self.requeues = requeues or [[] for _ in range(self.nprocs)]
        # per P, its priority GC workers' runs a scheduler pass leads into (``_worker_waits``; recorded schedules)
        self.worker_waits = worker_waits or [([], [], []) for _ in range(self.nprocs)]
        # per P, its reschedule points whose goroutine was preempted (recorded schedules; scavenger_wakeups' names)
        self.preempts = preempts or [[] for _ in range(self.nprocs)]
        # per P, its recorded rows as (times, _K_ kinds) arrays, the recorded scavenger's runs left in
        # (recorded schedules; behind_queued_user)
        self.rows = rows
        # P -> (from, until, other): the goroutine P's reschedule requeued runs on P ``other`` instead
        # (``_migrate``), so P is idle and ``other`` busy in between
        self.migrated: dict[int, tuple[int, int, int]] = {}
        self._pending: tuple[int, int, int] | None = None  # the last such wake-up, until its sleep
        self.cycles: list = []  # derived: (gc row time, the cycle's last free or None), in time order
        self.cycle_starts: list = []  # their gc row times
        # sysmon's loop (recorded schedules): whether it fires a timer due on an idle P, and when
        # (the world stopped, start-the-world) of each stop for the world: sysmon sees gcwaiting from the
        # stop's request, just before it stopped -- not from the reschedule a P's stop begins with, which
        # can be ms earlier (its M off the CPU) and came before the request at 29% of the 72,678 stops of
        # the fresh recordings
        self.sysmon = None if derived else Sysmon(_all_idle_spans(arrays), world_stops or [], self.restarts,
                                                  stop_requests, passes=sysmon_passes)
        # when the OS ran another thread on the recorded scavenger's CPU mid-crit (recorded schedules with
        # the scavenger's iterations: ``off_cpu_windows``), as sorted starts and their ends
        self.off_cpu_starts, self.off_cpu_ends, self.off_cpu_turns = off_cpu or ([], [], [])
        self.off_cpu_met: set = set()  # the windows a model release met

    # -- building --

    @classmethod
    def from_table(cls, table, gomaxprocs: int, events=None, iterations=None, **late) -> "PSchedule":
        """From a trace's ``p_schedule`` side table and, where it has one, its ``sched_events`` (``events``:
        the stops' requests, for sysmon; its sweep ends are not needed: after a GC the scavenger follows
        the GC's P, ``after_gc``) and its ``scavenger_iterations`` (``iterations``: which of the recorded
        scavenger's runs a GC readied, ``gc_readied_runs``, for ``without_scavenger``)."""
        ts = table.column("ts").to_numpy()
        p = table.column("p").to_numpy()
        names = pc.dictionary_encode(table.column("state").combine_chunks())  # a few distinct names
        labels = names.dictionary.to_pylist()
        codes = np.array([RUNNING if s in RUNNING_STATES else IDLE if s in ("idle", "stopped") else SCHED
                          for s in labels], dtype=np.int8)
        index = names.indices.to_numpy(zero_copy_only=False) if len(names) else np.zeros(0, np.int64)
        state = codes[index]
        scavenger = index == labels.index("scavenger") if "scavenger" in labels else np.zeros(len(index), bool)
        reasons = table.column("reason").to_numpy(zero_copy_only=False) if "reason" in table.column_names else None
        requeued = np.isin(reasons, REQUEUED) & (state == SCHED) if reasons is not None else np.zeros(len(index), bool)
        preempted = (reasons == "preempt") & (state == SCHED) if reasons is not None else np.zeros(len(index), bool)
        suspended = (reasons == SUSPENDED) & (state == SCHED) if reasons is not None else np.zeros(len(index), bool)
        stopped = index == labels.index("stopped") if "stopped" in labels else np.zeros(len(index), bool)
        worker = (index == labels.index("gc_worker")) & np.isin(reasons, PRIORITY_WORKERS) \
            if "gc_worker" in labels and reasons is not None else np.zeros(len(index), bool)
        kind = np.where(worker, _WORKER, np.where(stopped, _STOPPED, np.where((state == SCHED) | scavenger, _PASS, 0)))
        n = max(gomaxprocs, int(p.max()) + 1 if len(p) else 1)
        row_kinds = _row_kinds(labels, index)
        per_ts, per_state, stops, wakes, requeues, worker_waits, preempts, rows = [], [], [], [], [], [], [], []
        world: dict[int, int] = {}  # start-the-world -> when the world stopped (the first P's stopped row)
        passes = [[] for _ in range(n)]
        gc_runs = gc_readied_runs(iterations) or {}
        for q in range(n):
            m = p == q
            tq, sq, scav = ts[m], state[m], scavenger[m]
            rows.append((tq, row_kinds[m]))
            requeues.append(tq[requeued[m]].tolist())
            preempts.append(tq[preempted[m]].tolist())
            worker_waits.append(_worker_waits(tq, kind[m]))
            per_ts.append(tq)
            per_state.append(sq)
            runs = _stopped_runs(stopped[m])
            stops.append(_stops(tq, sq, stopped[m], runs))
            for at, restart in _world_stopped(tq, runs):
                world[restart] = min(at, world.get(restart, at))
            wakes.append(scavenger_wakes(tq, sq, scav))
            if scav.any():
                per_ts[-1], per_state[-1], passes[q] = without_scavenger(tq, sq, scav, gc_runs.get(q))
            passes[q] = passes[q] + tq[suspended[m]].tolist()  # findrunnable's pass of a suspended goroutine's P
        for q in range(n):  # the passes the recorded scavenger's wake-ups on other Ps caused
            others = np.sort(np.concatenate([w for r, w in enumerate(wakes) if r != q] or [np.zeros(0, np.int64)]))
            per_ts[q], per_state[q] = without_wake_blips(per_ts[q], per_state[q], others)
        requests = sysmon_passes = None
        if events is not None and events.num_rows:
            kind = events.column("event").to_numpy(zero_copy_only=False)
            at = events.column("ts").to_numpy()
            requests = np.sort(at[kind == "stop_request"]).tolist()
            sysmon_passes = np.sort(at[kind == "sysmon_pass"]).tolist()
        return cls(per_ts, per_state, derived=False, stops=stops, requeues=requeues, worker_waits=worker_waits,
                   preempts=preempts, rows=rows, stop_requests=requests, passes=passes, sysmon_passes=sysmon_passes,
                   world_stops=sorted((at, restart) for restart, at in world.items()),
                   off_cpu=off_cpu_windows(iterations), **late)

    @classmethod
    def from_rows(cls, ts, p, gomaxprocs: int, op=None, **late) -> "PSchedule":
        """Derived from the trace's rows (ts, p columns): a P runs from a row to its next one when
        they are less than DERIVED_GAP_NS apart, else it goes idle after the row.  With ``op``
        (the op codes), each cycle's sweeping is taken to end at the cycle's last free row (the
        frees a trace records after a GC are the sweeper's; Go finishes sweeping before the next GC)."""
        rows = RowsToSchedule()
        rows.add(ts, p, op)
        return rows.schedule(gomaxprocs, **late)

    # -- queries --

    def state_at(self, p: int, t: int) -> int:
        if not 0 <= p < self.nprocs:
            return IDLE
        i = bisect_right(self.ts[p], t) - 1
        return self.state[p][i] if i >= 0 else IDLE

    def running_since(self, p: int, t: int) -> int:
        """When P p's current run began (it runs at t)."""
        ts, st = self.ts[p], self.state[p]
        i = bisect_right(ts, t) - 1
        while i > 0 and st[i - 1] == RUNNING:
            i -= 1
        return ts[i] if i >= 0 else 0

    def idle_since(self, p: int, t: int) -> int:
        """When P p last stopped running at or before t (0 when it never ran)."""
        r = self.resched[p] if 0 <= p < self.nprocs else []
        i = bisect_right(r, t) - 1
        return r[i] if i >= 0 else 0

    def sched_end(self, p: int, t: int) -> int:
        """When P p, in the scheduler at t, leaves it (t if it never does, in the trace).  Most such
        stretches last ~130 ns; the rare long ones (ms: its M off the CPU) end when it runs again."""
        ts = self.ts[p]
        i = bisect_right(ts, t)
        return ts[i] if i < len(ts) else t

    def runnext_start(self, p: int, t: int, cpus: int) -> tuple[int, int]:
        """(when, on which P) the goroutine P p's ``schedule()`` readied onto p's ``runnext`` at t (its
        timer fired there) starts.  At t on p, unless p is in the scheduler then with its M off the CPU:
        with the other Ps' running goroutines taking every one of the recording machine's ``cpus`` (0:
        unknown, never all busy), p's M starts it when back, the stretch's end -- wakep's spinning M,
        which could steal it, has no CPU either; with a CPU free and the stretch RUNNEXT_STOLEN_NS or
        longer, that M steals it RUNNEXT_STEAL_NS after the firing, onto the idle P it took (the idle
        list's head then).  On 186 fresh Go 1.14.6 service runs (GOMAXPROCS 4, 2 CPUs), of the timers so
        fired with a stretch of 100 us or more: with every CPU busy, 366, the runtime ran 2% within 100 us
        of the firing and 97% of the stretch's end; with a CPU free, 230, 42% of the firing and 71% on
        another P (``scripts/go114-scavenger-timing --own-p``; docs/fidelity-log.md, "Session 18")."""
        if self.state_at(p, t) != SCHED:
            return t, p
        end = self.sched_end(p, t)
        if cpus > 0 and self.others_running(p, t) >= cpus:
            return end, p
        if end - t < RUNNEXT_STOLEN_NS:
            return t, p
        when = t + RUNNEXT_STEAL_NS
        head = self.pidle_head(when, exclude=p)
        return (when, head) if head is not None else (t, p)

    def readied_run(self, p: int, t: int, cpus: int) -> tuple[int, int]:
        """(when, on which P) the scavenger starts that a timer P p's own ``schedule()`` fired at t
        readied onto p's ``runnext``: behind the priority GC worker p runs first (``behind_gc_worker``)
        -- unless a P out of work steals it from ``runnext`` before that worker stops (findrunnable's
        last stealing round; 306 such timers on 36 fresh service runs and the corpus: within 100 us of
        the runtime 77% -> 80%, the right P 82% -> 85%) -- else as ``runnext_start`` has it."""
        run = self.behind_gc_worker(p, t)
        if run == t:
            return self.runnext_start(p, t, cpus)
        steal = self.next_steal_point(t)
        return steal if steal is not None and steal[0] < run else (run, p)

    def after_stop(self, p: int, t: int) -> int:
        """t, or when the world restarts if P p is stopping or stopped for it at t: a goroutine stopped
        for a stop-the-world leaves its P in schedule()'s gcstopm, before that checks timers."""
        begins, ends, _ = self.stops[p] if 0 <= p < self.nprocs else ([], [], [])
        i = bisect_right(begins, t) - 1
        return ends[i] if i >= 0 and t < ends[i] else t

    def _after_restart(self, p: int, restart: int) -> tuple[int, int, str]:
        """``fire``'s answer for a timer P p checks no earlier than the restart of the world at
        ``restart``.  An M that takes p into schedule() runs it then; the P of the goroutine that
        stopped the world goes on running it, and runs its timers at its next reschedule; a P that
        procresize put on the idle list leaves it to the M startTheWorld's wakep starts."""
        how = self._resumed_how(p, restart)
        if how == RUNNING:
            r = self.next_reschedule(p, restart + 1)
            return self._at_reschedule(p, r) if r is not None else (restart, p, "start_the_world")
        if how == IDLE:
            t = restart + RESTART_WAKEP_NS
            return t, self._taken(t, p), "start_the_world"
        return restart, p, "start_the_world"

    def _resumed_how(self, p: int, restart: int) -> int:
        """How P p came back at the world's restart ``restart``: RUNNING (it goes on with the goroutine
        that stopped the world), IDLE (procresize put it on the idle list) or SCHED (an M took it)."""
        _, ends, resumed = self.stops[p]
        i = bisect_left(ends, restart)
        return resumed[i] if i < len(ends) and ends[i] == restart else SCHED

    def next_reschedule(self, p: int, t: int) -> int | None:
        """The first time >= t at which P p's goroutine stops (None: never, in the trace)."""
        r = self.resched[p]
        i = bisect_left(r, t)
        return r[i] if i < len(r) else None

    def behind_gc_worker(self, p: int, t: int) -> int:
        """When a goroutine readied on P p at its reschedule at t runs, if the P's scheduler pass there
        leads into a dedicated or fractional GC mark worker: once that worker stops (``findRunnableGCWorker``
        runs before ``runqget``, and the readied goroutine waits at the tail of the run queue); else t.
        Against the recordings' timers fired by their P's own schedule(), the scavenger then ran within
        100 us of this on 93% of json-p2's (64% taking t) and neither better nor worse on the service runs
        (docs/fidelity-log.md, "Session 10")."""
        froms, starts, untils = self.worker_waits[p] if 0 <= p < self.nprocs else ((), (), ())
        i = bisect_right(froms, t) - 1
        return untils[i] if i >= 0 and t < starts[i] else t

    def behind_queued_user(self, p: int, t: int) -> int:
        """When P p, whose goroutine stopped at ``t`` with the scavenger at the tail of its run queue
        (``after_gc``), runs it: at t, unless the recording shows p going on, past GC workers and
        bgsweep's first span (runnext), to a user goroutine; that one was queued ahead of the
        scavenger, which then waits for it to stop (its first reschedule that is not a stop for the
        world).  Recorded schedules only (a derived one has no goroutine kinds): t otherwise."""
        if self.rows is None or not 0 <= p < self.nprocs:
            return t
        ts, kinds = self.rows[p]
        k, n, swept = int(np.searchsorted(ts, t)), len(ts), False
        while k < n and (kinds[k] in (_K_SCHED, _K_WORKER) or (kinds[k] == _K_SWEEP and not swept)):
            swept = swept or kinds[k] == _K_SWEEP
            k += 1
        if not swept or k == n or kinds[k] != _K_USER:
            return t  # the scavenger was next (or bgsweep had gone with the queue to a stealing P)
        j = k + 1
        while j < n and kinds[j] not in (_K_SCHED, _K_IDLE):
            j += 1
        return int(ts[j]) if j < n else t

    def preempted_at(self, p: int, t: int) -> bool:
        """Whether the scheduler stretch of P p that ends at (or holds) t began with its goroutine's
        preemption (sysmon's retake or a GC's request, as the recording says): the runtime's ``preempt``
        among the causes of a timer's firing, where the model's rule is its P's reschedule."""
        if not 0 <= p < self.nprocs or not self.preempts[p]:
            return False
        ts, st = self.ts[p], self.state[p]
        i = bisect_right(ts, t) - 1
        if i >= 0 and st[i] != SCHED:
            i -= 1  # t starts what comes after the stretch
        while i > 0 and st[i - 1] == SCHED:
            i -= 1
        if i < 0 or st[i] != SCHED:
            return False
        r = self.preempts[p]
        j = bisect_left(r, ts[i])
        return j < len(r) and r[j] == ts[i]

    def next_run_start(self, p: int, t: int) -> int | None:
        """t if P p runs a goroutine at t, else the first time after t at which it starts one."""
        if not 0 <= p < self.nprocs:
            return None
        ts, st = self.ts[p], self.state[p]
        i = bisect_right(ts, t) - 1
        if i >= 0 and st[i] == RUNNING:
            return t
        for j in range(i + 1, len(ts)):
            if st[j] == RUNNING:
                return ts[j]
        return None

    def next_steal_point(self, t: int) -> tuple[int, int] | None:
        """(when, which P): the first time >= t at which some P, done with a goroutine, finds no
        other work and would go idle."""
        best = None
        for q, r in enumerate(self.steal_points):
            i = bisect_left(r, t)
            if i < len(r) and (best is None or r[i] < best[0]):
                best = (r[i], q)
        return best

    def any_running(self, t: int) -> bool:
        return any(self.state_at(q, t) == RUNNING for q in range(self.nprocs))

    def others_running(self, p: int, t: int) -> int:
        """How many Ps other than p run a goroutine at t (their Ms are on a CPU, in this process's mm)."""
        return sum(self.state_at(q, t) == RUNNING for q in range(self.nprocs) if q != p)

    def pidle_head(self, t: int, exclude: int = -1) -> int | None:
        """The head of the idle list at t, the P that went idle last (``pidleput`` pushes, ``pidleget``
        pops; after a stop-the-world procresize pushes from the last P down, so P 0 is the head);
        ``model_idle`` counts.  None: no idle P (but ``exclude``)."""
        best, head = None, None
        busy = {other for start, end, other in self.migrated.values() if start <= t < end}  # runs a moved goroutine
        for q in range(self.nprocs):
            ts = self.ts[q]
            i = bisect_right(ts, t) - 1
            if q == exclude or i < 0 or self.state[q][i] != IDLE or q in busy:
                continue
            since = max(ts[i], self.model_idle.get(q, 0))
            if best is None or since > best:
                best, head = since, q
        return head

    # -- the rules --

    def fire(self, p: int, slept_from: int, deadline: int, ran_on: int | None = None) -> tuple[int, int, str]:
        """(when, on which P, by what) the scavenger runs again after sleeping on a timer of P ``p``
        from ``slept_from`` until ``deadline``; it ran on P ``ran_on`` (default ``p``) until then.
        No timer runs while the world is stopped: one due then, or on a P whose goroutine stops for
        it, runs when the world restarts."""
        ran_on = p if ran_on is None else ran_on
        self.model_idle[ran_on] = slept_from  # idle from then, if the recorded schedule has it idle
        pending, self._pending = self._pending, None
        if pending is not None and pending[0] == ran_on and slept_from - pending[1] > WAKEP_TAKES_NS:
            self._migrate(*pending)
        if self.sysmon is not None:
            self.sysmon.advance(slept_from, held=True)  # no timer since the last one fired: the scavenger ran
        when, host, how = self._fire(p, slept_from, deadline)
        if self.sysmon is not None:
            self.sysmon.advance(when, deadline, _never)  # it looks on, with this timer pending, until it fires
        passed = self.pidle_head(when, exclude=host)  # ready's wakep: an M takes the head, finds nothing
        if passed is not None:
            self.model_idle[passed] = when + WAKEP_DONE_NS
            if how == "reschedule" and self._requeued_at(host, when):
                self._pending = (host, when, passed)  # ... unless the scavenger holds host long enough
        return when, host, how

    def _requeued_at(self, p: int, t: int) -> bool:
        """Whether P p's reschedule at t put its goroutine on the global run queue."""
        r = self.requeues[p] if 0 <= p < len(self.requeues) else []
        i = bisect_left(r, t)
        return i < len(r) and r[i] == t

    def _migrate(self, p: int, t: int, other: int) -> None:
        """The model's scavenger ran on P p from p's reschedule at t, whose goroutine went to the global
        run queue, for longer than WAKEP_TAKES_NS: the M that ready's wakep started on idle P ``other``
        took that goroutine and runs it, so p is idle after the scavenger until the run p's recorded
        schedule shows next would have ended.  The recorded schedule, made without the model's
        scavenger there, keeps the goroutine on p.  On the Go 1.14.6 recordings (service runs), p was
        idle after a scavenger held it 30 us or more from the firing to the release's record in ~70%
        of such wake-ups with another P idle, 15-30 us ~40%, under 15 us ~20%."""
        start = self.next_run_start(p, t + 1)
        end = self.next_reschedule(p, start + 1) if start is not None else None
        if end is not None:
            self.migrated[p] = (t, end, other)

    def _fire(self, p: int, slept_from: int, deadline: int) -> tuple[int, int, str]:
        """``fire``'s rules.  A timer fired by netpoll or sysmon runs on the P the woken M takes:
        ``pidleget``, the head of the idle list.  Predicting each recorded timer from its real P and
        deadline, that names the P that ran the scavenger for 89% of netpoll's timers (5,223 of 5,892)
        and 74% of sysmon's (6,841 of 9,220); the timer's own P did for 74% and 8%."""
        restart = self.after_stop(p, deadline)
        if restart != deadline:
            return self._after_restart(p, restart)
        state = self.state_at(p, deadline)
        moved = self.migrated.get(p)
        if moved is not None and moved[0] <= deadline < moved[1]:
            state = IDLE  # its goroutine runs on another P (_migrate)
        if state == SCHED:  # p is in the scheduler: its checkTimers runs before it starts what comes next
            return self._at_reschedule(p, self.sched_end(p, deadline))
        if state == RUNNING:  # rule 1: only p runs its timers, at its next reschedule (or preemption)
            since = self.running_since(p, deadline)
            preempt = since + FORCE_PREEMPT_NS * (1 + (deadline - since) // FORCE_PREEMPT_NS)
            r = self.next_reschedule(p, deadline)
            if self.derived and (r is None or r > preempt):
                return preempt, p, "preempt"
            return self._at_reschedule(p, r) if r is not None else (deadline, p, "reschedule")
        if self.sysmon is None and not self.any_running(deadline):  # rule 3, derived schedules: sysmon on time
            return deadline + self.sysmon_late_ns, self._taken(deadline, p), "sysmon"
        # rules 2 and 3: an M blocked in netpoll since p went idle, whole milliseconds; or a P going idle
        # steals it; or the M startTheWorld's wakep starts does (it takes the idle list's head into
        # findrunnable); or sysmon, asleep on this timer or looking in on its next pass (sysmon.Sysmon)
        fired = self.netpoll_fires(p, slept_from, deadline)
        steal = self.next_steal_point(deadline)
        i = bisect_left(self.restarts, deadline)
        restart = self.restarts[i] + RESTART_WAKEP_NS if i < len(self.restarts) else fired
        first = min(fired, restart, steal[0] if steal is not None else fired)
        if self.sysmon is not None:
            by_sysmon = self.sysmon.advance(first, deadline, lambda t: self._sysmon_can_fire(p, t))
            if by_sysmon is not None:
                when = by_sysmon + self.sysmon_late_ns if by_sysmon == deadline else by_sysmon
                if when <= first:
                    return when, self._taken(when, p), "sysmon"
        if steal is not None and steal[0] < min(fired, restart):
            return steal[0], steal[1], "steal"
        if restart < fired:
            return restart, self._taken(restart, p), "start_the_world"
        host = self._taken(fired, p)
        stopped_until = self.after_stop(host, fired)
        if stopped_until != fired:  # the world is stopping: stopTheWorld took the idle Ps, so netpoll's M
            return self._after_restart(p, stopped_until)  # finds none (stopm); the timer waits for the restart
        return fired, host, "netpoll"

    def off_cpu_ns(self, asleep_since: int | None, start: int, end: int) -> int:
        """How long the OS keeps the scavenger's thread off its CPU in a release over [start, end)
        (outside the heap lock), its sleep before it having begun at ``asleep_since`` (None: it was
        parked).  Where the OS took the recorded scavenger's thread off its CPU mid-crit
        (``off_cpu_windows``), the model's release of the same turn is off as long, once: the release
        that ends the sleep the model was in when the window began (the last window that began in
        [asleep_since, end)); else a release that starts at or before the window, in its turn (nearer the
        recorded release than the one before it), as the model's cycle ran a little ahead of Go's.  A
        parked scavenger meets none in its sleep."""
        starts = self.off_cpu_starts
        i = bisect_left(starts, end) - 1
        if asleep_since is not None and i >= 0 and starts[i] >= asleep_since and i not in self.off_cpu_met:
            return self._meet_off_cpu(i)
        j = bisect_left(starts, start)
        if j < len(starts) and self.off_cpu_turns[j] <= start and j not in self.off_cpu_met:
            return self._meet_off_cpu(j)
        return 0

    def forget_off_cpu(self) -> None:
        """No window from the recording: its crits, fed to the pacing as they are, have the time in."""
        self.off_cpu_starts, self.off_cpu_ends, self.off_cpu_turns = [], [], []

    def _meet_off_cpu(self, i: int) -> int:
        self.off_cpu_met.add(i)
        return self.off_cpu_ends[i] - self.off_cpu_starts[i]

    def _sysmon_can_fire(self, p: int, t: int) -> bool:
        """The M sysmon's startm wakes at t takes an idle P and runs the timer: its own P's, or stolen
        from p when p is not running a goroutine (findrunnable steals from a running P only when its
        goroutine is being preempted)."""
        return self.state_at(p, t) != RUNNING and self.pidle_head(t) is not None

    def _taken(self, t: int, p: int) -> int:
        head = self.pidle_head(t)
        return p if head is None else head

    def _at_reschedule(self, p: int, t: int) -> tuple[int, int, str]:
        """``fire``'s answer for a timer P p's schedule() runs at its reschedule at t: then, or at
        start-the-world when that reschedule is its goroutine stopping for a stop-the-world."""
        restart = self.after_stop(p, t)
        return (t, p, "reschedule") if restart == t else self._after_restart(p, restart)

    def deleted_timer_cleared(self, p: int, woken: int, gc_p: int) -> int:
        """When P p's own ``checkTimers`` clears the scavenger's timer that a GC's ``wakeScavenger``
        stopped at ``woken`` on P ``gc_p``.  ``stopTimer`` only marks it deleted in p's heap, and until
        it is cleared the scavenger's next ``resetTimer`` modifies it there (``modtimer`` on a
        ``timerDeleted`` timer): that sleep's timer stays on p, wherever the scavenger ran.  p's own
        M clears it (one deleted timer of one is over ``clearDeletedTimers``' quarter) at the next
        ``schedule()`` it runs: at start-the-world if p ran a goroutine when the world stopped
        (``gcstopm`` returns into ``schedule``); when its goroutine next stops if p is the GC's P;
        when an M next takes it if it was idle.  On the Go 1.14.6 recordings this says where 81% of
        such next timers really went (673 of 827).  Derived schedules know no stops: ``woken``."""
        if self.derived or not 0 <= p < self.nprocs:
            return woken
        restart = self.after_stop(p, woken)
        if p == gc_p:
            run = self.next_run_start(p, restart)
            r = self.next_reschedule(p, run) if run is not None else None
            return _NEVER if r is None else r
        begins = self.stops[p][0]
        i = bisect_right(begins, woken) - 1
        if restart != woken and i >= 0 and self.state_at(p, begins[i] - 1) == RUNNING:
            return restart
        if self.state_at(p, restart) == RUNNING:
            r = self.next_reschedule(p, restart)
            return _NEVER if r is None else r
        ts, st = self.ts[p], self.state[p]
        k = bisect_right(ts, restart)
        while k < len(ts) and st[k] == SCHED:  # procresize's pass at start-the-world puts it on the idle list
            k += 1
        while k < len(ts) and st[k] == IDLE:
            k += 1
        return ts[k] if k < len(ts) else _NEVER

    def netpoll_blocked(self, p: int, slept_from: int, deadline: int) -> int:
        """Since when an M has been blocked in ``netpoll`` for a timer of P p due at ``deadline``: since p
        went idle, or since the sleep began if that was later."""
        return max(self.idle_since(p, deadline), slept_from)

    def netpoll_fires(self, p: int, slept_from: int, deadline: int) -> int:
        """When an M blocked in ``netpoll`` since P p went idle (or the sleep began) fires a timer due at
        ``deadline``.  netpoll_epoll.go waits ``int32(delay / 1e6)`` milliseconds: the delay *truncated*
        to whole ms (1 for a delay under 1 ms), and epoll_wait returns ``netpoll_late_ns`` after them.
        If the timer is not due yet (the delay's fraction of a millisecond was longer than that
        lateness), ``findrunnable`` polls again with what is left, under 1 ms: 1 ms more, late again.
        So a 2.1 ms sleep fires at 3 ms and two latenesses, a 2.05 ms one at 2 ms and one: on the
        fresh service recordings, 91% of netpoll's firings within 100 us of this against 78% for
        "the whole milliseconds rounded up, late once" (docs/fidelity-log.md, "Session 17")."""
        blocked = self.netpoll_blocked(p, slept_from, deadline)
        late = self.netpoll_late_ns
        whole = (deadline - blocked) // NETPOLL_POLL_NS
        if whole < 1:
            return blocked + NETPOLL_POLL_NS + late
        first = blocked + whole * NETPOLL_POLL_NS + late
        return first if first >= deadline else first + NETPOLL_POLL_NS + late

    def stop_requested(self, t: int) -> int | None:
        """The request of the stop for the world that t falls in (recorded schedules), else None."""
        return self.sysmon.requested_before(t) if self.sysmon is not None else None

    def after_gc(self, p: int, woken: int) -> tuple[int, int]:
        """(when, on which P) the scavenger runs after a GC woke it at ``woken`` on P ``p``.

        Recorded schedule: ``wakeScavenger`` readies it onto p's run queue during mark termination's
        stop-the-world, behind ``bgsweep`` (readied into runnext).  p runs it when the goroutine it
        resumes after start-the-world (the GC worker finishing ``gcMarkTermination``: forEachP,
        freeStackSpans, then park) stops, after bgsweep's first span, unless a user goroutine was
        queued ahead of it (``behind_queued_user``); a P that finishes a goroutine and finds no other
        work before then steals it in ``findrunnable`` (``steal_points``).  Where that goroutine stops
        for the world (it starts the next GC), p parks in ``gcstopm`` before its run queue: the
        scavenger runs after the restart (121 of 2,668 GC wake-ups on 24 fresh service runs had it
        run at the stop, inside the stop for the world; within 100 us of the runtime's run 4% of
        them before, 25% now).  Against every recorded GC
        wake-up, the run is within 100 us on 88% of json-p2's (78% without the queued user goroutine),
        65% of service-p4's (39%), 50-66% of the fresh service runs' (30-40%), 80% of png-decode-p8's
        (76%); mean error 0.5 ms on json-p2 (2.6 ms), 0.4-0.9 ms on the fresh service runs (1.0-1.4 ms).
        The rule before these, "when the cycle's sweeping ends", was 0.03-13 ms off.

        Derived schedule (no P stream): when the cycle's sweeping ends, at its last free row."""
        run, host = self._after_gc(p, woken)
        if self.sysmon is not None:
            self.sysmon.advance(run)  # parked, or asleep on a timer the GC stopped, until then
        return run, host

    def _after_gc(self, p: int, woken: int) -> tuple[int, int]:
        if self.cycles:
            i = bisect_right(self.cycle_starts, woken) - 1
            done = self.cycles[i][1] if i >= 0 else None
            return (done if done is not None and done > woken else woken), p
        resumed = self.next_run_start(p, woken)
        if resumed is None:
            return woken, p
        run = woken
        while resumed is not None and (stop := self.next_reschedule(p, resumed)) is not None:
            run = self.behind_queued_user(p, stop)
            restart = self.after_stop(p, run)
            if restart == run:
                break
            # that goroutine stopped for a stop-the-world: p's scheduler stops before its run queue
            # (gcstopm) and procresize keeps the queue on p, so an M takes p into schedule() at the
            # restart (one woken for it, where the recording without the scavenger has p idle); or p
            # goes on with the goroutine that stopped the world and the queue waits for its next stop
            how = self._resumed_how(p, restart)
            run = restart + RESTART_WAKEP_NS if how == IDLE else restart
            if how != RUNNING:
                break
            stolen = self.pidle_head(restart + RESTART_WAKEP_NS, exclude=p)
            if stolen is not None:  # startTheWorld's wakep: its spinning M steals p's queue
                run, p = restart + RESTART_WAKEP_NS, stolen
                break
            resumed = self.next_run_start(p, restart + 1)
        steal = self.next_steal_point(woken)
        if steal is not None and steal[0] < run:
            return steal
        return run, p
