"""The replay report: an HTML page with matplotlib PNGs, each preset against go1.14.

``build_report(traces, out_dir, asv_results=...)`` replays each trace in
every mode and writes ``out_dir/index.html`` with, in this order:

* the headline (``headline``): per trace, what each preset changes against
  the baseline, biggest difference first;
* a table of the main figures of every trace in every mode;
* released bytes and stall per trace and mode (bar charts; with
  ``seeds`` > 1 each bar has its range over the seeds, and the headline
  calls a difference real only where the ranges do not overlap);
* per trace, retained bytes (heap_sys - heap_released) over virtual time,
  every mode, with a panel of each alternative's difference from the
  baseline, or a plain "no difference" where there is none;
* with asv results, the replay benchmarks across commits (one line per
  trace, a panel per mode, log y axis) and the model microbenchmarks.

The page is static (no JavaScript); PNGs sit beside it.  Every input
problem raises UserError naming the file.
"""

from __future__ import annotations

import html
import math
import os
from pathlib import Path

from pagealloc.errors import UserError
from pagealloc.results.asvresults import history_order, order_modes
from pagealloc.results.headline import MIN_CHANGE, WITHIN_SPREAD, headline, unit_of
from pagealloc.results.replays import replay_all
from pagealloc.results.tables import human, ratio_text

COLORS = {"go1.14": "#2ca02c", "unlocked": "#d62728", "locked": "#1f77b4"}
STYLES = {"go1.14": "-", "unlocked": "--", "locked": ":"}
MiB = 2**20

# Replay benchmarks plotted across commits: (method, title, unit).
ACROSS = [
    ("track_p_stall_ns", "P-stall", "ns"),
    ("track_alloc_latency_p99_ns", "alloc latency p99", "ns"),
    ("track_released_bytes", "released bytes", "bytes"),
    ("track_retained_peak_bytes", "retained peak", "bytes"),
    ("track_mutator_stall_ns", "mutator stall", "ns"),
    ("track_lock_hold_max_ns", "longest heap-lock hold", "ns"),
    ("track_wall_seconds_per_event", "simulator wall seconds per event", "seconds"),
    ("time_replay", "replay wall time", "seconds"),
    ("peakmem_replay", "replay peak memory", "bytes"),
]
SCALES = {"ns": (1e6, "ms (virtual)"), "bytes": (MiB, "MiB"), "seconds": (1.0, "s (wall clock)")}

# The summary table: (ReplayResult field, heading); fields a commit lacks are left out.
SUMMARY = [
    ("p_stall_ns", "P-stall"),
    ("alloc_latency_p99_ns", "alloc latency p99"),
    ("alloc_latency_max_ns", "alloc latency max"),
    ("released_bytes", "released"),
    ("retained_peak_bytes", "retained peak"),
    ("retained_final_bytes", "retained at end"),
    ("mutator_stall_ns", "mutator stall"),
    ("lock_hold_max_ns", "longest lock hold"),
    ("scavenger_fooled", "scavenger fooled"),
    ("replay_events_per_wall_second", "simulator events per wall second"),
]


def color(mode: str) -> str:
    return COLORS.get(mode, "#7f7f7f")


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


def retained_gap(by_mode: dict) -> tuple[float, str | None, float]:
    """(largest |retained(alt) - retained(baseline)| in bytes, that alt, at which virtual ns).

    The timelines are sampled at the same trace rows (each GC and
    FreeOSMemory, and the end) in every mode, so they align by index."""
    modes = list(by_mode)
    base = by_mode[modes[0]]["retained_timeline"]
    best = (0.0, None, 0.0)
    for alt in modes[1:]:
        for (t, b), (_, a) in zip(base, by_mode[alt]["retained_timeline"]):
            if abs(a - b) > best[0]:
                best = (abs(a - b), alt, t)
    return best


def plot_retained(label: str, by_mode: dict, out_dir: Path) -> tuple[str, str]:
    """(png, caption): retained bytes over time in every mode and, where they
    differ, each alternative minus the baseline below."""
    modes = list(by_mode)
    gap, where, at = retained_gap(by_mode)
    plt = _plt()
    if gap:
        fig, (ax, dax) = plt.subplots(2, 1, figsize=(7.5, 4.6), sharex=True, height_ratios=(3, 2))
    else:
        fig, ax = plt.subplots(figsize=(7.5, 3.2))
    for mode in modes:
        tl = by_mode[mode]["retained_timeline"]
        if not tl:
            continue
        ax.step([t / 1e9 for t, _ in tl], [b / MiB for _, b in tl], where="post", color=color(mode), label=mode,
                linewidth=1.4, linestyle=STYLES.get(mode, "-"))
    real = next((r["reference_retained_timeline"] for r in by_mode.values() if r.get("reference_retained_timeline")), None)
    if real:  # a go1.14-runtime trace: what the real Go 1.14.6 runtime retained (pagealloc.sim.reference)
        ax.step([t / 1e9 for t, _ in real], [b / MiB for _, b in real], where="post", color="black", alpha=0.6,
                linewidth=1, label="real Go 1.14.6")
    ax.set_ylabel("retained (MiB)")
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    base = by_mode[modes[0]]["retained_timeline"]
    if gap:
        ax.set_title(f"{label}: retained bytes over time; largest gap {human(gap, 'bytes')} ({where} vs {modes[0]})")
        for alt in modes[1:]:
            tl = by_mode[alt]["retained_timeline"]
            dax.step([t / 1e9 for t, _ in base], [(a - b) / MiB for (_, b), (_, a) in zip(base, tl)], where="post",
                     color=color(alt), label=f"{alt} - {modes[0]}", linewidth=1.2)
        dax.axhline(0, color="#888", linewidth=0.8)
        dax.set_ylabel(f"minus {modes[0]} (MiB)")
        dax.grid(alpha=0.3)
        dax.legend(loc="best", fontsize=8)
        dax.set_xlabel("virtual time (s)")
        caption = (f"{label}: retained bytes over time, {' vs '.join(modes)}; below, each minus {modes[0]}. "
                   f"Largest gap: {human(gap, 'bytes')} ({where} vs {modes[0]} at {at / 1e9:.3f} s).")
    else:
        ax.set_title(f"{label}: retained bytes over time: identical in every mode")
        ax.set_xlabel("virtual time (s)")
        caption = (f"{label}: retained bytes over time, {' vs '.join(modes)}: no difference; "
                   "the lines lie on top of each other.")
    return _save(fig, out_dir, f"retained-{_slug(label)}.png"), caption


def plot_per_mode(results: dict, field: str, title: str, unit: str, out_dir: Path, name: str) -> str:
    scale, unit_label = SCALES[unit]
    plt = _plt()
    labels = list(results)
    modes = order_modes(next(iter(results.values())))
    fig, ax = plt.subplots(figsize=(7.5, 0.2 * len(modes) * len(labels) + 1.2))
    h = 0.8 / len(modes)
    bars = []
    for k, mode in enumerate(modes):
        ys = [i + (k - (len(modes) - 1) / 2) * h for i in range(len(labels))]
        bars.append((mode, ys, [results[lab][mode][field] / scale for lab in labels]))
    positive = [v for _, _, vals in bars for v in vals if v > 0]
    # Log axis: the traces span orders of magnitude (synth-contention's GiB and seconds would leave the others
    # without a visible bar on a linear one); bars start a decade below the smallest value, zeros are written.
    log = bool(positive) and max(positive) / min(positive) >= 10
    floor = min(positive) / 10 if log else 0
    for mode, ys, vals in bars:
        ax.barh(ys, [v - floor if v > 0 else 0 for v in vals], left=floor, height=h, color=color(mode), label=mode)
        lo_hi = [(results[lab][mode].get(f"{field}_min"), results[lab][mode].get(f"{field}_max")) for lab in labels]
        if all(lo is not None and hi is not None for lo, hi in lo_hi):  # the seeds' range (pagealloc.sim.spread)
            lows = [max(lo / scale, floor) if log else lo / scale for lo, _ in lo_hi]
            highs = [max(hi / scale, floor) if log else hi / scale for _, hi in lo_hi]
            ax.hlines(ys, lows, highs, color="black", linewidth=1.2)
            ax.plot(lows + highs, ys + ys, "|", color="black", markersize=h * 40)
        for y, v in zip(ys, vals):
            if v <= 0:
                ax.text(floor, y, " 0", va="center", fontsize=6, color=color(mode))
    if log:
        ax.set_xscale("log")
        ax.set_xlim(left=floor)
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlabel(f"{unit_label}, log scale" if log else unit_label)
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="best")
    return _save(fig, out_dir, name)


def _geomean(xs):
    xs = [x for x in xs if x and x > 0]
    return math.exp(sum(map(math.log, xs)) / len(xs)) if xs else math.nan


def _log_axis(ax, ys) -> bool:
    """A log y axis when the data have positive values (zeros are not drawn)."""
    if any(y > 0 for y in ys if math.isfinite(y)):
        ax.set_yscale("log")
        return True
    return False


def plot_across_commits(results, machine, out_dir: Path):
    """([(title, png)], runs): the replay benchmarks and microbenchmarks over commits."""
    runs = results.for_machine(machine)
    # One point per commit: its newest run; commits in the history's order.
    by_commit = {}
    for r in runs:
        by_commit[r.commit] = r
    runs = history_order(list(by_commit.values()), results.folder)
    xs = list(range(len(runs)))
    ticks = [r.commit[:8] for r in runs]
    plt = _plt()
    figs = []
    names = sorted({b for r in runs for b in r.benchmarks()})
    for method, title, unit in ACROSS:
        bench = next((b for b in names if b.endswith(f".ReplayMetrics.{method}") or b.endswith(f".Replay.{method}")), None)
        if bench is None:
            continue
        pairs = {p for r in runs for (b, p), v in r.values.items() if b == bench and len(p) == 2 and v.ok}
        traces = sorted({t for t, _ in pairs})
        modes = order_modes(m for _, m in sorted(pairs, key=lambda p: p[1]))
        if not traces:
            continue
        scale, unit_label = SCALES[unit]
        fig, axes = plt.subplots(1, len(modes), figsize=(4.2 * len(modes) + 1.5, 3.6), sharey=True, squeeze=False)
        cmap = plt.get_cmap("tab20")
        every = []
        for ax, mode in zip(axes[0], modes):
            for i, tr in enumerate(traces):
                ys = []
                for r in runs:
                    v = r.get(bench, (tr, mode))
                    ys.append(v.value / scale if v is not None and v.ok else math.nan)
                every += ys
                ax.plot(xs, ys, marker="o", markersize=3, linewidth=1, color=cmap(i % 20), label=tr)
            ax.set_title(mode)
            ax.set_xticks(xs, ticks, rotation=45, ha="right", fontsize=7)
            ax.grid(alpha=0.3, which="both")
        log = _log_axis(axes[0][0], every)
        axes[0][0].set_ylabel(f"{unit_label}, log scale" if log else unit_label)
        axes[0][-1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=7)
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
th:first-child, td:first-child, .figure { text-align: left; }
img { max-width: 100%; display: block; margin: 0.6em 0; }
.worse { color: #b00; } .better { color: #070; }
.note { color: #555; font-size: 0.9em; }
"""


def _img(png: str, alt: str) -> str:
    e = html.escape
    return f'<figure><img src="{e(png)}" alt="{e(alt)}" title="{e(alt)}"><figcaption class="note">{e(alt)}</figcaption></figure>'


def _mode_span(mode: str) -> str:
    return f'<span style="color:{color(mode)}">{html.escape(mode)}</span>'


def headline_html(replays: dict) -> str:
    """The headline table: per trace (biggest difference first), each figure
    that differs, the baseline's value and each alternative's with its ratio."""
    e = html.escape
    per_trace, same = headline(replays)
    modes = order_modes(next(iter(replays.values())))
    out = ['<h2 id="headline">Headline: each preset against ' + _mode_span(modes[0]) + ", per trace</h2>"]
    seeds = next(iter(next(iter(replays.values())).values())).get("seeds")
    trust = (f"seed 0's values, [min..max] over {seeds} seeds that perturb costs, timer lateness and timestamps; a "
             f"difference is real only where the ranges do not overlap, else <i>{e(WITHIN_SPREAD)}</i>" if seeds
             else "one deterministic replay each: a difference may sit on a knife edge of the model "
                  "(<code>--seeds K</code> gives each figure its spread)")
    out.append(
        f'<p class="note">What holding the heap lock costs the program and what the scavenger returns to the OS, '
        f"in virtual time ({trust}). Only figures where a preset differs from "
        f"{e(modes[0])} by {MIN_CHANGE:.0%} or more; the traces with the biggest difference first. "
        'Ratio &gt; 1: more than the baseline (<span class="worse">red</span> where more is worse).</p>'
    )
    if per_trace:
        out.append('<table><tr><th>trace</th><th class="figure">figure</th>' + "".join(
            f"<th>{_mode_span(m)}{' (baseline)' if i == 0 else ''}</th>" for i, m in enumerate(modes)) + "</tr>")
        for lines in per_trace:
            for i, line in enumerate(lines):
                unit = unit_of(line.field)
                row = f'<tr><td rowspan="{len(lines)}">{e(line.trace)}</td>' if i == 0 else "<tr>"
                row += (f'<td class="figure">{e(line.label)}</td><td>{e(human(line.values[line.baseline], unit))}'
                        f'{_range_html(line, line.baseline, unit)}</td>')
                for m in modes[1:]:
                    r = line.ratio(m)
                    verdict = line.verdict(m) if r != 1 else ""
                    cls = "" if line.field == "released_bytes" or r == 1 or verdict == WITHIN_SPREAD else (
                        " class=worse" if r > 1 else " class=better")
                    mark = f"<br><i>{e(verdict)}</i>" if verdict else ""
                    row += f"<td{cls}>{e(human(line.values[m], unit))} ({e(ratio_text(r))}){_range_html(line, m, unit)}{mark}</td>"
                out.append(row + "</tr>")
        out.append("</table>")
    if same:
        out.append(f'<p class="note">No headline figure differs by {MIN_CHANGE:.0%} or more in: {e(", ".join(same))}.</p>')
    return "\n".join(out)


def _range_html(line, mode: str, unit: str) -> str:
    if line.ranges is None:
        return ""
    lo, hi = line.ranges[mode]
    return f'<br><span class="note">[{html.escape(human(lo, unit))}..{html.escape(human(hi, unit))}]</span>'


def summary_html(replays: dict) -> str:
    e = html.escape
    first = next(iter(replays.values()))
    modes = order_modes(first)
    fields = [(f, head) for f, head in SUMMARY if all(f in d for d in first.values())]
    out = ['<h2 id="summary">Summary per trace</h2>',
           f'<p class="note">Each cell: {" / ".join(_mode_span(m) for m in modes)}. Virtual time, except the '
           "simulator's own speed (wall clock, noisy on shared cores).</p>",
           "<table><tr><th>trace</th><th>events</th>" + "".join(f"<th>{e(head)}</th>" for _, head in fields) + "</tr>"]
    for label, by in replays.items():
        cells = []
        for f, _ in fields:
            unit = unit_of(f)
            cells.append(" / ".join(f'<span style="color:{color(m)}">{e(human(by[m][f], unit))}</span>' for m in modes))
        out.append(f"<tr><td>{e(label)}</td><td>{by[modes[0]]['events']:,}</td>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def build_report(traces, out_dir, *, asv_results=None, machine=None, jobs: int = 1, cost_model=None,
                 seeds: int = 1) -> Path:
    """Write out_dir/index.html (and its PNGs); return its path.  ``seeds`` > 1: every figure with its
    range over that many seeds (pagealloc.sim.spread)."""
    traces = [Path(t) for t in traces]
    if not traces and asv_results is None:
        raise UserError("report: nothing to report: give TRACE files and/or --asv-results DIR")
    results = None
    if asv_results is not None:
        from pagealloc.results.asvresults import load_results

        results = load_results(asv_results)
        results.for_machine(machine)  # fails early on an ambiguous or unknown machine
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{out_dir}: cannot write: {e}") from None
    replays = replay_all(traces, jobs=jobs, cost_model=cost_model, seeds=seeds) if traces else {}

    e = html.escape
    modes = order_modes(next(iter(replays.values()))) if replays else []
    body = [f"<h1>pagealloc report: {' vs '.join(e(m) for m in modes) or 'asv results'}</h1>"]
    body.append(
        '<p class="note">A Go 1.14 page allocator model, replaying heap traces. Presets: <b>go1.14</b> as shipped '
        "(the background scavenger drops the heap lock between steps; heap growth and FreeOSMemory hold it); "
        "<b>unlocked</b>: the background scavenger and FreeOSMemory drop it; <b>locked</b>: every site holds it. "
        "Times in virtual nanoseconds unless marked wall clock.</p>"
    )
    if replays:
        body.append(headline_html(replays))
        body.append(summary_html(replays))
        stall, stall_label = (("p_stall_ns", "P-stall") if "p_stall_ns" in next(iter(replays.values()))[modes[0]]
                              else ("mutator_stall_ns", "mutator stall"))
        body.append('<h2 id="per-mode">Released bytes and stall per mode</h2>')
        body.append('<p class="note">Log axis where the traces span a factor of 10 or more, so that the largest '
                    "does not hide the others; a zero is written as 0."
                    + (" Black whiskers: each figure's range over the seeds." if seeds > 1 else "") + "</p>")
        png = plot_per_mode(replays, "released_bytes", "released bytes per trace", "bytes", out_dir, "released.png")
        body.append(_img(png, f"released bytes per trace, {' vs '.join(modes)}"))
        png = plot_per_mode(replays, stall, f"{stall_label} per trace (virtual)", "ns", out_dir, "stall.png")
        body.append(_img(png, f"{stall_label} per trace, {' vs '.join(modes)}"))
        body.append('<h2 id="retained">Retained bytes over time</h2>')
        for label, by in replays.items():
            png, caption = plot_retained(label, {m: by[m] for m in modes}, out_dir)
            body.append(_img(png, caption))
    if results is not None:
        figs, runs = plot_across_commits(results, machine, out_dir)
        body.append('<h2 id="commits">Across commits (asv results)</h2>')
        body.append(
            f'<p class="note">{len(runs)} commit(s) from {e(str(results.folder))}, machine '
            f"{e(runs[0].machine if runs else '?')}: {', '.join(e(r.commit[:8]) for r in runs)}. "
            "Log y axis, so that one trace does not squash the others (zero values are not drawn).</p>"
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
