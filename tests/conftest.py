"""Shared helpers for the ports of Go 1.14's page allocator tests.

The helpers are handed to tests as fixtures (not imported), so that test
modules in other folders may have their own conftest without clashing.

Go's ``BitRange{I, N}`` is written here as the tuple ``(i, n)``.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from pagealloc.runtime.invariants import check_page_alloc as check_invariants


def make_bits(ranges) -> int:
    """A 512-bit int with bits [i, i+n) set for each (i, n).  Go: makePallocBits."""
    bits = 0
    for i, n in ranges:
        bits |= ((1 << n) - 1) << i
    return bits


def diff_ranges(a: int, b: int) -> list[tuple[int, int]]:
    """Bit ranges (i, n) where a and b differ.  Go: DiffPallocBits."""
    out, x, i = [], a ^ b, 0
    while x >> i:
        rest = x >> i
        i += (rest & -rest).bit_length() - 1  # first differing bit
        same = ~(x >> i)  # its lowest set bit ends the differing run
        n = (same & -same).bit_length() - 1
        out.append((i, n))
        i += n
    return out


def bits_str(b: int, i: int, n: int) -> str:
    """Bits [i, i+n) of b as '0'/'1' characters, lowest first.  Go: StringifyPallocBits."""
    return "".join("1" if b >> j & 1 else "0" for j in range(i, i + n))


def bits_mismatch(got: int, want: int) -> str:
    """'' when equal, else a description of every differing range.  Go: checkPallocBits."""
    d = diff_ranges(got, want)
    if not d:
        return ""
    lines = [f"{len(d)} range(s) different"]
    for i, n in d:
        lines += [f"  @ bit index {i}", f"  |  got: {bits_str(got, i, n)}", f"  | want: {bits_str(want, i, n)}"]
    return "\n".join(lines)


def assert_bits(got: int, want: int, what: str = "") -> None:
    msg = bits_mismatch(got, want)
    assert not msg, f"{what}\n{msg}" if what else msg


def assert_page_alloc(want, got) -> None:
    """Go: checkPageAlloc, plus what Go leaves as a TODO (the summaries).

    Go walks every chunk index in [start, end); a chunk that neither
    allocator grew reads as None in both, so walking the grown chunks of
    either one checks the same thing without a million lookups on the
    sparse layouts.  The in-use ranges are compared too, and ``got`` must
    pass the model's invariant check.
    """
    assert got.bounds() == want.bounds(), f"bounds: got {got.bounds()}, want {want.bounds()}"
    start, end = got.bounds()
    errors = []
    for ci in sorted(set(got.chunks) | set(want.chunks)):
        assert start <= ci < end, f"chunk {ci:#x} outside bounds [{start:#x}, {end:#x})"
        gb, wb = got.chunk_bits(ci), want.chunk_bits(ci)
        if (gb is None) != (wb is None):
            errors.append(f"chunk {ci:#x} nilness mismatch: got {gb is not None}, want {wb is not None}")
            continue
        for label, g, w in (("mallocBits", gb[0], wb[0]), ("scavenged", gb[1], wb[1])):
            msg = bits_mismatch(g, w)
            if msg:
                errors.append(f"in chunk {ci:#x} ({label}):\n{msg}")
    assert not errors, "\n".join(errors)
    assert got.in_use() == want.in_use()
    check_invariants(got)


class GoHelpers:
    """The helpers above, as one fixture: ``def test_x(go): go.make_bits(...)``."""

    make_bits = staticmethod(make_bits)
    assert_bits = staticmethod(assert_bits)
    assert_page_alloc = staticmethod(assert_page_alloc)


@pytest.fixture
def go() -> GoHelpers:
    return GoHelpers()


@pytest.fixture
def load_script():
    """``load_script("fresh-fidelity")``: one of scripts/ (no .py suffix) as a module, to test its parts."""
    import importlib.machinery
    import importlib.util

    def load(name: str):
        path = Path(__file__).resolve().parents[1] / "scripts" / name
        loader = importlib.machinery.SourceFileLoader(name.replace("-", "_"), str(path))
        module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
        loader.exec_module(module)
        return module
    return load


@pytest.fixture(autouse=True)
def _invariants_always_on(monkeypatch):
    """Issue 6.4, "always on in the test suite": every replay any test runs is
    checked with check_heap and the scavenger's check_wakeups when it finishes (as ``--check`` does), and every
    PageAlloc a test builds (directly, by for_test, or inside an MHeap) must
    pass check_page_alloc when the test ends."""
    from pagealloc.runtime.engines import page_alloc_class
    from pagealloc.runtime.invariants import check_heap
    from pagealloc.sim.replay import Replay

    finish, built = Replay.finish, []

    def checked_finish(self, label, wall, end_ns=0):
        result = finish(self, label, wall, end_ns)
        check_heap(self.heap, self.spans)
        self.scavenger.check_wakeups(max(result.makespan_ns, end_ns))
        return result

    def tracked(init):
        def tracked_init(self, *args, **kwargs):
            init(self, *args, **kwargs)
            built.append(self)
        return tracked_init

    monkeypatch.setattr(Replay, "finish", checked_finish)
    for name in AVAILABLE_ENGINES:  # both engines' PageAllocs
        cls = page_alloc_class(name)
        monkeypatch.setattr(cls, "__init__", tracked(cls.__init__))
    yield built  # the PageAllocs to be checked (a test may drop some it broke on purpose)
    monkeypatch.undo()
    for p in built:
        check_invariants(p)


def _available_engines() -> list[str]:
    from pagealloc.runtime.engines import ENGINES, mpagealloc_compiled

    return [e for e in ENGINES if e != "compiled" or mpagealloc_compiled is not None]


# The PageAlloc engines this installation has: both, unless the compiled core was not built.
AVAILABLE_ENGINES = _available_engines()


@pytest.fixture(params=AVAILABLE_ENGINES)
def engine(request, monkeypatch) -> str:
    """Run the test once per PageAlloc engine: the test module's ``PageAlloc``,
    ``PageCache`` (and bitmap types and functions: ``PallocBits``, ``PallocData``,
    ``fill_aligned``, ``find_scavenge_candidate``, ``find_bit_range64``) are that
    engine's while it runs (``pytestmark =
    pytest.mark.usefixtures("engine")`` runs a whole module of ported Go tables on both)."""
    from pagealloc.runtime.engines import page_alloc_class, page_cache_class

    names = {"PageAlloc": page_alloc_class(request.param), "PageCache": page_cache_class(request.param)}
    if request.param == "compiled":  # the bitmap types and functions of the Go tables, compiled
        from pagealloc.runtime import _core

        names.update(PallocBits=_core.PallocBits, PallocData=_core.PallocData, fill_aligned=_core.fill_aligned_of,
                     find_scavenge_candidate=_core.find_scavenge_candidate_of,
                     find_bit_range64=_core.find_bit_range64_of)
    for name, obj in names.items():
        if hasattr(request.module, name):
            monkeypatch.setattr(request.module, name, obj)
    return request.param


# Go 1.14.6's source and its build script, beside the repository (../shared/go114).
GO114_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "go114"


@pytest.fixture(scope="session")
def go114_root(request) -> Path:
    """GOROOT of Go 1.14.6, built by ../shared/go114/build (about 2.5 min the first time, then cached
    in ~/.cache/pagealloc-go114); skips the tests that need it when that folder is absent."""
    build = GO114_DIR / "build"
    if not build.is_file():
        pytest.skip(f"needs Go 1.14.6: {GO114_DIR} is absent")
    t0 = time.perf_counter()
    r = subprocess.run(["bash", str(build)], capture_output=True, text=True, timeout=1800, check=False)
    if r.returncode != 0:
        pytest.fail(f"{build} failed (exit {r.returncode}):\n{r.stderr[-4000:]}", pytrace=False)
    goroot = Path(r.stdout.strip().splitlines()[-1])
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and time.perf_counter() - t0 > 5:
        reporter.write_line(f"go114: built Go 1.14.6 into {goroot} in {time.perf_counter() - t0:.0f} s")
    return goroot
