"""The Go 1.14.6 corpus against the runtime that recorded it (issue 12's validation).

Every go1.14-runtime trace of traces/manifest.json is replayed in the
baseline preset and held against its reference:

- spans: the heap model, fed the rows in order, places every one at its
  recorded address; the replay (its default timing for these traces,
  ``ordered``: the rows' order is the order the runtime took the heap lock
  in) meets ADDRESS_THRESHOLD in every preset; heap_sys and the number of
  heap growths are the runtime's exactly, in the walk and in the replays;
- pacing: the scavenge goal the model sets at each GC is the runtime's;
- FreeOSMemory: retained bytes just after each call are exact (scavengeAll
  releases every free page, so only the spans decide them);
- with the runtime's background releases put back (sim.reference.heap_walk:
  its scavenger is paced by time), what heap growth and FreeOSMemory release
  is the runtime's to the byte;
- background: the model's own background scavenger, on the recording's P
  schedule, lies within BACKGROUND_FACTOR (bytes) and BACKGROUND_COUNT_FACTOR
  (releases) of the real one (a measured envelope; see
  BACKGROUND_FACTOR for how far and why), and what is retained at the end
  within RETAINED_FINAL_TOLERANCE;
- the recording itself: Go's pacing formula on the recorded per-GC figures
  gives every scavenge goal the runtime set.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from functools import cache
from pathlib import Path

import pyarrow as pa
import pyarrow.compute  # noqa: F401 (pa.compute)
import pytest

import pagealloc
from pagealloc.sim import replay as engine
from pagealloc.sim.reference import free_os_memory_retained, heap_walk
from pagealloc.trace import trace_metadata

ROOT = Path(__file__).resolve().parents[2]
ENTRIES = [e for e in json.loads((ROOT / "traces" / "manifest.json").read_text())["traces"] if e["source"] == "go1.14-runtime"]
BASELINE = getattr(engine, "BASELINE_MODE", "go1.14" if "go1.14" in pagealloc.MODES else "unlocked")

# Issue 12's goal, for the replay.  Measured: every span of the 16 traces
# lands at its recorded address, in the heap walk and in the replay in every
# preset (ordered timing; under recorded timing 2.5-9.9% of the spans of the
# three busiest GOMAXPROCS-8 traces land elsewhere: see README, "Timing").
ADDRESS_THRESHOLD = 0.999
# Measured (go1.14 preset, default cost model, on the bundled corpus recorded on
# an idle machine, the scavenger scheduled by Go 1.14.6's rules over each
# recording's own P schedule with the recorded scavenger taken out of it, its
# crit priced by the cost model, the TLB shootdown included): the model's
# background scavenger releases 0.92x (go114-png-decode-p2) to 1.44x
# (go114-fragmentation-p2) as many times as Go 1.14.6 did, and 0.92x to 1.44x
# the bytes: the bounds on all 17 (fragmentation-p8, the last one out,
# came in at 1.35x with session 7's timer rules; docs/fidelity-log.md, "Session 7").
# Fed the crits the runtime measured instead (RECORDED_CRIT_*), counts are within
# 0.87x-1.25x: the bounds on all 17.
BACKGROUND_FACTOR = (0.5, 2)  # bytes, model / real: the bounds
BACKGROUND_COUNT_FACTOR = (0.67, 1.5)  # releases, model / real: the bounds
PAGE, HUGE_PAGES = 8192, 256  # a Go page; Go pages in a 2 MiB huge page
# Where the model's walk met whole free huge pages Go's did not: total bytes out of the 0.5-2x,
# the bytes less them within it: name -> (model's, runtime's).  growth-storm-p2 was here in session 11
# (5 against 1, 2.35x); with sysmon's backoff (sim/sysmon.py) it draws 3 against 1, 1.70x
# (docs/fidelity-log.md, "Session 12").  None is out today.
HUGE_PAGE_DRAWS: dict[str, tuple[int, int]] = {}
RECORDED_CRIT_COUNT_FACTOR = (0.67, 1.5)
RECORDED_CRIT_FACTOR = (0.5, 2)
RETAINED_FINAL_TOLERANCE = 0.2  # measured: 0.83 on go114-burst-idle-p2, at the program's exit


def path_of(entry) -> Path:
    return ROOT / "traces" / entry["file"]


@cache
def replayed(name: str, mode: str = BASELINE):
    entry = next(e for e in ENTRIES if e["name"] == name)
    return pagealloc.replay(path_of(entry), mode)


def recorded_schedule(name: str):
    """The named recording's Ps' schedule as the replay builds it (``p_schedule_of``), and the runtime's
    own background scavenger iterations."""
    from pagealloc.trace import scavenger_iterations

    path = path_of(next(e for e in ENTRIES if e["name"] == name))
    return engine.p_schedule_of(path, trace_metadata(path)["gomaxprocs"]), scavenger_iterations(path).to_pandas()


@cache
def walked(name: str):
    entry = next(e for e in ENTRIES if e["name"] == name)
    return heap_walk(path_of(entry))


def reference(entry) -> dict:
    return trace_metadata(path_of(entry))["reference"]


def test_the_corpus_has_go_1_14_traces_at_2_4_and_8_ps():
    procs = {trace_metadata(path_of(e))["gomaxprocs"] for e in ENTRIES}
    assert len(ENTRIES) >= 17 and procs == {2, 4, 8}


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["name"] for e in ENTRIES])
def test_every_recording_carries_the_ps_schedule_and_the_scavenger(entry):
    """Format v3: the P stream covers every P, and each background release belongs to a recorded iteration."""
    from pagealloc.trace import p_schedule, scavenger_iterations

    meta = trace_metadata(path_of(entry))
    sched, iters = p_schedule(path_of(entry)), scavenger_iterations(path_of(entry))
    assert sched is not None and iters is not None
    assert set(sched.column("p").to_pylist()) == set(range(meta["gomaxprocs"]))
    slept = iters.filter(pa.compute.equal(iters.column("outcome"), "sleep"))
    assert sum(slept.column("released_bytes").to_pylist()) == meta["reference"]["released_bytes"]["background"]


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e["name"])
def test_the_heap_model_places_every_span_where_the_runtime_did(entry):
    w, ref = walked(entry["name"]), reference(entry)
    assert w.agreement == 1.0, w.first_mismatch
    assert (w.heap_sys_bytes, w.heap_growths) == (ref["heap_sys_bytes"], ref["heap_growths"])


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e["name"])
def test_every_gc_sets_the_runtimes_scavenge_goal(entry):
    """Fed the recorded rows (gc_start carries heap_live, gc the next goal), the model's pacing gives Go's goal at every GC."""
    w = walked(entry["name"])
    assert w.goals == len(reference(entry)["gc_end"]["rows"]) > 0
    assert w.goals_agreed == w.goals, w.first_goal_mismatch


@pytest.mark.parametrize("mode", pagealloc.MODES)
@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e["name"])
def test_the_replay_places_spans_where_the_runtime_did(entry, mode):
    r, ref = replayed(entry["name"], mode), reference(entry)
    assert r.timing == "ordered"
    assert r.address_agreement >= ADDRESS_THRESHOLD
    assert (r.heap_sys_bytes, r.heap_growths) == (ref["heap_sys_bytes"], ref["heap_growths"])
    assert r.reference.ratios["heap_sys_bytes"] == r.reference.ratios["heap_growths"] == 1.0


@pytest.mark.parametrize("entry", [e for e in ENTRIES if "freeosmemory" in e["name"]], ids=lambda e: e["name"])
def test_retained_after_each_free_os_memory_is_exact(entry):
    for pairs in (walked(entry["name"]).free_os_memory_retained, free_os_memory_retained(path_of(entry), replayed(entry["name"]))):
        assert len(pairs) == 12 and [m for m, _ in pairs] == [r for _, r in pairs]


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e["name"])
def test_growth_and_forced_releases_with_the_real_background_put_back(entry):
    w, ref = walked(entry["name"]), reference(entry)
    assert w.background_not_free == 0
    assert {path: w.released[path] for path in ("growth", "forced")} == \
        {path: ref["released_bytes"][path] for path in ("growth", "forced")}


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e["name"])
def test_background_releases_within_the_measured_envelope(entry):
    """The issue's bounds: count, and bytes less the whole huge pages on every recording; total bytes on
    every recording but those HUGE_PAGE_DRAWS names, pinned there to their whole huge pages."""
    r = replayed(entry["name"])
    low, high = BACKGROUND_FACTOR
    less = [x.released_background_bytes - x.released_background_whole_huge_pages * HUGE_PAGES * PAGE for x in (r, r.reference)]
    assert less[1] * low <= less[0] <= less[1] * high or max(less) < 1 << 20, less
    real, model = r.reference.released_background_bytes, r.released_background_bytes
    within = real * low <= model <= real * high or max(real, model) < 1 << 20
    huge = (r.released_background_whole_huge_pages, r.reference.released_background_whole_huge_pages)
    assert within != (entry["name"] in HUGE_PAGE_DRAWS), (model, real, huge)
    assert huge == HUGE_PAGE_DRAWS.get(entry["name"], huge), huge
    count, real_count = r.released_background_count, r.reference.released_background_count
    low, high = BACKGROUND_COUNT_FACTOR
    assert real_count * low <= count <= real_count * high or max(count, real_count) < 20, (count, real_count)
    assert abs(r.reference.ratios["retained_final_bytes"] - 1) <= RETAINED_FINAL_TOLERANCE


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e["name"])
def test_a_background_release_is_one_page_or_a_whole_huge_page(entry):
    """Why a run's background bytes are a draw where its count is not: each bgscavenge iteration asks
    scavengeOne for one physical page, and findScavengeCandidate grows it to the whole huge page around
    it only where that huge page is free and none of it released yet, 256 pages at once.  So bytes =
    one-page releases + 2 MiB a whole huge page, in the model and in the runtime, and the whole huge
    pages are counted on both sides (ReplayResult / Reference.released_background_whole_huge_pages)."""
    r = replayed(entry["name"])
    rows = reference(entry)["background_releases"]["rows"]
    assert {npages for _, _, npages in rows} <= {1, HUGE_PAGES}
    real_huge = sum(npages == HUGE_PAGES and page % HUGE_PAGES == 0 for _, page, npages in rows)
    assert r.reference.released_background_whole_huge_pages == real_huge
    for side in (r, r.reference):
        count, huge = side.released_background_count, side.released_background_whole_huge_pages
        assert side.released_background_bytes == (count - huge + huge * HUGE_PAGES) * PAGE, side


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e["name"])
def test_with_the_recorded_crits_the_scavenger_runs_when_gos_did(entry):
    """Go's pacing fed the runtime's own crits: what is left is when the scavenger runs (the timer
    rules, the run queue after a GC, the P it needs), and that is within the issue's bounds."""
    r = pagealloc.replay(path_of(entry), BASELINE, scavenger_crit="recorded")
    count, real_count = r.released_background_count, r.reference.released_background_count
    low, high = RECORDED_CRIT_COUNT_FACTOR
    assert real_count * low <= count <= real_count * high, (count, real_count)
    real, model = r.reference.released_background_bytes, r.released_background_bytes
    low, high = RECORDED_CRIT_FACTOR
    assert real * low <= model <= real * high, (model, real)


def test_the_recorded_crits_redrawn_are_the_same_crits_in_another_order_within_each_block():
    """``spread.redrawn_crits`` ("Session 29"): seed 0 is the recorded order; another seed puts each block
    of REDRAW_BLOCK one-page releases' crits in another order, the same on every call, and leaves the
    other releases' where they were.  Fed with ``crits``, the recorded order replays to exactly
    --scavenger-crit recorded's figures; another order moves them; ``crits`` without it is refused."""
    from pagealloc.errors import UserError
    from pagealloc.sim.replay import recorded_crits
    from pagealloc.sim.spread import REDRAW_BLOCK, redrawn_crits
    from pagealloc.trace.read import iterations_where, scavenger_iterations

    path = str(path_of(next(e for e in ENTRIES if e["name"] == "go114-service-p4")))
    recorded = recorded_crits(path, path)
    released = iterations_where(scavenger_iterations(path), "sleep", "released_bytes")
    one = [i for i, b in enumerate(released) if b == PAGE]
    assert len(one) > 4 * REDRAW_BLOCK and len(one) < len(recorded)  # some releases are whole huge pages
    assert redrawn_crits(path, path, 0) == recorded
    first, again, second = (redrawn_crits(path, path, seed) for seed in (1, 1, 2))
    assert first == again and first != recorded and second != first
    for start in range(0, len(one), REDRAW_BLOCK):
        block = one[start:start + REDRAW_BLOCK]
        assert sorted(first[i] for i in block) == sorted(recorded[i] for i in block)
    assert all(first[i] == recorded[i] for i in set(range(len(recorded))) - set(one))
    fed = pagealloc.replay(path, BASELINE, scavenger_crit="recorded")
    assert pagealloc.replay(path, BASELINE, scavenger_crit="recorded", crits=recorded).deterministic() == fed.deterministic()
    assert pagealloc.replay(path, BASELINE, scavenger_crit="recorded", crits=first).deterministic() != fed.deterministic()
    with pytest.raises(UserError, match="only under scavenger_crit='recorded'"):
        pagealloc.replay(path, BASELINE, crits=recorded)


@pytest.mark.parametrize("name", ["go114-service-p4", "go114-churn-p8"])
def test_at_the_recorded_crit_level_the_models_one_page_crit_averages_the_runtimes(name):
    """--scavenger-crit level: the prices of a release scaled by one pilot replay put the model's mean
    one-page crit within 10% of the runtime's in that recording (unscaled, service-p4's is 0.85x the
    runtime's, churn-p8's 0.69x), the shootdown priced by the same factor; both engines agree."""
    from pagealloc.sim.replay import recorded_one_page_crit_mean_ns

    entry = next(e for e in ENTRIES if e["name"] == name)
    path = path_of(entry)
    model = pagealloc.replay(path, BASELINE)
    level = pagealloc.replay(path, BASELINE, scavenger_crit="level")
    real = recorded_one_page_crit_mean_ns(path, name)
    assert 0.9 <= level.scavenger_one_page_crit_mean_ns / real <= 1.1, (level.scavenger_one_page_crit_mean_ns, real)
    assert abs(model.scavenger_one_page_crit_mean_ns / real - 1) > 0.1  # it had something to do
    factor = real / model.scavenger_one_page_crit_mean_ns
    assert level.tlb_shootdown_ns == round(model.tlb_shootdown_ns * factor)
    python = pagealloc.replay(path, BASELINE, scavenger_crit="level", engine="python").deterministic()
    assert python == pagealloc.replay(path, BASELINE, scavenger_crit="level", engine="compiled").deterministic()


def test_sysmons_in_run_probe_sets_the_level_of_a_releases_madvise_calls(tmp_path, capsys):
    """A recording with sysmon's release probe (record stream version 6), here service-p4 given one: the
    prices of a release are scaled so that the madvise calls of the model's one-page background releases
    average the probe's mean (within 8%: one pilot replay, and the cold start, which is not scaled, grows
    with the longer sleeps that dearer releases ask for; 0.97-1.02x on 120 fresh service runs, "Session
    23"), the rest of its crit left as it was; a call of
    1 ms or more (sysmon's thread off its CPU) is left out of the mean.  ``release_probe="around"``, a
    given cost model, and a probe of fewer than IN_RUN_MIN_SAMPLES calls leave the prices to the probes
    around the run; both engines agree."""
    from tracefiles import rewrite_metadata

    from pagealloc.sim.costmodel import CostModel
    from pagealloc.trace.shootdown import IN_RUN_COLUMNS, IN_RUN_MIN_SAMPLES

    src = path_of(next(e for e in ENTRIES if e["name"] == "go114-service-p4"))
    around = pagealloc.replay(src, BASELINE)
    calls = around.scavenger_one_page_madvise_mean_ns
    assert 0 < calls <= around.scavenger_one_page_crit_mean_ns
    level = round(1.6 * calls)

    def with_probe(n):
        def edit(doc):
            rows = [[10_000_000 * k, level, level // 2, 1, k % 256] for k in range(n)]
            rows.append([10_000_000 * n, 5_000_000, 4_000_000, 1, n % 256])  # off its CPU: left out
            doc["reference"]["release_probe"] = {"columns": IN_RUN_COLUMNS, "rows": rows}
        return edit

    probed, few = tmp_path / "probed.parquet", tmp_path / "few.parquet"
    rewrite_metadata(src, probed, with_probe(40))
    rewrite_metadata(src, few, with_probe(IN_RUN_MIN_SAMPLES - 1))
    in_run = pagealloc.replay(probed, BASELINE)
    # every probe had a P running: the model's releases beside running Ps are set to it (like_for_like)
    beside = around.scavenger_one_page_madvise_beside_mean_ns
    assert around.scavenger_one_page_releases > around.scavenger_one_page_alone and beside > 0
    assert 0.92 <= in_run.scavenger_one_page_madvise_beside_mean_ns / level <= 1.08, (in_run.scavenger_one_page_madvise_beside_mean_ns, level)
    assert in_run.tlb_shootdown_ns == round(around.tlb_shootdown_ns * level / beside)
    assert in_run.released_background_count < around.released_background_count  # dearer releases, longer sleeps

    def figures(r):
        return r.released_background_count, r.released_background_bytes, r.scavenger_one_page_crit_mean_ns, r.tlb_shootdown_ns

    assert figures(pagealloc.replay(probed, BASELINE, release_probe="around")) == figures(around)
    assert figures(pagealloc.replay(few, BASELINE)) == figures(around)
    given = CostModel()
    assert figures(pagealloc.replay(probed, BASELINE, cost_model=given)) == figures(pagealloc.replay(src, BASELINE, cost_model=given))
    python = pagealloc.replay(probed, BASELINE, engine="python").deterministic()
    assert python == pagealloc.replay(probed, BASELINE, engine="compiled").deterministic()
    # pagealloc info says so
    from pagealloc.cli import main

    assert main(["info", str(probed), str(few)]) == 0
    out = capsys.readouterr().out
    assert (f"release probe  41 calls by sysmon during the program: sysUnused of one page {level / 1e3:.1f} us on "
            f"average, its MADV_FREE {level // 2 / 1e3:.1f} (calls of 1 ms or more left out: 1); a P running at every "
            "one; the replay prices") in out, out
    assert f"release probe  {IN_RUN_MIN_SAMPLES} calls by sysmon during the program, too few" in out, out


def test_a_background_release_is_priced_at_the_probes_level_about_its_time(tmp_path, capsys):
    """The machine's state moves within a run and sysmon's probe follows it ("Session 28"): under
    ``release_probe="in-run"`` a background release is priced at the probe's level within
    LEVEL_HALF_WIDTH_NS of its step, relative to the probe's mean (``in_run_probe_levels``: each call
    relative to its class's mean, so interleaved idle probes do not read as a cheap machine, and capped
    at LEVEL_CAP times its class's median); ``in-run-mean`` prices every release at the mean.  Here the
    probe reads a dear second half; a probe with one level throughout prices as its mean, to the
    figure; both engines agree."""
    from tracefiles import rewrite_metadata

    from pagealloc.trace import trace_metadata
    from pagealloc.trace.shootdown import (IN_RUN_COLUMNS, LEVEL_CAP, LEVEL_HALF_WIDTH_NS, LEVEL_STEP_NS,
                                           PREEMPTED_NS, in_run_probe_levels)

    src = path_of(next(e for e in ENTRIES if e["name"] == "go114-service-p4"))
    g = trace_metadata(src)["gomaxprocs"]
    around = pagealloc.replay(src, BASELINE, release_probe="around")
    busy = round(1.5 * around.scavenger_one_page_madvise_beside_mean_ns)
    idle, half, n = busy // 6, 1_500_000_000, 300  # a probe every 10 ms over 3 s, every fifth with all Ps idle

    def probe(dear: bool, slow: bool):
        def edit(doc):
            rows = []
            for k in range(n):
                ts, alone = 10_000_000 * k, k % 5 == 0
                level = 3 if dear and ts >= half else 1
                rows.append([ts, (idle if alone else busy) * level, 1_000, g if alone else g - 1, k % 256])
            if slow:
                rows[21][1] = 30 * busy  # one slow call under 1 ms: counted as LEVEL_CAP times its class's median
            doc["reference"]["release_probe"] = {"columns": IN_RUN_COLUMNS, "rows": rows}
        return edit

    dear, flat = tmp_path / "dear.parquet", tmp_path / "flat.parquet"
    rewrite_metadata(src, dear, probe(dear=True, slow=True))
    rewrite_metadata(src, flat, probe(dear=False, slow=False))
    levels = in_run_probe_levels(trace_metadata(dear), str(dear), g)
    last = (n - 1) * 10_000_000
    assert levels.step_ns == LEVEL_STEP_NS
    # from the first call's step to the last's: none beyond, where a window would read only its edge's calls
    assert min(levels.permille) == 0 and max(levels.permille) == last // LEVEL_STEP_NS
    factors = [levels.at(k * LEVEL_STEP_NS) / 1000 for k in range(last // LEVEL_STEP_NS + 1)]
    reach = (21 * 10_000_000 + LEVEL_HALF_WIDTH_NS) // LEVEL_STEP_NS + 1  # the steps the slow call is near
    first = [f for k, f in enumerate(factors) if k >= reach and (k + 1) * LEVEL_STEP_NS + LEVEL_HALF_WIDTH_NS <= half]
    second = [f for k, f in enumerate(factors) if k * LEVEL_STEP_NS - LEVEL_HALF_WIDTH_NS >= half]
    # each class's calls relative to its class's mean: 1 and 3 about a mean of ~2, in per mille
    assert first and second and max(first) == min(first) and max(second) - min(second) <= 0.001
    assert 0.48 <= first[0] <= 0.51 and 1.46 <= second[0] <= 1.5, (first[0], second[0])
    middle = factors[reach:(half + LEVEL_HALF_WIDTH_NS) // LEVEL_STEP_NS + 1]
    assert all(a <= b for a, b in zip(middle, middle[1:])) and middle[-1] > 1.4, middle  # rising through the middle
    # the slow call (under PREEMPTED_NS, so not left out), capped at LEVEL_CAP times its class's median
    # (3 busy: 119 calls at 1, 120 at 3 and it) = 12 busy, ~5.9 relative: it lifts the 23-40 calls about
    # it by at most (5.9 - 0.5) / 23 ~ 0.24, where 30 busy (~14.6 relative) would lift them by ~0.61
    assert 30 * busy < PREEMPTED_NS
    assert first[0] + 0.1 < max(factors[:reach]) <= first[0] + 0.25, factors[:reach]
    # before the first call's step, after the last's, or with no probe near: the mean
    assert levels.at(-1) == levels.at((last // LEVEL_STEP_NS + 1) * LEVEL_STEP_NS) == levels.at(10**15) == 1000
    assert set(in_run_probe_levels(trace_metadata(flat), str(flat), g).permille.values()) == {1000}

    local = pagealloc.replay(dear, BASELINE)
    mean = pagealloc.replay(dear, BASELINE, release_probe="in-run-mean")
    assert local.tlb_shootdown_ns == mean.tlb_shootdown_ns  # the run's level, as calibrated, is the same
    # the first half's releases at half the mean's prices, the second's at 1.5 times: the cheap half paces faster
    assert local.scavenger_crit_p90_ns > 1.2 * mean.scavenger_crit_p90_ns, (local.scavenger_crit_p90_ns, mean.scavenger_crit_p90_ns)
    assert local.released_background_count > mean.released_background_count
    assert pagealloc.replay(dear, BASELINE, engine="python").deterministic() == local.deterministic()
    assert local.in_run_probe_level_high_permille == max(levels.permille.values()) and mean.in_run_probe_level_high_permille == 0
    # --seeds: a seed's replay, priced with seed 0's cost model, takes seed 0's levels too
    from pagealloc.sim.presets import ReplayConfig
    from pagealloc.sim.spread import replay_seed

    seeded = replay_seed(dear, ReplayConfig(mode=BASELINE), None, 1, "dear")
    assert (seeded.in_run_probe_level_low_permille, seeded.in_run_probe_level_high_permille) == (
        local.in_run_probe_level_low_permille, local.in_run_probe_level_high_permille)
    assert replay_seed(dear, ReplayConfig(mode=BASELINE, release_probe="in-run-mean"), None, 1, "dear").in_run_probe_level_high_permille == 0

    def figures(r):
        return r.released_background_count, r.released_background_bytes, r.scavenger_crit_p90_ns, r.tlb_shootdown_ns

    # one level throughout: the same figures as the mean's
    assert figures(pagealloc.replay(flat, BASELINE)) == figures(pagealloc.replay(flat, BASELINE, release_probe="in-run-mean"))
    # pagealloc info and the replay's header say so
    from pagealloc.cli import main

    low, high = min(levels.permille.values()) / 1e3, max(levels.permille.values()) / 1e3
    assert main(["info", str(dear)]) == 0
    out = capsys.readouterr().out
    assert (f"its level about each 50 ms of the run (the calls within 200 ms) {low:.2f}-{high:.2f}x its mean, a "
            "background release's price follows it (--release-probe in-run-mean: not)") in out, out
    assert main(["replay", "--mode", BASELINE, str(dear)]) == 0
    out = capsys.readouterr().out
    assert f"(a background release's at its level about the release's time, {low:.2f}-{high:.2f}x)" in out, out


def test_the_in_run_calibration_matches_the_probe_class_by_class(tmp_path, capsys):
    """Sysmon's probe with every P idle shoots down no CPU, like a background release with no other P
    running, and is cheap; beside running Ps it pays the shootdown.  The calibration weights the model's
    two classes of one-page release as the probe's samples fall, not as its own releases do
    (replay.like_for_like; docs/fidelity-log.md, "Session 26"): here a quarter of the probe's samples
    are at every P idle at a sixth of the price of the rest.  Matching the overall means instead would
    scale by another factor wherever the model's share of releases with no other P running is not a
    quarter; both engines agree."""
    from tracefiles import rewrite_metadata

    from pagealloc.sim.replay import like_for_like
    from pagealloc.trace import trace_metadata
    from pagealloc.trace.shootdown import IN_RUN_COLUMNS, in_run_probe_classes

    src = path_of(next(e for e in ENTRIES if e["name"] == "go114-growth-storm-p2"))
    g = trace_metadata(src)["gomaxprocs"]
    around = pagealloc.replay(src, BASELINE)
    n, alone = around.scavenger_one_page_releases, around.scavenger_one_page_alone
    assert 0 < alone < n, (alone, n)  # both classes, in another mix than the probe's below
    assert abs(alone / n - 0.25) > 0.05, alone / n
    busy = round(1.5 * around.scavenger_one_page_madvise_beside_mean_ns)
    idle = busy // 6

    def edit(doc):
        rows = [[10_000_000 * k, idle if k % 4 == 0 else busy, 1_000, g if k % 4 == 0 else g - 1, k % 256] for k in range(80)]
        doc["reference"]["release_probe"] = {"columns": IN_RUN_COLUMNS, "rows": rows}

    probed = tmp_path / "probed.parquet"
    rewrite_metadata(src, probed, edit)
    classes = in_run_probe_classes(trace_metadata(probed), str(probed), g)
    assert classes == ([idle] * 20, [busy] * 60)
    probe, pilot = like_for_like(classes, around)
    assert probe == (20 * idle + 60 * busy) / 80
    assert pilot == (20 * around.scavenger_one_page_madvise_alone_mean_ns + 60 * around.scavenger_one_page_madvise_beside_mean_ns) / 80
    overall = around.scavenger_one_page_madvise_mean_ns
    assert abs(probe / pilot - probe / overall) > 0.05 * probe / pilot  # the two rules differ here
    r = pagealloc.replay(probed, BASELINE)
    assert r.tlb_shootdown_ns == round(around.tlb_shootdown_ns * probe / pilot)
    again = like_for_like(classes, r)
    assert 0.92 <= again[1] / again[0] <= 1.08, again
    # a class the model does not have is left out, and with no class shared the overall means are matched
    only_alone = dataclasses.replace(around, scavenger_one_page_alone=n)
    assert like_for_like(classes, only_alone) == (idle, around.scavenger_one_page_madvise_alone_mean_ns)
    assert like_for_like(([], [busy] * 3), only_alone) is None
    python = pagealloc.replay(probed, BASELINE, engine="python").deterministic()
    assert python == pagealloc.replay(probed, BASELINE, engine="compiled").deterministic()
    # pagealloc info says which of the probe's calls had every P idle
    from pagealloc.cli import main

    assert main(["info", str(probed)]) == 0
    out = capsys.readouterr().out
    assert f"every P idle at 20 of them ({idle / 1e3:.1f} us on average: no CPU to shoot down)" in out, out


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e["name"])
def test_gos_pacing_formula_gives_every_recorded_goal(entry):
    """The reference's per-GC figures, put through gcPaceScavenger, give the goal the runtime set."""
    gc = reference(entry)["gc_end"]
    col = {name: i for i, name in enumerate(gc["columns"])}
    for row in gc["rows"]:
        inuse, next_gc, last, goal = (row[col[k]] for k in ("heap_inuse", "next_gc", "last_next_gc", "scavenge_goal"))
        retained = row[col["heap_sys"]] - row[col["heap_released"]]
        want = 2**64 - 1
        if last:
            g = int(inuse * (next_gc / last))
            g = (g + g // 10 + 4095) & ~4095
            if retained > g and retained - g >= 4096:
                want = g
        assert goal == want, row


def test_the_fidelity_script_prints_the_table():
    script = ROOT / "scripts" / "go114-fidelity"
    p = subprocess.run([sys.executable, str(script), "go114-go-parser-p2"], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    (row,) = [line for line in p.stdout.splitlines() if line.startswith("| go114-go-parser-p2 ")]
    cells = [c.strip() for c in row.split("|")[1:-1]]
    goals = cells[10].split(" / ")
    assert cells[1] == "100.0000%" and goals[0] == goals[1] != "0", row
    r = pagealloc.replay(path_of(next(e for e in ENTRIES if e["name"] == "go114-go-parser-p2")), "go1.14")
    model, real = r.released_background_count, r.reference.released_background_count
    assert cells[5].startswith(f"{model:,} / {real:,} ({model / real:.2f}x)"), row  # releases beside the runtime's
    huge = (r.released_background_whole_huge_pages, r.reference.released_background_whole_huge_pages)
    assert cells[6] == f"{huge[0]} / {huge[1]}", row  # and how many of them took a whole huge page
    p = subprocess.run([sys.executable, str(script), "nosuch"], capture_output=True, text=True, timeout=600)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "nosuch" in p.stderr


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e["name"])
def test_what_woke_the_scavenger_adds_up(entry):
    """ReplayResult.scavenger_wakeups and the runtime's own (Reference.scavenger_wakeups): every sleep ends
    once, by its timer or by a GC, but perhaps the last; a GC wakes it at most once, and parks end only so."""
    r = replayed(entry["name"])
    gcs = len(reference(entry)["gc_end"]["rows"])
    for wakeups, releases in ((r.scavenger_wakeups, r.released_background_count),
                              (r.reference.scavenger_wakeups, r.reference.released_background_count)):
        timers = sum(n for how, n in wakeups.items() if how != "gc")
        assert timers <= releases <= timers + wakeups.get("gc", 0) + 1, wakeups
        assert wakeups.get("gc", 0) <= gcs + 1
    assert set(r.scavenger_wakeups) - {"gc"} <= {"reschedule", "preempt", "netpoll", "sysmon", "steal", "start_the_world"}


@pytest.mark.parametrize("name", ["go114-burst-idle-p2", "go114-growth-storm-p2", "go114-growth-storm-p8"])
def test_with_every_p_idle_some_timers_wait_for_a_backed_off_sysmon(name):
    """sysmon (sim/sysmon.py) looks only every 10 ms after a few ms with no P idle and no stop for the
    world: a timer due in an all-idle stretch that begins then waits for netpoll's whole milliseconds or
    sysmon's next look.  Fired in order at the runtime's own timers, the model fires 24, 12 and 46 of these
    recordings' all-idle timers more than 300 us late where the runtime did 44, 35 and 31 (with sysmon
    always on time, session 11: none; docs/fidelity-log.md, "Session 12")."""
    sched, it = recorded_schedule(name)
    real = model = 0
    for r in it[(it.wake_at > 0) & (it.fired_ts > 0)].itertuples():
        idle = not sched.any_running(r.wake_at)
        when, _, _ = sched.fire(r.timer_p, r.ts, r.wake_at, r.p)
        if idle and r.woken_by == "timer":
            real += r.fired_ts - r.wake_at > 300_000
            model += when - r.wake_at > 300_000
    assert real / 4 <= model <= real * 2, (model, real)


@pytest.mark.parametrize("name, share", [("go114-json-p2", 0.9), ("go114-growth-storm-p2", 0.9), ("go114-service-p4", 0.9)])
def test_a_scavenger_its_ps_schedule_readies_runs_when_the_recording_says(name, share):
    """PSchedule.behind_gc_worker against the runtime: for every timer fired by its own P's schedule()
    whose scavenger ran on that P, the predicted run (behind a dedicated or fractional GC worker the P ran
    first, else at once) is within 100 us of the recorded one on ``share`` of them (json-p2 93%, where
    running at once gave 64%; growth-storm-p2 92% against 69%; service-p4 98%, unchanged)."""
    import numpy as np

    sched, it = recorded_schedule(name)
    own = it[it.fired_by.isin(["reschedule", "preempt"]) & (it.woken_by == "timer") & (it.next_run_p == it.fired_p)]
    err = np.array([sched.behind_gc_worker(p, f) - run
                    for f, p, run in zip(own.fired_ts.values, own.fired_p.values, own.next_run_ts.values)])
    assert len(err) >= 10 and np.mean(np.abs(err) < 100_000) >= share, (len(err), np.mean(np.abs(err) < 100_000))


@pytest.mark.parametrize("name, share", [("go114-json-p2", 0.85), ("go114-service-p4", 0.65), ("go114-png-decode-p8", 0.9),
                                         ("go114-fragmentation-p2", 0.9)])
def test_after_a_gc_the_scavenger_runs_when_the_recording_says(name, share):
    """PSchedule.after_gc against the runtime: for every GC whose wakeScavenger readied the scavenger,
    the predicted run (when the GC's P stops the goroutine it resumed after start-the-world, behind a
    user goroutine queued ahead of it where the recording shows one, or a steal) is within 100 us of
    the recorded one on ``share`` of them (json-p2 88%, 78% without the queued user goroutine; service-p4
    70%, 65% before an idle P's wake that found a GC-readied scavenger was kept as a steal point, 39%
    before session 11; png-decode-p8 96%, 80%, 76%; fragmentation-p2 99%, 72%; docs/fidelity-log.md,
    "Session 11" and "Session 14")."""
    import numpy as np

    sched, it = recorded_schedule(name)
    gc = it[(it.woken_by == "gc") & (it.ready_p >= 0) & (it.next_run_ts > 0)]
    err = np.array([sched.after_gc(p, t)[0] - run for p, t, run in zip(gc.ready_p.values, gc.ready_ts.values, gc.next_run_ts.values)])
    assert len(err) >= 50 and np.mean(np.abs(err) <= 100_000) >= share, (len(err), np.mean(np.abs(err) <= 100_000))
