"""scripts/model-speed's reference stream on Go's own page allocator (--against-go).

The stream (``[(is_alloc, npages or free index)]``, made by the script's
``make_stream``) goes to a file, and TestPageAllocSpeed
(pagealloc_speed_test.go), built into the runtime's test binary of a Go
toolchain by gobuild.py, replays it on ``NewPageAlloc`` / ``Alloc`` /
``Free`` and times the op loop.  Go and the model must return the same
address for every Alloc: each side folds them into one FNV-1a checksum.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from pagealloc import BASE_CHUNK_IDX, PALLOC_CHUNK_BYTES, chunk_base

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from gobuild import Toolchain, run_go_test, runtime_test_binary  # noqa: E402

GO_FILES = [HERE / "pagealloc_speed_test.go"]
TEST_NAME = "TestPageAllocSpeed"
FNV_OFFSET, FNV_PRIME, MASK64 = 14695981039346656037, 1099511628211, (1 << 64) - 1


@dataclass(frozen=True)
class Replayed:
    allocs: int
    failed: int  # allocs that did not fit (address 0)
    checksum: int  # FNV-1a over every address Alloc returned, 0 for a failed one
    seconds: float = 0.0  # the op loop's wall time (Go's runs)


def write_stream(stream: list[tuple[bool, int]], chunks: int, path: Path) -> None:
    lines = [f"chunks {chunks}"] + [f"{'a' if is_alloc else 'f'} {x}" for is_alloc, x in stream]
    path.write_text("\n".join(lines) + "\n")


def speed_binary(tc: Toolchain, cache_dir: Path, scratch: Path) -> tuple[Path, str]:
    """The runtime test binary with our speed driver for tc, built or cached: (path, how)."""
    return runtime_test_binary(tc, "runtime-speed", GO_FILES, cache_dir, scratch)


def run_go(binary: Path, stream_file: Path, out: Path, runs: int = 1) -> list[Replayed]:
    """Replay the stream file ``runs`` times in one process of the binary, a fresh allocator each time."""
    run_go_test(binary, TEST_NAME, {"PAGEALLOC_SPEED_IN": str(stream_file), "PAGEALLOC_SPEED_OUT": str(out),
                                    "PAGEALLOC_SPEED_RUNS": str(runs)})
    results = []
    for line in out.read_text().splitlines():
        _, ns, allocs, failed, checksum = line.split()
        results.append(Replayed(int(allocs), int(failed), int(checksum), int(ns) / 1e9))
    if len(results) != runs:
        raise RuntimeError(f"{binary.name} wrote {len(results)} runs to {out}, expected {runs}")
    return results


def model_replay(stream: list[tuple[bool, int]], chunks: int, page_alloc_class) -> Replayed:
    """The stream on the model, as scripts/model-speed's timed loop runs it, with the addresses' checksum."""
    p = page_alloc_class()
    p.grow(chunk_base(BASE_CHUNK_IDX), chunks * PALLOC_CHUNK_BYTES)
    live: list[tuple[int, int]] = []
    allocs = failed = 0
    h = FNV_OFFSET
    for is_alloc, x in stream:
        if is_alloc:
            addr, _ = p.alloc(x)
            allocs += 1
            if addr:
                live.append((addr, x))
            else:
                failed += 1
            h = ((h ^ addr) * FNV_PRIME) & MASK64
        elif live:
            i = x % len(live)
            live[i], live[-1] = live[-1], live[i]
            p.free(*live.pop())
    return Replayed(allocs, failed, h)
