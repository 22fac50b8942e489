"""pagealloc record --go 1.14, end to end: a small program recorded on the
real Go 1.14.6 runtime (patched), imported, and replayed against its
reference.  This is the test that makes .ci/run record under Go 1.14.6.

Needs the Go 1.14.6 source in ../shared/go114 (beside the checkout) and,
the first time, a Go to bootstrap the build (the record extra): about 2.5
minutes once, then cached.
"""

from __future__ import annotations

import os

import pytest

import pagealloc
from pagealloc.cli import main
from pagealloc.errors import UserError
from pagealloc.sim import replay as engine
from pagealloc.sim.reference import heap_walk
from pagealloc.sim.replay import like_for_like
from pagealloc.sim.result import background_bytes_less_whole_huge_pages
from pagealloc.trace import go114, p_schedule, scavenger_iterations, sched_events, validate_trace
from pagealloc.trace.shootdown import (IN_RUN_COLUMNS, IN_RUN_MIN_SAMPLES, in_run_probe_classes, in_run_probe_mean_ns,
                                      recorded_probes)
from test_record_cli import PROGRAM  # three FreeOSMemory calls, no annotation

pytestmark = pytest.mark.skipif(not go114.BESIDE_CHECKOUT.is_file(), reason=f"needs the Go 1.14.6 source ({go114.BESIDE_CHECKOUT.parent})")
BASELINE = getattr(engine, "BASELINE_MODE", "go1.14" if "go1.14" in pagealloc.MODES else "unlocked")

@pytest.fixture(scope="module")
def goroot():
    try:
        return go114.toolchain()
    except UserError as e:
        pytest.skip(f"cannot build the recording Go 1.14.6: {e}")


def write_program(tmp_path):
    prog = tmp_path / "prog.go"
    prog.write_text(PROGRAM)
    return prog


def test_record_a_program_on_go_1_14_and_hold_the_replay_against_it(goroot, tmp_path, capfd):
    out = tmp_path / "o.parquet"
    assert main(["record", "--go", "1.14", "--gomaxprocs", "3", "-o", str(out), "--", str(write_program(tmp_path))]) == 0
    std = capfd.readouterr()
    assert 'PAGEALLOC_RECORD_FD=""' in std.out  # the runtime took the variable out of the environment
    assert "GOMAXPROCS 3" in std.out and "reference (the Go 1.14.6 runtime)" in std.out
    s = validate_trace(out)
    m, ref = s.metadata, s.metadata["reference"]
    assert (m["source"], m["go_version"], m["gomaxprocs"], ref["exit_code"]) == ("go1.14-runtime", "go1.14.6", 3, 0)
    assert s.counts["free_os_memory"] == 3 and s.counts["gc"] >= 3 and s.counts["alloc"] > 500
    assert ref["released_bytes"]["forced"] > 0 and ref["heap_growths"] >= 1
    assert "--go 1.14 --gomaxprocs 3" in m["generator"]["command"]
    assert m["version"] == 3 and set(p_schedule(out).column("p").to_pylist()) == {0, 1, 2}  # the Ps' schedule, every P
    assert scavenger_iterations(out) is not None and sched_events(out) is not None
    probes = recorded_probes(m)  # the TLB shootdown measured before and after the program ran
    assert probes is not None and all(p["madv_free_go_page_ns"] > 0 for p in probes), m["generator"]

    walk = heap_walk(out)  # the heap model in row order: every span where the runtime put it
    assert walk.agreement == 1.0 and walk.background_not_free == 0, walk.to_dict()
    assert (walk.heap_growths, walk.heap_sys_bytes) == (ref["heap_growths"], ref["heap_sys_bytes"])
    assert walk.released["forced"] == ref["released_bytes"]["forced"]
    r = pagealloc.replay(out, BASELINE)
    # priced at the probes' means (slow calls in: the price Go's pacing follows)
    assert r.tlb_shootdown_ns == round((probes[0]["tlb_shootdown_mean_ns"] + probes[1]["tlb_shootdown_mean_ns"]) / 2)
    # and what heavy allocation adds to it (sim/traffic.py): Go 1.14's own, beside the call (allocprobe)
    assert r.memory_traffic_ns == round((probes[0]["alloc_traffic_mean_ns"] + probes[1]["alloc_traffic_mean_ns"]) / 2)
    # and, where GOMAXPROCS 3 outnumbers the other CPUs, read beside one goroutine per other CPU too
    narrow = max((os.cpu_count() or 2) - 1, 1)
    kept = m["generator"]["machine_probe"]
    assert kept["busy_threads"] == 2 and kept.get("busy_threads_narrow") == (narrow if narrow < 2 else None), kept
    assert all(("alloc_traffic_narrow_mean_ns" in p) == (narrow < 2) for p in probes), probes
    # and a lock waiter's way back to a CPU with every CPU busy (session 16), which prices futex_wake_busy_ns
    from pagealloc.sim.calibrate import probed_costs

    assert all(0 < p["wake_busy_mean_ns"] < 10**9 and 0 < p["wake_free_ns"] < 10**9 for p in probes), probes
    priced = probed_costs(m)
    assert priced.futex_wake_busy_ns == round(sum(p["wake_busy_mean_ns"] for p in probes) / 2)
    assert priced.futex_wake_ns == round(sum(p["wake_free_ns"] for p in probes) / 2)
    assert r.reference.released_bytes == sum(ref["released_bytes"].values())
    assert r.reference.ratios["heap_growths"] == r.heap_growths / ref["heap_growths"]
    # The Ps' heap lock at the rows' sites (stream version 5): the model takes it exactly as often as Go
    # 1.14 does, once the heap paths the recorder ran under a refill's lock are counted as Go takes them
    # (docs/fidelity-log.md, "Session 17"); the model's count also has each FreeOSMemory's one hold
    # (go1.14: scavengeAll locked), a site the recorder does not time
    lock = ref["heap_lock"]
    assert lock["waits"] == len(lock["wait_rows"]["rows"]) <= lock["acquisitions"] and lock["wait_ns"] >= 0, lock
    assert r.lock_acquisitions_mutator == lock["acquisitions"] + lock["relocks_after_refill"] + s.counts["free_os_memory"], (
        r.lock_acquisitions_mutator, lock)
    assert r.reference.p_stall_ns == lock["wait_ns"] and r.reference.p_stall_max_ns == lock["wait_max_ns"]
    # After scavengeAll every free page is released, so retained there is exact.
    assert len(walk.free_os_memory_retained) == 3 and all(m == real for m, real in walk.free_os_memory_retained)
    # sysmon's release probe (stream version 6): sysUnused's calls on its own page, at most every 10 ms, the
    # pages of its huge page in turn, the MADV_FREE within the calls' time; the replay prices from its mean
    probe = ref["release_probe"]
    rows = probe["rows"]
    assert probe["columns"] == IN_RUN_COLUMNS and rows, probe
    assert all(0 < free <= unused and 0 <= idle <= 3 for _, unused, free, idle, _ in rows), rows
    assert [page for *_, page in rows] == [k % 256 for k in range(len(rows))]
    # (10 ms apart at sysmon's passes; a record's ts is taken after its calls, whose time varies)
    assert all(b[0] - a[0] >= 10_000_000 - a[1] - 1_000_000 for a, b in zip(rows, rows[1:])), rows
    mean = in_run_probe_mean_ns(m, str(out))
    assert (mean is None) == (sum(unused < 1_000_000 for _, unused, *_ in rows) < IN_RUN_MIN_SAMPLES)
    if mean is not None:  # the model's calls weighted as the probe's samples fall (replay.like_for_like), at its mean
        at_mean = pagealloc.replay(out, BASELINE, release_probe="in-run-mean")
        probe, calls = like_for_like(in_run_probe_classes(m, str(out), m["gomaxprocs"]), at_mean)
        assert 0.95 <= calls / probe <= 1.05, (calls, probe, mean)


def test_a_failing_program_is_an_error(goroot, tmp_path, capfd):
    prog = write_program(tmp_path)
    assert main(["record", "--go", "1.14", "-o", str(tmp_path / "o.parquet"), "--", str(prog), "3"]) == 2
    err = capfd.readouterr().err
    assert err.endswith(f"and its stderr\npagealloc: error: {prog} exited with status 3 (its output is above)\n")


def test_record_a_benchmark_on_go_1_14(goroot, tmp_path, capfd, monkeypatch):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "go.mod").write_text("module example.com/pkg\n\ngo 1.14\n")
    (pkg / "lib.go").write_text("package lib\n\nvar Sink [][]byte\n")
    (pkg / "lib_test.go").write_text(
        'package lib\n\nimport "testing"\n\nfunc BenchmarkAlloc(b *testing.B) {\n'
        "\tfor i := 0; i < b.N; i++ {\n\t\tSink = append(Sink, make([]byte, 256<<10))\n\t}\n\tSink = nil\n}\n"
    )
    monkeypatch.chdir(pkg)
    out = tmp_path / "bench.parquet"
    assert main(["record", "--go", "1.14", "-o", str(out), "--", "test", ".", "-run", "^$", "-bench", "Alloc", "-benchtime", "50x"]) == 0
    assert "BenchmarkAlloc" in capfd.readouterr().out
    s = validate_trace(out)
    assert s.counts["alloc"] >= 50 and s.metadata["program"] == "go test ."
    assert sorted(p.name for p in pkg.iterdir()) == ["go.mod", "lib.go", "lib_test.go"]  # nothing left behind


def test_a_fresh_recording_of_the_service_program_stays_within_the_background_bounds(goroot, tmp_path, capfd,
                                                                                       load_script):
    """Issue 19's bounds on a run recorded now, not only on the bundled one: CPU-bound goroutines at
    GOMAXPROCS 4 and a bursty allocator.  The real scavenger's pace follows its crit, and its crit the
    machine's TLB shootdown cost, which moves from run to run (one-page crit medians 11-19 us on the idle
    machine, 29-33 us in two runs of session 7, 4-14 us beside two busy loops); record measures it beside
    the program and the replay prices it (docs/fidelity-log.md, "Session 8").
    Count: the issue's bounds, 0.67-1.5x.  With record's probe, 102 of 102 fresh runs on the idle machine
    (0.72-1.30x) and 16 of 16 beside two busy loops (0.72-1.36x) were within them, all on 2026-12-05, and
    40 of 40 on another host on 2026-12-06 (0.87-1.25x), 12 of 12 there later (0.78-1.35x); then 16 of 24
    in a phase of that host whose real one-page crit ran above its probe's price (1.17-1.63x), all 24
    within them fed the runtime's crits (0.92-1.25x).  So the bound is held with the runtime's crits,
    and 0.5-2x with the model's.
    Bytes: the issue's 0.5-2x on what is not a draw, the bytes less those released as whole huge pages.
    A background release is one page, or the whole free huge page around it where none of that huge
    page was released yet (findScavengeCandidate): 256 pages at once, so a handful of them decide a run's
    bytes, and whether the walk meets a huge page whole or after an allocation took part of it turns on
    its being a wake-up or two ahead of Go's or behind (real runs released 0-22 whole huge pages against
    ~650-1,000 one-page releases).  Total bytes were within 0.5-2x on 93 of 102 idle runs of 2026-12-05
    (0.30-2.57x) and on 35 of 40 runs on another host on 2026-12-06 (0.79-5.14x; 16 whole huge pages
    against Go's 1 at the worst); less the whole huge pages, on all 40 (0.85-1.25x; docs/fidelity-log.md,
    "Session 8", "Session 11")."""
    from pathlib import Path

    from pagealloc.trace import trace_metadata
    from pagealloc.trace.cpuwait import recorded_load

    out = tmp_path / "svc.parquet"
    service = Path(__file__).resolve().parents[2] / "traces" / "workloads" / "service"
    assert main(["record", "--go", "1.14", "--gomaxprocs", "4", "-o", str(out), "--", str(service)]) == 0
    capfd.readouterr()
    load = recorded_load(trace_metadata(out))
    assert load is not None and 0 <= load["other_cpu_share"] <= 1 and load["cpu_ns"] > 0, load
    r = pagealloc.replay(out, "go1.14")
    ref = r.reference
    assert ref.released_background_count > 300, "the service program's scavenger ran too little to judge"
    probes = recorded_probes(trace_metadata(out))
    around = pagealloc.replay(out, "go1.14", release_probe="around")  # priced from the probes around the run
    assert probes is not None and around.tlb_shootdown_ns == round(sum(p["tlb_shootdown_mean_ns"] for p in probes) / 2)
    # and by default at the level of sysmon's probe during it (record stream version 6; "Session 22")
    in_run = in_run_probe_mean_ns(trace_metadata(out), str(out))
    assert in_run is not None and r.in_run_probe_ns == round(in_run), (r.in_run_probe_ns, in_run)
    # one pilot replay sets the level: the scaled replay's calls land within 0.97-1.02x of the probe on 120
    # fresh runs, 0.93-1.07x before the busy machine's cold start (not scaled: it moves with the sleeps the
    # new prices ask for); a recording beside the test run's own load read 0.94 ("Session 23")
    # (class by class since session 26: the model's calls weighted as the probe's samples fall)
    # (at the probe's mean throughout: since session 28 a background release follows the probe's level
    # about its time, and the model's releases gather where it is cheap: 0.94-1.005x of the mean on 36 runs)
    mean = pagealloc.replay(out, "go1.14", release_probe="in-run-mean")
    probe, calls = like_for_like(in_run_probe_classes(trace_metadata(out), str(out), 4), mean)
    assert 0.92 <= calls / probe <= 1.08, (calls, probe, in_run)
    assert mean.tlb_shootdown_ns == r.tlb_shootdown_ns  # one calibration for both
    assert r.in_run_probe_level_low_permille <= 1000 <= r.in_run_probe_level_high_permille, (
        r.in_run_probe_level_low_permille, r.in_run_probe_level_high_permille)
    why = (ref.ratios, load, probes, in_run)
    # When the scavenger runs is the model's, what each release costs is the host's: fed the runtime's
    # own crits, the count keeps to the bounds on every run (0.92-1.25x on 24 runs of a phase
    # of the second host whose one-page crit, median 36-42 us and mean 1.4-2.5x that, ran above what its
    # probe priced, ~31 us); with the model's crits, to them on the first host and in other phases of
    # the second, and within 0.5-2x in that one (1.17-1.63x; docs/fidelity-log.md, "Session 12").
    timed = pagealloc.replay(out, "go1.14", scavenger_crit="recorded").reference.ratios["released_background_count"]
    assert 0.67 <= timed <= 1.5, (timed, why)
    assert 0.5 <= ref.ratios["released_background_count"] <= 2, why
    assert 0.95 <= ref.ratios["lock_acquisitions_mutator"] <= 1.05, (r.lock_acquisitions_mutator, why)
    less_huge = [background_bytes_less_whole_huge_pages(x) for x in (r, ref)]
    assert 0.5 <= less_huge[0] / less_huge[1] <= 2, (less_huge, r.released_background_whole_huge_pages,
                                                     ref.released_background_whole_huge_pages, why)
    # sysmon keeps the recorded one's phase (record stream version 4 on): each of the runtime's timers
    # predicted from its own P, sleep start and deadline fires within 50 us of when it did more often, and
    # more of those its sysmon fired are named sysmon's, than on the model's own clock (36 of 36 fresh runs:
    # batches 4-6, within 50 us 59-87% against 56-83%; docs/fidelity-log.md, "Session 20")
    kept, own = (timers_predicted(out, passes) for passes in (True, False))
    assert kept[0] > own[0] and kept[1] > own[1], (kept, own)
    # a P whose goroutine a GC's stack scan suspended steals the scavenger a GC readied: with those passes as
    # steal points the model's run after a GC is within 100 us of the runtime's at least as often, on 96 of
    # 96 fresh runs (and more often on most; docs/fidelity-log.md, "Session 27")
    with_suspends, without = (after_gc_near(out, suspends, load_script) for suspends in (True, False))
    assert with_suspends >= without, (with_suspends, without)


def after_gc_near(path, suspends: bool, load_script) -> int:
    """How many of the recorded scavenger's GC wake-ups ``PSchedule.after_gc`` puts within 100 us of its run
    (``scripts/go114-scavenger-timing``'s ``after_gc_errors``), with or without the recorded suspensions
    (``goschedule.SUSPENDED``) among the steal points."""
    from pagealloc.sim.goschedule import SUSPENDED
    from pagealloc.trace import trace_metadata

    sched = engine.p_schedule_of(path, trace_metadata(path)["gomaxprocs"])
    ps = p_schedule(path).to_pandas()
    assert (ps.reason == SUSPENDED).any(), "the recording has no stack scan's suspension to judge"
    if not suspends:
        for q, rows in ps[(ps.state == "sched") & (ps.reason == SUSPENDED)].groupby("p"):
            taken = set(rows.ts.tolist())
            sched.steal_points[q] = [t for t in sched.steal_points[q] if t not in taken]
    err = load_script("go114-scavenger-timing").after_gc_errors(path, sched)
    return int((abs(err[:, 0]) <= 100_000).sum())


def timers_predicted(path, sysmon_passes: bool) -> tuple[int, int]:
    """Each timer of the recorded scavenger predicted by ``PSchedule.fire`` from the runtime's own P, sleep
    start and deadline: (how many fired within 50 us of the runtime's firing, how many of those the
    runtime's sysmon fired the model names sysmon's), with or without the recorded sysmon's passes."""
    from pagealloc.trace import trace_metadata

    sched = engine.p_schedule_of(path, trace_metadata(path)["gomaxprocs"])
    if not sysmon_passes:
        sched.sysmon.passes = []
    it = scavenger_iterations(path).to_pandas()
    near = named = 0
    for r in it[(it.outcome == "sleep") & (it.wake_at > 0)].itertuples():
        fired, _, how = sched.fire(int(r.timer_p), int(r.ts), int(r.wake_at), int(r.p))
        if r.woken_by == "timer" and r.fired_ts > 0:
            near += abs(fired - r.fired_ts) <= 50_000
            named += r.fired_by == "sysmon" and how == "sysmon"
    return near, named


def test_the_runtimes_sysmon_loops_as_the_model_has_it(goroot, tmp_path, capfd):
    """sim/sysmon.py against Go 1.14.6's own sysmon (record stream version 4: its passes, sleeps and the
    stops' requests), on a fresh growth-storm run at GOMAXPROCS 2, whose Ps alternate long busy and
    all-idle stretches.  Every pass's delay follows ``next_delay`` (20 us for 50 passes after the branch,
    or a retake of a P from a syscall, then doubling to 10 ms); every pass that took the all-idle / gcwaiting branch did so where the
    model's sysmon looks idle on the recorded schedule; and each timer due with every P idle that netpoll
    fired more than 300 us late had sysmon backed off (640 us a pass or more) or asleep through its deadline
    on another target: mostly a sleep begun before the timer was set, sometimes one begun after it on a
    later target (2 of 7 late timers on a run of 2026-12-07, which a test of the first kind alone failed).
    On the run of 2026-12-06: 2,100 passes, 0 off; 188 of 188 branches; 16 of 16 late timers."""
    from bisect import bisect_right
    from pathlib import Path

    from pagealloc.sim.sysmon import next_delay
    from pagealloc.trace import trace_metadata

    out = tmp_path / "gs.parquet"
    storm = Path(__file__).resolve().parents[2] / "traces" / "workloads" / "growth_storm"
    assert main(["record", "--go", "1.14", "--gomaxprocs", "2", "-o", str(out), "--", str(storm)]) == 0
    capfd.readouterr()
    d = sched_events(out).to_pandas()
    passes, sleeps = d[d.event == "sysmon_pass"], d[d.event == "sysmon_sleep"]
    branches = d[d.event == "sysmon_branch"]
    assert len(passes) > 500 and len(branches) > 10 and (d.event == "stop_request").sum() > 10, d.event.value_counts()
    t, delays = passes.ts.to_list(), passes.value.to_list()
    branched = set(branches.ts)
    retook = set(d[d.event == "sysmon_retake"].ts)  # retake resets it too (a P in a syscall), idle 0 not 1
    delay, idle, off = delays[0], 0, []
    for k in range(1, len(t)):
        delay, idle = next_delay(delay, idle, t[k - 1] in branched, t[k - 1] in retook)
        if delay != delays[k]:
            off.append((t[k], delays[k], delay))
        delay = delays[k]
    # on a mismatch, the loop's events around the first one (1 run in ~20 had one until next_delay told a
    # retake's reset, idle 0, from the branch's, idle 1: the 51st pass after a retake was 20 us, not 40)
    around = d[(d.ts >= off[0][0] - 2_000_000) & (d.ts <= off[0][0])].tail(60).to_string() if off else ""
    assert delays[0] == 20 and not off, (off[:5], around)
    assert 10_000 in delays  # it backed off all the way at least once

    sched = engine.p_schedule_of(out, trace_metadata(out)["gomaxprocs"])  # as the replay builds it
    looked = [sched.sysmon._looks_idle(int(x), held=False) for x in branches.ts]
    assert sum(looked) >= 0.95 * len(looked), (sum(looked), len(looked))

    it = scavenger_iterations(out).to_pandas()
    starts, ends = sleeps.ts.to_list(), sleeps.value.to_list()
    late = [r for r in it[(it.woken_by == "timer") & (it.fired_by == "netpoll") & (it.fired_ts - it.wake_at > 300_000)].itertuples()
            if not sched.any_running(r.wake_at)]
    explained = 0
    for r in late:
        i, j = bisect_right(t, r.wake_at) - 1, bisect_right(starts, r.wake_at) - 1
        asleep_through = j >= 0 and ends[j] > r.wake_at  # a sleep that began at or before the deadline
        explained += delays[i] >= 640 or asleep_through
    assert explained >= 0.8 * len(late), (explained, len(late))
