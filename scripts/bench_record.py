#!/usr/bin/env python3
"""How long `pagealloc record` takes with the installed Go, against the program's own build and run (issue 22).

  bench_record.py [--depth 16] [--rounds 3] [--repeat 1] [--decoder go|text]

The program is the binary-trees benchmark (depth 16, three rounds by default:
allocation-heavy, so its execution trace with GODEBUG=traceallocfree=1 runs
to hundreds of MiB).  Printed: the plain `go build` + run time, the
`pagealloc record` time (build, traced run, decode, write), their ratio (the
target is at most 15x), and the peak RSS of the largest process of each.
Each figure is the median of --repeat runs, after one warm-up of each (so
both build from a warm build cache and the decoder is already compiled).
--decoder text times the old path (go tool trace -d=parsed parsed in
Python) through `record --keep-raw` + `import` instead; it takes minutes.

Print, don't assert: wall-clock figures vary with the machine's load (the
CPU seconds vary less).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROGRAM = """// binarytrees (the benchmarks game): build and check trees, -rounds times over.
package main

import (
	"flag"
	"fmt"
)

type node struct{ left, right *node }

func build(d int) *node {
	if d == 0 {
		return &node{}
	}
	return &node{build(d - 1), build(d - 1)}
}

func (n *node) check() int {
	if n.left == nil {
		return 1
	}
	return 1 + n.left.check() + n.right.check()
}

func main() {
	depth := flag.Int("depth", 16, "max tree depth")
	rounds := flag.Int("rounds", 3, "rounds")
	flag.Parse()
	for r := 0; r < *rounds; r++ {
		fmt.Printf("stretch tree of depth %d\\t check: %d\\n", *depth+1, build(*depth+1).check())
		long := build(*depth)
		for d := 4; d <= *depth; d += 2 {
			iters := 1 << (*depth - d + 4)
			sum := 0
			for i := 0; i < iters; i++ {
				sum += build(d).check()
			}
			fmt.Printf("%d\\t trees of depth %d\\t check: %d\\n", iters, d, sum)
		}
		fmt.Printf("long lived tree of depth %d\\t check: %d\\n", *depth, long.check())
	}
}
"""
# Runs a command and prints its wall time, CPU time and the peak RSS of its largest process (KiB) as JSON.
MEASURE = """
import json, resource, subprocess, sys, time
t = time.perf_counter()
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)
wall = time.perf_counter() - t
u = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"rc": r.returncode, "wall": wall, "cpu": u.ru_utime + u.ru_stime, "rss_kib": u.ru_maxrss}))
"""


def measure(argv: list[str], env: dict, cwd: str) -> dict:
    r = subprocess.run([sys.executable, "-c", MEASURE, *argv], env=env, cwd=cwd, capture_output=True, text=True)
    m = json.loads(r.stdout)
    m["stderr"] = r.stderr
    if m["rc"] != 0:
        sys.exit(f"bench_record: {' '.join(argv)} failed (exit {m['rc']}): {r.stderr.strip()[-500:]}")
    return m


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--depth", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--decoder", choices=["go", "text"], default="go")
    a = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from pagealloc.trace.gotool import find_go, go_env

    go, _ = find_go()
    env = go_env({"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))})
    args = [f"-depth={a.depth}", f"-rounds={a.rounds}"]
    with tempfile.TemporaryDirectory(prefix="bench-record-") as tmp:
        (Path(tmp) / "bt.go").write_text(PROGRAM)
        # Plain: what the user would run; the binary goes to the same folder each time.
        plain = ["sh", "-c", f'"{go}" build -o bt bt.go && ./bt "$@"', "plain", *args]
        out = str(Path(tmp) / "bt.parquet")
        raw = str(Path(tmp) / "bt.trace")
        record = [sys.executable, "-m", "pagealloc", "record", "-q", "-o", out]
        if a.decoder == "text":
            record = ["sh", "-c", f'"{sys.executable}" -m pagealloc record -q -o "{out}" --keep-raw "{raw}" -- bt.go "$@" >/dev/null && '
                      f'"{sys.executable}" -c \'import sys; from pagealloc.trace.goimport import import_go_trace; '
                      f'import_go_trace(sys.argv[1], sys.argv[2], decoder="text")\' "{raw}" "{out}"', "record", *args]
        else:
            record += ["--", "bt.go", *args]
        runs = {"plain": plain, "record": record}
        for argv in runs.values():  # warm-up: build caches, the compiled decoder
            measure(argv, env, tmp)
        figures = {name: [] for name in runs}
        for _ in range(a.repeat):
            for name, argv in runs.items():  # interleaved, so that both see the same load
                figures[name].append(measure(argv, env, tmp))
        note = re.search(r"large execution trace \(([\d,]+) MiB\)", figures["record"][-1]["stderr"])
    med = {name: {k: statistics.median(m[k] for m in ms) for k in ("wall", "cpu", "rss_kib")} for name, ms in figures.items()}
    load = os.getloadavg()[0]
    print(f"binary-trees -depth {a.depth} -rounds {a.rounds}, median of {a.repeat}, decoder {a.decoder}, load average {load:.1f} on {os.cpu_count()} cores")
    for name in runs:
        m = med[name]
        print(f"  {name:<7} {m['wall']:7.1f} s wall  {m['cpu']:7.1f} s cpu  peak RSS {m['rss_kib'] / 1024:7.0f} MiB (largest process)")
    if note:
        print(f"  execution trace: {note.group(1)} MiB (record's note before decoding)")
    print(f"record / plain build-and-run: {med['record']['wall'] / med['plain']['wall']:.1f}x wall, "
          f"{med['record']['cpu'] / med['plain']['cpu']:.1f}x cpu (target: at most 15x)")


if __name__ == "__main__":
    main()
