"""Which traces and modes the benchmarks replay, and helpers shared by the suites.

The corpus is traces/manifest.json, read by its one owner,
pagealloc/trace/corpus.py: each entry has a name, a file relative to
traces/ and a set, "default" or "heavy".  Entries whose file is not there
are left out.  Without a (readable) manifest, traces/*.parquet is the
default set and traces/heavy/*.parquet the heavy one.

The ``mode`` parameter is every preset any benchmarked commit may have
(``go1.14``, the baseline, first).  It is a fixed list rather than
``pagealloc.MODES``: asv imports this module in a fresh process for every
parameter combination, and importing pagealloc there would cost ~0.4 s
each, minutes per run (tests/results/test_asv_suite.py fails when pagealloc has a
mode this list lacks).  A commit that lacks a mode skips it (bench_replay).

Nothing here imports pagealloc: benchmark discovery runs against whatever
commit asv benchmarks, which may predate any of its modules.  The manifest
reader is this checkout's pagealloc/trace/corpus.py, loaded by its path
(it imports nothing of ours at its top).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRACES = Path(os.environ.get("PAGEALLOC_BENCH_TRACES") or ROOT / "traces")
KNOWN_MODES = ["go1.14", "unlocked", "locked"]  # every preset of any commit: the baseline first
NO_TRACES = "(no traces)"
HEAVY_ENV = "PAGEALLOC_BENCH_HEAVY"

try:  # asv's "skip this one" from inside a benchmark body (it runs setup anyway)
    from asv_runner.benchmarks.mark import SkipNotImplemented
except ImportError:  # pragma: no cover - older asv_runner

    class SkipNotImplemented(NotImplementedError):
        pass


MODES = KNOWN_MODES


@functools.lru_cache(maxsize=1)
def _manifest_reader():
    """This checkout's pagealloc/trace/corpus.py, loaded by path (see the module docstring)."""
    spec = importlib.util.spec_from_file_location("_pagealloc_trace_corpus", ROOT / "pagealloc" / "trace" / "corpus.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def corpus(which: str = "default") -> list[tuple[str, Path]]:
    """[(name, path)] of the traces in set ``which`` that exist, in manifest order
    ("speed": the default set's SPEED_TRACES)."""
    if which == "speed":
        return speed_corpus()
    manifest = TRACES / "manifest.json"
    if manifest.is_file():
        reader = _manifest_reader()
        try:
            entries = reader.load(manifest).select(sets=[which])
        except Exception:  # noqa: BLE001 - a bad manifest (or an old pagealloc to report it): the folders
            entries = None
        if entries is not None:
            return [(e.name, e.path) for e in entries if e.path.is_file()]
    folder = TRACES if which == "default" else TRACES / which
    return [(p.stem, p) for p in sorted(folder.glob("*.parquet"))]


# The simulator's speed (bench_replay.Replay) is measured on a few traces that
# cover its paths, not the whole set: each replay there is a process of its
# own, twice (time and peak memory), and the figures of every trace come from
# ReplayMetrics.  One per kind: a synthetic trace at 4 and at 16 Ps, a Go
# 1.27 recording, and two Go 1.14 recordings (ordered timing), 2.1 M events
# over the three presets.  With none of them in the corpus, the whole set.
SPEED_TRACES = ("synth-churn", "synth-contention", "go-parser-p2", "go114-churn-p8", "go114-json-p2")


def speed_corpus() -> list[tuple[str, Path]]:
    """[(name, path)] of the default set's traces that bench_replay.Replay times."""
    chosen = [(name, path) for name, path in corpus("default") if name in SPEED_TRACES]
    return chosen or corpus("default")


def trace_names(which: str = "default") -> list[str]:
    """The asv parameter values for set ``which`` ("default", "heavy", or
    "speed": SPEED_TRACES; a placeholder when empty: asv needs at least one
    value)."""
    return [name for name, _ in corpus(which)] or [NO_TRACES]


def heavy_enabled() -> bool:
    return os.environ.get(HEAVY_ENV, "") not in ("", "0")
