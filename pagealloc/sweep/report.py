"""``pagealloc sweep-report``: a sweep's results as a static HTML page of plots.

For each swept axis (a cost-model field, a model parameter, the timing
policy, the cost file) and each metric that varies, one PNG: the metric
against the axis, one panel per preset side by side on a shared y axis,
a line per trace.  Where other axes are swept too, the line is the
median over them and the band their min-max range; a sweep run with
``--seeds K`` is not plotted against its seed: the seeds widen the band
to the model's spread (pagealloc.sim.spread), and ratios to the baseline
pair rows of the same seed.  Plots use seaborn;
wall-clock fields are left out (they are not results of the model).
Then, when the baseline preset (go1.14) was swept with others, one PNG
per axis with every metric as a ratio to the baseline at the same point
(trace, costs, parameters), a line per other preset: where locked
scavenging starts to hurt.  Failed points are listed with their errors.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

from pagealloc.errors import UserError
from pagealloc.sim.presets import BASELINE_MODE, MODES
from pagealloc.sim.result import METRICS
from pagealloc.sweep.replaycall import row_schema
from pagealloc.sweep.store import read_results

MAX_HUE_TRACES = 8  # more traces than this are drawn as one line (median) with a band

# Units for the y axes, by the metric's name.
UNITS = {"B": (2**20, "MiB"), "ns": (1e3, "µs, virtual"), "B/s": (2**20, "MiB/s")}  # by catalogue unit

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.5em 0; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
figure { display: inline-block; margin: 0.4em; width: 47%; vertical-align: top; }
img { max-width: 100%; } figcaption, .note { color: #555; font-size: 0.9em; }
"""


def _kinds(df) -> dict:
    """Which columns are what, as the pagealloc that wrote the results recorded it (else as this one
    sees it), limited to the columns the results have."""
    kinds = df.attrs.get("pagealloc-sweep", {})
    if "point_columns" not in kinds:
        kinds = row_schema()[1]
    return {k: [c for c in v if c in df.columns] for k, v in kinds.items() if k.endswith("_columns")}


def swept_axes(df) -> list[str]:
    """The grid's axes that take more than one value (the presets and traces aside)."""
    identity = {"point_id", "trace", "mode", "trace_path", "trace_sha256", "seed"}  # seed: the band, not an axis
    return [c for c in _kinds(df)["point_columns"]
            if c not in identity and c in df.columns and df[c].nunique(dropna=False) > 1]


def _metric_columns(df) -> list[str]:
    """Deterministic numeric result columns (not the grid point, wall clock or provenance)."""
    kinds = _kinds(df)
    skip = {*kinds["point_columns"], *kinds["nondeterministic_columns"], *kinds["json_columns"], "events",
            "status", "error", "commit", "pagealloc_version"}
    return [c for c in df.columns if c not in skip and df[c].dtype.kind in "iuf"]


def metrics(df) -> list[str]:
    """The metrics that vary across the sweep: the ones worth a plot."""
    return [c for c in _metric_columns(df) if df[c].nunique() > 1]


def _unit(metric: str) -> tuple[float, str]:
    """How a metric is drawn: the scale and unit of its unit in the catalogue (pagealloc.sim.result)."""
    m = METRICS.get(metric)
    return UNITS.get(m.unit if m is not None else "", (1.0, ""))


def _presets(df) -> list[str]:
    known = [m for m in MODES if m in set(df["mode"])]
    return known + sorted(set(df["mode"]) - set(known))


def plot(df, axis: str, metric: str, out_dir: Path, name: str) -> str:
    """One PNG: ``metric`` against ``axis``, a panel per preset; returns its file name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    scale, unit = _unit(metric)
    data = df[["mode", "trace", axis, metric]].copy()
    data[metric] = data[metric].astype(float) / scale
    numeric = data[axis].dtype.kind in "iuf"
    if axis == "cost_file":
        data[axis] = [Path(p).stem if p else "(defaults)" for p in data[axis]]
    if not numeric:
        data[axis] = data[axis].astype(str)
    hue = "trace" if data["trace"].nunique() <= MAX_HUE_TRACES else None
    presets = _presets(data)
    common = dict(data=data, x=axis, y=metric, col="mode", col_order=presets, hue=hue, estimator="median",
                  errorbar=("pi", 100), height=2.8, aspect=1.15, facet_kws={"sharey": True})
    if numeric:
        data[axis] = data[axis].astype(float)
        g = sns.relplot(kind="line", marker="o", **common)
        lo, hi = data[axis].min(), data[axis].max()
        if lo > 0 and hi / lo >= 10:  # a geometric range, as costs are usually swept
            g.set(xscale="log")
    else:
        common.pop("facet_kws")
        g = sns.catplot(kind="point", sharey=True, **common)
    g.set_titles(col_template="{col_name}")
    g.set_axis_labels(axis, f"{metric} [{unit}]" if unit else metric)
    path = out_dir / name
    try:
        g.figure.savefig(path, dpi=80)  # laid out by relplot/catplot already
    except OSError as e:
        raise UserError(f"{path}: cannot write: {e.strerror or e}") from None
    finally:
        plt.close(g.figure)
    return name


def _baseline(df) -> str | None:
    presets = _presets(df)
    base = BASELINE_MODE if BASELINE_MODE in presets else (presets[0] if presets else None)
    return base if base in presets and len(presets) > 1 else None


def ratios_to_baseline(df, metrics_: list[str], baseline: str):
    """Each non-baseline row's metrics divided by the baseline's at the same point (NaN where that is 0)."""
    keys = [c for c in _kinds(df)["point_columns"] if c not in ("point_id", "mode")]
    base = df[df["mode"] == baseline][keys + metrics_]
    others = df[df["mode"] != baseline][keys + ["mode"] + metrics_]
    merged = others.merge(base, on=keys, suffixes=("", "@base"))
    for m in metrics_:
        denominator = merged[f"{m}@base"].astype(float)
        merged[m] = merged[m].astype(float) / denominator.where(denominator != 0)
    return merged[keys + ["mode"] + metrics_]


def plot_vs_baseline(df, axis: str, metrics_: list[str], baseline: str, out_dir: Path, name: str) -> str | None:
    """One PNG for ``axis``: a panel per metric, its ratio to ``baseline``, a line per other preset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    ratios = ratios_to_baseline(df, metrics_, baseline)
    shown = [m for m in metrics_ if ((ratios[m] - 1).abs() > 1e-9).any()]  # not the baseline's everywhere
    if not shown:
        return None
    numeric = ratios[axis].dtype.kind in "iuf"
    if not numeric:
        ratios[axis] = [Path(v).stem if axis == "cost_file" and v else str(v) for v in ratios[axis]]
    cols = min(4, len(shown))
    rows = -(-len(shown) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 2.5 * rows), squeeze=False, constrained_layout=True)
    order = [m for m in _presets(df) if m != baseline]
    for ax, metric in zip(axes.flat, shown):
        sns.lineplot(data=ratios, x=axis, y=metric, hue="mode", hue_order=order, estimator="median", errorbar=None,
                     marker="o", ax=ax, legend=ax is axes.flat[0])
        ax.axhline(1.0, color="#888", linewidth=0.8, linestyle="--")
        ax.set_title(metric, fontsize=9)
        ax.set_ylabel(f"/ {baseline}")
        ax.ticklabel_format(axis="y", useOffset=False)
        if numeric and ratios[axis].min() > 0 and ratios[axis].max() / ratios[axis].min() >= 10:
            ax.set_xscale("log")
    for ax in list(axes.flat)[len(shown):]:
        ax.set_visible(False)
    path = out_dir / name
    try:
        fig.savefig(path, dpi=80)
    except OSError as e:
        raise UserError(f"{path}: cannot write: {e.strerror or e}") from None
    finally:
        plt.close(fig)
    return name


def build_sweep_report(results, out_dir) -> Path:
    """Write ``out_dir/index.html`` and its PNGs from a sweep's results folder; return the page's path."""
    df = read_results(results)
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{out_dir}: cannot create: {e.strerror or e}") from None
    ok = df[df["status"] == "ok"]
    failed = df[df["status"] != "ok"]
    axes, shown = swept_axes(ok), metrics(ok) if len(ok) else []
    e = html.escape
    body = [f"<h1>Sweep {e(str(results))}</h1>", _summary(df, ok, failed, axes)]
    if len(failed):
        body.append("<h2>Failed points</h2><table><tr><th>point</th><th>trace</th><th>preset</th><th>error</th></tr>")
        body += [f"<tr><td>{e(r.point_id)}</td><td>{e(r.trace)}</td><td>{e(r.mode)}</td><td>{e(r.error)}</td></tr>"
                 for r in failed.itertuples()]
        body.append("</table>")
    if not axes or not shown:
        body.append('<p class="note">Nothing to plot: no axis other than the traces and presets takes more than '
                    "one value, or no metric varies.</p>")
    for axis in axes:
        others = [a for a in axes if a != axis]
        body.append(f"<h2>Against {e(axis)}</h2>")
        if others:
            body.append(f'<p class="note">Line: median over {e(", ".join(others))}; band: their min-max.</p>')
        for metric in shown:
            png = plot(ok, axis, metric, out_dir, f"{axis}--{metric}.png")
            body.append(f'<figure><img src="{e(png)}" alt="{e(metric)} vs {e(axis)}">'
                        f"<figcaption>{e(metric)} vs {e(axis)}</figcaption></figure>")
    baseline = _baseline(ok) if len(ok) else None
    if baseline and shown:
        body.append(f"<h2>Relative to {e(baseline)}</h2>"
                    f'<p class="note">Each metric divided by {e(baseline)}\'s at the same trace, timing, costs and '
                    "parameters; the line is the median over traces and the other axes; 1 = no change. Metrics equal to "
                    "the baseline's at every point are left out.</p>")
        for axis in axes:
            png = plot_vs_baseline(ok, axis, shown, baseline, out_dir, f"{axis}--vs-{baseline}.png")
            if png:
                body.append(f'<img src="{e(png)}" alt="metrics relative to {e(baseline)} vs {e(axis)}">')
    constant = [m for m in _metric_columns(ok) if m not in shown]
    if constant:
        body.append(f'<p class="note">Same at every point (not plotted): {e(", ".join(constant))}.</p>')
    page = out_dir / "index.html"
    page.write_text('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
                    f"<title>pagealloc sweep</title><style>{CSS}</style></head><body>\n"
                    + "\n".join(body) + "\n</body></html>\n")
    return page


def _summary(df, ok, failed, axes) -> str:
    e = html.escape

    def values(col):
        vals = sorted(df[col].dropna().unique(), key=lambda v: (isinstance(v, str), v))
        shown = ", ".join(Path(v).stem if col == "cost_file" and v else str(v) for v in vals[:12])
        return shown + (f", ... ({len(vals)} values)" if len(vals) > 12 else "")

    rows = [("points run", f"{len(df):,} ({len(ok):,} ok, {len(failed):,} failed)"),
            ("traces", values("trace")), ("presets", ", ".join(_presets(df)))]
    rows += [(a, values(a)) for a in axes]
    rows += [("commit", values("commit")), ("pagealloc", values("pagealloc_version"))]
    if len(ok) and "wall_seconds" in ok.columns:
        secs = ok["wall_seconds"].astype(float)
        if math.isfinite(secs.sum()):
            rows.append(("replay wall time", f"{secs.sum():,.1f} s in all, {secs.median():.3f} s median per "
                                             "replay (wall clock; not a result)"))
    return "<table>" + "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in rows) + "</table>"
