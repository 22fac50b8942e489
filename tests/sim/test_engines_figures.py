"""Both engines give the same figures: the compiled one (the default) and the Python mirror.

Every deterministic figure (ReplayResult.deterministic: all but the wall-clock
fields) of every default-set corpus trace in every preset, and of every
timing on the small traces; then hypothesis-generated multi-P streams
(allocs and frees of random sizes on random Ps, GCs that wake the
background scavenger, FreeOSMemory calls), in every preset and both
scavenger timers.  The whole corpus in every timing is the check in
ARCHITECTURE.md, "The compiled core" (replay-figures under each engine).
"""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pagealloc.runtime.engines import mpagealloc_compiled
from pagealloc.sim.presets import MODES, TIMINGS
from pagealloc.sim.replay import replay
from pagealloc.trace import corpus
from pagealloc.trace.format import OP_ALLOC, OP_FREE, OP_FREE_OS_MEMORY, OP_GC, OP_NAMES

pytestmark = pytest.mark.skipif(mpagealloc_compiled is None, reason="the compiled core is not built here")

DEFAULT = [e for e in corpus.load().select(sets=["default"])]
SMALL = sorted(DEFAULT, key=lambda e: e.path.stat().st_size)[:3]


def both(trace, **knobs) -> tuple[dict, dict]:
    return tuple(replay(trace, engine=e, **knobs).deterministic() for e in ("python", "compiled"))


@pytest.mark.parametrize("entry", DEFAULT, ids=lambda e: e.name)
def test_every_corpus_trace_gives_the_same_figures_on_both_engines(entry):
    for mode in MODES:
        python, compiled = both(str(entry.path), mode=mode)
        assert python == compiled, (mode, {k for k in python if python[k] != compiled.get(k)})


@pytest.mark.parametrize("entry", SMALL, ids=lambda e: e.name)
@pytest.mark.parametrize("timing", [t for t in TIMINGS if t != "auto"])
def test_every_timing_gives_the_same_figures_on_both_engines(entry, timing):
    python, compiled = both(str(entry.path), mode=MODES[0], timing=timing)
    assert python == compiled, {k for k in python if python[k] != compiled.get(k)}


US = 1_000


@st.composite
def streams(draw):
    """A multi-P trace: (ts, op, span, npages, p, value, kind) rows in time order."""
    nprocs = draw(st.integers(1, 4))
    rows, live, sid, t = [], [], 0, 0
    for _ in range(draw(st.integers(20, 160))):
        t += draw(st.integers(0, 400)) * US
        p = draw(st.integers(0, nprocs - 1))
        what = draw(st.sampled_from(["alloc"] * 6 + ["free"] * 5 + ["gc", "fom"]))
        if what == "free" and live:
            s, n = live.pop(draw(st.integers(0, len(live) - 1)))
            rows.append((t, OP_FREE, s, n, p, 0, 0))
        elif what == "gc":
            rows.append((t, OP_GC, 0, 0, p, draw(st.integers(1, 64)) << 20, 0))
        elif what == "fom":
            rows.append((t, OP_FREE_OS_MEMORY, 0, 0, p, 0, 0))
        else:
            n = draw(st.sampled_from([1, 1, 2, 4, 8, 16, 64, 130, 600]))
            rows.append((t, OP_ALLOC, sid, n, p, 0, 0))
            live.append((sid, n))
            sid += 1
    df = pd.DataFrame(rows, columns=["ts", "op", "span", "npages", "p", "value", "kind"])
    df["op"] = [OP_NAMES[o] for o in df["op"]]
    return df


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trace=streams(), mode=st.sampled_from(MODES), timers=st.sampled_from(["go1.14", "exact"]))
def test_generated_streams_give_the_same_figures_on_both_engines(trace, mode, timers):
    python, compiled = both(trace, mode=mode, scavenger_timers=timers, label="generated")
    assert python == compiled, {k for k in python if python[k] != compiled.get(k)}


def test_an_unknown_engine_is_a_user_error_naming_the_choices():
    from pagealloc.errors import UserError

    with pytest.raises(UserError, match="engine must be one of compiled, python, not 'fast'"):
        replay(str(SMALL[0].path), engine="fast")


def test_the_cli_takes_the_engine_and_prints_the_same_figures(tmp_path):
    import json
    import subprocess
    import sys

    def run(engine):
        out = subprocess.run([sys.executable, "-m", "pagealloc", "replay", str(SMALL[0].path), "--json", "--engine", engine],
                             capture_output=True, text=True, check=True).stdout
        return [{k: v for k, v in json.loads(line).items() if k not in WALL} for line in out.splitlines()]

    from pagealloc.sim.result import ReplayResult

    WALL = set(ReplayResult.WALL_CLOCK_FIELDS)
    assert run("python") == run("compiled") != []
