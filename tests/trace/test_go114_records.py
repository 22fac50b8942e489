"""The record stream of pagealloc's Go 1.14.6 runtime and its import.

Streams are built here record by record (no Go needed), in the layout
pagealloc/trace/go114patch/pagealloc_record.go writes, and checked: rows,
span ids, the reference figures, and every kind of broken stream giving
one ``pagealloc: error:`` line and exit status 2.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from pagealloc.cli import main
from pagealloc.errors import UserError
from pagealloc.sim.reference import go114_acquisitions, reference_record
from pagealloc.trace import read_trace, validate_trace
from pagealloc.trace.shootdown import IN_RUN_COLUMNS
from pagealloc.trace.go114records import (
    EVENTS,
    HEAP_BASE,
    MAGIC,
    RECORD,
    VERSION,
    import_records,
    is_record_stream,
    read_records,
    warnings_for,
)

GO_FILE = Path(__file__).resolve().parents[2] / "pagealloc" / "trace" / "go114patch" / "pagealloc_record.go"
PAGE = 8192
NONE = 2**64 - 1  # scavengeGoal when the scavenger has no goal


def rec(ev: str, *words, p: int = -1, flags: int = 0, x: int = 0, ts: int = 0) -> tuple:
    head = EVENTS[ev] | flags << 8 | (p + 1) << 16 | x << 32
    return (ts, head, list(words) + [0] * (6 - len(words)))


def start() -> tuple:
    return rec("start", MAGIC, VERSION, 4096, PAGE, 64 << 20, 0, ts=50)


def stream(*records) -> np.ndarray:
    out = np.zeros(len(records), dtype=RECORD)
    for i, (ts, head, words) in enumerate(records):
        out[i] = (ts or 100 + 10 * i, head, words)
    return out


def base(page: int) -> int:
    return HEAP_BASE + page * PAGE


# A small program's life: a grow, a stack, two heap spans (one from the page
# cache), a GC, a background and a growth release, FreeOSMemory, a P's wait for
# the heap lock, the heap lock's totals, sysmon's release probe, the end.
GOOD = [
    start(),
    rec("grow", 1, 4 << 20, 64 << 20, 64 << 20, NONE, 0),
    rec("alloc", base(0), 4, 4 * PAGE, flags=1),  # a manual (stack) span, no P yet
    rec("procs", x=2),
    rec("alloc", base(4), 1, PAGE, p=0, flags=2 | 4, x=42),  # page cache, refilled
    rec("alloc", base(5), 20, 20 * PAGE, p=1, x=0),  # a large object
    rec("gc_start", 4 << 20, 21 * PAGE, 64 << 20, 60 << 20, NONE, 3 << 20, x=0),  # heap_live 3 MiB
    rec("free", base(5), 20, p=1),
    rec("gc_end", 8 << 20, 5 * PAGE, (64 << 20) - 4 * PAGE, (64 << 20) - 25 * PAGE, 3 << 20, 4 << 20, x=1),
    rec("scavenge", base(5), 2, x=0),
    rec("grow", 600, 8 << 20, 128 << 20, 128 << 20, 3 << 20, 0),
    rec("scavenge", base(9), 1, x=1),
    rec("fom_start", (128 << 20) - 4 * PAGE, 100 << 20),
    rec("scavenge", base(7), 10, x=2),
    rec("fom_end", 10 * PAGE, (128 << 20) - 4 * PAGE, (100 << 20) + 10 * PAGE),
    rec("lock_wait", 7_000, 1, p=1, x=3, ts=400),  # P 1 waited 7 us at freeSpan (site 3), slept once
    rec("heap_lock", 3, 1),  # 3 acquisitions at the rows' sites (the refill, the large alloc, the free), 1 wait
    rec("probe", 31_000, 24_000, 1, 5),  # sysUnused's calls 31 us, of them MADV_FREE 24, one P idle, Go page 5
    rec("end", (128 << 20) - 4 * PAGE, (100 << 20) + 10 * PAGE, PAGE, 4 * PAGE, 0, 2),
]


def write(tmp_path, records, name="r.bin") -> Path:
    path = tmp_path / name
    stream(*records).tofile(path)
    return path


def test_the_event_codes_are_the_go_files():
    """EVENTS mirrors the constants of pagealloc_record.go, name for name."""
    text = GO_FILE.read_text()
    go = {m.group(1).lower(): int(m.group(2)) for m in re.finditer(r"pageallocEv(\w+)\s*=\s*(\d+)", text)}
    assert go == {name.replace("_", ""): code for name, code in EVENTS.items()}
    assert f"pageallocRecMagic   = {MAGIC:#x}" in text and f"pageallocRecVersion = {VERSION}" in text
    assert RECORD.itemsize == 64


def test_a_stream_becomes_rows_and_a_reference(tmp_path):
    path = write(tmp_path, GOOD)
    assert is_record_stream(str(path))
    meta = import_records(str(path), str(tmp_path / "t.parquet"), name="small")
    t = read_trace(tmp_path / "t.parquet").to_pandas()
    assert meta["source"] == "go1.14-runtime" and meta["gomaxprocs"] == 2 and meta["min_heap_addr"] == HEAP_BASE
    rows = [(r.op, r.span, r.npages, r.p, r.kind, r.value) for r in t.itertuples()]
    rows = [row for row in rows if row[0] != "gc_start"]  # format v2 has a row for the mark start
    assert rows == [
        ("alloc", 0, 4, -1, 1, 0),  # manual span: kind 1
        ("alloc", 4, 1, 0, 84, 0),  # span class 42 << 1
        ("alloc", 5, 20, 1, 0, 0),
        ("free", 5, 20, 1, 0, 0),
        ("gc", 0, 0, -1, 0, 8 << 20),  # value: the new next_gc
        ("free_os_memory", 0, 0, -1, 0, 0),
    ]
    assert list(t.ts) == sorted(t.ts) and t.ts.iloc[0] == 0
    ref = meta["reference"]
    assert ref["released_bytes"] == {"background": 2 * PAGE, "growth": PAGE, "forced": 10 * PAGE}
    assert ref["heap_growths"] == 2
    # Go moved the stack's 4 pages out of heap_sys; the reference adds them back, as the model counts them.
    assert ref["memstats_heap_sys_bytes"] == (128 << 20) - 4 * PAGE and ref["manual_bytes"] == 4 * PAGE
    assert ref["heap_sys_bytes"] == 128 << 20
    assert ref["retained_final_bytes"] == (128 << 20) - (100 << 20) - 10 * PAGE
    assert ref["scavenged_alloc_bytes"] == 25 * PAGE and ref["allocs_from_cache"] == 1
    assert ref["gc_end"]["rows"][0][1:3] == [8 << 20, 5 * PAGE] and ref["gc_end"]["rows"][0][-1] == 4 * PAGE
    # The timeline samples what the replay's does: each GC, each FreeOSMemory, the end.
    assert [r for _, r in ref["retained_timeline"]] == [
        (64 << 20) - 4 * PAGE + 4 * PAGE - ((64 << 20) - 25 * PAGE),
        (128 << 20) - (100 << 20) - 10 * PAGE,
        (128 << 20) - (100 << 20) - 10 * PAGE,
    ]
    assert ref["released_timeline"]["rows"][-1][1:] == [2 * PAGE, PAGE, 10 * PAGE]
    # The Ps' waits for the heap lock at the rows' sites (stream version 5): the runtime's P-stall.
    first_row_ts = 100 + 10 * 2  # the manual span's record, at index 2
    assert ref["heap_lock"] == {
        "acquisitions": 3, "relocks_after_refill": 0, "waits": 1, "wait_ns": 7_000, "wait_max_ns": 7_000, "wait_ns_by_p": [0, 0, 7_000],
        "waits_by_site": {"refill": 0, "alloc": 0, "free": 1, "free_manual": 0},
        "wait_rows": {"columns": ["ts", "p", "site", "wait_ns", "sleeps"], "rows": [[400 - first_row_ts, 1, "free", 7_000, 1]]}}
    # sysmon's release probe (stream version 6), on the rows' clock
    assert ref["release_probe"] == {"columns": IN_RUN_COLUMNS, "rows": [[100 + 10 * 17 - first_row_ts, 31_000, 24_000, 1, 5]]}
    assert warnings_for(ref) == []


def test_a_stream_before_version_5_has_no_heap_lock_figures(tmp_path):
    v4 = [rec("start", MAGIC, 4, 4096, PAGE, 64 << 20, 0, ts=50), *GOOD[1:15], GOOD[-1]]
    meta = import_records(str(write(tmp_path, v4)), str(tmp_path / "t.parquet"))
    assert "heap_lock" not in meta["reference"] and "release_probe" not in meta["reference"]
    f = reference_record(meta, _Model(meta), "t").flat()
    assert f["reference_p_stall_ns"] is None and f["reference_p_stall_ns_ratio"] is None
    assert f["reference_lock_acquisitions_mutator"] is None


def test_the_mark_start_row_carries_heap_live(tmp_path):
    """Version 2 records heap_live at mark start, the value startCycle paced from; a version 1 stream did not (0)."""
    def gc_start_values(records):
        path = write(tmp_path, records)
        import_records(str(path), str(tmp_path / "t.parquet"))
        t = read_trace(tmp_path / "t.parquet").to_pandas()
        return list(t[t.op == "gc_start"].value)

    assert gc_start_values(GOOD) == [3 << 20]
    v1 = [rec("start", MAGIC, 1, 4096, PAGE, 64 << 20, 0, ts=50), *GOOD[1:15], GOOD[-1]]  # no heap-lock records
    assert gc_start_values(v1) == [0]


class _Model:
    """A result's fields, as the replay fills them."""

    def __init__(self, meta):
        self.released_bytes = 13 * PAGE
        self.released_background_bytes = 3 * PAGE
        self.released_background_count = 3
        self.released_background_whole_huge_pages = 0
        self.released_growth_bytes = PAGE
        self.released_forced_bytes = 9 * PAGE
        self.retained_final_bytes = meta["reference"]["retained_final_bytes"]
        self.heap_sys_bytes = 128 << 20
        self.heap_growths = 2
        self.scavenged_alloc_bytes = 0
        self.lock_acquisitions_mutator = 4
        self.p_stall_ns = self.p_stall_max_ns = 3_500


def test_the_reference_reaches_the_replay_result(tmp_path):
    path = write(tmp_path, GOOD)
    meta = import_records(str(path), str(tmp_path / "t.parquet"))

    f = reference_record(meta, _Model(meta), "t").flat()
    assert f["reference_released_bytes"] == 13 * PAGE and f["reference_released_bytes_ratio"] == 1.0
    assert f["reference_released_background_bytes_ratio"] == 1.5
    assert f["reference_released_forced_bytes_ratio"] == 0.9
    assert f["reference_heap_growths_ratio"] == f["reference_heap_sys_bytes_ratio"] == 1.0
    assert f["reference_scavenged_alloc_bytes_ratio"] == 0.0
    assert (f["reference_released_background_whole_huge_pages"], f["reference_released_background_whole_huge_pages_ratio"]) == (0, 1.0)
    assert len(f["reference_retained_timeline"]) == 3
    assert (f["reference_lock_acquisitions_mutator"], f["reference_lock_acquisitions_mutator_ratio"]) == (3, 4 / 3)
    assert (f["reference_p_stall_ns"], f["reference_p_stall_ns_ratio"]) == (7_000, 0.5)
    assert (f["reference_p_stall_max_ns"], f["reference_p_stall_max_ns_ratio"]) == (7_000, 0.5)
    assert reference_record({"source": "go-trace"}, _Model(meta), "t") is None


def test_a_heap_path_under_a_refills_lock_counts_as_go_takes_it(tmp_path):
    """The recorder keeps the lock from a refill whose cache cannot serve the span to the heap path (one
    acquisition counted); Go 1.14 unlocks and locks again, as the model does: the reference adds it back."""
    records = list(GOOD)
    records.insert(6, rec("alloc", base(25), 2, 0, p=0, flags=4, x=42))  # after the large object: REFILLED, not FROM_CACHE
    meta = import_records(str(write(tmp_path, records)), str(tmp_path / "t.parquet"))
    lock = meta["reference"]["heap_lock"]
    assert (lock["acquisitions"], lock["relocks_after_refill"]) == (3, 1)
    assert go114_acquisitions(lock) == 4
    f = reference_record(meta, _Model(meta), "t").flat()
    assert (f["reference_lock_acquisitions_mutator"], f["reference_lock_acquisitions_mutator_ratio"]) == (4, 1.0)
    # an import from before the count: the recorder's alone
    assert go114_acquisitions({"acquisitions": 3}) == 3


def test_bad_reference_metadata_is_an_error():
    with pytest.raises(UserError, match="without a 'reference'"):
        reference_record({"source": "go1.14-runtime"}, object(), "t.parquet")
    ref = {"released_bytes": {"background": -1, "growth": 0, "forced": 0}}
    with pytest.raises(UserError, match="lacks 'retained_final_bytes'"):
        reference_record({"source": "go1.14-runtime", "reference": ref}, object(), "t.parquet")


def test_what_the_replay_cannot_follow_is_a_warning(tmp_path):
    records = [*GOOD[:4], rec("set_gc_percent", 1, NONE, x=50), rec("pcache_flush", base(64), 3, x=1), rec("procs", x=1), *GOOD[4:]]
    meta = import_records(str(write(tmp_path, records)), str(tmp_path / "t.parquet"))
    w = warnings_for(meta["reference"])
    assert len(w) == 2 and "GOMAXPROCS changed while it ran ([1])" in w[0] and "SetGCPercent 1 times" in w[1]


def truncated(tmp_path) -> Path:
    path = write(tmp_path, GOOD)
    path.write_bytes(path.read_bytes()[:-10])
    return path


BROKEN = {
    "truncated": (truncated, "truncated record stream (1206 bytes is not a whole number of 64-byte records)"),
    "no end": (lambda t: write(t, GOOD[:-1]), "truncated record stream: no end record (the program crashed or was killed"),
    "unknown event": (lambda t: write(t, [*GOOD[:3], (0, 99, [0] * 6), *GOOD[3:]]), "record 3: unknown event 99"),
    "after the end": (lambda t: write(t, [*GOOD, rec("alloc", base(40), 1)]), "record 19: a record after the end record"),
    "neither": (lambda t: (t / "r.bin").write_bytes(b"not a recording\n" * 10) and t / "r.bin", "not a Go execution trace"),
    "version": (lambda t: write(t, [rec("start", MAGIC, 7), *GOOD[1:]]), "record stream version 7"),
    "dropped": (lambda t: write(t, [*GOOD[:-1], rec("end", 0, 0, 0, 0, 5, 2)]), "dropped 5 records"),
    "free of unknown": (lambda t: write(t, [*GOOD[:5], rec("free", base(77), 1), *GOOD[5:]]), "record 5: free of unknown span 77"),
    "npages differ": (lambda t: write(t, [*GOOD[:7], rec("free", base(5), 3), *GOOD[8:]]),
                      "record 7: free of span 5 with npages 3, but it was allocated with npages 20"),
    "outside the heap": (lambda t: write(t, [*GOOD[:5], rec("alloc", 0x1000, 1), *GOOD[5:]]),
                         "record 5: span base 0x1000 with 1 pages is not a span of the heap at 0xc000000000"),
    "bad who": (lambda t: write(t, [*GOOD[:9], rec("scavenge", base(5), 2, x=7), *GOOD[10:]]), "record 9: scavenge by unknown caller 7"),
    "no lock totals": (lambda t: write(t, [*GOOD[:16], GOOD[-1]]), "0 heap-lock totals records, not 1"),
    "lock waits": (lambda t: write(t, [*GOOD[:16], rec("heap_lock", 3, 2), GOOD[-1]]),
                   "the heap-lock waits do not add up (1 wait records, 2 counted, 3 acquisitions)"),
    "lock site": (lambda t: write(t, [*GOOD[:15], rec("lock_wait", 7_000, p=1, x=9), *GOOD[16:]]),
                  "the heap-lock waits do not add up (1 wait records, 1 counted, 3 acquisitions, a wait at an unknown site)"),
}


@pytest.mark.parametrize("case", BROKEN)
def test_a_broken_stream_is_one_error_line(tmp_path, capfd, case):
    make, text = BROKEN[case]
    path = make(tmp_path)
    assert main(["import", str(path), "-o", str(tmp_path / "o.parquet")]) == 2
    err = capfd.readouterr().err
    assert err.startswith(f"pagealloc: error: {path}: ") and text in err and err.count("\n") == 1, err
    assert not (tmp_path / "o.parquet").exists()


@pytest.mark.parametrize("data", [b"", b"short", b"go 1.23 trace\x00" * 10])
def test_read_records_wants_a_start_record(tmp_path, data):
    (tmp_path / "r.bin").write_bytes(data)
    assert not is_record_stream(str(tmp_path / "r.bin"))
    with pytest.raises(UserError, match="not a record stream of pagealloc's Go 1.14 runtime"):
        read_records(str(tmp_path / "r.bin"))


def test_import_cli_reads_a_stream(tmp_path, capfd):
    path = write(tmp_path, GOOD)
    assert main(["import", str(path), "-o", str(tmp_path / "o.parquet"), "--name", "small"]) == 0
    out = capfd.readouterr().out.splitlines()
    assert out[0].startswith(f"{tmp_path / 'o.parquet'}: ") and "3 alloc, 1 free, 1 gc, 1 free_os_memory" in out[0]
    assert "reference (the Go 1.14.6 runtime): released background 0.0 MiB" in out[1] and "2 heap growths" in out[1]
    assert validate_trace(tmp_path / "o.parquet").metadata["name"] == "small"
    assert read_records(str(path))["head"][-1] & 0xFF == EVENTS["end"]
