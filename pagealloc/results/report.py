"""The replay report: an HTML page with matplotlib PNGs, locked vs unlocked.

``build_report(traces, out_dir, asv_results=...)`` replays each trace in
both modes and writes ``out_dir/index.html`` with:

* per trace, retained bytes (heap_sys - heap_released) over virtual time,
  unlocked vs locked, from ReplayResult.retained_timeline;
* released bytes and mutator stall per trace and mode (bar charts), and a
  table of the main metrics;
* with asv results, the replay benchmarks across commits (one line per
  trace, a panel per mode) and the model microbenchmarks across commits.

The page is static (no JavaScript); PNGs sit beside it.  Every input
problem raises UserError naming the file.
"""

from __future__ import annotations

import html
import math
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from pagealloc.errors import UserError

MODES = ("unlocked", "locked")
COLORS = {"unlocked": "#d62728", "locked": "#1f77b4"}
MiB = 2**20

# Replay benchmarks plotted across commits: (method, title, unit scale, unit label).
ACROSS = [
    ("track_released_bytes", "released bytes", MiB, "MiB"),
    ("track_retained_peak_bytes", "retained peak", MiB, "MiB"),
    ("track_mutator_stall_ns", "mutator stall", 1e6, "ms (virtual)"),
    ("track_lock_hold_max_ns", "longest heap-lock hold", 1e3, "us (virtual)"),
    ("track_events_per_second", "replay speed", 1e3, "k events/s (wall clock)"),
    ("time_replay", "replay wall time", 1.0, "s"),
    ("peakmem_replay", "replay peak memory", MiB, "MiB"),
]

# Columns of the summary table: (ReplayResult field, heading, scale, unit).
SUMMARY = [
    ("released_bytes", "released", MiB, "MiB"),
    ("retained_peak_bytes", "retained peak", MiB, "MiB"),
    ("retained_final_bytes", "retained at end", MiB, "MiB"),
    ("mutator_stall_ns", "mutator stall", 1e6, "ms"),
    ("lock_hold_max_ns", "max lock hold", 1e3, "us"),
    ("scavenger_fooled", "scavenger fooled", 1, ""),
    ("replay_events_per_wall_second", "simulator events/s", 1e3, "k"),
]


def _replay_one(job):
    path, mode, cost_model = job
    from pagealloc.sim.replay import replay

    r = replay(path, mode, cost_model=cost_model)
    return r.to_dict()


def replay_all(traces, jobs: int = 1, cost_model=None) -> dict[str, dict[str, dict]]:
    """{trace label: {mode: ReplayResult.to_dict()}} for every trace in both modes."""
    for t in traces:
        if not Path(t).is_file():
            raise UserError(f"{t}: no such file" if not Path(t).exists() else f"{t}: not a file")
    work = [(str(t), mode, cost_model) for t in traces for mode in MODES]
    if jobs > 1 and len(work) > 1:
        with ProcessPoolExecutor(max_workers=min(jobs, len(work))) as pool:
            done = list(pool.map(_replay_one, work))
    else:
        done = [_replay_one(w) for w in work]
    out: dict[str, dict[str, dict]] = {}
    for (path, mode, _), d in zip(work, done):
        label = Path(path).stem
        out.setdefault(label, {})[mode] = d
    return out


# -- figures --


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out_dir: Path, name: str) -> str:
    path = out_dir / name
    try:
        fig.savefig(path, dpi=90, bbox_inches="tight")
    except OSError as e:
        raise UserError(f"{path}: cannot write: {e}") from None
    finally:
        _plt().close(fig)
    return name


def _slug(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in s)


def plot_retained(label: str, by_mode: dict, out_dir: Path) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 3.2))
    for mode in MODES:
        tl = by_mode[mode]["retained_timeline"]
        if not tl:
            continue
        xs = [t / 1e9 for t, _ in tl]
        ys = [b / MiB for _, b in tl]
        ax.step(xs, ys, where="post", color=COLORS[mode], label=mode, linewidth=1.4,
                linestyle="-" if mode == "unlocked" else "--")
    real = next((r["reference_retained_timeline"] for r in by_mode.values() if r.get("reference_retained_timeline")), None)
    if real:  # a go1.14-runtime trace: what the real Go 1.14.6 runtime retained (pagealloc.sim.reference)
        ax.step([t / 1e9 for t, _ in real], [b / MiB for _, b in real], where="post", color="black", alpha=0.6,
                linewidth=1, label="real Go 1.14.6")
    ax.set_title(f"{label}: retained bytes over time")
    ax.set_xlabel("virtual time (s)")
    ax.set_ylabel("retained (MiB)")
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    return _save(fig, out_dir, f"retained-{_slug(label)}.png")


def plot_per_mode(results: dict, field: str, title: str, scale: float, unit: str, out_dir: Path, name: str) -> str:
    plt = _plt()
    labels = list(results)
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(labels) + 1.2))
    h = 0.38
    for k, mode in enumerate(MODES):
        ys = [i + (k - 0.5) * h for i in range(len(labels))]
        vals = [results[lab][mode][field] / scale for lab in labels]
        ax.barh(ys, vals, height=h, color=COLORS[mode], label=mode)
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlabel(unit)
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="best")
    return _save(fig, out_dir, name)


def _geomean(xs):
    xs = [x for x in xs if x and x > 0]
    return math.exp(sum(map(math.log, xs)) / len(xs)) if xs else math.nan


def plot_across_commits(results, machine, out_dir: Path):
    """([(title, png)], runs): the replay benchmarks and microbenchmarks over commits."""
    runs = results.for_machine(machine)
    # One point per commit: its newest run.
    by_commit = {}
    for r in runs:
        by_commit[r.commit] = r
    runs = sorted(by_commit.values(), key=lambda r: (r.date, r.commit))
    xs = list(range(len(runs)))
    ticks = [r.commit[:8] for r in runs]
    plt = _plt()
    figs = []
    names = sorted({b for r in runs for b in r.benchmarks()})
    for method, title, scale, unit in ACROSS:
        bench = next((b for b in names if b.endswith(f".ReplayMetrics.{method}") or b.endswith(f".Replay.{method}")), None)
        if bench is None:
            continue
        traces = sorted({p[0] for r in runs for (b, p) in r.values if b == bench and len(p) == 2})
        if not traces:
            continue
        fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), sharey=True)
        cmap = plt.get_cmap("tab20")
        for ax, mode in zip(axes, MODES):
            for i, tr in enumerate(traces):
                ys = []
                for r in runs:
                    v = r.get(bench, (tr, mode))
                    ys.append(v.value / scale if v is not None and v.ok else math.nan)
                ax.plot(xs, ys, marker="o", markersize=3, linewidth=1, color=cmap(i % 20), label=tr)
            ax.set_title(f"{mode}")
            ax.set_xticks(xs, ticks, rotation=45, ha="right", fontsize=7)
            ax.grid(alpha=0.3)
        axes[0].set_ylabel(unit)
        axes[1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=7)
        fig.suptitle(f"{title} across commits ({bench})", y=1.03)
        figs.append((f"{title} across commits", _save(fig, out_dir, f"commits-{method}.png")))
    micro = [b for b in names if ".Replay" not in b]
    if micro:
        fig, ax = plt.subplots(figsize=(9, 3.6))
        for i, bench in enumerate(micro):
            ys = []
            for r in runs:
                vals = [v.value for (b, _), v in r.values.items() if b == bench and v.ok]
                ys.append(_geomean(vals) * 1e6 if vals else math.nan)
            ax.plot(xs, ys, marker="o", markersize=3, linewidth=1, label=bench.split(".", 1)[-1])
        ax.set_yscale("log")
        ax.set_ylabel("us (geometric mean over params)")
        ax.set_xticks(xs, ticks, rotation=45, ha="right", fontsize=7)
        ax.grid(alpha=0.3)
        ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=7)
        ax.set_title("model microbenchmarks across commits")
        figs.append(("model microbenchmarks across commits", _save(fig, out_dir, "commits-microbenchmarks.png")))
    return figs, runs


# -- the page --

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.9em; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
img { max-width: 100%; display: block; margin: 0.6em 0; }
.unlocked { color: #d62728; } .locked { color: #1f77b4; }
.note { color: #555; font-size: 0.9em; }
"""


def _fmt(v, scale, unit):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    x = v / scale
    s = f"{x:,.0f}" if abs(x) >= 100 or scale == 1 else f"{x:,.2f}"
    return f"{s} {unit}".strip()


def _img(png: str, alt: str) -> str:
    e = html.escape
    return f'<figure><img src="{e(png)}" alt="{e(alt)}" title="{e(alt)}"><figcaption class="note">{e(alt)}</figcaption></figure>'


def build_report(traces, out_dir, *, asv_results=None, machine=None, jobs: int = 1, cost_model=None) -> Path:
    """Write out_dir/index.html (and its PNGs); return its path."""
    traces = [Path(t) for t in traces]
    if not traces and asv_results is None:
        raise UserError("report: nothing to report: give TRACE files and/or --asv-results DIR")
    results = None
    if asv_results is not None:
        from pagealloc.results.asvresults import load_results

        results = load_results(asv_results)
        results.for_machine(machine)  # fails early on an ambiguous machine
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{out_dir}: cannot write: {e}") from None
    replays = replay_all(traces, jobs=jobs, cost_model=cost_model) if traces else {}

    e = html.escape
    body = ["<h1>pagealloc replay report: locked vs unlocked scavenging</h1>"]
    body.append(
        '<p class="note">Go 1.14 page allocator model. <span class="unlocked">unlocked</span>: Go 1.14 '
        "(scavengeOne drops the heap lock while it searches); <span class=\"locked\">locked</span>: the "
        "scavenger holds the lock throughout. Times in virtual nanoseconds unless marked wall clock.</p>"
    )
    if replays:
        body.append("<h2 id=\"summary\">Summary per trace</h2><table><tr><th>trace</th><th>events</th>")
        for _, head, _, unit in SUMMARY:
            unit = f" ({e(unit)})" if unit else ""
            body.append(f"<th>{e(head)}{unit}<br><span class=unlocked>unlocked</span> / <span class=locked>locked</span></th>")
        body.append("</tr>")
        for label, by in replays.items():
            body.append(f"<tr><td>{e(label)}</td><td>{by['unlocked']['events']:,}</td>")
            for field, _, scale, _ in SUMMARY:
                u, lk = by["unlocked"][field], by["locked"][field]
                body.append(f"<td><span class=unlocked>{_fmt(u, scale, '')}</span> / <span class=locked>{_fmt(lk, scale, '')}</span></td>")
            body.append("</tr>")
        body.append("</table>")
        body.append('<h2 id="per-mode">Released bytes and mutator stall per mode</h2>')
        png = plot_per_mode(replays, "released_bytes", "released bytes per trace", MiB, "MiB", out_dir, "released.png")
        body.append(_img(png, "released bytes per trace, unlocked vs locked"))
        png = plot_per_mode(replays, "mutator_stall_ns", "mutator stall per trace (virtual)", 1e6, "ms", out_dir, "stall.png")
        body.append(_img(png, "mutator stall per trace, unlocked vs locked"))
        body.append('<h2 id="retained">Retained bytes over time</h2>')
        for label, by in replays.items():
            png = plot_retained(label, by, out_dir)
            body.append(_img(png, f"{label}: retained bytes over time, unlocked vs locked"))
    if results is not None:
        figs, runs = plot_across_commits(results, machine, out_dir)
        body.append('<h2 id="commits">Across commits (asv results)</h2>')
        body.append(
            f'<p class="note">{len(runs)} commit(s) from {e(str(results.folder))}, machine '
            f"{e(runs[0].machine if runs else '?')}: {', '.join(e(r.commit[:8]) for r in runs)}</p>"
        )
        for title, png in figs:
            body.append(_img(png, title))
    page = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        '<link rel="icon" href="data:,">'
        "<title>pagealloc replay report</title>"
        f"<style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
    index = out_dir / "index.html"
    try:
        index.write_text(page)
    except OSError as err:
        raise UserError(f"{index}: cannot write: {err}") from None
    return index


def default_jobs() -> int:
    return max(1, min(2, os.cpu_count() or 1))
