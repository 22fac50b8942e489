"""pagealloc calibrate measures real madvise/page-fault costs and writes a usable cost model."""

import subprocess
import sys

import pytest

from pagealloc.sim.calibrate import probed_costs
from pagealloc.sim.costmodel import CostModel
from pagealloc.trace.shootdown import recorded_probes


def test_calibrate_writes_a_loadable_cost_model(tmp_path):
    out = tmp_path / "here.toml"
    subprocess.run([sys.executable, "-m", "pagealloc", "calibrate", "--repeat", "3", "-o", str(out)], check=True)
    cost = CostModel.load(out)
    assert cost.madvise_page_ns > 0  # releasing resident pages costs something per page
    assert cost.page_fault_ns > 0  # and faulting them back in does too
    assert cost.alloc_ns == CostModel().alloc_ns  # untouched costs keep their defaults
    # measured, not defaulted (it can be 0: on a loaded machine the other thread gets no CPU of its own)
    text = out.read_text()
    assert "tlb_shootdown_ns = " in text
    # the cold curve: a floor, a slope and a cap, all measured (MADV_FREE after sleeping 64 ms is slower)
    assert "cold_per_doubling_ns = " in text and cost.cold_max_ns > 0
    # a lock waiter's way back to a CPU with every CPU busy, measured (session 16)
    assert "futex_wake_busy_ns = " in text and cost.futex_wake_busy_ns > 0


def test_calibrate_bad_output_path_is_one_line_error(tmp_path):
    p = subprocess.run([sys.executable, "-m", "pagealloc", "calibrate", "--repeat", "1", "-o", str(tmp_path / "no/such/dir/x.toml")],
                       capture_output=True, text=True)
    assert p.returncode == 2
    assert p.stderr.startswith("pagealloc: error:") and p.stderr.count("\n") == 1


def test_machine_probe_measures_a_one_page_release_and_the_shootdown():
    """What `pagealloc record` runs before and after the program: real MADV_FREE calls, each figure a
    whole number of ns (the shootdown can be 0: on a loaded machine the other thread has no CPU of its own)."""
    from pagealloc.trace.shootdown import machine_probe
    from pagealloc.trace.format import PROBE_FIELDS, PROBE_LATER_FIELDS

    probe = machine_probe(rounds=3, repeat=20)
    # every field but allocprobe's, which record adds from a Go program of its own
    assert sorted(probe) == sorted(f for f in PROBE_FIELDS + PROBE_LATER_FIELDS if not f.startswith("alloc_traffic"))
    assert all(type(v) is int for v in probe.values())
    assert 0 < probe["madv_free_go_page_ns"] < 10**7  # a syscall: more than nothing, less than 10 ms
    assert 0 <= probe["tlb_shootdown_ns"] < 10**7
    assert 0 <= probe["memory_traffic_ns"] < 10**7
    assert 0 <= probe["tlb_shootdown_mean_ns"] < 10**7 and 0 <= probe["memory_traffic_mean_ns"] < 10**7
    # a waiter back on a CPU, every CPU busy and one free: more than nothing, under a second
    assert 0 < probe["wake_busy_mean_ns"] < 10**9 and 0 < probe["wake_free_ns"] < 10**9


@pytest.mark.parametrize("others", [0, 1])
def test_the_wake_probe_times_each_waiter_back_on_a_cpu(others):
    """shootdown.wake_samples: a waiter that ran blocks and is released by a holder that runs on, with
    ``others`` busy threads beside them; each sample is the release to the waiter's return, in ns."""
    from pagealloc.trace.shootdown import wake_samples

    samples = wake_samples(8, others)
    assert len(samples) == 8 and all(type(x) is int and 0 < x < 10**9 for x in samples), samples


def test_the_probes_means_leave_out_calls_whose_thread_was_off_its_cpu():
    """A call of 1 ms or more had the probe's thread taken off its CPU: the means leave it out (the model
    leaves OS preemption out of the runtime's crit too), and keep every slow call under it."""
    from pagealloc.trace.shootdown import PREEMPTED_NS, mean_below_cap

    assert mean_below_cap([20_000, 30_000, 250_000, PREEMPTED_NS, 4_000_000]) == 100_000
    assert mean_below_cap([PREEMPTED_NS * 2]) == PREEMPTED_NS  # nothing under it: the cap itself


def _with_probe(src, out, before_ns: int, after_ns: int, traffic_ns: tuple[int, int] | None = None,
                means: dict | None = None):
    """``src`` with a machine probe of ``before_ns`` / ``after_ns`` of TLB shootdown in its metadata, and
    of ``traffic_ns`` (before, after) of memory traffic where given (a probe from before session 9 has
    none), and ``means`` ({field: (before, after)}: a probe since session 13 has them)."""
    from tracefiles import rewrite_metadata

    probes = {"before": {"madv_free_go_page_ns": 2300, "tlb_shootdown_ns": before_ns},
              "after": {"madv_free_go_page_ns": 2400, "tlb_shootdown_ns": after_ns}}
    if traffic_ns is not None:
        for half, ns in zip(("before", "after"), traffic_ns):
            probes[half]["memory_traffic_ns"] = ns
    for field, pair in (means or {}).items():
        for half, ns in zip(("before", "after"), pair):
            probes[half][field] = ns
    return rewrite_metadata(src, out, lambda doc: doc.setdefault("generator", {}).update(machine_probe=probes))


def test_a_recordings_probe_prices_its_replays_shootdown(tmp_path):
    """A trace that carries record's probe is replayed with the mean of its two shootdowns (replay, the
    spread's seed 0, a sweep point without a cost file); a cost model given replaces it."""
    from pathlib import Path

    from pagealloc.sim.calibrate import probed_costs
    from pagealloc.sim.presets import ReplayConfig
    from pagealloc.sim.replay import replay
    from pagealloc.sim.spread import replay_seed
    from pagealloc.trace import trace_metadata

    src = Path(__file__).resolve().parents[2] / "traces" / "go114-churn-p2.parquet"
    probed = _with_probe(src, tmp_path / "probed.parquet", 1_000, 3_000)
    assert probed_costs(trace_metadata(src)) == CostModel()  # no probe: the defaults
    assert probed_costs(trace_metadata(probed)).tlb_shootdown_ns == 2_000
    # the MADV_FREE call: the probe's call alone on one Go page (2,350 ns, the mean), less the first-free
    # cost of its two 4 KiB pages, so that the model's release of such a page alone costs what it read
    first_free = 2 * CostModel().madvise_free_first_page_ns
    assert probed_costs(trace_metadata(probed)).madvise_free_call_ns == 2_350 - first_free
    # a probe from before session 9 measured no memory traffic: its replay keeps the default for it
    assert probed_costs(trace_metadata(probed)).memory_traffic_ns == CostModel().memory_traffic_ns
    both = _with_probe(src, tmp_path / "both.parquet", 1_000, 3_000, traffic_ns=(500, 1_500))
    assert probed_costs(trace_metadata(both)).memory_traffic_ns == 1_000
    assert replay(both, "go1.14").memory_traffic_ns == 1_000
    # a probe since session 13 also kept both prices as means over its calls, slow ones in: those price it
    means = {"tlb_shootdown_mean_ns": (1_400, 3_600), "memory_traffic_mean_ns": (700, 2_100)}
    tailed = _with_probe(src, tmp_path / "means.parquet", 1_000, 3_000, traffic_ns=(500, 1_500), means=means)
    priced = probed_costs(trace_metadata(tailed))
    assert (priced.tlb_shootdown_ns, priced.memory_traffic_ns) == (2_500, 1_400)
    assert replay(tailed, "go1.14").tlb_shootdown_ns == 2_500
    # and where both probes also ran allocprobe (Go's allocation beside the call), it prices heavy allocation
    means["alloc_traffic_mean_ns"] = (300, 900)
    go_alloc = _with_probe(src, tmp_path / "alloc.parquet", 1_000, 3_000, traffic_ns=(500, 1_500), means=means)
    assert probed_costs(trace_metadata(go_alloc)).memory_traffic_ns == 600
    plain, cheap = replay(src, "go1.14"), replay(probed, "go1.14")
    assert plain.tlb_shootdown_ns == CostModel().tlb_shootdown_ns and cheap.tlb_shootdown_ns == 2_000
    assert (plain.madvise_free_call_ns, cheap.madvise_free_call_ns) == (CostModel().madvise_free_call_ns, 2_350 - first_free)
    # cheaper releases: a shorter crit, so Go's pacing (sleep 100 x crit) releases more often
    assert cheap.released_background_count > plain.released_background_count
    given = replay(probed, "go1.14", cost_model=CostModel())
    assert given.tlb_shootdown_ns == CostModel().tlb_shootdown_ns
    assert given.released_background_count == plain.released_background_count
    seed0 = replay_seed(probed, ReplayConfig(mode="go1.14"), None, 0, "probed")
    assert seed0.released_background_count == cheap.released_background_count and seed0.tlb_shootdown_ns == 2_000
    # a sweep point without a cost file: the trace's own costs, in its cost columns too
    from pagealloc.sweep import load_grid

    grid = tmp_path / "grid.toml"
    grid.write_text('name = "probe"\ntraces = ["probed.parquet"]\nmodes = ["go1.14"]\n')
    (point,) = load_grid(grid).points
    assert dict(point.cost)["tlb_shootdown_ns"] == 2_000


def test_a_probe_read_at_two_widths_prices_the_traffic_by_the_ps_running(tmp_path):
    """Where allocprobe read the traffic beside one neighbour per other CPU as well as beside GOMAXPROCS - 1
    (session 15), a heavy release pays the narrow price with up to that many other Ps running and the
    wide one with all of them, linearly between (integer arithmetic, the same in both engines); with
    one width it pays the wide one whatever runs."""
    from pathlib import Path

    from tracefiles import rewrite_metadata

    from pagealloc.errors import UserError
    from pagealloc.runtime.mheap import MHeap
    from pagealloc.sim.calibrate import traffic_widths
    from pagealloc.sim.replay import replay
    from pagealloc.trace import trace_metadata

    src = Path(__file__).resolve().parents[2] / "traces" / "go114-churn-p8.parquet"
    means = {"tlb_shootdown_mean_ns": (20_000, 22_000), "memory_traffic_mean_ns": (9_000, 11_000),
             "alloc_traffic_mean_ns": (14_000, 16_000)}
    one = _with_probe(src, tmp_path / "one.parquet", 20_000, 22_000, traffic_ns=(9_000, 11_000), means=means)
    means["alloc_traffic_narrow_mean_ns"] = (4_000, 5_000)
    two = _with_probe(src, tmp_path / "two.parquet", 20_000, 22_000, traffic_ns=(9_000, 11_000), means=means)
    two = rewrite_metadata(two, tmp_path / "two-w.parquet", lambda doc: doc["generator"]["machine_probe"].update(
        busy_threads=7, busy_threads_narrow=1))
    assert traffic_widths(trace_metadata(one)) is None
    assert traffic_widths(trace_metadata(two)) == (300, 1, 7)  # 4,500 of 15,000
    heap = MHeap()
    heap.price.memory_traffic_ns = 15_000
    assert [heap._traffic_ns(k) for k in (1, 7)] == [15_000, 15_000]  # one width: the wide price
    heap.traffic_narrow_permille, heap.traffic_narrow_n, heap.traffic_wide_n = 300, 1, 7
    assert [heap._traffic_ns(k) for k in range(9)] == [4_500, 4_500, 6_250, 8_000, 9_750, 11_500, 13_250,
                                                       15_000, 15_000]
    a, b = replay(one, "go1.14", engine="compiled"), replay(two, "go1.14", engine="compiled")
    assert a.memory_traffic_ns == b.memory_traffic_ns == 15_000
    # churn-p8 allocates heavily with few Ps running: cheaper releases, a shorter crit, more of them
    assert b.released_background_count > a.released_background_count
    assert replay(two, "go1.14", engine="python").deterministic() == b.deterministic()
    bad = rewrite_metadata(two, tmp_path / "bad.parquet", lambda doc: doc["generator"]["machine_probe"].update(
        busy_threads_narrow=7))
    with pytest.raises(UserError, match="the narrow one fewer"):
        trace_metadata(bad)


def test_a_probe_read_with_every_cpu_busy_prices_a_lock_waiters_way_back(tmp_path):
    """Since session 16 the probe reads a waiter's way back to a CPU with every CPU busy and with one free
    (``wake_busy_mean_ns``, ``wake_free_ns``): their means price futex_wake_busy_ns and
    futex_wake_ns; without them, the defaults."""
    from pathlib import Path

    from pagealloc.sim.calibrate import priced_fields
    from pagealloc.trace import trace_metadata

    src = Path(__file__).resolve().parents[2] / "traces" / "go114-service-p4.parquet"
    means = {"tlb_shootdown_mean_ns": (20_000, 22_000), "memory_traffic_mean_ns": (9_000, 11_000)}
    old = _with_probe(src, tmp_path / "old.parquet", 20_000, 22_000, traffic_ns=(9_000, 11_000), means=means)
    means["wake_busy_mean_ns"] = (1_200_000, 1_600_000)
    means["wake_free_ns"] = (40_000, 60_000)
    new = _with_probe(src, tmp_path / "new.parquet", 20_000, 22_000, traffic_ns=(9_000, 11_000), means=means)
    assert "futex_wake_busy_ns" not in priced_fields(recorded_probes(trace_metadata(old)))
    assert probed_costs(trace_metadata(old)).futex_wake_busy_ns == CostModel().futex_wake_ns
    assert probed_costs(trace_metadata(old)).futex_wake_ns == CostModel().futex_wake_ns
    assert probed_costs(trace_metadata(new)).futex_wake_busy_ns == 1_400_000
    assert probed_costs(trace_metadata(new)).futex_wake_ns == 50_000


def test_without_madv_free_there_is_no_probe_and_the_replay_keeps_the_default(monkeypatch):
    """Where madvise(MADV_FREE) does not exist (not Linux), record keeps no probe: the trace's replay is
    priced with the defaults."""
    import mmap

    from pagealloc.sim.calibrate import probed_costs
    from pagealloc.trace.shootdown import machine_probe

    monkeypatch.delattr(mmap, "MADV_FREE")
    assert machine_probe() is None
    assert probed_costs({"generator": {"name": "pagealloc record"}}) == CostModel()
