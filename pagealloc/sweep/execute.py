"""Running a grid's points on Dask (or serially) and streaming the rows to disk.

``run_sweep(grid, out)`` skips the points whose ids are already in
``out`` (resume), submits one task per remaining point, and writes each
row as its task finishes (``distributed.as_completed``).  A replay that
fails is a row with status ``error``; a task Dask gives up on (its
workers kept dying: ``KilledWorker``) is one too.  A killed worker's tasks
are rerun by Dask elsewhere, so nothing is lost, and each future yields
one row, so nothing is duplicated.

Where it runs: a client of ``scheduler`` (``tcp://HOST:PORT``, or
``$DASK_SCHEDULER_ADDRESS``), else an embedded ``LocalCluster`` with one
single-threaded worker process per core.  Workers read the traces by
their absolute paths (so a real cluster needs them on a shared
filesystem), or, with ``scatter``, get each trace once as a pyarrow Table
broadcast to every worker.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import uuid
import warnings
from dataclasses import dataclass

from pagealloc.errors import UserError
from pagealloc.sweep import replaycall
from pagealloc.sweep.grid import Grid
from pagealloc.sweep.replaycall import failed_row, identity, row_schema, run_point
from pagealloc.sweep.store import ResultsWriter, done_points


@dataclass
class SweepSummary:
    points: int  # in the grid
    skipped: int  # already in the output
    ok: int
    failed: int
    seconds: float
    workers: int
    dashboard: str | None


def _check_resumable(out, grid: Grid) -> set[str]:
    """Ids of the points already done; refuses rows from another commit or version."""
    done = done_points(out)
    mine = identity()
    for commit, version in set(done.values()):
        if (commit, version) != (mine["commit"], mine["pagealloc_version"]):
            raise UserError(f"{out}: holds results of pagealloc {version} at commit {commit}, but this is "
                            f"{mine['pagealloc_version']} at {mine['commit']}: resuming would mix them; give a new -o")
    return set(done) & {p.id for p in grid.points}


class _Recorder:
    """Where each finished row goes: the results folder, the counts, the progress bar, the hook."""

    def __init__(self, writer: ResultsWriter, on_row):
        self.writer, self.on_row = writer, on_row
        self.counts = {"ok": 0, "error": 0}
        self.bar = None

    def start_bar(self, total: int) -> None:
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="replay", file=sys.stderr, dynamic_ncols=True)

    def __call__(self, row: dict) -> None:
        self.writer.add(row)
        self.counts[row["status"]] += 1
        if self.bar is not None:
            self.bar.update(1)
        if self.on_row is not None:
            self.on_row(row)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.writer.close()


def run_sweep(grid: Grid, out, *, scheduler: str | None = None, client=None, workers: int | None = None,
              serial: bool = False, scatter: bool = False, check: bool = False, engine: str | None = None,
              flush_seconds: float = 5.0, dashboard_address: str | None = "127.0.0.1:8787", on_row=None, log=None) -> SweepSummary:
    """Run the points of ``grid`` not yet in ``out``; see the module docstring.

    ``client``: an existing ``distributed.Client`` (tests); ``serial``: in
    this process, one point after another, without Dask.  ``on_row(row)``
    is called after each row is stored; ``log(message)`` gets the status
    lines (the dashboard address).  ``engine``: which implementation the
    replays run on (ReplayConfig.engine; the figures are the same).
    """
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    done = _check_resumable(out, grid)
    todo = [p for p in grid.points if p.id not in done]
    record = _Recorder(ResultsWriter(out, *row_schema(), flush_seconds=flush_seconds), on_row)
    cluster = {"workers": 1, "dashboard": None}
    t0 = time.perf_counter()
    try:
        if serial:
            record.start_bar(len(todo))
            for p in todo:
                record(run_point(p.as_task(), check=check, engine=engine))
        elif todo:
            with _client(client, scheduler, workers, dashboard_address) as c:
                cluster = _describe_cluster(c, log)
                record.start_bar(len(todo))  # below the dashboard line
                _run_on_dask(c, todo, scatter, check, engine, record)
    finally:
        record.close()
    return SweepSummary(len(grid.points), len(done), record.counts["ok"], record.counts["error"],
                        time.perf_counter() - t0, cluster["workers"], cluster["dashboard"])


@contextlib.contextmanager
def _client(client, scheduler, workers, dashboard_address):
    if client is not None:
        yield client
        return
    from distributed import Client, LocalCluster

    address = scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS")
    if address:
        try:  # waits up to distributed.comm.timeouts.connect ($DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT)
            c = Client(address)
        except (OSError, TimeoutError) as e:
            raise UserError(f"cannot reach the Dask scheduler at {address}: {str(e).splitlines()[0]}") from None
        with c:
            yield c
        return
    from dask.system import CPU_COUNT

    n = CPU_COUNT if workers is None else workers
    if n < 1:
        raise UserError(f"--workers must be at least 1, not {n}")
    with warnings.catch_warnings():  # "Port 8787 is already in use": it takes another, and we print the link
        warnings.simplefilter("ignore", UserWarning)
        # one single-threaded process per core: replays are pure-Python CPU work, threads would share one GIL
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, silence_logs=logging.ERROR,
                               dashboard_address=dashboard_address)
    with cluster, Client(cluster) as c:
        yield c


def _describe_cluster(client, log) -> dict:
    if not client.nthreads():
        try:  # a cluster that is still starting up
            client.wait_for_workers(1, timeout=30)
        except TimeoutError:
            raise UserError(f"the Dask scheduler at {client.scheduler.address} has no workers") from None
    mine = identity()
    for address, theirs in client.run(replaycall.identity).items():  # each worker's own answer
        if theirs != mine:
            raise UserError(f"Dask worker {address} runs pagealloc {theirs['pagealloc_version']} at commit "
                            f"{theirs['commit']}, this client {mine['pagealloc_version']} at {mine['commit']}")
    try:
        dashboard = client.dashboard_link
    except KeyError:  # the scheduler serves no dashboard (no bokeh there)
        dashboard = None
    workers = len(client.nthreads())
    log(f"sweep: {workers} Dask workers at {client.scheduler.address}"
        + (f"; dashboard: {dashboard}" if dashboard else "; no dashboard"))
    return {"workers": workers, "dashboard": dashboard}


def _run_on_dask(client, todo, scatter: bool, check: bool, engine: str | None, record: _Recorder) -> None:
    from distributed import as_completed

    traces = _scatter_traces(client, todo) if scatter else {}
    run = uuid.uuid4().hex[:8]  # keys unique to this sweep, so two sweeps on one cluster never share tasks
    tasks = [p.as_task() for p in todo]
    submitted = client.map(run_point, tasks, [traces.get(p.trace_path) for p in todo], check=check, engine=engine,
                           key=[f"replay-{p.id}-{run}" for p in todo], pure=False)
    futures = dict(zip(submitted, tasks))
    completed = as_completed(futures)
    while not completed.is_empty():
        batch = completed.next_batch(block=False)
        if not batch:
            record.writer.flush_if_due()
            time.sleep(0.05)
            continue
        for future in batch:
            if future.status in ("lost", "pending"):  # its result died with its worker: Dask runs it again
                completed.add(future)
                continue
            task = futures.pop(future)
            if future.status == "finished":
                record(future.result())
            else:  # the task never returned: e.g. KilledWorker after its workers kept dying
                record(failed_row(task, future.exception() if future.status == "error" else f"Dask: task {future.status}"))
            future.release()


def _scatter_traces(client, todo) -> dict:
    """Each trace once, as a pyarrow Table on every worker: {absolute path: future}."""
    import pyarrow.parquet as pq

    out = {}
    for path in dict.fromkeys(p.trace_path for p in todo):
        try:
            table = pq.read_table(path)
        except OSError as e:
            raise UserError(f"{path}: cannot read trace: {str(e).splitlines()[0]}") from None
        out[path] = client.scatter(table, broadcast=True, hash=False)
    return out
