"""Shared by scripts/main and scripts/nightly: running asv quietly, publishing, the report.

Folders (see README.md, "Benchmarking with asv"):
  .asv/results       asv results: history, never deleted by these scripts
  .asv/html          the dashboard (asv publish rewrites it)
  .asv/html/report   pagealloc report, written after publishing
  .asv/<job>.log     the full asv output of the last run of a job
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ASV_DIR = ROOT / ".asv"
RESULTS = ASV_DIR / "results"
HTML = ASV_DIR / "html"
REPORT = HTML / "report"
NOT_HEAVY = r"^(?!.*Heavy)"  # --bench regex: everything but the opt-in heavy classes

sys.path.insert(0, str(ROOT))  # pagealloc and benchmarks of this checkout

# asv's per-benchmark progress lines: "[ 15.79%] ··· bench_replay.Replay.time_replay   ok"
_PROGRESS = re.compile(r"^\[\s*[\d.]+%\] ·{1,3} (?![=\-])(\S.*)$")


def say(msg: str) -> None:
    print(msg, flush=True)


def git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def default_machine() -> str:
    name = os.environ.get("ASV_MACHINE") or platform.node() or "localhost"
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def asv(args: list[str], log: Path, *, env: dict | None = None, echo: bool = True) -> int:
    """Run ``python -m asv ARGS`` in the repository, all output to ``log``
    (appended), echoing asv's one-line progress messages; return its status."""
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "asv", *args]
    with open(log, "a") as f:
        f.write(f"\n$ {' '.join(cmd)}\n")
        f.flush()
        p = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env={**os.environ, **(env or {})})
        for line in p.stdout:
            f.write(line)
            m = _PROGRESS.match(line.rstrip())
            if echo and m:
                say("  " + line.rstrip())
        return p.wait()


def tail(log: Path, n: int = 30) -> str:
    try:
        return "\n".join(log.read_text().splitlines()[-n:])
    except OSError:
        return ""


def ensure_machine(machine: str, log: Path) -> None:
    """Register ``machine`` in ~/.asv-machine.json (asv would otherwise ask)."""
    if asv(["machine", "--yes", "--machine", machine], log, echo=False) != 0:
        raise SystemExit(f"asv machine failed; see {log}:\n{tail(log)}")


def publish(log: Path) -> bool:
    return asv(["publish"], log, echo=False) == 0


def default_traces() -> list[Path]:
    from benchmarks._corpus import corpus

    return [path for _, path in corpus("default")]


def report(log: Path, machine: str, traces: list[Path] | None = None) -> Path | None:
    """pagealloc report into .asv/html/report: the traces (default set) and the asv history."""
    from pagealloc.cli import main as cli

    traces = default_traces() if traces is None else traces
    args = ["report", *map(str, traces), "--asv-results", str(RESULTS), "--machine", machine, "-o", str(REPORT)]
    t0 = time.time()
    say(f"  pagealloc {' '.join(args[:1])} ({len(traces)} traces x 2 modes, asv history) ...")
    status = cli(args)
    if status != 0:
        say(f"  pagealloc report failed (status {status})")
        return None
    say(f"  report written in {time.time() - t0:.0f}s")
    return REPORT / "index.html"


def where(index: Path | None) -> None:
    rel = lambda p: os.path.relpath(p, Path.cwd())  # noqa: E731
    say(f"results:   {rel(RESULTS)}/ (asv results, kept across runs)")
    say(f"dashboard: {rel(HTML / 'index.html')}  (serve it: .venv/bin/asv preview, or python3 -m http.server -d {rel(HTML)})")
    if index is not None:
        say(f"report:    {rel(index)}")
