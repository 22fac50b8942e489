"""pagealloc replay's table: every figure printed in its unit (issue 22: a rate printed as bytes)."""

from __future__ import annotations

import subprocess
import sys

from pagealloc.cli import main
from pagealloc.cli.replay import _fmt


def test_a_rate_is_printed_per_second():
    assert _fmt(34.23 * 2**30, "bytes/s") == "34.23 GiB/s"
    assert _fmt(512, "bytes/s") == "512 B/s"
    assert _fmt(34.23 * 2**30, "bytes") == "34.23 GiB"


def test_the_replay_table_prints_released_bytes_per_scavenger_second_with_per_second(tmp_path, capsys):
    trace = tmp_path / "t.parquet"
    subprocess.run([sys.executable, "-m", "pagealloc", "synth", "burst-idle", "-o", str(trace), "--events", "4000"],
                   check=True, capture_output=True)
    assert main(["replay", str(trace), "--mode", "go1.14"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "released_bytes_per_scavenger_cpu_sec" in x)
    assert line.split()[-1] in ("B/s", "KiB/s", "MiB/s", "GiB/s"), line


def test_a_go_1_14_recording_prints_what_woke_the_scavenger_beside_the_runtime(capsys):
    """The wake-up table: one row per cause, the runtime's count, then each preset's (ReplayResult.scavenger_wakeups)."""
    from pathlib import Path

    import pagealloc

    trace = Path(__file__).resolve().parents[2] / "traces" / "go114-growth-storm-p2.parquet"
    assert main(["replay", str(trace), "--mode", "go1.14"]) == 0
    lines = capsys.readouterr().out.splitlines()
    start = next(i for i, x in enumerate(lines) if x.startswith("background scavenger woken by"))
    rows = {}
    for line in lines[start + 1:]:
        if not line.startswith("  "):
            break
        cause, real, model = line.split()
        rows[cause] = (int(real.replace(",", "")), int(model.replace(",", "")))
    r = pagealloc.replay(trace, "go1.14")
    assert {c: m for c, (_, m) in rows.items() if m} == r.scavenger_wakeups
    assert {c: n for c, (n, _) in rows.items() if n} == r.reference.scavenger_wakeups
    assert list(rows)[-1] == "gc" and rows["gc"][0] > 0


def test_the_runtimes_wakeups_count_fired_timers_and_gc_wakeups():
    import pyarrow as pa

    from pagealloc.sim.reference import runtime_wakeups

    table = pa.table({"fired_by": ["sysmon", "none", "netpoll", "sysmon", "none", "none"],
                      "woken_by": ["timer", "gc", "timer", "timer", "gc", "none"]})
    assert runtime_wakeups(table) == {"gc": 2, "netpoll": 1, "sysmon": 2}
    assert runtime_wakeups(None) is None


def test_a_go_1_14_recording_prints_its_background_bytes_less_the_whole_huge_pages(capsys):
    """Under the whole huge pages' row, the background bytes less them (a whole huge page is 2 MiB at once,
    and a run's few decide its bytes): the runtime's, and model / real."""
    from pathlib import Path

    import pagealloc

    trace = Path(__file__).resolve().parents[2] / "traces" / "go114-growth-storm-p2.parquet"
    assert main(["replay", str(trace), "--mode", "go1.14"]) == 0
    lines = capsys.readouterr().out.splitlines()
    ref = next(i for i, x in enumerate(lines) if x.startswith("vs the real Go 1.14.6 runtime"))
    i = next(i for i, x in enumerate(lines) if i > ref and x.startswith("released_background_whole_huge_pages"))
    assert lines[i + 1].startswith("  background bytes less them")
    r = pagealloc.replay(trace, "go1.14")
    less = [x.released_background_bytes - x.released_background_whole_huge_pages * (2 << 20) for x in (r, r.reference)]
    assert lines[i + 1].split()[-1] == f"{less[0] / less[1]:.3f}"
