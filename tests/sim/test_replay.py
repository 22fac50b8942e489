"""The replay engine: locked vs unlocked on a constructed trace, determinism,
the corpus under --check, and the API's edges."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from pagealloc.sim.costmodel import CostModel
from pagealloc.errors import UserError
from pagealloc.sim.replay import MODES, replay

MiB = 1 << 20
ROOT = Path(__file__).resolve().parents[2]
CORPUS = sorted((ROOT / "traces").glob("*.parquet"))


def frame(rows) -> pd.DataFrame:
    """A user-style trace (the four required columns plus value, and p when the rows have it)."""
    columns = ["ts", "op", "span", "npages", "value", "p"][:len(rows[0])]
    types = {"ts": "int64", "span": "uint64", "npages": "uint32", "value": "uint64", "p": "int32"}
    return pd.DataFrame(rows, columns=columns).astype({c: types[c] for c in columns if c in types})


# Three chunks are allocated whole (spans 1-3, one 4 MiB chunk each); span 2
# dies, leaving the middle chunk free but not scavenged.  Two GCs set a
# scavenge goal far below what is retained, so the background scavenger wakes.
# Its fast path looks at the top chunk (span 3, full), so it takes the slow
# path: it drops the heap lock, scans the top chunk, then the middle one —
# which has a candidate — and only then locks again.  Chunk scans are priced
# at 1 ms here, so that unlocked window is 2 ms wide, and at 1 ms into it the
# mutator allocates a whole chunk (span 4), which first fit puts in the middle chunk.  The race needs
# two Ps: a scavenger running on the program's only P would keep it from allocating meanwhile.
FOOLED = [  # the program on P 1, the GCs with no P: the background scavenger runs on P 0, idle
    (0, "alloc", 1, 512, 0, 1),
    (1_000, "alloc", 2, 512, 0, 1),
    (2_000, "alloc", 3, 512, 0, 1),
    (3_000, "free", 2, 512, 0, 1),
    (4_000, "gc", 0, 0, 64 * MiB, -1),
    (500_000, "gc", 0, 0, 8 * MiB, -1),
    (1_500_000, "alloc", 4, 512, 0, 1),
    (40_000_000, "gc", 0, 0, 8 * MiB, -1),  # ends the cycle: what it frees after is the next cycle's sweep
    (50_000_000, "free", 1, 512, 0, 0),  # (on P 0, where the scavenger runs after it: no lock wait)
]
SLOW_SCANS = CostModel(chunk_scan_ns=1_000_000, page_fault_ns=0)


def test_locked_and_unlocked_differ_on_a_constructed_trace():
    """Same trace, same costs; the modes differ in released bytes and stalls.

    unlocked (Go 1.14): the mutator's allocation lands inside the scavenger's
    unlocked window, takes the very chunk the scavenger read as promising,
    and the scavenger, locking to verify, finds nothing: it is fooled, moves
    on, finds nothing else and parks.  Nothing is released and the mutator
    never waits.

    locked: the scavenger holds the lock through both scans, so the mutator's
    allocation waits for it (a stall of about the rest of the scan plus the
    madvise), and the scavenger releases the free huge page of the middle
    chunk (2 MiB) before the mutator gets there — and then faults it back in.
    """
    trace = frame(FOOLED)
    unlocked = replay(trace, "unlocked", cost_model=SLOW_SCANS, check=True)
    locked = replay(trace, "locked", cost_model=SLOW_SCANS, check=True)

    assert unlocked.scavenger_fooled == 1
    assert unlocked.released_bytes == 0
    assert unlocked.p_stall_ns == 0

    assert locked.scavenger_fooled == 0
    assert locked.released_bytes == locked.released_background_bytes == 2 * MiB
    assert 1_000_000 < locked.p_stall_ns < 1_500_000  # waits out the scan and the madvise
    assert locked.lock_hold_max_ns > 2_000_000  # the scavenger held the lock over both scans
    assert locked.scavenged_alloc_bytes == unlocked.scavenged_alloc_bytes + 2 * MiB
    # On one P (no p column) the scavenger runs on the program's P: while it is in its window the
    # program does not run, so it cannot be fooled (Go's GOMAXPROCS=1); the allocation waits for the P.
    one_p = replay(frame([row[:5] for row in FOOLED]), "unlocked", cost_model=SLOW_SCANS, check=True)
    assert one_p.scavenger_fooled == 0 and one_p.released_background_bytes == 2 * MiB and one_p.p_stall_ns == 0


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "churn.parquet"
    subprocess.run(
        [sys.executable, "-m", "pagealloc", "synth", "fragmentation", "-o", str(out), "--events", "30000", "--seed", "7"],
        check=True,
    )
    return out


@pytest.mark.parametrize("mode", MODES)
def test_replay_is_deterministic(synthetic, mode):
    first = replay(synthetic, mode, check=True)
    second = replay(synthetic, mode, check=True)
    assert first.events == 30000
    assert first.released_bytes > 0
    assert first.deterministic() == second.deterministic()


def test_closed_loop_ignores_timestamps(synthetic):
    open_loop = replay(synthetic, "unlocked")
    closed = replay(synthetic, "unlocked", closed_loop=True)
    assert closed.events == open_loop.events
    assert closed.makespan_ns < open_loop.makespan_ns  # no idle time between events


def test_cost_model_file_overrides_defaults(synthetic, tmp_path):
    slow = tmp_path / "slow.toml"
    slow.write_text("madvise_free_call_ns = 50000\n")  # Go 1.14 releases with MADV_FREE
    default = replay(synthetic, "locked")
    costly = replay(synthetic, "locked", cost_model=str(slow))
    assert costly.lock_hold_max_ns > default.lock_hold_max_ns


def test_result_as_pandas_row_and_json(synthetic):
    r = replay(synthetic, "locked")
    row = r.to_row()
    assert list(row["mode"]) == ["locked"]
    assert int(row["released_bytes"].iloc[0]) == r.released_bytes
    assert r.retained_timeline[-1][1] == r.retained_final_bytes
    json.dumps(r.to_dict())


def test_unknown_mode_is_a_user_error():
    with pytest.raises(UserError, match="unknown mode"):
        replay(frame(FOOLED), "sideways")


def test_lenient_skips_and_counts_inconsistent_rows():
    rows = FOOLED[:3] + [(2_500, "free", 99, 1, 0, 1), (2_600, "alloc", 1, 4, 0, 1)] + FOOLED[3:]
    with pytest.raises(UserError):
        replay(frame(rows), "unlocked")
    r = replay(frame(rows), "unlocked", lenient=True, check=True)
    assert r.skipped_events == 2
    assert r.events == len(FOOLED)


@pytest.mark.skipif(not CORPUS, reason="no bundled corpus in traces/")
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("trace", CORPUS, ids=[p.stem for p in CORPUS])
def test_corpus_replays_clean_under_check(trace, mode):
    r = replay(trace, mode, check=True)
    assert r.events > 0
    assert r.retained_final_bytes >= 0


def test_absurd_heap_is_a_clear_error_not_a_hang():
    """A single span of 2**32 - 1 pages (32 TiB) would take the model minutes and gigabytes."""
    huge = frame([(0, "alloc", 1, 2**32 - 1, 0), (1, "free", 1, 2**32 - 1, 0)])
    with pytest.raises(UserError, match=r"row 0: allocating span 1 of 4294967295 pages would grow the heap past 4 TiB"):
        replay(huge, "unlocked")


def test_import_of_a_directory_says_so(tmp_path):
    p = subprocess.run([sys.executable, "-m", "pagealloc", "import", str(tmp_path), "-o", str(tmp_path / "x.parquet")],
                       capture_output=True, text=True)
    assert p.returncode == 2
    assert p.stderr == f"pagealloc: error: {tmp_path}: is a directory, not a Go execution trace file\n"


def test_package_level_replay_api():
    import pagealloc

    r = pagealloc.replay(frame(FOOLED), mode="locked", cost_model=SLOW_SCANS)
    assert isinstance(r, pagealloc.ReplayResult)
    assert r.released_bytes == 2 * MiB


# Three 1-page spans on P 0 of an empty heap.  Small-object (kind 28) or manual
# (kind 1) spans: the first finds the heap empty (a refill under the lock that
# yields nothing, then the heap path under the lock, which grows it), the second
# refills the cache (lock), the third is a lock-free cache hit: 3.  Large-object
# spans (kind 2 = noscan class 0, kind 0 = scan class 0) lock once more after
# each of the two cache hits: 5.
@pytest.mark.parametrize("kind, locks", [(28, 3), (1, 3), (2, 5), (0, 5)])
def test_large_object_spans_take_the_heap_lock_even_from_the_page_cache(kind, locks):
    """Go's allocSpan skips the heap lock after a page-cache hit only for
    small-object (size class != 0) or manual spans."""
    from pagealloc.sim.replay import Replay

    engine = Replay("unlocked", CostModel(), kinds_known=True)
    engine.run_batch([0, 1, 2], [0, 0, 0], [1, 2, 3], [1, 1, 1], [0] * 3, [0] * 3, [kind] * 3, first_row=0, label="t")
    engine.drain("t")
    assert engine.heap.lock.by_actor["mutator"] == locks
    assert engine.heap.lock.by_actor["scavenger"] == 0


def test_kinds_of_user_traces_are_not_trusted():
    """A trace that is not from Go has kind 0 meaning 'not given': treated as small objects."""
    from pagealloc.sim.replay import Replay

    engine = Replay("unlocked", CostModel())
    engine.run_batch([0, 1, 2], [0, 0, 0], [1, 2, 3], [1, 1, 1], [0] * 3, [0] * 3, [0] * 3, first_row=0, label="t")
    engine.drain("t")
    assert engine.heap.lock.by_actor["mutator"] == 3
