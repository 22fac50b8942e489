"""Replaying traces in every preset for the report and the command line.

* ``replay_all(traces, jobs)``: every trace in every mode, in up to
  ``jobs`` processes, each warmed up before its first measured replay;
  with ``seeds`` K > 1, each (trace, mode) is seed 0's record with
  ``F_min`` / ``F_max`` over K seeds (pagealloc.sim.spread).
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from pagealloc.errors import UserError
from pagealloc.results.asvresults import order_modes
from pagealloc.trace.naming import unique_names


def modes() -> list[str]:
    """This pagealloc's presets, the baseline first."""
    from pagealloc.sim.replay import MODES

    return order_modes(MODES)


_warmed: set[str] = set()  # the modes warmed up in this process


def _replay_one(job):
    """One measured replay, after this process's warm-up (the first time a mode runs here)."""
    path, label, mode, cost_model, modes = job
    from pagealloc.sim.replay import replay, warm_up

    if mode not in _warmed:
        warm_up(path, modes)
        _warmed.update(modes)
    return replay(path, mode, cost_model=cost_model, label=label).to_dict()


def _seeds_one(job):
    """Every mode of one trace for one seed (pagealloc.sim.spread)."""
    path, label, seed, cost_model, all_modes = job
    from pagealloc.sim.presets import ReplayConfig
    from pagealloc.sim.spread import _tables, replay_seed

    return [replay_seed(path, ReplayConfig(mode=m), cost_model, seed, label, _tables).to_dict() for m in all_modes]


def replay_all(traces, jobs: int = 1, cost_model=None, seeds: int = 1) -> dict[str, dict[str, dict]]:
    """{trace name: {mode: ReplayResult.to_dict()}} for every trace in every mode (with ``seeds`` > 1:
    seed 0's, with F_min / F_max and ``seeds`` added)."""
    for t in traces:
        if not Path(t).is_file():
            raise UserError(f"{t}: no such file" if not Path(t).exists() else f"{t}: not a file")
    all_modes = modes()
    labels = unique_names(traces)
    if seeds > 1:
        return _replay_all_seeds(traces, labels, all_modes, jobs, cost_model, seeds)
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


def _replay_all_seeds(traces, labels, all_modes, jobs: int, cost_model, seeds: int) -> dict[str, dict[str, dict]]:
    from pagealloc.sim.spread import spread_record

    work = [(str(t), label, s, cost_model, all_modes) for t, label in zip(traces, labels) for s in range(seeds)]
    if jobs > 1:
        with ProcessPoolExecutor(max_workers=min(jobs, len(work))) as pool:
            done = list(pool.map(_seeds_one, work))
    else:
        done = [_seeds_one(w) for w in work]
    out: dict[str, dict[str, dict]] = {}
    for k, label in enumerate(labels):
        runs = done[k * seeds:(k + 1) * seeds]
        out[label] = {m: spread_record([run[i] for run in runs]) for i, m in enumerate(all_modes)}
    return out
