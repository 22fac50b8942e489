"""pagealloc sweep on Dask: a 2-worker LocalCluster, a real `dask scheduler` with two
`dask worker` processes on 127.0.0.1, a worker killed mid-sweep, resume after an
interruption and after a crash.  Each run is compared row for row with the same
points run serially in this process (every column but the wall-clock ones).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from pagealloc.errors import UserError
from pagealloc.sweep import load_grid, read_results
from pagealloc.sweep.execute import run_sweep
from pagealloc.sweep.replaycall import nondeterministic_columns
from pagealloc.trace.synth import write_synthetic

distributed = pytest.importorskip("distributed")

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
EVENTS = 20_000  # ~0.1 s a replay: long enough for a worker to die with replays in flight


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    d = tmp_path_factory.mktemp("sweep")
    write_synthetic(str(d / "churn.parquet"), "churn", EVENTS, 1)
    write_synthetic(str(d / "burst.parquet"), "burst-idle", EVENTS, 1)
    path = d / "grid.toml"
    path.write_text('name = "tiny"\ntraces = ["*.parquet"]\ntimings = ["recorded", "closed"]\n'
                    "[cost]\nmadvise_call_ns = [1000, 20000]\n")
    return path


@pytest.fixture(scope="module")
def serial(grid, tmp_path_factory):
    """The grid's rows, run one by one in this process: what every Dask run must equal."""
    out = tmp_path_factory.mktemp("serial") / "results"
    run_sweep(load_grid(grid), out, serial=True)
    return read_results(out)


@pytest.fixture(scope="module")
def local_client():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=50) as cluster, Client(cluster) as client:
        yield client


def same_rows(got, want) -> None:
    """Nothing lost, nothing duplicated, every deterministic value equal."""
    assert got["point_id"].is_unique, got["point_id"][got["point_id"].duplicated()].tolist()
    assert set(got["status"]) == {"ok"}, got[got["status"] != "ok"]["error"].tolist()

    def canonical(df):
        return df.drop(columns=list(nondeterministic_columns())).sort_values("point_id").reset_index(drop=True)

    pd.testing.assert_frame_equal(canonical(got), canonical(want))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def dask_cluster(folder: Path, nanny: bool, allowed_failures: int = 3):
    """`dask scheduler` and two `dask worker` processes on 127.0.0.1, torn down afterwards.

    ``allowed_failures``: how many workers may die running one task before
    the scheduler gives up on it (KilledWorker); Dask's default is 3.
    Yields (scheduler address, dashboard port, {worker address: its Popen}).
    """
    from distributed import Client

    port, dashboard = _free_port(), _free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = []

    def start(name, *args, env=None):
        log = open(folder / f"{name}.log", "w")
        procs.append(subprocess.Popen([sys.executable, "-m", "dask", *args], env={**ENV, **(env or {})}, cwd=folder,
                                      stdout=log, stderr=subprocess.STDOUT))
        log.close()
        return procs[-1]

    try:
        start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", str(port),
              "--dashboard-address", f"127.0.0.1:{dashboard}",
              env={"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": str(allowed_failures)})
        workers = [start(f"worker{i}", "worker", address, "--nthreads", "1", "--nworkers", "1", "--name", f"w{i}",
                         "--no-dashboard", "--nanny" if nanny else "--no-nanny") for i in range(2)]
        with Client(address, timeout="60s") as c:
            c.wait_for_workers(2, timeout=60)
            pids = c.run(os.getpid)
        by_pid = {p.pid: p for p in workers}
        yield address, dashboard, {addr: by_pid.get(pid) for addr, pid in pids.items()}
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def test_local_cluster_sweep_equals_serial(grid, serial, local_client, tmp_path):
    out = tmp_path / "results"
    s = run_sweep(load_grid(grid), out, client=local_client, log=lambda m: None)
    assert (s.ok, s.failed, s.skipped, s.workers) == (len(serial), 0, 0, 2)
    got = read_results(out)
    same_rows(got, serial)
    assert set(got["worker"]) <= set(local_client.nthreads())


def test_the_python_engine_on_dask_gives_the_serial_rows(grid, serial, local_client, tmp_path):
    """run_sweep(engine=...) reaches every worker's replays: the readable mirror's rows are the compiled one's."""
    out = tmp_path / "results"
    s = run_sweep(load_grid(grid), out, client=local_client, engine="python", log=lambda m: None)
    assert (s.ok, s.failed) == (len(serial), 0)
    same_rows(read_results(out), serial)
    # and it is the workers' replays that get it: an engine they do not have fails every point there
    bad = run_sweep(load_grid(grid), tmp_path / "bad", client=local_client, engine="fast", log=lambda m: None)
    errors = read_results(tmp_path / "bad")["error"]
    assert bad.failed == len(serial) and errors.str.startswith("UserError: engine must be one of").all()


def test_resume_after_interruption(grid, serial, local_client, tmp_path):
    out = tmp_path / "results"

    def interrupt(row, seen=[]):
        seen.append(row)
        if len(seen) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(load_grid(grid), out, client=local_client, on_row=interrupt, log=lambda m: None)
    assert len(read_results(out)) == 3  # the rows finished before the interrupt were kept
    s = run_sweep(load_grid(grid), out, client=local_client, log=lambda m: None)
    assert (s.skipped, s.ok, s.failed) == (3, len(serial) - 3, 0)
    same_rows(read_results(out), serial)


def test_resume_after_a_crash(grid, serial, tmp_path):
    """SIGKILL the sweep process mid-way: the rows it wrote survive, the rerun does the rest."""
    out = tmp_path / "results"
    cmd = [sys.executable, "-m", "pagealloc", "sweep", str(grid), "-o", str(out), "--serial", "--flush-seconds", "0"]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(list(out.glob("part-*.parquet"))) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL, "the sweep finished before it could be killed"
    kept = len(read_results(out))
    assert 2 <= kept < len(serial)
    rerun = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(serial) - kept} run ({len(serial) - kept} ok, 0 failed)" in rerun.stdout
    assert f"{kept} already in {out}" in rerun.stdout
    same_rows(read_results(out), serial)


def test_real_scheduler_and_two_workers_through_the_cli(grid, serial, tmp_path):
    with dask_cluster(tmp_path, nanny=True) as (address, dashboard, workers):
        out = tmp_path / "results"
        run = subprocess.run([sys.executable, "-m", "pagealloc", "sweep", str(grid), "-o", str(out),
                              "--scheduler", address], env=ENV, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr
        assert f"sweep: 2 Dask workers at {address}; dashboard: http://127.0.0.1:{dashboard}/status" in run.stderr
        assert f"{len(serial)} run ({len(serial)} ok, 0 failed)" in run.stdout and "on 2 worker(s)" in run.stdout
        got = read_results(out)
        same_rows(got, serial)
        assert set(got["worker"]) == set(workers)  # both workers replayed
        # $DASK_SCHEDULER_ADDRESS, and the traces scattered once instead of read by path
        out2 = tmp_path / "scattered"
        run = subprocess.run([sys.executable, "-m", "pagealloc", "sweep", str(grid), "-o", str(out2), "--scatter"],
                             env={**ENV, "DASK_SCHEDULER_ADDRESS": address}, capture_output=True, text=True,
                             timeout=300)
        assert run.returncode == 0, run.stderr
        assert f"Dask workers at {address}" in run.stderr
        same_rows(read_results(out2), serial)


def _kill_a_busy_worker(observer, workers, killed):
    """on_row hook: at the first row, SIGKILL a worker that has replays in flight."""

    def on_row(row):
        if killed:
            return
        busy = {addr: keys for addr, keys in observer.processing().items() if keys}
        assert busy, "no replay in flight to kill"
        addr, keys = next(iter(busy.items()))
        workers[addr].kill()  # SIGKILL: the worker and its in-flight replays are gone
        killed.update(address=addr, points={k.split("-")[1] for k in keys})

    return on_row


def test_killed_worker_mid_sweep_loses_and_duplicates_nothing(grid, serial, tmp_path):
    from distributed import Client

    # One death per task is the event under test; a generous allowance keeps a loaded machine (a survivor
    # slow to answer while the scheduler reassigns) from turning it into KilledWorker rows.
    with dask_cluster(tmp_path, nanny=False, allowed_failures=10) as (address, _, workers), \
            Client(address) as observer:
        assert all(workers.values()), "each worker address maps to a `dask worker` process of ours"
        killed = {}
        s = run_sweep(load_grid(grid), tmp_path / "results", scheduler=address,
                      on_row=_kill_a_busy_worker(observer, workers, killed), log=lambda m: None)
        assert killed and workers[killed["address"]].wait(timeout=30) == -signal.SIGKILL
        got = read_results(tmp_path / "results")
        errors = got.loc[got["status"] == "error", "error"].tolist()
        assert (s.ok, s.failed) == (len(serial), 0), errors
        same_rows(got, serial)
        survivor = next(a for a in workers if a != killed["address"])
        # the replays the dead worker had in flight were rerun by Dask on the other one
        rerun = got[got["point_id"].isin(killed["points"])]
        assert len(rerun) == len(killed["points"]) and (rerun["worker"] == survivor).any()


def test_point_dask_gives_up_on_is_a_row_with_its_error(grid, serial, tmp_path):
    """With no worker death allowed, the killed worker's replays fail as KilledWorker: recorded, not dropped."""
    from distributed import Client

    with dask_cluster(tmp_path, nanny=False, allowed_failures=0) as (address, _, workers), \
            Client(address) as observer:
        killed = {}
        s = run_sweep(load_grid(grid), tmp_path / "results", scheduler=address,
                      on_row=_kill_a_busy_worker(observer, workers, killed), log=lambda m: None)
    got = read_results(tmp_path / "results")
    assert len(got) == len(serial) and got["point_id"].is_unique and set(got["point_id"]) == set(serial["point_id"])
    failed = got[got["status"] == "error"]
    assert s.failed == len(failed) >= 1 and s.ok == len(serial) - s.failed
    # Which replays the death took is the scheduler's word, not the hook's snapshot: between reading
    # `processing()` and the SIGKILL the scheduler may hand the doomed worker one more point.
    assert failed["error"].str.startswith("KilledWorker: ").all() and failed["released_bytes"].isna().all()
    assert failed["error"].str.contains(f"The last worker that attempt to run the task was {killed['address']}.",
                                        regex=False).all(), failed["error"].tolist()
    assert all(f"run task 'replay-{point}-" in error for point, error in zip(failed["point_id"], failed["error"]))
    same_rows(got[got["status"] == "ok"], serial[serial["point_id"].isin(got[got["status"] == "ok"]["point_id"])])


def test_workers_running_other_code_are_refused(grid, local_client, tmp_path, monkeypatch):
    from pagealloc.sweep import execute

    monkeypatch.setattr(execute, "identity", lambda: {"commit": "f" * 40, "pagealloc_version": "9.9"})
    with pytest.raises(UserError, match=r"Dask worker tcp://127\.0\.0\.1:\d+ runs pagealloc .* at commit .*, this "
                                        r"client 9\.9 at f{40}"):
        run_sweep(load_grid(grid), tmp_path / "results", client=local_client, log=lambda m: None)


def test_unreachable_scheduler_is_one_line_and_status_2(grid, tmp_path):
    run = subprocess.run([sys.executable, "-m", "pagealloc", "sweep", str(grid), "-o", str(tmp_path / "r"),
                          "--scheduler", f"tcp://127.0.0.1:{_free_port()}"], capture_output=True, text=True,
                         env={**ENV, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"}, timeout=120)
    assert run.returncode == 2
    assert run.stderr.startswith("pagealloc: error: cannot reach the Dask scheduler at tcp://127.0.0.1:")
    assert run.stderr.count("\n") == 1, run.stderr
