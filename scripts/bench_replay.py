#!/usr/bin/env python3
"""Replay speed and memory figures (issue #4): print, don't assert.

  bench_replay.py TRACE...            median wall-clock events/s per trace and mode
  bench_replay.py --rss [--events N]  peak RSS of replaying synthetic traces of 1M and N events
                                      (default 10M), each in a fresh process, to show that memory
                                      does not grow with trace length

Wall-clock figures vary with the machine's load; the replay's own metrics do not.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def speed(traces: list[str], repeat: int) -> None:
    from pagealloc.sim.replay import MODES, replay

    print(f"{'trace':<28} {'mode':<9} {'events':>9} {'events/s (median of %d)' % repeat:>26} {'released':>12} {'stall':>12}")
    for t in traces:
        for mode in MODES:
            runs = [replay(t, mode) for _ in range(repeat)]
            eps = statistics.median(r.replay_events_per_wall_second for r in runs)
            r = runs[0]
            print(f"{Path(t).stem:<28} {mode:<9} {r.events:>9,} {eps:>26,.0f} "
                  f"{r.released_bytes / 2**20:>9.1f} MiB {r.mutator_stall_ns / 1e6:>9.2f} ms")


def _child(path: str, mode: str) -> None:
    from pagealloc.sim.replay import replay

    t0 = time.perf_counter()
    r = replay(path, mode)
    secs = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{r.events:>11,} events  {mode:<8}  peak RSS {rss:7.1f} MiB  {r.events / secs:>9,.0f} events/s")


def rss(events: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        for n in (1_000_000, events):
            path = str(Path(d) / f"churn-{n}.parquet")
            subprocess.run([sys.executable, "-m", "pagealloc", "synth", "churn", "-o", path,
                            "--events", str(n), "--seed", "1"], check=True, stdout=subprocess.DEVNULL)
            subprocess.run([sys.executable, __file__, "--child", path, "unlocked"], check=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("traces", nargs="*")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--rss", action="store_true")
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(*args.child)
    elif args.rss:
        rss(args.events)
    else:
        speed(args.traces, args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
