"""A new user's first hour (issue 13), end to end in a temporary copy of the project.

The copy has three commits and a three-trace corpus: the bundled
``synth-churn``, a tiny synthetic trace calling FreeOSMemory and burst-idle-p2.  The sequence the issue
reported, with a few benchmarks (BENCH) to stay quick:

1. the quick start, ``scripts/main``: HEAD and, as its short history, the
   commit before it;
2. a commit raising the per-page cost of releasing memory
   (``madvise_free_page_ns``: since Go 1.14 releases with MADV_FREE by
   default, this is the cost ``madvise_page_ns`` was when the issue was
   filed);
3. ``.venv/bin/asv run --python=same --quick --set-commit-hash HEAD`` by
   hand, as the README says (ASV_PYTHONPATH stands in for the clone's
   editable install: the shared virtualenv has another checkout's);
4. ``asv compare -f 1.5 --split OLD NEW``, and ``scripts/compare OLD NEW``:
   every figure the commit moved the bad way beyond 1.5x is flagged (which
   ones, and their values, the test learns by replaying the traces with
   both costs: the model keeps changing, and virtual time is exact).

Then what a person sees of the dashboard and the report that the quick
start published, in headless Chromium.

Slow (a few minutes), marked ``slow``; it runs in the default test command.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import pagealloc
from pagealloc.results.gate import direction
from asvproject import ROOT, browser, commit_edit, console_errors, make_project, shot_without_errors, synth, wait_for

BENCH = r"^bench_replay\.(Replay\.time_replay|ReplayMetrics\.track_(lock_hold_max_ns|released_bytes|mutator_stall_ns))"
ASV = Path(sys.executable).parent / "asv"
COST, RAISED = "madvise_free_page_ns", 1000  # the commit: this cost, raised to this many ns

pytestmark = pytest.mark.slow


def _run(cmd, repo, env, timeout=1800):
    p = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout + p.stderr


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    if not ASV.exists():
        pytest.skip(f"no {ASV}: the README's hand commands need the virtualenv's asv")
    tmp = tmp_path_factory.mktemp("quickstart")
    traces = {"synth-churn": ROOT / "traces" / "synth-churn.parquet",
              # FreeOSMemory: where the presets differ and the raised madvise cost moves the lock's holds
              # (on busy synthetic Ps the Go 1.14 background scavenger hardly runs: its timers wait)
              "tiny-fom": synth(tmp / "a.parquet", "freeosmemory", 20000, 2, "tiny-fom"),
              # a program idle between bursts: its background scavenger runs, paced by the madvise cost
              "burst-idle": ROOT / "traces" / "burst-idle-p2.parquet"}
    repo, env = make_project(tmp, traces)
    first = commit_edit(repo, "README.md", "# pagealloc", "# pagealloc\n\nA docs commit.", "docs 1")
    old = commit_edit(repo, "README.md", "A docs commit.", "Another docs commit.", "docs 2")
    main = _run([sys.executable, "scripts/main", "-b", BENCH], repo, env)
    costs = repo / "pagealloc" / "sim" / "costmodel.py"
    current = re.search(rf"{COST}: int = [\d_]+", costs.read_text()).group(0)
    new = commit_edit(repo, "pagealloc/sim/costmodel.py", current, f"{COST}: int = {RAISED}", "raise the per-page madvise cost")
    hand = _run([str(ASV), "run", "--python=same", "--quick", "--set-commit-hash", "HEAD", "-b", BENCH], repo,
                {**env, "ASV_PYTHONPATH": str(repo)})
    asv_compare = _run([str(ASV), "compare", "-f", "1.5", "--split", old, new], repo, env)
    ours = _run([sys.executable, "scripts/compare", old, new], repo, env)
    return {"repo": repo, "env": env, "commits": [first, old, new], "main": main, "hand": hand,
            "asv_compare": asv_compare, "compare": ours}


@pytest.fixture(scope="module")
def expected(quickstart):
    """{(track method, trace, mode): (before, after)}: the figures of BENCH's
    track_* benchmarks without and with the raised cost, replayed here (the
    copy's pagealloc is this one; virtual time is deterministic)."""
    from pagealloc.sim.costmodel import CostModel

    raised = dataclasses.replace(CostModel(), **{COST: RAISED})
    out = {}
    for trace in sorted((quickstart["repo"] / "traces").glob("*.parquet")):
        for mode in pagealloc.MODES:
            a, b = (pagealloc.replay(trace, mode, cost_model=c) for c in (CostModel(), raised))
            for field in ("lock_hold_max_ns", "released_bytes", "mutator_stall_ns"):
                got = "p_stall_ns" if field == "mutator_stall_ns" else field  # the asv name of p_stall_ns
                out[(f"bench_replay.ReplayMetrics.track_{field}", trace.stem, mode)] = (getattr(a, got), getattr(b, got))
    return out


def _show(*outputs) -> str:
    return "".join(f"\n--- output ---\n{out[-5000:]}" for _, out in outputs)


def _sections(asv_compare_output: str) -> dict[str, str]:
    """asv compare --split's sections: {"improved": text, "stayed the same": ..., "got worse": ...}."""
    parts = re.split(r"^Benchmarks that (?:have )?(improved|stayed the same|got worse|are not comparable):$",
                     asv_compare_output, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def _line(text: str, *words) -> str | None:
    return next((line for line in text.splitlines() if all(w in line for w in words)), None)


def test_quick_start_and_the_hand_run_write_one_environment(quickstart):
    status, out = quickstart["main"]
    assert status == 0, _show(quickstart["main"])
    assert "history: 1 earlier commit(s) to benchmark" in out, _show(quickstart["main"])
    assert quickstart["hand"][0] == 0, _show(quickstart["hand"])
    envs = {}
    for path in (quickstart["repo"] / ".asv" / "results").glob("*/*.json"):
        if path.name != "machine.json":
            d = json.loads(path.read_text())
            envs[d["commit_hash"]] = d["env_name"]
    assert set(quickstart["commits"]) == set(envs), envs  # HEAD and one before it, then the hand run
    assert len(set(envs.values())) == 1, envs


def test_asv_compare_flags_the_change(quickstart, expected):
    """Every directed figure the commit moved the bad way beyond 1.5x is under
    asv's "got worse", with its exact values."""
    status, out = quickstart["asv_compare"]
    assert status == 0, _show(quickstart["asv_compare"])
    worse = _sections(out).get("got worse", "")
    moved = [k for k, (a, b) in expected.items() if direction(k[0]) > 0 and b > 1.5 * a]
    assert moved, f"the raised cost no longer moves any figure beyond 1.5x: {expected}"
    for method, trace, mode in moved:
        line = _line(worse, f"{method}('{trace}', '{mode}')")
        assert line and line.split("|")[1].strip() == "+", (method, trace, mode, _show(quickstart["asv_compare"]))
        before, after = (float(line.split("|")[i]) for i in (2, 3))
        assert (before, after) == expected[(method, trace, mode)], line


def test_compare_applies_the_suites_directions(quickstart, expected):
    """What got worse, by the suite's rules, is what asv says got worse; a
    figure with no better direction (released bytes) is "changed"."""
    status, out = quickstart["compare"]
    assert status == 0, _show(quickstart["compare"])
    assert "WARNING" not in out, _show(quickstart["compare"])
    worse = out.split("got worse:", 1)[1].split("\n\n", 1)[0]
    changed = out.split("changed, not gated (no better direction):", 1)[-1].split("\n\n", 1)[0]
    for (method, trace, mode), (a, b) in expected.items():
        beyond = b > 1.5 * a or a > 1.5 * b
        ours = f"{method}({trace}, {mode})"
        if direction(method) > 0 and b > 1.5 * a:
            assert "regressed, lower is better" in (_line(worse, ours) or ""), (ours, _show(quickstart["compare"]))
        elif direction(method) == 0 and beyond:
            assert "changed, no direction" in (_line(changed, ours) or ""), (ours, _show(quickstart["compare"]))
        else:
            assert ours not in worse, (ours, _show(quickstart["compare"]))
    assert any(direction(m) == 0 and (b > 1.5 * a or a > 1.5 * b) for (m, _, _), (a, b) in expected.items()), expected
    asv_worse = _sections(quickstart["asv_compare"][1]).get("got worse", "")
    asv_better = _sections(quickstart["asv_compare"][1]).get("improved", "")
    for line in (x for x in worse.splitlines() if "regressed" in x):
        name = line.split("|")[5].strip()
        bench, params = name.split("(", 1)
        asv_name = f"{bench}({', '.join(repr(p) for p in params.rstrip(')').split(', '))})"
        assert asv_name in asv_worse and asv_name not in asv_better, (asv_name, _show(quickstart["asv_compare"]))


def test_asv_compare_lists_figures_without_a_direction_apart(quickstart, expected):
    """asv itself (through pagealloc.results.asvplugin, loaded by asv.conf.json)
    lists released bytes apart, marked by which way they went, never under
    improved, stayed the same or got worse."""
    from pagealloc.results.asvplugin import NO_DIRECTION_TITLE

    out = quickstart["asv_compare"][1]
    directed, title, apart = out.partition(NO_DIRECTION_TITLE)
    assert title, _show(quickstart["asv_compare"])
    undirected = [(k, v) for k, v in expected.items() if direction(k[0]) == 0]
    assert any(b > 1.5 * a or a > 1.5 * b for _, (a, b) in undirected), undirected
    for (method, trace, mode), (a, b) in undirected:
        name = f"{method}('{trace}', '{mode}')"
        assert name not in directed, (name, _show(quickstart["asv_compare"]))
        line = _line(apart, name)
        assert line, (name, _show(quickstart["asv_compare"]))
        want = "+" if b > 1.5 * a else "-" if a > 1.5 * b else ""
        assert line.split("|")[1].strip() == want, line


def test_compare_is_loud_when_nothing_compares(quickstart, expected, tmp_path):
    """Results of NEW moved to another environment: asv compare would print n/a
    for everything; scripts/compare warns and still compares.  Results with
    no benchmark in common: an error."""
    repo, env = quickstart["repo"], quickstart["env"]
    old, new = quickstart["commits"][1:]
    results = tmp_path / "results"
    shutil.copytree(repo / ".asv" / "results", results)
    path = next(p for p in results.glob(f"*/{new[:8]}-*.json"))
    d = json.loads(path.read_text())
    d["env_name"] = "existing-py_somewhere_else_python"
    path.unlink()
    (path.parent / f"{new[:8]}-{d['env_name']}.json").write_text(json.dumps(d))
    status, out = _run([sys.executable, "scripts/compare", old, new, "--results", str(results)], repo, env)
    assert status == 0, out
    assert "WARNING" in out and "no results in a common environment" in out, out
    method, trace, mode = next(k for k, (a, b) in expected.items() if direction(k[0]) > 0 and b > 1.5 * a)
    assert f"{method}({trace}, {mode})" in out.split("got worse:", 1)[1], out
    d["results"] = {"bench_replay.ReplayMetrics.track_nothing_in_common": d["results"].popitem()[1]}
    (path.parent / f"{new[:8]}-{d['env_name']}.json").write_text(json.dumps(d))
    status, out = _run([sys.executable, "scripts/compare", old, new, "--results", str(results)], repo, env)
    assert status == 2 and "NO COMMON BENCHMARKS" in out, out


# -- what a person sees after the quick start --


@pytest.fixture(scope="module")
def seen(quickstart, tmp_path_factory):
    assert quickstart["main"][0] == 0, _show(quickstart["main"])
    with browser(quickstart["repo"] / ".asv" / "html", tmp_path_factory.mktemp("chromium-profile"),
                 tmp_path_factory.mktemp("screenshots")) as b:
        yield b


def test_dashboard_front_page_has_lines_and_links_the_report(seen):
    driver, base, shots = seen
    driver.get(f"{base}/index.html")
    wait_for(driver, "return document.querySelectorAll('.benchmark-container').length > 0", "the benchmark grid")
    # Every thumbnail draws its graph (the grid loads them as they come into view).
    n = wait_for(driver, """
        window.scrollTo(0, document.body.scrollHeight);
        const boxes = [...document.querySelectorAll('.benchmark-container')];
        return boxes.every(b => b.querySelector('canvas')) && boxes.length;
    """, "every thumbnail's graph")
    names = driver.execute_script("return [...document.querySelectorAll('.benchmark-text')].map(e => e.innerText)")
    assert n == 4 and not any("Heavy" in name for name in names), names
    driver.execute_script("window.scrollTo(0, 0)")
    time.sleep(0.5)
    driver.save_screenshot(str(shots / "dashboard-front.png"))
    link = driver.find_element("css selector", "#nav-li-pagealloc-report a")
    assert "Report" in link.text
    link.click()
    wait_for(driver, "return document.querySelector('h2#headline')", "the report, from the dashboard's link")
    assert console_errors(driver) == []


def test_benchmark_page_opens_on_every_trace_and_mode(seen):
    driver, base, shots = seen
    driver.get(f"{base}/index.html")
    wait_for(driver, "return document.querySelector('a.benchmark-container[href*=\"track_lock_hold_max_ns\"]')", "the grid")
    driver.find_element("css selector", 'a.benchmark-container[href*="track_lock_hold_max_ns"]').click()
    labels = wait_for(driver, """
        const l = [...document.querySelectorAll('.legendLabel')].map(e => e.innerText);
        return l.length && l;
    """, "the graph's legend")
    assert len(labels) == 3 * len(pagealloc.MODES), labels  # asv alone: 3 traces x the first 2 modes
    for mode in pagealloc.MODES:
        assert sum(f"mode-{mode};" in label for label in labels) == 3, labels
    shot_without_errors(driver, shots, "dashboard-track_lock_hold_max_ns")


def test_report_first_screen_is_the_headline(seen):
    driver, base, shots = seen
    driver.get(f"{base}/report/index.html")
    first = wait_for(driver, "const h = document.querySelector('h2'); return h && h.innerText", "the report")
    assert first.startswith(f"Headline: each preset against {pagealloc.MODES[0]}"), first
    top, rows, header = driver.execute_script("""
        const t = document.querySelector('table');
        return [t.getBoundingClientRect().top, t.rows.length, t.rows[0].innerText];
    """)
    assert top < driver.execute_script("return window.innerHeight") and rows > 1, (top, rows)
    for mode in pagealloc.MODES:
        assert mode in header, header
    captions = driver.execute_script("return [...document.querySelectorAll('figcaption')].map(e => e.innerText)")
    retained = [c for c in captions if "retained bytes over time" in c]
    assert len(retained) == 3 and all("Largest gap" in c or "no difference" in c for c in retained), retained
    shot_without_errors(driver, shots, "report-first-screen")


def test_publish_after_a_bare_asv_publish(quickstart, seen):
    """A hand `asv publish` rewrites the dashboard without the report and with
    CDN scripts; scripts/publish brings both back from .asv/report."""
    repo, env = quickstart["repo"], quickstart["env"]
    html = repo / ".asv" / "html"
    assert _run([str(ASV), "publish"], repo, env)[0] == 0
    assert not (html / "report").exists() and "https://" in (html / "index.html").read_text()
    assert (repo / ".asv" / "report" / "index.html").exists()  # where asv publish does not reach
    status, out = _run([sys.executable, "scripts/publish", "--no-report"], repo, env)
    assert status == 0, out
    page = (html / "index.html").read_text()
    assert (html / "report" / "index.html").exists() and 'src="https://' not in page and "report/index.html" in page
    driver, base, shots = seen
    driver.get(f"{base}/index.html")
    wait_for(driver, "return document.querySelectorAll('.benchmark-container canvas').length > 0", "the grid")
    shot_without_errors(driver, shots, "dashboard-after-publish")
