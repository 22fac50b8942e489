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
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ASV_DIR = ROOT / ".asv"
RESULTS = ASV_DIR / "results"
HTML = ASV_DIR / "html"
REPORT = HTML / "report"

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


# asv 0.6's dashboard loads these from CDNs; scripts/asv-vendor has local copies.
VENDOR = Path(__file__).resolve().parent / "asv-vendor"
CDN = {
    "https://code.jquery.com/jquery-3.3.1.min.js": "jquery-3.3.1.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.min.js": "jquery.flot-0.8.3.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.time.min.js": "jquery.flot-0.8.3.time.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.selection.min.js": "jquery.flot-0.8.3.selection.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.categories.min.js": "jquery.flot-0.8.3.categories.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/stupidtable/1.0.1/stupidtable.min.js": "stupidtable.js",
    "https://cdnjs.cloudflare.com/ajax/libs/blueimp-md5/2.19.0/js/md5.min.js": "md5.js",
    "https://cdn.jsdelivr.net/npm/bootstrap@3.1.1/dist/css/bootstrap.min.css": "bootstrap-3.1.0.min.css",
    "https://cdn.jsdelivr.net/npm/bootstrap@3.1.1/dist/js/bootstrap.min.js": "bootstrap-3.1.0.min.js",
    "https://cdn.jsdelivr.net/npm/flot-orderbars@1.0.0/js/jquery.flot.orderBars.js": "jquery.flot.orderBars.js",
}
_ASSET = re.compile(r'(<(?:script|link)\b[^>]*?\b(?:src|href)=")(https?://[^"]+)(")')


def localize_dashboard(html_dir: Path = HTML) -> list[str]:
    """Point the published dashboard at local copies of its CDN scripts and
    styles (copied to html_dir/vendor); return the CDN URLs left unmapped."""
    vendor = html_dir / "vendor"
    vendor.mkdir(exist_ok=True)
    for name in set(CDN.values()):
        shutil.copy2(VENDOR / name, vendor / name)
    unmapped = []

    def local(m):
        url = m.group(2)
        if url in CDN:
            return f"{m.group(1)}vendor/{CDN[url]}{m.group(3)}"
        unmapped.append(url)
        return m.group(0)

    for page in html_dir.glob("*.html"):
        text = page.read_text()
        new = _ASSET.sub(local, text)
        new = re.sub(r'\s+integrity="[^"]*"', "", new) if new != text else new
        if new != text:
            page.write_text(new)
    return unmapped


def publish(log: Path) -> bool:
    """asv publish, then make the dashboard self-contained (no CDN)."""
    if asv(["publish"], log, echo=False) != 0:
        return False
    for url in localize_dashboard():
        say(f"  warning: the dashboard still loads {url} (no local copy in {VENDOR.relative_to(ROOT)})")
    return True


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
