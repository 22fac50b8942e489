"""asv results, read without asv: runs, values, and one commit's presets side by side.

asv keeps one JSON file per (machine, commit, environment) under
``results_dir/<machine>/`` (format version 2: ``result_columns`` names the
columns of each ``results[benchmark]`` row) and ``results_dir/benchmarks.json``
describes the benchmarks (unit, param names).  This module reads them for
``scripts/main`` (the preset table, through ``tables``), ``scripts/nightly``
(the gate, ``gate``) and ``pagealloc report --asv-results`` (plots across
commits).  Bad files raise UserError naming the file.
"""

from __future__ import annotations

import ast
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from pagealloc.errors import UserError


def _param(v: str):
    """asv stores parameter values as their repr: "'burst-idle'" -> 'burst-idle'."""
    try:
        return ast.literal_eval(v)
    except (ValueError, SyntaxError):
        return v


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@dataclass
class Value:
    """One benchmark at one parameter combination in one run.

    ``value`` is None when the benchmark failed and NaN when it was skipped.
    """

    value: float | None
    ci: tuple[float, float] | None = None  # 99% confidence interval, when asv had several samples

    @property
    def ok(self) -> bool:
        return _finite(self.value)


@dataclass
class Run:
    """One asv results file: one commit in one environment on one machine."""

    path: Path
    machine: str
    commit: str
    env: str
    date: int  # commit date, ms since the epoch
    values: dict[tuple[str, tuple], Value] = field(default_factory=dict)  # (benchmark, params) -> Value
    versions: dict[str, str] = field(default_factory=dict)  # benchmark -> code version

    def benchmarks(self) -> list[str]:
        return sorted({b for b, _ in self.values})

    def get(self, benchmark: str, params: tuple = ()) -> Value | None:
        return self.values.get((benchmark, tuple(params)))


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read: {e}") from None
    except ValueError as e:
        raise UserError(f"{path}: not valid JSON: {e}") from None


def load_run(path: Path) -> Run:
    """Parse one asv results file (format version 2)."""
    path = Path(path)
    d = _read_json(path)
    if not isinstance(d, dict) or d.get("version") != 2 or not isinstance(d.get("results"), dict):
        raise UserError(f"{path}: not an asv results file (format version 2)")
    try:
        run = Run(
            path=path,
            machine=str(d.get("params", {}).get("machine") or path.parent.name),
            commit=str(d["commit_hash"]),
            env=str(d.get("env_name", "")),
            date=int(d.get("date") or 0),
        )
        cols = d["result_columns"]
        for name, row in d["results"].items():
            r = dict(zip(cols, row))
            result, params = r.get("result"), r.get("params") or []
            combos = list(itertools.product(*[[_param(v) for v in p] for p in params]))
            if not isinstance(result, list):
                result = [result] * len(combos)
            ci_a, ci_b = r.get("stats_ci_99_a"), r.get("stats_ci_99_b")
            for i, combo in enumerate(combos):
                v = result[i] if i < len(result) else None
                ci = None
                if isinstance(ci_a, list) and isinstance(ci_b, list) and i < len(ci_a) and i < len(ci_b):
                    if _finite(ci_a[i]) and _finite(ci_b[i]):
                        ci = (ci_a[i], ci_b[i])
                run.values[(name, combo)] = Value(math.nan if v != v else v, ci) if v is not None else Value(None)
            if r.get("version"):
                run.versions[name] = r["version"]
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise UserError(f"{path}: malformed asv results file: {e!r}") from None
    return run


@dataclass
class Results:
    """Every run under an asv results folder, with benchmarks.json when present."""

    folder: Path
    runs: list[Run]
    benchmarks: dict  # name -> benchmarks.json entry (unit, param_names, type)

    def machines(self) -> list[str]:
        return sorted({r.machine for r in self.runs})

    def for_machine(self, machine: str | None) -> list[Run]:
        """Runs of ``machine`` (or of the only machine) in commit-date order."""
        machines = self.machines()
        if machine is None:
            if len(machines) > 1:
                raise UserError(
                    f"{self.folder}: results of several machines ({', '.join(machines)}): choose one with --machine"
                )
            machine = machines[0] if machines else None
        runs = [r for r in self.runs if r.machine == machine]
        return sorted(runs, key=lambda r: (r.date, r.commit))

    def unit(self, benchmark: str) -> str:
        return str(self.benchmarks.get(benchmark, {}).get("unit") or "")

    def param_names(self, benchmark: str) -> list[str]:
        return list(self.benchmarks.get(benchmark, {}).get("param_names") or [])


def load_results(folder) -> Results:
    """Read an asv results folder: ``<folder>/<machine>/*.json`` and ``benchmarks.json``."""
    folder = Path(folder)
    if not folder.exists():
        raise UserError(f"{folder}: no such asv results folder")
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder (expected asv's results_dir, e.g. .asv/results)")
    benchmarks = {}
    bpath = folder / "benchmarks.json"
    if bpath.exists():
        b = _read_json(bpath)
        if not isinstance(b, dict):
            raise UserError(f"{bpath}: not an asv benchmarks.json")
        benchmarks = {k: v for k, v in b.items() if isinstance(v, dict)}
    runs = []
    for mdir in sorted(p for p in folder.iterdir() if p.is_dir()):
        if not (mdir / "machine.json").exists():
            continue
        for path in sorted(mdir.glob("*.json")):
            if path.name != "machine.json":
                runs.append(load_run(path))
    if not runs:
        raise UserError(f"{folder}: no asv results in it (run `asv run` first, or point at asv's results_dir)")
    return Results(folder, runs, benchmarks)


def latest_run(runs: list[Run], commit: str, env: str | None = None) -> Run | None:
    """The run of ``commit`` (full hash or prefix), preferring environment ``env``."""
    mine = [r for r in runs if r.commit.startswith(commit)]
    if env is not None and any(r.env == env for r in mine):
        mine = [r for r in mine if r.env == env]
    return max(mine, key=lambda r: r.path.stat().st_mtime, default=None)


# -- locked vs unlocked --


def mode_pairs(run: Run):
    """[(benchmark, params-without-mode, unlocked Value, locked Value)] for every
    benchmark of ``run`` with a ``mode`` parameter, in benchmark and parameter order."""
    out = []
    for (bench, params), v in run.values.items():
        if "locked" not in params:
            continue
        i = params.index("locked")
        other = params[:i] + ("unlocked",) + params[i + 1 :]
        u = run.values.get((bench, other))
        if u is not None:
            out.append((bench, params[:i] + params[i + 1 :], u, v))
    return out
