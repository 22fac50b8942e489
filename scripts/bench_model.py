#!/usr/bin/env python3
"""Speed floor of the page allocator model (issue #2): print ops/s.

Runs the reference stream — 300,000 alloc/free operations over 64 empty
chunks, sizes mostly 1-16 pages with a tail up to 2,000, ~48% frees of random
live allocations — through PageAlloc and prints the median ops/s over
--repeat runs.  The stream is generated before timing, so only the model is
timed.  Floor: 250,000 ops/s on the reference 2-core machine.

Wall-clock figures on a shared VM swing by a third with the host's load, so
--instructions also counts the CPU instructions one op costs (valgrind's
callgrind: a run of N ops minus a run of 1 op, divided by N-1), a figure
that does not depend on the machine's load.
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pagealloc import BASE_CHUNK_IDX, PALLOC_CHUNK_BYTES, PageAlloc, chunk_base  # noqa: E402


def make_stream(ops: int, seed: int) -> list[tuple[bool, int]]:
    """[(is_alloc, npages or index into live list)]: frees pick a random live slot."""
    rng = random.Random(seed)
    stream = []
    for _ in range(ops):
        if rng.random() < 0.48:
            stream.append((False, rng.getrandbits(32)))
        else:
            n = rng.randint(1, 16) if rng.random() < 0.97 else rng.randint(17, 2000)
            stream.append((True, n))
    return stream


def run(stream, chunks: int) -> tuple[float, int]:
    p = PageAlloc()
    p.grow(chunk_base(BASE_CHUNK_IDX), chunks * PALLOC_CHUNK_BYTES)
    live: list[tuple[int, int]] = []
    alloc, free = p.alloc, p.free
    failed = 0
    t0 = time.perf_counter()
    for is_alloc, x in stream:
        if is_alloc:
            addr, _ = alloc(x)
            if addr:
                live.append((addr, x))
            else:
                failed += 1
        elif live:
            i = x % len(live)
            live[i], live[-1] = live[-1], live[i]
            free(*live.pop())
    return time.perf_counter() - t0, failed


def instructions(ops: int, chunks: int, seed: int) -> float:
    """CPU instructions per op, from two callgrind runs of this script."""
    if shutil.which("valgrind") is None:
        raise SystemExit("bench_model: --instructions needs valgrind")

    def count(n: int) -> int:
        out = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__,
             "--ops", str(n), "--chunks", str(chunks), "--seed", str(seed), "--repeat", "1", "--quiet"],
            capture_output=True, text=True, check=True,
        ).stderr
        return int(re.search(r"Collected : (\d+)", out).group(1))

    return (count(ops) - count(1)) / (ops - 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ops", type=int, default=300_000)
    ap.add_argument("--chunks", type=int, default=64)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--instructions", type=int, metavar="N", help="count instructions per op over N ops under callgrind")
    ap.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.instructions:
        per_op = instructions(args.instructions, args.chunks, args.seed)
        print(f"model alloc/free stream: {per_op:,.0f} CPU instructions per op (callgrind, {args.instructions} ops, "
              f"{args.chunks} chunks, seed {args.seed})")
        return 0
    stream = make_stream(args.ops, args.seed)
    rates = []
    for _ in range(args.repeat):
        secs, failed = run(stream, args.chunks)
        rates.append(args.ops / secs)
    med = statistics.median(rates)
    if args.quiet:
        return 0
    print(
        f"model alloc/free stream: {args.ops} ops, {args.chunks} chunks, seed {args.seed}: "
        f"median {med:,.0f} ops/s over {args.repeat} runs (min {min(rates):,.0f}, max {max(rates):,.0f}); "
        f"{failed} allocs did not fit; floor 250,000 ops/s: {'PASS' if med >= 250_000 else 'BELOW'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
