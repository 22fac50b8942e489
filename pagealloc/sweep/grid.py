"""The sweep's grid file (TOML): parsing, validation, and the points it names.

A grid names traces (paths or globs relative to the grid file, and sets
of a trace manifest), presets, timing policies, cost-model axes (any
``CostModel`` field) on top of named cost files, and model parameters.
The sweep is the cartesian product of the top-level axes, or, with
``[[points]]``, the union of one product per entry (each entry's keys
replace the top-level ones, ``[cost]`` field by field; a scalar is a
one-value axis).  A value
list may also be written as a range table: ``{start, stop, step}``
(stop included when it lands on it), ``{start, stop, factor}`` (geometric)
or ``{values = [...]}``.  README.md, "Parameter sweeps", has the format.

Every problem is a UserError naming the grid file and the key.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import itertools
import json
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

from pagealloc.errors import UserError
from pagealloc.sim.calibrate import probed_costs
from pagealloc.sim.costmodel import CostModel
from pagealloc.sim.presets import AUTO_TIMING, KNOBS, MODES, TIMINGS, concrete_timing
from pagealloc.sweep.replaycall import knob_defaults
from pagealloc.trace import corpus

AXIS_KEYS = ("traces", "trace_sets", "modes", "timings", "cost_files", "cost", *KNOBS)
TOP_KEYS = ("name", "manifest", *AXIS_KEYS, "points")
COST_FIELDS = tuple(f.name for f in dataclasses.fields(CostModel))
COST_RANGE = (0, 10**12)  # as CostModel.from_dict accepts
MAX_AXIS_VALUES = 10_000
MAX_POINTS = 250_000  # ten times the 24,000-point example; each point is a few KB in the client
DEFAULT_MANIFEST = corpus.MANIFEST  # the bundled corpus


@dataclass(frozen=True)
class Point:
    """One replay of the sweep."""

    trace: str  # label: the file's stem
    trace_path: str  # absolute
    trace_sha256: str
    mode: str
    timing: str
    cost: tuple  # ((CostModel field, ns), ...), every field
    cost_file: str  # absolute path of the named cost file, "" for none
    params: tuple  # ((parameter, value), ...), every parameter replay() takes
    seed: int = 0  # pagealloc.sim.spread: 0 the plain replay, else perturbed (``Grid.with_seeds``)

    @property
    def id(self) -> str:
        """Identifies the replay exactly: same id, same inputs (the trace by content)."""
        key = {"trace": self.trace, "trace_sha256": self.trace_sha256, "mode": self.mode, "timing": self.timing,
               "cost": dict(self.cost), "params": dict(self.params)}
        if self.seed:  # seed 0 keeps the id a point had before seeds existed
            key["seed"] = self.seed
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]

    def as_task(self) -> dict:
        """The plain dict a worker gets (small: the trace goes by path or by scatter)."""
        d = dataclasses.asdict(self)
        d.update(id=self.id, cost=dict(self.cost), params=dict(self.params))
        return d


@dataclass
class Grid:
    path: str
    name: str
    points: list[Point]

    def with_seeds(self, seeds: int) -> "Grid":
        """This grid with each point replayed for seeds 0..seeds-1 (``--seeds``): seeds times the points."""
        if not 1 <= seeds <= 1000:
            raise UserError(f"--seeds must be a whole number in [1, 1000], got {seeds}")
        if len(self.points) * seeds > MAX_POINTS:
            raise UserError(f"{self.path}: {len(self.points):,} points x {seeds} seeds is more than the "
                            f"{MAX_POINTS:,} points a sweep accepts")
        points = [dataclasses.replace(p, seed=s) for p in self.points for s in range(seeds)]
        return Grid(self.path, self.name, points)

    def axis_values(self) -> dict[str, list]:
        """{result column: its distinct values across the points} for every axis."""
        columns = {"trace": lambda p: p.trace, "mode": lambda p: p.mode, "timing": lambda p: p.timing,
                   "cost_file": lambda p: p.cost_file, "seed": lambda p: p.seed}
        for i, name in enumerate(COST_FIELDS):
            columns[f"cost_{name}"] = lambda p, i=i: p.cost[i][1]
        for name in dict.fromkeys(k for p in self.points for k, _ in p.params):
            columns[name] = lambda p, name=name: dict(p.params).get(name)
        return {c: list(dict.fromkeys(get(p) for p in self.points)) for c, get in columns.items()}

    def swept(self) -> dict[str, int]:
        """{column: number of values} of the axes that take more than one value."""
        return {c: len(v) for c, v in self.axis_values().items() if len(v) > 1}


def load_grid(path) -> Grid:
    """Parse and validate a grid file; every point's trace is checked to be a trace file."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except OSError as e:
        raise UserError(f"{path}: cannot read grid: {e.strerror or e}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not a valid TOML grid: {str(e).splitlines()[0]}") from None
    return _Parser(str(path), path.resolve().parent).grid(data)


class _Parser:
    def __init__(self, label: str, base: Path):
        self.label, self.base = label, base
        self._traces: dict[str, tuple[str, str]] = {}  # absolute path -> (label, sha256)
        self._sources: dict[str, str | None] = {}  # absolute path -> the metadata's source
        self._costs: dict[str, dict] = {}
        self._probed: dict[str, dict] = {}  # absolute path -> calibrate.probed_costs of its metadata

    def fail(self, key: str, message: str):
        raise UserError(f"{self.label}: {key}: {message}" if key else f"{self.label}: {message}")

    # -- the file --

    def grid(self, data: dict) -> Grid:
        self._known_keys(data, TOP_KEYS, "")
        name = data.get("name", Path(self.label).stem)
        if not isinstance(name, str) or not name.strip():
            self.fail("name", "must be a non-empty string")
        manifest = data.get("manifest")
        if manifest is not None and not isinstance(manifest, str):
            self.fail("manifest", f"must be a path, got {manifest!r}")
        self.manifest = self.base / manifest if manifest else DEFAULT_MANIFEST
        defaults = {k: v for k, v in data.items() if k in AXIS_KEYS}
        if "points" not in data:
            points = self._product(defaults, "")
        else:
            entries = data["points"]
            if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
                self.fail("points", "must be a non-empty array of tables ([[points]])")
            points = []
            for i, entry in enumerate(entries):
                where = f"points[{i}]"
                self._known_keys(entry, AXIS_KEYS, where)
                spec = {**defaults, **entry}
                if isinstance(defaults.get("cost"), dict) and isinstance(entry.get("cost"), dict):
                    spec["cost"] = {**defaults["cost"], **entry["cost"]}  # cost axes are replaced field by field
                points += self._product(spec, where, room=MAX_POINTS - len(points))
        seen: dict[str, Point] = {}
        for p in points:
            if p.id in seen:
                self.fail("", f"two points are the same replay ({_describe(p)}): "
                              "remove the duplicate value or cost file")
            seen[p.id] = p
        return Grid(self.label, name, points)

    def _known_keys(self, table: dict, known, where: str) -> None:
        for key in table:
            if key not in known:
                self.fail(where, f"unknown key {key!r} (known: {', '.join(known)})")

    # -- one product --

    def _product(self, spec: dict, where: str, room: int | None = None) -> list[Point]:
        """The points of one product; ``room``: how many more the sweep may still take."""
        room = MAX_POINTS if room is None else room
        traces = self._traces_of(spec, where)
        modes = self._values(spec.get("modes", list(MODES)), _join(where, "modes"), self._choice("mode", MODES))
        timings = self._values(spec.get("timings", AUTO_TIMING), _join(where, "timings"),
                               self._choice("timing", TIMINGS))
        key = _join(where, "cost_files")  # the named cost files, each the base its cost axes override
        bases = [self._cost_file(f, key) for f in self._values(spec["cost_files"], key, self._string)] \
            if "cost_files" in spec else [""]
        cost_axes = self._cost_axes(spec.get("cost", {}), _join(where, "cost"))
        params = {}
        for name, default in knob_defaults().items():
            if default is None and name not in spec:
                continue  # a knob without a value of its own (gomaxprocs: the trace's) is not part of the point
            kind, lo, hi = KNOBS[name]
            check = self._boolean if kind == "bool" else self._number(lo, hi, as_float=kind == "number")
            params[name] = self._values(spec.get(name, default), _join(where, name), check, integer=kind != "number")
        count = math.prod(len(v) for v in (traces, modes, timings, bases, *cost_axes.values(), *params.values()))
        if count > room:
            self.fail(where, f"the grid has more than the {MAX_POINTS:,} points a sweep accepts")
        points = []
        for (trace, path, sha), mode, timing, base, costs, values in itertools.product(
                traces, modes, timings, bases, itertools.product(*cost_axes.values()),
                itertools.product(*params.values())):
            concrete = concrete_timing(timing, self._sources.get(path))
            if concrete != timing and concrete in timings:
                continue  # "auto" stands for a timing the grid lists too: one point
            cost = dict(self._costs[base] if base else self._probed[path])
            cost.update(zip(cost_axes, costs))
            points.append(Point(trace, path, sha, mode, concrete, tuple(cost.items()), base, tuple(zip(params, values))))
        return points

    def _traces_of(self, spec: dict, where: str) -> list[tuple[str, str, str]]:
        paths: list[Path] = []
        for pattern in self._values(spec.get("traces", []), _join(where, "traces"), self._string, allow_empty=True):
            paths += self._glob(pattern, _join(where, "traces"))
        sets = self._values(spec.get("trace_sets", []), _join(where, "trace_sets"), self._string, allow_empty=True)
        if sets:
            paths += self._manifest_sets(sets, _join(where, "trace_sets"))
        if not paths:
            self.fail(where, "no traces: give traces = [paths or globs] or trace_sets = [manifest sets]")
        # a trace named twice (a path and a glob) is one trace
        return [self._trace(path, _join(where, "traces")) for path in dict.fromkeys(p.resolve() for p in paths)]

    def _glob(self, pattern: str, key: str) -> list[Path]:
        full = str(self.base / pattern)
        if not any(c in pattern for c in "*?["):
            if not Path(full).is_file():
                self.fail(key, f"{pattern}: no such file" if not Path(full).exists() else f"{pattern}: not a file")
            return [Path(full)]
        found = sorted(Path(p) for p in glob.glob(full, recursive=True) if Path(p).is_file())
        if not found:
            self.fail(key, f"{pattern!r} matches no file")
        return found

    def _manifest_sets(self, sets: list[str], key: str) -> list[Path]:
        try:
            by_set = corpus.load(self.manifest).sets()
        except UserError as e:
            self.fail(key, str(e))
        out = []
        for name in sets:
            if name not in by_set:
                self.fail(key, f"{self.manifest} has no set {name!r} (it has: {', '.join(by_set)})")
            for entry in by_set[name]:
                if not entry.path.is_file():
                    self.fail(key, f"{entry.path}: listed in {self.manifest} (set {name}) but missing")
                out.append(entry.path)
        return out

    def _trace(self, path: Path, key: str) -> tuple[str, str, str]:
        """(label, absolute path, sha256) of a trace file, its header checked."""
        from pagealloc.trace.naming import trace_name
        from pagealloc.trace.read import trace_metadata

        if str(path) not in self._traces:
            try:
                meta = trace_metadata(path)
            except UserError as e:
                self.fail(key, str(e))
            self._sources[str(path)] = meta.get("source")
            self._probed[str(path)] = probed_costs(meta).as_dict()  # no cost file: the recording's own shootdown
            digest = hashlib.sha256()
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
            self._traces[str(path)] = (trace_name(path, meta), digest.hexdigest())
        label, sha = self._traces[str(path)]
        return label, str(path), sha

    def _cost_file(self, name: str, key: str) -> str:
        path = (self.base / name).resolve()
        if str(path) not in self._costs:
            try:
                self._costs[str(path)] = CostModel.load(path).as_dict()
            except UserError as e:
                self.fail(key, str(e))
        return str(path)

    def _cost_axes(self, table, key: str) -> dict[str, list[int]]:
        if not isinstance(table, dict):
            self.fail(key, "must be a table of cost-model field = values ([cost])")
        axes = {}
        for name, value in table.items():
            if name not in COST_FIELDS:
                self.fail(key, f"unknown cost-model field {name!r} (known: {', '.join(COST_FIELDS)})")
            axes[name] = self._values(value, f"{key}.{name}", self._number(*COST_RANGE))
        return axes

    # -- values --

    def _values(self, value, key: str, check, allow_empty: bool = False, integer: bool = True) -> list:
        """An axis's values: a scalar, a list, or a range table; checked, no repeats."""
        if isinstance(value, dict):
            values = self._range(value, key, integer)
        elif isinstance(value, list):
            values = value
        else:
            values = [value]
        if not values and not allow_empty:
            self.fail(key, "needs at least one value")
        if len(values) > MAX_AXIS_VALUES:
            self.fail(key, f"{len(values):,} values, more than the {MAX_AXIS_VALUES:,} an axis accepts")
        values = [check(v, key) for v in values]
        for i, v in enumerate(values):
            if v in values[:i]:
                self.fail(key, f"lists {v!r} twice")
        return values

    def _range(self, table: dict, key: str, integer: bool) -> list:
        forms = ({"values"}, {"start", "stop", "step"}, {"start", "stop", "factor"})
        if set(table) not in forms:
            self.fail(key, "a range table is {start, stop, step}, {start, stop, factor} or {values = [...]}, "
                           f"got {{{', '.join(table)}}}")
        if "values" in table:
            if not isinstance(table["values"], list):
                self.fail(key, f"values must be a list, got {table['values']!r}")
            return table["values"]
        start, stop = table["start"], table["stop"]
        for name in ("start", "stop"):
            if isinstance(table[name], bool) or not isinstance(table[name], int):
                self.fail(key, f"range {name} must be an integer, got {table[name]!r}")
        if stop < start:
            self.fail(key, f"range stop {stop} is below start {start}")
        if "step" in table:
            step = table["step"]
            if isinstance(step, bool) or not isinstance(step, int) or step <= 0:
                self.fail(key, f"range step must be a positive integer, got {step!r}")
            if (stop - start) // step + 1 > MAX_AXIS_VALUES:
                self.fail(key, f"the range has more than the {MAX_AXIS_VALUES:,} values an axis accepts")
            return list(range(start, stop + 1, step))
        factor = table["factor"]
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not factor > 1 or not start > 0:
            self.fail(key, f"a geometric range needs start > 0 and factor > 1, got start {start}, factor {factor!r}")
        values, v = [], float(start)
        while v <= stop * (1 + 1e-12):
            values.append(round(v) if integer else float(f"{v:.12g}"))
            v *= factor
        return values

    def _choice(self, what: str, allowed):
        def check(v, key):
            if not isinstance(v, str):
                self.fail(key, f"a {what} is a string, got {v!r}")
            if v not in allowed:
                self.fail(key, f"{what} {v!r} is not supported by this pagealloc (it has: {', '.join(allowed)})")
            return v
        return check

    def _string(self, v, key):
        if not isinstance(v, str) or not v:
            self.fail(key, f"expected a path (a non-empty string), got {v!r}")
        return v

    def _number(self, lo, hi, as_float: bool = False):
        def check(v, key):
            ok = isinstance(v, (int, float)) if as_float else isinstance(v, int)
            if isinstance(v, bool) or not ok or not lo <= v <= hi:
                kind = "a number" if as_float else "an integer"
                self.fail(key, f"must be {kind} in [{lo:g}, {hi:g}], got {v!r}")
            return int(v) if float(v).is_integer() else v  # 10 and 10.0 are one value (and one point id)
        return check

    def _boolean(self, v, key):
        if not isinstance(v, bool):
            self.fail(key, f"must be true or false, got {v!r}")
        return v


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _describe(p: Point) -> str:
    return f"trace {p.trace}, mode {p.mode}, timing {p.timing}" + (f", cost file {p.cost_file}" if p.cost_file else "")
