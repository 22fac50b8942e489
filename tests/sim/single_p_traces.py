"""The single-P traces whose figures tests/fixtures/single_p_figures.json pins.

Three synthetic shapes on one P (every row's ``p`` is 0): churn,
fragmentation and freeosmemory, 20,000 events each.  The figures were
written by the two-actor engine (one mutator, the background scavenger)
that the multi-P engine replaced; with one P the multi-P engine must give
exactly the same deterministic figures (tests/sim/test_multi_p.py).
"""

from __future__ import annotations

import pandas as pd

from pagealloc.trace.format import OP_NAMES
from pagealloc.trace.synth import synthesize

SHAPES = ("churn", "fragmentation", "freeosmemory")
EVENTS = 20_000


def single_p_trace(shape: str) -> pd.DataFrame:
    cols = synthesize(shape, EVENTS, 3)
    df = pd.DataFrame(cols)
    df["op"] = [OP_NAMES[c] for c in cols["op"]]
    df["p"] = 0
    return df
