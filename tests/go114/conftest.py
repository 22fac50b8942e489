"""Fixture of the pacing probe against Go 1.14.6 (see README.md in this folder).

``pacing_probe`` (session): builds the runtime tests of a scratch copy of Go
1.14.6's GOROOT (from ``go114_root``, tests/conftest.py; skipped, with the
reason, when ../shared/go114 is absent) with our Go files and
pacing_hooks.patch -- or takes the binary from the pytest cache,
keyed by a hash of the toolchain version, our files and the patch -- runs
TestPacingProbe once and returns its records.  The tests note how many GCs
they compared and how many were identical; the totals are printed at the end
of the session.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "goracle"))

from gobuild import Toolchain, run_go_test, runtime_test_binary

GO_FILES = [HERE / "export_pacing_probe_test.go", HERE / "pacing_probe_test.go"]
PATCHES = [HERE / "pacing_hooks.patch"]
GOMAXPROCS = 2
_STATE: dict = {}


@dataclass
class Probe:
    version: str
    phys_page_size: int
    start: dict[str, int]  # the pacing state when the probe started (gcinit's, numgc 0)
    records: list[dict[str, int]]  # one per gcPaceScavenger call, in order
    cycles: list[dict[str, int]]  # one per GC cycle's start (startCycle), in order
    note: str  # how the binary was obtained, and the run's wall time
    compared: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # check -> (identical, compared, goals differ)


def parse_probe(text: str, version: str, note: str) -> Probe:
    """The probe's output: ``phys N``, ``start k=v ...``, then ``cycle k=v ...`` at each cycle's
    start and ``pace k=v ...`` at each pacing update, in the order they happened."""
    lines = text.splitlines()
    kind, phys = lines[0].split()
    assert kind == "phys", lines[0]
    rows = [(line.split()[0], {k: int(v) for k, v in (f.split("=") for f in line.split()[1:])}) for line in lines[1:]]
    assert [k for k, _ in rows[:1]] == ["start"] and {k for k, _ in rows[1:]} <= {"cycle", "pace"}, lines[:3]
    return Probe(version, int(phys), rows[0][1], [r for k, r in rows if k == "pace"],
                 [r for k, r in rows if k == "cycle"], note)


@pytest.fixture(scope="session")
def pacing_probe(request, tmp_path_factory, go114_root) -> Probe:
    tc = Toolchain.of(str(go114_root / "bin" / "go"))
    cache = getattr(request.config, "cache", None)
    bindir = Path(cache.mkdir("go114")) if cache is not None else tmp_path_factory.mktemp("go114-bin")
    binary, note = runtime_test_binary(tc, "runtime-pacing", GO_FILES, bindir, tmp_path_factory.mktemp("goroot114"),
                                       PATCHES)
    out = tmp_path_factory.mktemp("go114-run") / "pacing.txt"
    t0 = time.perf_counter()
    run_go_test(binary, "TestPacingProbe",
                {"PAGEALLOC_PACING_OUT": str(out), "GOGC": "100", "GOMAXPROCS": str(GOMAXPROCS), "GODEBUG": ""})
    probe = parse_probe(out.read_text(), tc.version, f"{note}; ran in {time.perf_counter() - t0:.1f} s; output {out}")
    _STATE["probe"] = probe
    return probe


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    probe: Probe | None = _STATE.get("probe")
    if probe is None:
        return
    checks = "; ".join(f"{name}: {same} of {n} identical" + (f" ({goals} scavenge goals differ)" if goals else "")
                       for name, (same, n, goals) in probe.compared.items())
    goals = sum(r["scavenge_goal"] != (1 << 64) - 1 for r in probe.records)
    terminalreporter.write_sep("-", "go114 pacing probe")
    terminalreporter.write_line(
        f"go114 pacing probe: {len(probe.records)} GCs of the {probe.version} runtime (GOGC=100, "
        f"GOMAXPROCS={GOMAXPROCS}, physPageSize {probe.phys_page_size}; {goals} set a scavenge goal) compared "
        f"with the model's pacing: {checks or 'none compared'} ({probe.note})"
    )
