"""Replays of the bundled traces, locked vs unlocked scavenging.

Every benchmark is parameterized over (trace, mode): trace from the
manifest's default set (heavy traces: the *Heavy classes, opt-in with
PAGEALLOC_BENCH_HEAVY=1), mode in {unlocked, locked}.

* Replay: time_replay and peakmem_replay run pagealloc.replay on
  the trace, already read into memory by setup.
* ReplayMetrics: the replay's own metrics as track_* benchmarks.  Virtual
  time makes them deterministic (all but events_per_second), so one replay
  per (trace, mode), done in setup_cache, gives them all.

setup_cache reads the trace files once per class; setup raises
NotImplementedError (asv: skipped) on commits without the replay engine,
and the track_* benchmarks skip when this commit's ReplayResult lacks the
field.
"""

from __future__ import annotations

from ._corpus import MODES, NO_TRACES, SkipNotImplemented, corpus, heavy_enabled, trace_names


def _replay_api():
    """pagealloc.replay (the function), or NotImplementedError on a commit without it.

    ``from pagealloc import replay`` works on every layout this suite has
    benchmarked: the function where the package exports it, else the
    submodule of that name, whose ``replay`` is the function.
    """
    try:
        from pagealloc import replay
    except ImportError as e:
        raise NotImplementedError(f"no pagealloc.replay in this commit: {e}") from None
    replay = getattr(replay, "replay", replay)
    if not callable(replay):
        raise NotImplementedError("no pagealloc.replay in this commit: not a function")
    return replay


def _read_traces(which: str) -> dict:
    """{name: the file's bytes}: read once, decoded per benchmark process.
    Empty for the heavy set unless it is enabled."""
    if which == "heavy" and not heavy_enabled():
        return {}
    return {name: path.read_bytes() for name, path in corpus(which)}


def _table(data: bytes):
    import pyarrow as pa
    import pyarrow.parquet as pq

    return pq.read_table(pa.BufferReader(data))


class Replay:
    """Wall time and peak memory of one replay."""

    params = [trace_names("default"), MODES]
    param_names = ["trace", "mode"]
    timeout = 600
    number = 1
    repeat = (1, 5, 20.0)
    warmup_time = 0

    def setup_cache(self):  # each class defines its own: asv keys caches by source line
        return _read_traces("default")

    def setup(self, traces, trace, mode):
        if trace == NO_TRACES:
            raise NotImplementedError("no traces in this set")
        if trace not in traces:
            raise NotImplementedError("heavy traces are opt-in: set PAGEALLOC_BENCH_HEAVY=1")
        self.replay = _replay_api()
        self.table = _table(traces[trace])
        self.trace = trace

    def time_replay(self, traces, trace, mode):
        self.replay(self.table, mode, label=trace)

    def peakmem_replay(self, traces, trace, mode):
        self.replay(self.table, mode, label=trace)


class ReplayHeavy(Replay):
    params = [trace_names("heavy"), MODES]
    timeout = 3600
    repeat = (1, 2, 60.0)

    def setup_cache(self):
        return _read_traces("heavy")


def _metrics(which: str) -> dict:
    """{"trace|mode": metrics dict, or an error string} from one replay each."""
    try:
        replay = _replay_api()
    except NotImplementedError as e:
        return {"__missing__": str(e)}
    out = {}
    for name, data in _read_traces(which).items():
        table = _table(data)
        for mode in MODES:
            try:
                r = replay(table, mode, label=name)
                d = dict(vars(r))
                d.pop("retained_timeline", None)
            except Exception as e:  # noqa: BLE001 - recorded, reported by setup as a failure
                d = f"{type(e).__name__}: {e}"
            out[f"{name}|{mode}"] = d
    return out


class ReplayMetrics:
    """What the scavenger did: released and retained bytes, stalls, lock holds.

    All but track_events_per_second are in virtual time and deterministic:
    the locked vs unlocked difference is the point of the suite.
    """

    params = [trace_names("default"), MODES]
    param_names = ["trace", "mode"]
    timeout = 1200

    def setup_cache(self):
        return _metrics("default")

    def setup(self, metrics, trace, mode):
        if "__missing__" in metrics:
            raise NotImplementedError(metrics["__missing__"])
        if trace == NO_TRACES:
            raise NotImplementedError("no traces in this set")
        key = f"{trace}|{mode}"
        if key not in metrics:
            raise NotImplementedError("heavy traces are opt-in: set PAGEALLOC_BENCH_HEAVY=1")
        if isinstance(metrics[key], str):
            raise RuntimeError(f"replay of {trace} ({mode}) failed in setup_cache: {metrics[key]}")
        self.m = metrics[key]

    def _get(self, field):
        if field not in self.m:
            raise SkipNotImplemented(f"ReplayResult has no {field} in this commit")
        return self.m[field]

    def track_released_bytes(self, metrics, trace, mode):
        return self._get("released_bytes")

    track_released_bytes.unit = "bytes"

    def track_retained_peak_bytes(self, metrics, trace, mode):
        return self._get("retained_peak_bytes")

    track_retained_peak_bytes.unit = "bytes"

    def track_mutator_stall_ns(self, metrics, trace, mode):
        return self._get("mutator_stall_ns")

    track_mutator_stall_ns.unit = "ns"

    def track_lock_hold_max_ns(self, metrics, trace, mode):
        return self._get("lock_hold_max_ns")

    track_lock_hold_max_ns.unit = "ns"

    def track_events_per_second(self, metrics, trace, mode):
        return self.m.get("replay_events_per_wall_second") or self._get("events_per_second")  # renamed

    track_events_per_second.unit = "events/s"


class ReplayMetricsHeavy(ReplayMetrics):
    params = [trace_names("heavy"), MODES]
    timeout = 7200

    def setup_cache(self):
        return _metrics("heavy")
