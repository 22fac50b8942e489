"""asv results, read without asv: runs, values, locked vs unlocked, and the regression gate.

asv keeps one JSON file per (machine, commit, environment) under
``results_dir/<machine>/`` (format version 2: ``result_columns`` names the
columns of each ``results[benchmark]`` row) and ``results_dir/benchmarks.json``
describes the benchmarks (unit, param names).  This module reads them for
``scripts/main`` (the locked vs unlocked table), ``scripts/nightly`` (the
gate) and ``pagealloc report --asv-results`` (plots across commits).  Bad
files raise UserError naming the file.

The gate (``regressions``) knows which way is better for each benchmark,
which asv's own ``compare`` does not (it treats every number as a time):

* lower is better: ``time_*``, ``peakmem_*``, ``mem_*``, and the replay's
  ``track_mutator_stall_ns``, ``track_lock_hold_max_ns``,
  ``track_retained_peak_bytes``;
* higher is better: ``track_events_per_second``;
* ``track_released_bytes`` (and any other ``track_*``) has no good
  direction: releasing more lowers RSS but costs madvise calls.  Its changes
  are listed, never gated.

A benchmark regresses when it moves the bad way by more than ``factor``
(new/old > factor, or old/new > factor for higher-is-better), unless both
runs have 99% confidence intervals and they overlap (noise), or when it had
a value before and fails now.
"""

from __future__ import annotations

import ast
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from pagealloc.errors import UserError

DEFAULT_FACTOR = 1.5

LOWER_IS_BETTER_TRACKS = ("track_mutator_stall_ns", "track_lock_hold_max_ns", "track_retained_peak_bytes")
HIGHER_IS_BETTER_TRACKS = ("track_events_per_second",)


def direction(benchmark: str) -> int:
    """+1: lower is better; -1: higher is better; 0: no good direction (never gated)."""
    method = benchmark.rsplit(".", 1)[-1]
    if method.startswith(("time_", "peakmem_", "mem_")) or method in LOWER_IS_BETTER_TRACKS:
        return 1
    if method in HIGHER_IS_BETTER_TRACKS:
        return -1
    return 0


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


# -- the gate --


@dataclass
class Change:
    benchmark: str
    params: tuple
    old: Value
    new: Value
    status: str  # regressed, improved, changed, failed, fixed, noise, same, incomparable

    @property
    def ratio(self) -> float:
        if self.old.ok and self.new.ok and self.old.value:
            return self.new.value / self.old.value
        return math.nan

    def label(self) -> str:
        return f"{self.benchmark}({', '.join(map(str, self.params))})" if self.params else self.benchmark


def compare_runs(old: Run, new: Run, factor: float = DEFAULT_FACTOR) -> list[Change]:
    """Every benchmark present in both runs, classified (see the module docstring)."""
    out = []
    for key in sorted(set(old.values) & set(new.values), key=str):
        bench, params = key
        a, b = old.values[key], new.values[key]
        if old.versions.get(bench) and new.versions.get(bench) and old.versions[bench] != new.versions[bench]:
            status = "incomparable"  # the benchmark's code changed
        elif a.ok and b.value is None:
            status = "failed"
        elif a.value is None and b.ok:
            status = "fixed"
        elif not (a.ok and b.ok):
            status = "same"  # skipped or failed in both
        else:
            d = direction(bench)
            ratio = b.value / a.value if a.value else (math.inf if b.value else 1.0)
            worse = ratio if d > 0 else (1 / ratio if ratio else math.inf)
            if d == 0:
                status = "changed" if (ratio > factor or ratio < 1 / factor) else "same"
            elif worse > factor or worse < 1 / factor:
                overlap = a.ci and b.ci and a.ci[0] <= b.ci[1] and b.ci[0] <= a.ci[1]
                status = "noise" if overlap else ("regressed" if worse > factor else "improved")
            else:
                status = "same"
        out.append(Change(bench, params, a, b, status))
    return out


def regressions(changes: list[Change]) -> list[Change]:
    return [c for c in changes if c.status in ("regressed", "failed")]


# -- formatting --


def human(value, unit: str = "") -> str:
    """A short human-readable value: 1.23ms, 31.0MiB, 768.6us (for unit ns), 137k events/s."""
    if value is None:
        return "failed"
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    v = float(value)
    if unit == "seconds":
        for scale, suffix in ((1, "s"), (1e-3, "ms"), (1e-6, "us"), (1e-9, "ns")):
            if abs(v) >= scale or suffix == "ns":
                return f"{v / scale:.3g}{suffix}"
    if unit == "ns":
        return human(v / 1e9, "seconds")
    if unit == "bytes":
        for scale, suffix in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
            if abs(v) >= scale:
                return f"{v / scale:.3g}{suffix}"
        return f"{v:.0f}B"
    if abs(v) >= 1e6:
        text = f"{v / 1e6:.3g}M"
    elif abs(v) >= 1e3:
        text = f"{v / 1e3:.3g}k"
    else:
        text = f"{v:.3g}"
    return f"{text} {unit}".strip() if unit else text


def _table(header: list[str], rows: list[list[str]], right=()) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(r):
        return "| " + " | ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep, *map(line, rows)])


def format_mode_table(run: Run, results: Results) -> str:
    """Locked vs unlocked for every (trace)-parameterized replay benchmark of ``run``:
    asv compare's layout, with unlocked as "before" and locked as "after".

    ratio = locked / unlocked.  The mark column says which mode is better by
    more than 5% where the benchmark has a direction (see ``direction``):
    "L" locked, "U" unlocked; "~" within 5%; blank when there is no direction.
    """
    def order(x):
        bench = x[0]
        group = 0 if ".ReplayMetrics" in bench else 1 if ".Replay" in bench else 2
        return (group, bench, str(x[1]))

    rows = []
    for bench, rest, u, lk in sorted(mode_pairs(run), key=order):
        if u.value is not None and lk.value is not None and not (u.ok or lk.ok):
            continue  # skipped in both modes (e.g. heavy traces not enabled)
        unit = results.unit(bench)
        ratio = lk.value / u.value if u.ok and lk.ok and u.value else math.nan
        d = direction(bench)
        mark = ""
        if d and math.isfinite(ratio):
            better = ratio if d > 0 else 1 / ratio if ratio else math.inf
            mark = "~" if 1 / 1.05 <= better <= 1.05 else ("L" if better < 1 else "U")
        name = bench.split(".", 1)[-1]
        label = f"{name}({', '.join(map(str, rest))})" if rest else name
        rows.append([mark, human(u.value, unit), human(lk.value, unit), f"{ratio:.2f}" if math.isfinite(ratio) else "n/a", label])
    if not rows:
        return "(no benchmark with a mode parameter in this run)"
    return _table(["", "unlocked", "locked", "ratio", "benchmark (trace)"], rows, right=(1, 2, 3))


def format_changes(changes: list[Change], results: Results, statuses) -> str:
    rows = []
    for c in changes:
        if c.status not in statuses:
            continue
        unit = results.unit(c.benchmark)
        d = direction(c.benchmark)
        how = {1: "lower is better", -1: "higher is better", 0: "no direction"}[d]
        ratio = c.ratio
        rows.append([
            {"regressed": "+", "failed": "!", "improved": "-", "fixed": "*"}.get(c.status, " "),
            human(c.old.value, unit),
            human(c.new.value, unit),
            f"{ratio:.2f}" if math.isfinite(ratio) else "n/a",
            c.label(),
            f"{c.status}, {how}",
        ])
    return _table(["", "before", "after", "ratio", "benchmark", "why"], rows, right=(1, 2, 3)) if rows else ""
