"""Replays of the bundled traces, per preset (mode).

Every benchmark is parameterized over (trace, mode): trace from the
manifest's default set, mode over every preset (``_corpus.MODES``;
``go1.14`` is the baseline the others are compared with).  A commit
that lacks a mode, the replay engine, or a ReplayResult field skips
(NotImplementedError: asv shows n/a), never fails.

* Replay: time_replay and peakmem_replay run pagealloc.replay on the
  trace, already read into memory by setup: the simulator's own speed,
  wall clock, on a few traces that cover its paths (_corpus.SPEED_TRACES).
* ReplayMetrics: the replay's metrics as track_* benchmarks, one replay
  per (trace, mode) in setup_cache.  All are virtual-time and
  deterministic except track_wall_seconds_per_event (wall clock).
  asv compare and asv continuous take every figure as lower-is-better,
  so a figure where higher is better is tracked as its inverse under a
  name that says so (track_wall_seconds_per_event, track_virtual_ns_per_event,
  track_scavenger_ns_per_released_mib).  Figures with no better direction
  (track_released_bytes, track_scavenger_cpu_ns) cannot be named so:
  asv compare lists them apart, never as improved or worse, through
  pagealloc/results/asvplugin.py (asv.conf.json's plugins), and
  scripts/compare applies the same rules (pagealloc/results/gate.py).
* ReplayHeavy, ReplayMetricsHeavy: the same on the heavy traces; defined
  only with PAGEALLOC_BENCH_HEAVY=1 (so the dashboard has no always-empty
  graphs).

setup_cache reads the trace files once per class.
"""

from __future__ import annotations

import math
import sys

from ._corpus import MODES, NO_TRACES, SkipNotImplemented, corpus, heavy_enabled, trace_names

# asv keeps results comparable while a benchmark's version is unchanged; by
# default the version hashes the benchmark's code with its class's setup and
# setup_cache, so any edit to those breaks the history of every benchmark of
# the class.  The benchmarks published before these edits keep the hashes
# they had then (commit 8a428c9); bump a version only when what its figure
# means changes.
VERSIONS = {
    "time_replay": "4786f4a40e33396f7d2177ab71dd10ccd90dd75a72b65cbf1f8eb31ce518ffa2",
    "peakmem_replay": "0e64a8efb6db4e18fbcd8b480baccc6c58e40acdd90facfbf376559c5ce31828",
    "track_released_bytes": "b39c4b76c4e78d646213f996eded8dcf9990f85c5709e12eb551826d1e47c9a8",
    "track_retained_peak_bytes": "5a4aa11d2e26b3a2f96b222a7a078dfaf54cbcdf058ea4809611402ef5c9fbc0",
    "track_mutator_stall_ns": "1972a080e55eda6660d11b6a0c4fc7182c5b93c6a7ce6244db96ad1560a1b656",
    "track_lock_hold_max_ns": "6537d8e4c724cc94e2af55eb746c822cab1624db0a9ac9515fdf7f8166a94d7f",
}
NEW_VERSION = "1"  # benchmarks added since

WARM_UP_ROWS = 5_000
MiB = 2**20


def _replay_api(mode: str | None = None):
    """pagealloc.replay (the function), or NotImplementedError on a commit
    without it, or without ``mode``.

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
    if mode is not None and mode not in commit_modes(replay):
        raise NotImplementedError(f"mode {mode!r} is not in this commit (its modes: {', '.join(commit_modes(replay))})")
    return replay


def commit_modes(replay) -> tuple:
    """The modes of this commit's replay engine (its module's MODES; the
    first engine had exactly unlocked and locked)."""
    return tuple(getattr(sys.modules.get(replay.__module__), "MODES", None) or ("unlocked", "locked"))


def _read_traces(which: str) -> dict:
    """{name: the file's bytes}: read once, decoded per benchmark process."""
    return {name: path.read_bytes() for name, path in corpus(which)}


def _table(data: bytes):
    import pyarrow as pa
    import pyarrow.parquet as pq

    # on this thread: a pool thread that drops the Python buffer at exit aborts the process (apache/arrow#34314)
    with pq.ParquetFile(pa.BufferReader(data), pre_buffer=False) as pf:
        return pf.read(use_threads=False)


def _warm_up(replay, table, modes) -> None:
    """Pay a process's one-time costs (first Parquet decode, first replay in
    each mode) before anything is timed, so the order of the modes never
    shows in the wall-clock figures.  The first rows of a trace, without
    its metadata (whose counts are the whole trace's), are a valid trace."""
    head = table.slice(0, WARM_UP_ROWS).replace_schema_metadata(None)
    for mode in modes:
        try:
            replay(head, mode, label="warm-up")
        except Exception:  # noqa: BLE001 - not a measurement; the measured replay reports any error
            pass


class Replay:
    """Wall time and peak memory of one replay: the simulator's own speed (on _corpus.SPEED_TRACES)."""

    params = [trace_names("speed"), MODES]
    param_names = ["trace", "mode"]
    timeout = 600
    number = 1
    repeat = (1, 5, 20.0)
    warmup_time = 0

    def setup_cache(self):  # each class defines its own: asv keys caches by source line
        return _read_traces("speed")

    def setup(self, traces, trace, mode):
        if trace == NO_TRACES:
            raise NotImplementedError("no traces in this set")
        self.replay = _replay_api(mode)
        self.table = _table(traces[trace])
        self.trace = trace

    def time_replay(self, traces, trace, mode):
        self.replay(self.table, mode, label=trace)

    def peakmem_replay(self, traces, trace, mode):
        self.replay(self.table, mode, label=trace)

    time_replay.version = VERSIONS["time_replay"]
    peakmem_replay.version = VERSIONS["peakmem_replay"]


class ReplayEngine:
    """Wall time of one go1.14 replay on each engine: the compiled one (the default) and the Python mirror.

    The figures are the same on both (tests/sim/test_engines_figures.py); only the speed differs.  Skips on
    commits whose replay() has no ``engine``, and for an engine this install lacks (no C compiler)."""

    params = [trace_names("speed"), ["compiled", "python"]]
    param_names = ["trace", "engine"]
    timeout = 900
    number = 1
    repeat = (1, 3, 20.0)
    warmup_time = 0

    def setup_cache(self):
        return _read_traces("speed")

    def setup(self, traces, trace, engine):
        import inspect

        if trace == NO_TRACES:
            raise NotImplementedError("no traces in this set")
        self.replay = _replay_api("go1.14")
        if "engine" not in inspect.signature(self.replay).parameters:
            raise NotImplementedError("this commit's replay() has one engine")
        from pagealloc.runtime.engines import check_engine

        try:
            check_engine(engine)
        except ValueError as e:
            raise NotImplementedError(str(e)) from None
        self.table = _table(traces[trace])
        _warm_up(lambda *a, **k: self.replay(*a, engine=engine, **k), self.table, ["go1.14"])

    def time_replay(self, traces, trace, engine):
        self.replay(self.table, "go1.14", label=trace, engine=engine)

    time_replay.version = NEW_VERSION


def _metrics(which: str) -> dict:
    """{"trace|mode": metrics dict, or an error string} from one replay each,
    "__modes__": the modes this commit has (or "__missing__": why none)."""
    try:
        replay = _replay_api()
    except NotImplementedError as e:
        return {"__missing__": str(e)}
    modes = [m for m in MODES if m in commit_modes(replay)]
    out = {"__modes__": modes}
    for i, (name, data) in enumerate(_read_traces(which).items()):
        table = _table(data)
        if i == 0:
            _warm_up(replay, table, modes)
        for mode in modes:
            try:
                r = replay(table, mode, label=name)
                # plain figures only (no timelines, no pagealloc objects): asv unpickles this cache in each
                # forked parameter run, and a pagealloc object there imports pagealloc (~0.2 s) every time
                d = {k: v for k, v in vars(r).items() if isinstance(v, (int, float, str, bool, type(None)))}
                if "p_stall_ns" in d:  # the asv name kept since the first published suite (same figure)
                    d.setdefault("mutator_stall_ns", d["p_stall_ns"])
            except Exception as e:  # noqa: BLE001 - recorded, reported by setup as a failure
                d = f"{type(e).__name__}: {e}"
            out[f"{name}|{mode}"] = d
    return out


def _field(name: str, unit: str, what: str):
    """A track_* benchmark of ReplayResult.<name> (skips when the commit's ReplayResult lacks it)."""

    def track(self, metrics, trace, mode):
        return self._get(name)

    track.unit = unit
    track.version = NEW_VERSION
    track.pretty_source = f"replay(trace, mode).{name}  # {what}"
    return track


class ReplayMetrics:
    """What the scavenger did and what it cost the program, per preset.

    Virtual time: deterministic, identical on every run and machine, except
    track_wall_seconds_per_event (the simulator's speed, wall clock).
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
        if mode not in metrics["__modes__"]:
            raise NotImplementedError(f"mode {mode!r} is not in this commit")
        key = f"{trace}|{mode}"
        if isinstance(metrics[key], str):
            raise RuntimeError(f"replay of {trace} ({mode}) failed in setup_cache: {metrics[key]}")
        self.m = metrics[key]

    def _get(self, field):
        if field not in self.m:
            raise SkipNotImplemented(f"ReplayResult has no {field} in this commit")
        return self.m[field]

    # -- figures tracked since the first published suite --

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

    track_released_bytes.version = VERSIONS["track_released_bytes"]
    track_retained_peak_bytes.version = VERSIONS["track_retained_peak_bytes"]
    track_mutator_stall_ns.version = VERSIONS["track_mutator_stall_ns"]
    track_lock_hold_max_ns.version = VERSIONS["track_lock_hold_max_ns"]

    # -- multi-P figures (skip on commits whose ReplayResult lacks them) --

    track_p_stall_ns = _field("p_stall_ns", "ns", "time Ps waited for the heap lock, summed over Ps")
    track_p_stall_max_ns = _field("p_stall_max_ns", "ns", "longest wait of a P for the heap lock")
    track_p_stall_p99_ns = _field("p_stall_p99_ns", "ns", "p99 of the Ps' waits for the heap lock")
    track_alloc_latency_p99_ns = _field("alloc_latency_p99_ns", "ns", "p99 latency of a span allocation")
    track_alloc_latency_max_ns = _field("alloc_latency_max_ns", "ns", "longest span allocation")
    track_slowdown = _field("slowdown", "x", "replayed makespan / recorded duration")
    track_scavenger_cpu_ns = _field("scavenger_cpu_ns", "ns", "CPU the scavenger spent; no better direction")

    # -- inverses of higher-is-better figures (asv takes lower as better) --

    def track_virtual_ns_per_event(self, metrics, trace, mode):
        """Virtual ns per trace event: the inverse of throughput_events_per_vsec."""
        rate = self._get("throughput_events_per_vsec")
        return 1e9 / rate if rate else math.nan

    track_virtual_ns_per_event.unit = "ns"
    track_virtual_ns_per_event.version = NEW_VERSION

    def track_scavenger_ns_per_released_mib(self, metrics, trace, mode):
        """Scavenger CPU per MiB released: the inverse of released_bytes_per_scavenger_cpu_sec."""
        rate = self._get("released_bytes_per_scavenger_cpu_sec")
        return 1e9 * MiB / rate if rate else math.nan

    track_scavenger_ns_per_released_mib.unit = "ns"
    track_scavenger_ns_per_released_mib.version = NEW_VERSION

    def track_wall_seconds_per_event(self, metrics, trace, mode):
        """The simulator's own speed, wall clock: seconds per replayed event
        (the inverse of events per wall second).  Not the program's throughput."""
        events = self._get("events")
        return self._get("wall_seconds") / events if events else math.nan

    track_wall_seconds_per_event.unit = "seconds"
    track_wall_seconds_per_event.version = NEW_VERSION


if heavy_enabled():  # else absent: no always-empty graphs on the dashboard

    class ReplayHeavy(Replay):
        params = [trace_names("heavy"), MODES]
        timeout = 3600
        repeat = (1, 2, 60.0)

        def setup_cache(self):
            return _read_traces("heavy")

    class ReplayMetricsHeavy(ReplayMetrics):
        params = [trace_names("heavy"), MODES]
        timeout = 7200

        def setup_cache(self):
            return _metrics("heavy")
