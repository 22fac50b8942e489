"""The Ps' schedule and the background scavenger's iterations, from a Go 1.14.6 record stream (version 3).

The recording runtime (``go114patch/``) writes a record where the scheduler
changes what a P does; this module turns them into format v3's side tables
(``format.SIDE_TABLES``), on the trace's clock (ns since its first row):

- ``p_schedule``: ``execute`` -> the goroutine's kind (``user``,
  ``gc_worker`` with its mode, ``sweep``, ``scavenger``, ``runtime``); a
  goroutine leaving its P (park, yield, preempt, suspend, exit) -> ``sched``
  with that reason; ``pidleput`` -> ``idle``; ``pidleget`` -> ``sched``
  (wake); a goroutine back from a syscall on an idle P -> its kind; the world
  stopped -> every P ``stopped``; the world starting -> every P ``sched``,
  except the one going on with its goroutine.
- ``sched_events``: sysmon's preemption requests, the end of each cycle's sweeping.
- ``scavenger_iterations``: one row per iteration of ``bgscavenge`` that
  released memory (and slept) or parked, joined with the timer that woke it
  (its P, when it fired, on which P and by which call) and the scavenger's
  next run.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from pagealloc.trace.format import SIDE_TABLES

# Event codes of the version 3 records (pagealloc_record.go; go114records.EVENTS lists them all).
EV_PROCS = 11  # procresize (go114records' code, read here for the number of Ps)
EV_RUN, EV_STOP, EV_IDLE, EV_UNIDLE, EV_RESUME, EV_STW, EV_PREEMPT_REQ, EV_SWEEP_DONE = 14, 15, 16, 17, 18, 19, 20, 21
EV_SCAV_ITER, EV_SCAV_SLEEP, EV_SCAV_WOKE, EV_SCAV_PARK, EV_TIMER_FIRE, EV_SCAV_READY = 22, 23, 24, 25, 26, 27
# Version 4: sysmon's loop
EV_SYSMON, EV_SYSMON_SLEEP, EV_STOP_REQUEST = 28, 29, 30

KINDS = ("user", "gc_worker", "sweep", "scavenger", "runtime")
KIND_NONE = 255
STOPS = {1: "park", 2: "yield", 3: "preempt", 4: "suspend", 5: "exit"}
GC_MODES = ("dedicated", "fractional", "idle")  # p.gcMarkWorkerMode
# The M's pageallocSite (which checkTimers call) and pageallocWake (what woke it)
SITE_SCHEDULE, SITE_FINDRUNNABLE, SITE_STEAL = 1, 2, 3
WAKES = {1: "netpoll", 2: "netpoll_early", 3: "sysmon", 4: "wakep"}


def _dict_array(values: list[str]) -> pa.DictionaryArray:
    return pa.array(values, pa.string()).dictionary_encode().cast(pa.dictionary(pa.int8(), pa.string()))


def _table(name: str, cols: dict) -> pa.Table:
    schema = SIDE_TABLES[name]
    arrays = []
    for f in schema:
        v = cols[f.name]
        arrays.append(_dict_array(list(v)) if pa.types.is_dictionary(f.type) else pa.array(np.asarray(v), f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _clock(recs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Each record's ts on the trace's clock (the first row at 0; earlier records at 0)."""
    t0 = recs["ts"][rows[0]] if len(rows) else recs["ts"][0]
    return np.maximum(recs["ts"] - t0, 0)


def p_schedule(recs: np.ndarray, ts: np.ndarray) -> pa.Table:
    ev, head, w = recs["head"] & 0xFF, recs["head"], recs["w"]
    flags, x = (head >> 8) & 0xFF, (head >> 32).astype(np.int64)
    own_p = ((head >> 16) & 0xFFFF).astype(np.int64) - 1
    out_ts, out_p, out_state, out_reason = [], [], [], []
    nprocs = 0
    for i in np.flatnonzero(np.isin(ev, [EV_RUN, EV_STOP, EV_IDLE, EV_UNIDLE, EV_RESUME, EV_STW, EV_PROCS])):
        e, t = ev[i], int(ts[i])
        if e == EV_PROCS:
            nprocs = int(x[i])
            continue
        if e == EV_STW:
            for p in range(nprocs):
                out_ts.append(t)
                out_p.append(p)
                if flags[i]:
                    out_state.append("stopped")
                    out_reason.append("stw")
                elif p == own_p[i] and w[i, 0] < len(KINDS):
                    out_state.append(KINDS[w[i, 0]])
                    out_reason.append("start_the_world")
                else:
                    out_state.append("sched")
                    out_reason.append("start_the_world")
            continue
        p = int(x[i])
        if p >= 0xFFFF:  # no P (not expected from these call sites)
            continue
        if e == EV_RUN or e == EV_RESUME:
            k = int(flags[i])
            state = KINDS[k] if k < len(KINDS) else "user"
            reason = GC_MODES[w[i, 1]] if (e == EV_RUN and state == "gc_worker" and w[i, 1] < len(GC_MODES)) else (
                "syscall_return" if e == EV_RESUME else "")
        elif e == EV_STOP:
            state, reason = "sched", STOPS.get(int(flags[i]), "")
        elif e == EV_IDLE:
            state, reason = "idle", ""
        else:
            state, reason = "sched", "wake"
        out_ts.append(t)
        out_p.append(p)
        out_state.append(state)
        out_reason.append(reason)
    return _table("p_schedule", {"ts": np.array(out_ts, np.int64), "p": np.array(out_p, np.int32), "state": out_state, "reason": out_reason})


def sched_events(recs: np.ndarray, ts: np.ndarray) -> pa.Table:
    """sysmon's preemption requests (value: when the goroutine began running), each cycle's end of
    sweeping (value: numgc); from version 4, sysmon's loop: ``sysmon_pass`` (value: its delay in us),
    ``sysmon_branch`` (at a pass that took the all-idle / gcwaiting branch, as the next pass's idle
    count of 1 says; value 1 if it slept, 0 if the timer was already due), ``sysmon_retake`` (at a
    pass whose retake took a P from a syscall: the next pass counts idle 0), ``sysmon_sleep`` (at the
    sleep's start; value: when it woke) and ``stop_request`` (gcwaiting set; the Ps' stops follow), all
    with p -1."""
    ev, w, x = recs["head"] & 0xFF, recs["w"].astype(np.int64), (recs["head"] >> 32).astype(np.int64)
    own_p = ((recs["head"] >> 16) & 0xFFFF).astype(np.int64) - 1
    idx = np.flatnonzero(np.isin(ev, [EV_PREEMPT_REQ, EV_SWEEP_DONE, EV_SYSMON, EV_SYSMON_SLEEP, EV_STOP_REQUEST]))
    e, clock = ev[idx], ts[idx].astype(np.int64)
    sleep = e == EV_SYSMON_SLEEP  # written when it wakes: its row goes at its start, on the rows' clock
    names = {EV_PREEMPT_REQ: "preempt_request", EV_SWEEP_DONE: "sweep_done", EV_SYSMON: "sysmon_pass",
             EV_SYSMON_SLEEP: "sysmon_sleep", EV_STOP_REQUEST: "stop_request"}
    row_ts = np.where(sleep, np.maximum(clock - (recs["ts"][idx] - w[idx, 0]), 0), clock)
    value = np.select([e == EV_PREEMPT_REQ, e == EV_SWEEP_DONE, e == EV_SYSMON, sleep],
                      [w[idx, 0], w[idx, 1], w[idx, 0], clock], 0)
    p = np.where(e == EV_PREEMPT_REQ, x[idx], np.where(e == EV_SWEEP_DONE, own_p[idx], -1))
    event = [names[int(k)] for k in e]
    took, slept = _sysmon_resets(recs)  # the passes' reset rows, at their pass
    row_ts = np.concatenate([row_ts, ts[took].astype(np.int64)])
    value = np.concatenate([value, np.maximum(slept, 0)])
    p = np.concatenate([p, np.full(len(took), -1)])
    event += ["sysmon_retake" if k < 0 else "sysmon_branch" for k in slept.tolist()]
    order = np.argsort(row_ts, kind="stable")
    return _table(
        "sched_events",
        {
            "ts": row_ts[order],
            "p": p[order].astype(np.int32),
            "event": [event[i] for i in order.tolist()],
            "value": value[order].astype(np.int64),
        },
    )


def _sysmon_resets(recs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(record indices, what) of sysmon's passes that reset its delay, in order: what is 1 for a pass
    that took the all-idle / gcwaiting branch and slept, 0 for one that took it with the timer already
    due (the next pass counts idle 1 again), -1 for one whose retake took a P from a syscall (the next
    pass counts idle 0)."""
    ev = recs["head"] & 0xFF
    passes = np.flatnonzero(ev == EV_SYSMON)
    if len(passes) < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    idle = recs["w"][passes, 1].astype(np.int64)
    branch = (idle[1:] == 1) & (idle[:-1] >= 1)
    retake = idle[1:] == 0
    k = np.flatnonzero(branch | retake)
    sleeps = np.flatnonzero(ev == EV_SYSMON_SLEEP)
    slept = (np.searchsorted(sleeps, passes[k + 1]) > np.searchsorted(sleeps, passes[k])).astype(np.int64)
    return passes[k], np.where(retake[k], -1, slept)


def scavenger_iterations(recs: np.ndarray, ts: np.ndarray, t0: int) -> pa.Table:
    """Walk the scavenger's records in order: an iteration (or park), its sleep, the timer, the wake-up, the next run."""
    ev, head, w = recs["head"] & 0xFF, recs["head"], recs["w"]
    flags, x = (head >> 8) & 0xFF, (head >> 32).astype(np.int64)
    own_p = ((head >> 16) & 0xFFFF).astype(np.int64) - 1
    last_stop = {}  # P -> the reason its last goroutine stopped (for a timer fired by schedule)
    rows: list[dict] = []
    cur: dict | None = None
    wanted = [EV_SCAV_ITER, EV_SCAV_SLEEP, EV_SCAV_WOKE, EV_SCAV_PARK, EV_TIMER_FIRE, EV_SCAV_READY, EV_RUN, EV_STOP]
    for i in np.flatnonzero(np.isin(ev, wanted)):
        e, t = ev[i], int(ts[i])
        if e == EV_STOP:
            last_stop[int(x[i])] = int(flags[i])
            continue
        if e == EV_RUN:
            if cur is not None and flags[i] == 3 and cur["ready_ts"] >= 0 and cur["next_run_ts"] < 0:
                cur["next_run_ts"], cur["next_run_p"] = t, int(x[i])
            continue
        if e in (EV_SCAV_ITER, EV_SCAV_PARK):
            cur = dict(ts=t, p=int(own_p[i]), outcome="sleep" if e == EV_SCAV_ITER else "park", crit_ns=-1, crit_used_ns=-1,
                       released_bytes=0, sleep_ns=-1, ewma=float("nan"), wake_at=-1, timer_p=-1, fired_ts=-1, fired_p=-1,
                       fired_by="none", woken_by="none", ready_ts=-1, ready_p=-1, next_run_ts=-1, next_run_p=-1, slept_ns=-1)
            if e == EV_SCAV_ITER:
                cur.update(crit_ns=int(w[i, 0]), crit_used_ns=int(w[i, 1]), released_bytes=int(w[i, 2]), sleep_ns=int(w[i, 3]),
                           ewma=float(np.frombuffer(np.uint64(w[i, 4]).tobytes(), np.float64)[0]))
            rows.append(cur)
        elif cur is None:
            continue
        elif e == EV_SCAV_SLEEP:
            # -1: no P (a timer asked to fire at once may already have fired, and left its P's heap)
            cur["wake_at"], cur["timer_p"] = max(int(w[i, 1]) - t0, 0), int(x[i]) if x[i] < 0xFFFF else -1
        elif e == EV_TIMER_FIRE:
            if cur["fired_ts"] < 0 and cur["ready_ts"] < 0:
                cur["fired_ts"], cur["fired_p"] = t, int(own_p[i])
                cur["fired_by"] = _fired_by(int(w[i, 2]), int(w[i, 3]), last_stop.get(int(own_p[i])))
        elif e == EV_SCAV_READY:
            if cur["ready_ts"] < 0:
                cur["ready_ts"], cur["ready_p"] = t, int(own_p[i])
                cur["woken_by"] = "timer" if flags[i] else "gc"
        elif e == EV_SCAV_WOKE:
            cur["slept_ns"] = int(w[i, 0])
    names = SIDE_TABLES["scavenger_iterations"].names
    cols = {n: [r[n] for r in rows] for n in names}
    return _table("scavenger_iterations", cols)


def _fired_by(site: int, wake: int, stop: int | None) -> str:
    """What made the timer fire: what woke the M that ran it, else the P rescheduling, else a running M's search.

    An M back from netpoll or started by sysmon may take any idle P and run
    the timer from another P's heap (steal): its wake-up is what counts.
    """
    if wake in WAKES:
        return WAKES[wake]
    if site == SITE_SCHEDULE:
        return "preempt" if STOPS.get(stop) == "preempt" else "reschedule"
    if site == SITE_STEAL:
        return "steal"
    if site == SITE_FINDRUNNABLE:
        return WAKES.get(wake, "findrunnable")
    return "none"


def side_tables(recs: np.ndarray, rows: np.ndarray) -> dict[str, pa.Table]:
    """The v3 side tables of a version 3 record stream (``rows``: the records that became trace rows)."""
    ts = _clock(recs, rows)
    t0 = int(recs["ts"][rows[0]] if len(rows) else recs["ts"][0])
    return {
        "p_schedule": p_schedule(recs, ts),
        "sched_events": sched_events(recs, ts),
        "scavenger_iterations": scavenger_iterations(recs, ts, t0),
    }





def timing_summary(iterations: pa.Table) -> dict:
    """Figures of a ``scavenger_iterations`` table: iterations that slept, crit and timer lateness
    (fired - wake_at) medians and p90s in ns, and how many timers fired by each mechanism."""
    it = iterations.to_pandas()
    slept = it[it["outcome"] == "sleep"]
    fired = slept[slept["fired_ts"] >= 0]
    late = (fired["fired_ts"] - fired["wake_at"]).to_numpy()

    def q(values, p):
        return float(np.percentile(values, p)) if len(values) else float("nan")

    return {
        "iterations": int(len(slept)),
        "parks": int((it["outcome"] == "park").sum()),
        "released_bytes": int(slept["released_bytes"].sum()),
        "crit_p50_ns": q(slept["crit_ns"], 50),
        "crit_p90_ns": q(slept["crit_ns"], 90),
        "sleep_p50_ns": q(slept["sleep_ns"], 50),
        "late_p50_ns": q(late, 50),
        "late_p90_ns": q(late, 90),
        "fired_by": {k: int(v) for k, v in fired["fired_by"].astype(str).value_counts().items()},
        "woken_by_gc": int((slept["woken_by"] == "gc").sum()),
    }
__all__ = ["side_tables", "timing_summary"]
