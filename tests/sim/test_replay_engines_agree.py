"""The compiled replay core and the Python simulation give the same figures.

The compiled core (pagealloc.sim.engines.replay_class("compiled")) is
sim/engine.py's event loop ported to typed Cython (sim/_replay_core.pyx)
on the simulation's other sources compiled by Cython with .pxd types
(runtime/replay_sources.py): a port, so these tests are what keeps it equal.  Every mode and timing
on traces from each source (Go 1.14 runtime traces, the synthetic
generator's, a 32-P growth storm) must give the same ReplayResult, field by
field (the wall-clock fields aside).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pagealloc.runtime.engines import mpagealloc_compiled
from pagealloc.runtime.malloc import PAGE_SIZE
from pagealloc.sim.engines import replay_class
from pagealloc.sim.presets import AUTO_TIMING, MODES, TIMINGS
from pagealloc.sim.replay import replay

TRACES = Path(__file__).resolve().parents[2] / "traces"
WALL = {"wall_seconds", "replay_events_per_wall_second"}

pytestmark = pytest.mark.skipif(mpagealloc_compiled is None, reason="the compiled core was not built")


def _compiled_core_built() -> bool:
    from pagealloc.sim import engine as python_engine

    return replay_class("compiled") is not python_engine.Replay


def figures(engine: str, trace: str, mode: str, **knobs) -> dict:
    r = replay(str(TRACES / trace), mode, engine=engine, **knobs)
    return {k: v for k, v in dataclasses.asdict(r).items() if k not in WALL}


def test_the_compiled_replay_core_was_built():
    assert _compiled_core_built(), "replay_class('compiled') fell back to the Python simulation"


@pytest.mark.parametrize("timing", [t for t in TIMINGS if t != AUTO_TIMING])
@pytest.mark.parametrize("trace", ["go114-burst-idle-p8.parquet", "synth-freeosmemory.parquet"])
def test_same_figures_every_timing_and_mode(trace, timing):
    """Every preset in every timing on two traces (tests/sim/test_engines_figures.py: the default corpus)."""
    for mode in MODES:
        assert figures("compiled", trace, mode, timing=timing) == figures("python", trace, mode, timing=timing), \
            (mode, timing)


def test_a_replay_core_built_from_other_sources_is_refused(monkeypatch):
    from pagealloc.sim import _replay_core, engines

    assert engines._load_compiled() == (_replay_core, "")
    monkeypatch.setattr(_replay_core, "SOURCES_HASH", "stale")
    module, why = engines._load_compiled()
    assert module is None and "built from other sources" in why and "pip install -e ." in why


def test_without_the_replay_core_the_python_simulation_runs_and_says_so_once():
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    code = ("import sys; sys.modules['pagealloc.sim._replay_core'] = None\n"
            "from pagealloc.sim.engines import replay_class\n"
            "print(replay_class('compiled').__module__, replay_class('compiled').__module__)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=root,
                       env={**os.environ, "PYTHONPATH": str(root), "PAGEALLOC_ENGINE": ""})
    assert (p.returncode, p.stdout) == (0, "pagealloc.sim.engine pagealloc.sim.engine\n"), p.stderr
    assert p.stderr.count("\n") == 1 and p.stderr.startswith("pagealloc: the compiled replay core is unavailable")


# The page marks (mheap.py's touched / lazyfree: dicts of 512-bit ints) against the compiled replay's
# (sim/_replay_heap.pxi: eight words a chunk in C), on ranges that start and end anywhere in a word,
# span words and chunks, and repeat.
_CHUNK_BYTES = 4 << 20
_MARK_OPS = st.lists(st.tuples(st.booleans(), st.integers(0, 3 * 512 - 1), st.integers(0, 2 * 512 + 70)),
                     max_size=40)


@settings(max_examples=300, deadline=None)
@given(_MARK_OPS)
def test_the_compiled_replays_page_marks_are_mheaps(ops):
    from pagealloc.runtime.mheap import MHeap
    from pagealloc.sim._replay_core import ReplayHeap

    base = 0xC000000000 + _CHUNK_BYTES  # a chunk boundary, as every arena's is
    heaps = [MHeap(), ReplayHeap()]
    for lazyfree, page, npages in ops:
        addr = base + page * PAGE_SIZE
        got = [h._first_lazyfree(addr, npages) if lazyfree else h._first_touch(addr, npages) for h in heaps]
        assert got[0] == got[1], (lazyfree, page, npages)


# A release (mheap.py's _sys_unused: mem_linux's calls priced by _madvise_ns) against the compiled
# replay's (one C pass, no call tuples): ranges of 8 KiB pages anywhere in and across huge pages, after
# allocations (first touches), with or without MADV_DONTNEED, TLB peers, a cold scavenger, each path.
_RELEASES = st.lists(st.tuples(st.integers(0, 3 * 512 - 1), st.integers(1, 700), st.booleans(),
                               st.integers(0, 1), st.booleans(), st.sampled_from(["forced", "background", "growth"])),
                     max_size=30)


@settings(max_examples=200, deadline=None)
@given(_RELEASES, st.booleans())
def test_the_compiled_replays_releases_are_mheaps(releases, madvdontneed):
    from pagealloc.runtime.lock_futex import SCAVENGER
    from pagealloc.runtime.mheap import MHeap
    from pagealloc.sim._replay_core import ReplayHeap
    from pagealloc.sim.costmodel import CostModel

    base = 0xC000000000 + _CHUNK_BYTES
    heaps = [MHeap(CostModel(), madvdontneed=madvdontneed), ReplayHeap(CostModel(), madvdontneed=madvdontneed)]
    for page, npages, touch, peers, cold, path in releases:
        addr = base + page * PAGE_SIZE
        for h in heaps:
            h.heap_sys = 1 << 40
            if touch:
                h._first_touch(addr, npages)
            h.tlb_peers, h.cold_ns, h.forced = peers, 777 if cold else 0, path == "forced"
            h.lock.holder = SCAVENGER if path == "background" else None
            h._sys_unused(addr, npages * PAGE_SIZE)
        got = [(h.drain_meter(), h.madvise_calls, sorted(h.nohugepage), h.released_by, h.releases_by, h.heap_released,
                h.cold_ns) for h in heaps]
        assert got[0] == got[1], (page, npages, touch, peers, cold, path)
