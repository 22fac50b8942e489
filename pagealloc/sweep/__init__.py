"""Parameter sweeps: a grid of replays (traces x presets x timings x costs x
model parameters) run on Dask, streamed to Parquet, read back and plotted.

- ``grid``: the TOML grid file, validated, expanded into points;
- ``replaycall``: one point as one ``replay()`` call (only the parameters
  the installed replay() takes), and the row it becomes: the task;
- ``store``: the results folder (Parquet parts, resume), ``read_results``;
- ``execute``: ``run_sweep`` on a LocalCluster, a remote scheduler, or serially;
- ``report``: ``pagealloc sweep-report``, plots of each metric against each
  swept axis, presets side by side, as a static HTML page.

Sits between ``sim`` and ``cli``: may import ``pagealloc.sim``,
``pagealloc.runtime``, ``pagealloc.trace``, ``pagealloc.results`` and
``pagealloc.errors``; only ``cli`` imports it.
"""

from pagealloc.sweep.grid import Grid, Point, load_grid
from pagealloc.sweep.store import read_results

__all__ = ["Grid", "Point", "load_grid", "read_results", "run_sweep"]


def __getattr__(name):
    if name == "run_sweep":  # Dask is imported only when a sweep runs
        from pagealloc.sweep.execute import run_sweep

        return run_sweep
    raise AttributeError(name)
