"""Plain-text tables of asv results: one commit's presets side by side, and a gate's changes.

``human`` turns a value and its unit into a short string; the tables use
asv compare's layout (before, after, ratio, benchmark).
"""

from __future__ import annotations

import math

from pagealloc.results.asvresults import Results, Run, mode_pairs
from pagealloc.results.gate import Change, direction

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
