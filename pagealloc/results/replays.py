"""Replaying traces in every preset for the report and the command line.

* ``trace_name(path)``: what a trace is called everywhere (``info``,
  ``replay``, ``report``): its metadata ``name``, else the file's stem.
* ``warm_up(path, modes)``: pays a process's one-time costs before anything
  is timed.  The first replay in a process otherwise also pays pyarrow's
  first Parquet read and the engine's first run (~0.2 s), which made
  whichever mode ran first look slower in the wall-clock figures.
* ``replay_all(traces, jobs)``: every trace in every mode, in up to
  ``jobs`` processes, each warmed up before its first measured replay.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from pagealloc.errors import UserError
from pagealloc.results.asvresults import order_modes

WARM_UP_ROWS = 5_000


def modes() -> list[str]:
    """This pagealloc's presets, the baseline first."""
    from pagealloc.sim.replay import MODES

    return order_modes(MODES)


def trace_name(path, metadata: dict | None = None) -> str:
    """The trace's metadata name (``--name`` of record and synth), else the
    file's stem; ``metadata`` when the caller has read it already."""
    from pagealloc.trace.read import trace_metadata

    if metadata is None:
        try:
            metadata = trace_metadata(path)
        except UserError:
            metadata = {}  # the replay that follows reports what is wrong with the file
    name = metadata.get("name")
    return str(name) if name else Path(path).stem


def unique_names(paths) -> list[str]:
    """trace_name of each path; a name two files share gets the file name added."""
    names = [trace_name(p) for p in paths]
    return [f"{n} ({Path(p).name})" if names.count(n) > 1 else n for n, p in zip(names, paths)]


def warm_up(path, modes) -> None:
    """Replay the first WARM_UP_ROWS rows of ``path`` once in each mode, untimed.

    The rows without the file's metadata (whose counts are the whole
    trace's) are a valid trace.  A bad input is left for the measured replay
    to report; a model bug (InvariantError) is reported here, naming the file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pagealloc.sim.replay import replay

    try:
        first = next(pq.ParquetFile(path).iter_batches(batch_size=WARM_UP_ROWS))
        head = pa.Table.from_batches([first]).replace_schema_metadata(None)
        for mode in modes:
            replay(head, mode, label=str(path))
    except (UserError, OSError, StopIteration, ValueError):
        pass  # not a measurement: the measured replay reports what is wrong


_warmed: set[str] = set()  # the modes warmed up in this process


def _replay_one(job):
    """One measured replay, after this process's warm-up (the first time a mode runs here)."""
    path, label, mode, cost_model, modes = job
    from pagealloc.sim.replay import replay

    if mode not in _warmed:
        warm_up(path, modes)
        _warmed.update(modes)
    return replay(path, mode, cost_model=cost_model, label=label).to_dict()


def replay_all(traces, jobs: int = 1, cost_model=None) -> dict[str, dict[str, dict]]:
    """{trace name: {mode: ReplayResult.to_dict()}} for every trace in every mode."""
    for t in traces:
        if not Path(t).is_file():
            raise UserError(f"{t}: no such file" if not Path(t).exists() else f"{t}: not a file")
    all_modes = modes()
    labels = unique_names(traces)
    work = [(str(t), label, mode, cost_model, all_modes) for t, label in zip(traces, labels) for mode in all_modes]
    if jobs > 1 and len(work) > 1:
        with ProcessPoolExecutor(max_workers=min(jobs, len(work))) as pool:
            done = list(pool.map(_replay_one, work))
    else:
        done = [_replay_one(w) for w in work]
    out: dict[str, dict[str, dict]] = {}
    for (_, label, mode, _, _), d in zip(work, done):
        out.setdefault(label, {})[mode] = d
    return out
