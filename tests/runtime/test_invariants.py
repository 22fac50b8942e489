"""The invariant checker (issue 6.4): check_heap catches each kind of
corruption, retained < 0 is caught during a replay, ``--check`` reports a
violation as one line with exit status 1, and the suite-wide fixture in
conftest.py really checks every replay and every PageAlloc."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pytest

from pagealloc.runtime import engines
from pagealloc.runtime.invariants import InvariantError, check_heap, check_page_alloc
from pagealloc.runtime.malloc import PAGE_SIZE
from pagealloc.runtime.mheap import MHeap
from pagealloc.runtime.mpagealloc_64bit import chunk_index, chunk_page_index
from pagealloc.sim.replay import replay

pytest_plugins = ["pytester"]

MiB = 1 << 20


@pytest.fixture
def heap(engine):
    """A heap with spans from two Ps' page caches, large spans, a free and a scavenge (on each engine)."""
    h = MHeap(engine=engine)
    spans = {}
    for sid, (npages, p) in enumerate([(1, 0), (3, 1), (600, 0), (2, 0), (40, 2), (1, 1), (1200, 3)]):
        base = h.alloc_span(npages, p)
        spans[sid] = (base, npages)
    h.free_span(*spans.pop(2))
    h.scavenge_all(locked=True)
    h.heap_check_spans = spans
    check_heap(h, spans)
    return h


def first_cache(h):
    """The first non-empty page cache (P 0's: spans 0 and 3 came from it)."""
    return next(c for c in h.pcache.values() if not c.empty())


def set_scavenged(h, addr):
    chunk = h.pages.chunks[chunk_index(addr)]
    chunk.scavenged |= 1 << chunk_page_index(addr)


def free_block(h, s):
    """A 64-page aligned block of free pages just past span 6 (1200 pages, in a 1536-page growth)."""
    block = 64 * PAGE_SIZE
    return -(-(s[6][0] + 1200 * PAGE_SIZE) // block) * block


# what -> (corrupt(heap, live spans), what the error says)
CORRUPTIONS = {
    "stale-summary": (lambda h, s: h.pages.summary[0].update({k: v ^ 1 for k, v in h.pages.summary[0].items()}), "summary level 0"),
    "scavenged-page-allocated": (lambda h, s: set_scavenged(h, s[0][0]), "scavenged pages that are allocated"),
    "heap_inuse-off": (lambda h, s: setattr(h, "heap_inuse", h.heap_inuse + PAGE_SIZE), "heap_inuse"),
    "heap_sys-off": (lambda h, s: setattr(h, "heap_sys", h.heap_sys + PAGE_SIZE), "heap_sys"),
    "heap_released-off": (lambda h, s: setattr(h, "heap_released", h.heap_released - PAGE_SIZE), "heap_released"),
    "lock-held": (lambda h, s: h.lock.lock(), "heap lock still held"),
    "leaked-pages": (lambda h, s: setattr(h, "heap_inuse", h.heap_inuse - s.pop(0)[1] * PAGE_SIZE), "in no live span or page cache"),
    "span-over-free-pages": (lambda h, s: s.update({99: (s[6][0] + 1200 * PAGE_SIZE, 1)}), "free in the bitmap"),
    "spans-overlap": (lambda h, s: s.update({99: s[6]}), "overlaps another live span or page cache"),
    "caches-overlap": (lambda h, s: h.pcache.update({1: copy.copy(h.pcache[0])}), "overlaps another live span or page cache"),
    "cache-over-free-pages": (lambda h, s: setattr(first_cache(h), "base", free_block(h, s)), "free in the bitmap"),
    "cache-scav-bits-outside-it": (lambda h, s: setattr(first_cache(h), "scav", ~first_cache(h).cache & (first_cache(h).cache + 1)),
                                   "scavenged bits for pages it does not hold"),
    "span-outside-the-heap": (lambda h, s: s.update({99: (1 << 46, 1)}), "never grown"),
}


@pytest.mark.parametrize("what", list(CORRUPTIONS))
def test_check_heap_catches(heap, what):
    """Each corruption, on a copy (so the conftest's teardown check of the original still passes)."""
    corrupt, message = CORRUPTIONS[what]
    h, spans = copy.deepcopy((heap, heap.heap_check_spans))
    corrupt(h, spans)
    with pytest.raises(InvariantError, match=message):
        check_heap(h, spans)


def test_retained_cannot_go_negative_during_a_replay():
    """Checked where heap_released grows (sysUnused), so with or without --check."""
    h = MHeap()
    h.alloc_span(1, 0)
    h.heap_released = h.heap_sys  # as if something had already released everything
    with pytest.raises(InvariantError, match="retained went negative"):
        h._sys_unused(0, PAGE_SIZE)


# --------------------------------------------------------------------------
# Through the CLI: a model bug is exit status 1 and one line.

TRACE = pd.DataFrame(
    [(0, "alloc", 1, 600, 0), (10, "alloc", 2, 3, 0), (20, "free", 1, 600, 0),
     (30, "gc", 0, 0, 8 * MiB), (40, "free_os_memory", 0, 0, 0), (50, "free", 2, 3, 0)],
    columns=["ts", "op", "span", "npages", "value"],
)

# Run the real CLI with one model function broken (a stand-in for a bug).
BROKEN = textwrap.dedent(
    """
    import sys
    import pagealloc.runtime.mheap, pagealloc.runtime.mpagealloc
    from pagealloc.cli import main
    how = sys.argv[1]
    if how == "inuse":  # free_span forgets heap_inuse: only check_heap (--check) can see it
        free = pagealloc.runtime.mheap.MHeap.free_span
        def free_span(self, base, npages, p=0):
            free(self, base, npages, p)
            self.heap_inuse += npages * pagealloc.runtime.mheap.PAGE_SIZE
        pagealloc.runtime.mheap.MHeap.free_span = free_span
    elif how == "released":  # every release counted twice: retained goes negative mid-replay
        unused = pagealloc.runtime.mheap.MHeap._sys_unused
        def twice(self, addr, n):
            unused(self, addr, n)
            unused(self, addr, n)
        pagealloc.runtime.mheap.MHeap._sys_unused = twice
    sys.exit(main(sys.argv[2:]))
    """
)


RUNS = {
    "inuse-check": ("inuse", "--check"),
    "inuse-no-check": ("inuse", "--json"),
    "released-no-check": ("released", "--json"),
    "clean-check": ("none", "--check", "--json"),
}


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    """RUNS, concurrently: {name: CompletedProcess} of ``pagealloc replay t.parquet --mode locked ...``."""
    folder = tmp_path_factory.mktemp("broken")
    TRACE.to_parquet(folder / "t.parquet")

    def run(how_args):
        how, *args = how_args
        # the Python engine: its MHeap is the one BROKEN breaks (the compiled copy's methods cannot be replaced)
        return subprocess.run([sys.executable, "-c", BROKEN, how, "replay", "t.parquet", "--mode", "locked", *args],
                              cwd=folder, capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PAGEALLOC_ENGINE": "python"})

    with ThreadPoolExecutor(max_workers=len(RUNS)) as pool:
        return dict(zip(RUNS, pool.map(run, RUNS.values())))


def test_check_reports_a_model_bug_as_one_line_exit_1(broken):
    proc = broken["inuse-check"]
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith("pagealloc: error: invariant violated: t.parquet (locked): heap_inuse "), line
    assert line.endswith("(a bug in pagealloc)")
    assert proc.stdout == ""


def test_without_check_that_bug_goes_unnoticed(broken):
    proc = broken["inuse-no-check"]
    assert proc.returncode == 0 and proc.stderr == ""


def test_negative_retained_is_caught_without_check(broken):
    proc = broken["released-no-check"]
    assert proc.returncode == 1, proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith("pagealloc: error: invariant violated: t.parquet (locked): retained went negative"), line


def test_clean_replay_passes_check(broken):
    proc = broken["clean-check"]
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


# --------------------------------------------------------------------------
# The suite-wide fixture (tests/conftest.py).


def test_every_replay_is_checked_even_without_check(monkeypatch):
    real = MHeap.free_span

    def leaky(self, base, npages, p=0):
        real(self, base, npages, p)
        self.heap_inuse += PAGE_SIZE

    monkeypatch.setattr(MHeap, "free_span", leaky)
    monkeypatch.setattr(engines, "DEFAULT_ENGINE", "python")  # the engine whose MHeap is patched
    with pytest.raises(InvariantError, match="heap_inuse"):
        replay(TRACE, "unlocked")  # check=False: the conftest fixture checks anyway


def test_every_page_alloc_is_checked_at_teardown(pytester, _invariants_always_on):
    """A test that leaves a corrupted PageAlloc behind errors at teardown."""
    from pathlib import Path

    ours = len(_invariants_always_on)

    pytester.makeconftest((Path(__file__).resolve().parents[1] / "conftest.py").read_text())
    pytester.makepyfile(
        """
        from pagealloc import PageAlloc

        def test_corrupts():
            p = PageAlloc.for_test({0x200c000: [(0, 10)]})
            p.chunks[0x200c000].scavenged |= 1  # page 0 is allocated: scavenged must not include it

        def test_clean():
            PageAlloc.for_test({0x200c000: [(0, 10)]})
        """
    )
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*InvariantError: chunk 0x200c000: scavenged pages that are allocated*"])
    del _invariants_always_on[ours:]  # the inner run's PageAllocs were tracked by this test's fixture too


def test_check_page_alloc_is_quiet_on_a_fresh_heap():
    check_page_alloc(MHeap().pages)
