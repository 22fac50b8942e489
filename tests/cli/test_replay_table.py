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
