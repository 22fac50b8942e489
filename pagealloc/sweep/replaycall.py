"""One sweep point as one ``replay()`` call, and the row it becomes.

A point is a ``ReplayConfig`` (preset, timing, the model knobs of
``pagealloc.sim.presets.KNOBS``) with a trace, a cost model and a seed
(``pagealloc.sim.spread``: 0 the plain replay; its row keeps the point's
unperturbed costs in the cost_* columns).
``run_point`` is the task a Dask worker runs: it replays one point and
returns its row, a failure included (status ``error`` and the message), so
no point is ever silently dropped.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import resource
import subprocess
import time
from importlib import metadata
from pathlib import Path

import pyarrow as pa

from pagealloc.sim.costmodel import CostModel
from pagealloc.sim.presets import KNOBS, ReplayConfig
from pagealloc.sim.replay import replay
from pagealloc.sim.result import ReplayResult

_ARROW_KIND = {"number": pa.float64(), "int": pa.int64(), "bool": pa.bool_()}

# Row columns that differ from run to run (besides ReplayResult's wall-clock ones).
# replay_cpu_seconds is the replay's CPU time in its worker: unlike wall_seconds it
# hardly moves when other processes share the cores, so scale estimates use it.
ENVIRONMENT_COLUMNS = ("worker", "worker_peak_rss_bytes", "replay_cpu_seconds")


def knob_defaults() -> dict:
    """{knob: its default} (Go 1.14's values; gomaxprocs None: the trace's own)."""
    defaults = ReplayConfig.defaults()
    return {name: defaults[name] for name in KNOBS}


def point_config(point: dict, check: bool = False, engine: str | None = None) -> ReplayConfig:
    """The ReplayConfig of ``point`` (a ``Point.as_task()`` dict)."""
    return ReplayConfig(mode=point["mode"], timing=point["timing"], check=check, engine=engine, **point["params"])


# -- the row --------------------------------------------------------------


def _arrow_type(annotation) -> pa.DataType | None:
    """Arrow type of a ReplayResult field; None: stored as a JSON string (lists, tables)."""
    name = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    name = name.replace(" | None", "").replace("None | ", "").split("[")[0].strip()
    return {"int": pa.int64(), "float": pa.float64(), "str": pa.string(), "bool": pa.bool_()}.get(name)


def result_fields() -> list[tuple[str, pa.DataType | None]]:
    """ReplayResult's fields in order, each with its Arrow type (None: JSON)."""
    return [(name, _arrow_type(kind)) for name, kind in ReplayResult.flat_fields()]


def point_columns() -> list[tuple[str, pa.DataType]]:
    """The grid point's columns (before the result's fields)."""
    cols = [("point_id", pa.string()), ("trace", pa.string()), ("mode", pa.string()),
            ("timing", pa.string()), ("trace_path", pa.string()), ("trace_sha256", pa.string()),
            ("cost_file", pa.string()), ("seed", pa.int64())]
    cols += [(f"cost_{f.name}", pa.int64()) for f in dataclasses.fields(CostModel)]
    # gomaxprocs is also a figure of the result (the P count the replay ran with): its column comes from there
    cols += [(name, _ARROW_KIND[kind]) for name, (kind, _, _) in KNOBS.items() if name != "gomaxprocs"]
    return cols


def row_schema() -> tuple[pa.Schema, dict]:
    """The schema of a results row, and what the columns are (kept in the results' metadata):
    ``point_columns``, ``json_columns`` (stored as JSON text), ``nondeterministic_columns``."""
    points = dict(point_columns())
    cols = dict(points)
    json_columns = []
    for name, typ in result_fields():
        if name not in cols:  # a result field repeating a point column (trace, mode, timing) is the same value
            cols[name] = typ or pa.string()
            if typ is None:
                json_columns.append(name)
    cols.update({"status": pa.string(), "error": pa.string(), "commit": pa.string(),
                 "pagealloc_version": pa.string(), "worker": pa.string(), "worker_peak_rss_bytes": pa.int64(),
                 "replay_cpu_seconds": pa.float64()})
    kinds = {"point_columns": list(points), "json_columns": json_columns,
             "nondeterministic_columns": list(nondeterministic_columns())}
    return pa.schema(list(cols.items())), kinds


def nondeterministic_columns() -> tuple[str, ...]:
    """Columns that vary between runs of the same point: wall clock and where it ran."""
    return tuple(ReplayResult.WALL_CLOCK_FIELDS) + ENVIRONMENT_COLUMNS


# -- provenance -----------------------------------------------------------


@functools.cache
def identity() -> dict:
    """Which pagealloc this process runs: commit (``git rev-parse HEAD``) and package version."""
    package_dir = Path(__file__).resolve().parents[1]  # pagealloc/
    commit = "unknown"
    try:
        top = subprocess.run(["git", "-C", str(package_dir), "rev-parse", "--show-toplevel", "HEAD"],
                             capture_output=True, text=True, timeout=30)
        lines = top.stdout.split()
        # only when pagealloc/ is this checkout's own, not a copy inside some other repository
        if top.returncode == 0 and len(lines) == 2 and Path(lines[0]).resolve() == package_dir.parent:
            commit = lines[1]
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        version = metadata.version("pagealloc")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return {"commit": commit, "pagealloc_version": version}


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):  # not inside a Dask worker
        return "local"


# -- the task -------------------------------------------------------------


def _point_row(point: dict) -> dict:
    row = {"point_id": point["id"], "trace": point["trace"], "mode": point["mode"], "timing": point["timing"],
           "trace_path": point["trace_path"], "trace_sha256": point["trace_sha256"],
           "cost_file": point["cost_file"], "seed": point.get("seed", 0), **point["params"]}
    row.update({f"cost_{k}": v for k, v in point["cost"].items()})
    return row


def failed_row(point: dict, error: BaseException | str, worker: str = "") -> dict:
    """The row of a point that did not produce a result."""
    message = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return {**_point_row(point), "status": "error", "error": message[:2000], **identity(),
            "worker": worker, "worker_peak_rss_bytes": None, "replay_cpu_seconds": None}


def run_point(point: dict, trace=None, check: bool = False, engine: str | None = None) -> dict:
    """Replay one point and return its row (a failure is a row too).

    ``trace``: the trace as a pyarrow Table when it was scattered to the
    workers; else the worker reads ``point["trace_path"]``.
    """
    source = trace if trace is not None else point["trace_path"]
    cpu = time.process_time()
    try:
        config, cost = point_config(point, check, engine), CostModel(**point["cost"])
        seed = point.get("seed", 0)
        if seed:  # the cost_* columns keep the point's costs; the seed's perturbation is derived from them
            from pagealloc.sim.spread import seeded_inputs
            from pagealloc.trace.read import trace_metadata

            source, cost = seeded_inputs(source, config, cost, seed, point["trace"],
                                         trace_metadata(source).get("source"))
        result = replay(source, config=config, cost_model=cost, label=point["trace"])
    except Exception as e:  # noqa: BLE001 - every failure becomes the point's recorded error
        row = failed_row(point, e, _worker_name())
    else:
        row = {**_point_row(point), "status": "ok", "error": "", **identity(), "worker": _worker_name(),
               "replay_cpu_seconds": time.process_time() - cpu}
        figures = result.to_dict()
        for name, typ in result_fields():
            value = figures[name]
            row[name] = json.dumps(value) if typ is None else value
    row["worker_peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    return row
