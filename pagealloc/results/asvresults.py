"""asv results, read without asv: runs, values, one commit's presets side by side, runs to compare.

asv keeps one JSON file per (machine, commit, environment) under
``results_dir/<machine>/`` (format version 2: ``result_columns`` names the
columns of each ``results[benchmark]`` row) and ``results_dir/benchmarks.json``
describes the benchmarks (unit, param names).  This module reads them for
``scripts/main`` (the preset tables, through ``tables``), ``scripts/nightly``
and ``scripts/compare`` (the gate's rules, ``gate``) and ``pagealloc report
--asv-results`` (plots across commits).  Bad files raise UserError naming the file.
"""

from __future__ import annotations

import ast
import itertools
import json
import math
import subprocess
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
        elif machine not in machines:
            raise UserError(f"{self.folder}: no results of machine {machine!r} (there are: {', '.join(machines)})")
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


def history_order(runs: list[Run], repo) -> list[Run]:
    """``runs`` in the order of the git history of ``repo`` (a folder inside
    the repository), parents before children, runs of one commit together.

    asv's commit date has one-second resolution: two commits of the same
    second sorted by (date, hash) come out in hash order.  Commits the
    repository lacks (results copied from elsewhere), or no git at all, keep
    their place in date order; the ones it has fill their slots in history order."""
    runs = sorted(runs, key=lambda r: (r.date, r.commit))
    commits = list(dict.fromkeys(r.commit for r in runs))
    known = _history(commits, repo)
    if len(known) > 1:
        slots = iter(known)
        commits = [next(slots) if c in known else c for c in commits]
    rank = {c: i for i, c in enumerate(commits)}
    return sorted(runs, key=lambda r: rank[r.commit])


def _history(commits: list[str], repo) -> list[str]:
    """The ``commits`` that ``repo`` has, parents first (``git rev-list --topo-order``); [] without git."""
    def git(*args, stdin=None):
        return subprocess.run(["git", "-C", str(repo), *args], input=stdin, capture_output=True, text=True,
                              check=True).stdout
    try:
        listed = git("cat-file", "--batch-check=%(objectname) %(objecttype)", stdin="\n".join(commits) + "\n")
        have = [c for c, line in zip(commits, listed.splitlines()) if line.endswith(" commit")]
        if len(have) < 2:
            return have
        wanted = set(have)
        return [c for c in git("rev-list", "--topo-order", "--reverse", *have).split() if c in wanted]
    except (OSError, subprocess.CalledProcessError):
        return []


def latest_run(runs: list[Run], commit: str, env: str | None = None) -> Run | None:
    """The run of ``commit`` (full hash or prefix), preferring environment ``env``."""
    mine = [r for r in runs if r.commit.startswith(commit)]
    if env is not None and any(r.env == env for r in mine):
        mine = [r for r in mine if r.env == env]
    return max(mine, key=lambda r: r.path.stat().st_mtime, default=None)


def runs_to_compare(runs: list[Run], old: str, new: str) -> tuple[Run, Run, str | None]:
    """The newest runs of commits ``old`` and ``new`` in one environment both
    have (asv compares only within an environment), or, when they share none,
    the newest run of each and a warning naming the two environments."""
    old_runs = [r for r in runs if r.commit.startswith(old)]
    new_runs = [r for r in runs if r.commit.startswith(new)]
    for commit, mine in ((old, old_runs), (new, new_runs)):
        if not mine:
            raise UserError(f"no asv results for commit {commit} on machine {runs[0].machine if runs else '?'}")
    common = {r.env for r in old_runs} & {r.env for r in new_runs}
    if common:
        env = latest_run([r for r in new_runs if r.env in common], new).env
        return latest_run(old_runs, old, env), latest_run(new_runs, new, env), None
    a, b = latest_run(old_runs, old), latest_run(new_runs, new)
    return a, b, (
        f"{a.commit[:8]} and {b.commit[:8]} have no results in a common environment "
        f"({a.env} vs {b.env}): asv compare would show every benchmark as n/a, \"stayed the same\". "
        "Compared across the two environments; wall-clock figures may differ for that reason alone."
    )


# -- the presets of one commit side by side --

BASELINE_MODE = "go1.14"  # the preset every other one is compared against, when a commit has it
KNOWN_MODES = ("go1.14", "unlocked", "locked")


def order_modes(modes) -> list[str]:
    """Modes in display order: the known presets in KNOWN_MODES order (the
    baseline first), then any other in the order given.  Without go1.14 the
    first one is the baseline (older commits: unlocked, which was Go 1.14)."""
    modes = list(dict.fromkeys(modes))
    rank = {m: i for i, m in enumerate(KNOWN_MODES)}
    return sorted(modes, key=lambda m: (rank.get(m, len(rank)), modes.index(m)))


def mode_groups(run: Run, param_names=None) -> list[tuple[str, tuple, dict[str, Value]]]:
    """[(benchmark, params without the mode, {mode: Value})] for every
    benchmark of ``run`` with a ``mode`` parameter, modes in display order.

    ``param_names(benchmark)`` gives a benchmark's parameter names (from
    benchmarks.json); without them the mode is the parameter whose value is
    ``locked`` in some combination."""
    position: dict[str, int] = {}
    for bench, params in run.values:
        names = list(param_names(bench)) if param_names else []
        if "mode" in names and len(names) == len(params):
            position[bench] = names.index("mode")
        elif bench not in position and "locked" in params:
            position[bench] = params.index("locked")
    groups: dict[tuple, dict[str, Value]] = {}
    for (bench, params), v in run.values.items():
        if bench in position:
            i = position[bench]
            groups.setdefault((bench, params[:i] + params[i + 1 :]), {})[params[i]] = v
    # A mode skipped everywhere (a preset this commit lacks) is left out.
    present = {m for by_mode in groups.values() for m, v in by_mode.items() if v.value is None or v.ok}
    out = []
    for (bench, rest), by_mode in groups.items():
        modes = [m for m in order_modes(by_mode) if m in present]
        if len(modes) > 1:
            out.append((bench, rest, {m: by_mode[m] for m in modes}))
    return out
