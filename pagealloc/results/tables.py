"""Plain-text tables of asv results: the headline, one commit's presets side
by side, and a comparison's changes.

``human`` turns a value and its unit into a short string; the tables use
asv compare's layout (values, ratio, benchmark) and its marks: ``+`` worse,
``-`` better.
"""

from __future__ import annotations

import math

from pagealloc.results.asvresults import Results, Run, mode_groups
from pagealloc.results.gate import Change, cis_overlap, direction, is_wall_clock
from pagealloc.results.headline import MIN_CHANGE, WITHIN_SPREAD, headline, unit_of


_SCALES = {
    "bytes": ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB"), (1, "B")),
    "ns": ((1e9, "s"), (1e6, "ms"), (1e3, "us"), (1, "ns")),
}


def scaled(value, unit: str) -> tuple[float, str]:
    """(value, suffix) in the largest unit the value reaches: ``bytes`` as
    B/KiB/MiB/GiB, ``ns`` as ns/us/ms/s.  Shared by every table that prints them."""
    for scale, suffix in _SCALES[unit]:
        if abs(value) >= scale or scale == 1:
            return value / scale, suffix
    raise AssertionError("unreachable: the last scale is 1")


def human(value, unit: str = "") -> str:
    """A short human-readable value: 1.23ms, 31.0MiB, 768.6us (for unit ns), 137k events/s."""
    if value is None:
        return "failed"
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    v = float(value)
    if unit in ("seconds", "ns"):
        x, suffix = scaled(v * 1e9 if unit == "seconds" else v, "ns")
        return f"{x:.3g}{suffix}"
    if unit == "bytes":
        x, suffix = scaled(v, "bytes")
        return f"{x:.0f}B" if suffix == "B" else f"{x:.3g}{suffix}"
    if unit == "x":
        return f"{v:.3g}x"
    if abs(v) >= 1e6:
        text = f"{v / 1e6:.3g}M"
    elif abs(v) >= 1e3:
        text = f"{v / 1e3:.3g}k"
    else:
        text = f"{v:.3g}"
    return f"{text} {unit}".strip() if unit else text


def ratio_text(r: float) -> str:
    """1.31x, 0.84x, 1.004x, = (identical), new (from zero)."""
    if r == 1:
        return "="
    if math.isinf(r):
        return "new"
    if not math.isfinite(r):
        return "n/a"
    return f"{r:.4g}x" if abs(r - 1) < 0.01 else f"{r:.3g}x"


def _table(header: list[str], rows: list[list[str]], right=()) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(r):
        return "| " + " | ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep, *map(line, rows)])


def format_headline(metrics: dict) -> str:
    """The headline (see ``headline``) as a table: per trace, the figures that
    differ between presets, each preset's value and its ratio to the baseline.
    With the seeds' spread (F_min / F_max in ``metrics``), each value has its
    range and each alternative is marked ``real`` (the ranges do not overlap)
    or "within the model's spread"."""
    per_trace, same = headline(metrics)
    if not per_trace and not same:
        return "(no replay metrics in more than one mode)"
    lines = [line for group in per_trace for line in group]
    modes = list(lines[0].values) if lines else []
    rows = []
    for group in per_trace:
        for i, line in enumerate(group):
            unit = unit_of(line.field)
            cells = [human(line.values[line.baseline], unit) + _range_text(line, line.baseline, unit)]
            for m in modes[1:]:
                verdict = line.verdict(m) if line.ratio(m) != 1 else ""
                cells.append(f"{human(line.values[m], unit)}{_range_text(line, m, unit)} ({ratio_text(line.ratio(m))}"
                             + (f", {verdict})" if verdict else ")"))
            rows.append([line.trace if i == 0 else "", line.label, *cells])
    out = []
    if rows:
        header = ["trace", "figure", f"{modes[0]} (baseline)", *modes[1:]]
        out.append(_table(header, rows, right=tuple(range(2, len(header)))))
    if same:
        out.append(f"no headline figure differs by {MIN_CHANGE:.0%} or more: {', '.join(same)}")
    if any(line.ranges is not None for line in lines):
        out.append(f"[min..max] over the seeds (pagealloc.sim.spread); a difference is real only where the ranges do "
                   f"not overlap, else {WITHIN_SPREAD}")
    return "\n".join(out)


def _range_text(line, mode: str, unit: str) -> str:
    """" [min..max]" of a mode's seeds, or "" without a spread."""
    if line.ranges is None:
        return ""
    lo, hi = line.ranges[mode]
    return f" [{human(lo, unit)}..{human(hi, unit)}]"


def mark(benchmark: str, base, alt) -> str:
    """"+" the alternative is worse than the baseline, "-" better; blank when
    the figure has no better direction, they are identical, or (wall clock)
    their 99% confidence intervals overlap or are unknown (one sample)."""
    d = direction(benchmark)
    if not (d and base.ok and alt.ok and base.value):
        return ""
    worse = alt.value / base.value if d > 0 else (base.value / alt.value if alt.value else math.inf)
    if is_wall_clock(benchmark):
        if cis_overlap(base, alt) is not False:
            return ""
    elif abs(worse - 1) < 0.01:
        return ""
    return "+" if worse > 1 else "-"


def format_mode_table(run: Run, results: Results) -> str:
    """Every benchmark of ``run`` with a mode parameter, its values side by
    side: the first, then each other with its ratio to the first and a mark
    (``mark``).

    The headings come from each benchmark's own parameter values, so
    benchmarks whose ``mode`` means different things (the replay presets,
    a microbenchmark's lock flag) get a table each: one per distinct set of
    modes and other parameter names, replay benchmarks first."""
    def order(group):
        bench = group[0]
        kind = 0 if ".ReplayMetrics" in bench else 1 if ".Replay" in bench else 2
        return (kind, bench, str(group[1]))

    tables: dict[tuple, list[list[str]]] = {}  # (modes, other parameter names) -> rows
    for bench, rest, by_mode in sorted(mode_groups(run, results.param_names), key=order):
        values = list(by_mode.values())
        if all(v.value is not None and not v.ok for v in values):
            continue  # skipped in every mode
        names = [n for n in results.param_names(bench) if n != "mode"]
        key = (tuple(by_mode), tuple(names) if len(names) == len(rest) else ("params",) * bool(rest))
        unit = results.unit(bench)
        base = values[0]
        cells = [human(base.value, unit)]
        for alt in values[1:]:
            r = alt.value / base.value if alt.ok and base.ok and base.value else math.nan
            cells += [human(alt.value, unit), f"{r:.2f} {mark(bench, base, alt) or ' '}" if math.isfinite(r) else "n/a  "]
        name = bench.split(".", 1)[-1]
        tables.setdefault(key, []).append([f"{name}({', '.join(map(str, rest))})" if rest else name, *cells])
    if not tables:
        return "(no benchmark with a mode parameter in this run)"
    out = []
    for (modes, names), rows in tables.items():
        first = f"benchmark ({', '.join(names)})" if names else "benchmark"
        header = [first, modes[0], *[c for m in modes[1:] for c in (m, "ratio")]]
        out.append(_table(header, rows, right=tuple(range(1, len(header)))))
    return "\n\n".join(out)


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
            {"regressed": "+", "failed": "!", "improved": "-", "fixed": "*", "unjudged": "?"}.get(c.status, " "),
            human(c.old.value, unit),
            human(c.new.value, unit),
            f"{ratio:.2f}" if math.isfinite(ratio) else "n/a",
            c.label(),
            f"{c.status}, {how}",
        ])
    return _table(["", "before", "after", "ratio", "benchmark", "why"], rows, right=(1, 2, 3)) if rows else ""


def format_comparison(changes: list[Change], results: Results, worse: str = "got worse") -> str:
    """A comparison's changes in sections, asv compare --split style but by
    the suite's rules: what got worse (titled ``worse``), improved, changed
    without a better direction, beyond the factor but within the noise, and
    what could not be compared."""
    out = []
    for title, statuses in (
        (worse, ("regressed", "failed")),
        ("improved", ("improved", "fixed")),
        ("changed, not gated (no better direction)", ("changed",)),
        ("beyond the factor but within the noise (confidence intervals overlap)", ("noise",)),
        ("wall clock beyond the factor, not judged: one sample (--quick or repeat=1), so asv cannot tell it from "
         "noise; rerun without --quick to judge it", ("unjudged",)),
    ):
        table = format_changes(changes, results, statuses)
        if table:
            out.append(f"{title}:\n{table}")
    incomparable = sorted({c.benchmark for c in changes if c.status == "incomparable"})
    if incomparable:
        out.append(f"not compared (benchmark code changed): {', '.join(incomparable)}")
    return "\n\n".join(out)
