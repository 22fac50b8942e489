"""Shared by scripts/main, scripts/nightly, scripts/publish and scripts/compare:
running asv quietly, benchmarking past commits, publishing, the report.

Folders (see README.md, "Benchmarking with asv"):
  .asv/results       asv results: history, never deleted by these scripts
  .asv/report        pagealloc report (asv publish does not touch it)
  .asv/html          the dashboard (asv publish rewrites it); .asv/html/report is a copy of the report
  .asv/<job>.log     the full asv output of the last run of a job

asv names a ``--python=same`` run's environment after the interpreter it
runs under (``existing-py_<its path>``) and compares results only within one
environment.  ``asv`` here runs under the interpreter of the virtualenv's
``asv`` command, so the scripts' results and a hand ``.venv/bin/asv run
--python=same`` land in the same environment and compare.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ASV_DIR = ROOT / ".asv"
RESULTS = ASV_DIR / "results"
HTML = ASV_DIR / "html"
REPORT = ASV_DIR / "report"
HTML_REPORT = HTML / "report"

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


def asv_python() -> str:
    """The interpreter the virtualenv's ``asv`` command runs under (its
    shebang, or the target of pip's /bin/sh trampoline for long paths);
    this Python when there is no such command."""
    script = Path(sys.executable).parent / "asv"
    try:
        head = script.read_text(errors="replace").splitlines()[:3]
    except OSError:
        return sys.executable
    m = re.match(r"#!\s*(\S+)", head[0]) if head else None
    if m and not m.group(1).endswith("/sh"):
        exe = m.group(1)
    else:
        m = re.search(r"""'''exec' "?([^"]+?)"? "\$0" "\$@"'?""", "\n".join(head))
        exe = m.group(1) if m else ""
    return exe if os.path.isabs(exe) and os.access(exe, os.X_OK) else sys.executable


def asv(args: list[str], log: Path, *, env: dict | None = None, echo: bool = True) -> int:
    """Run ``python -m asv ARGS`` in the repository, all output to ``log``
    (appended), echoing asv's one-line progress messages; return its status."""
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [asv_python(), "-m", "asv", *args]
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


# -- past commits in this Python (scripts/main's short history) --


def has_replay_api(src: Path) -> bool:
    """Whether the pagealloc in ``src`` has the replay API the benchmarks use."""
    probe = "import pagealloc, sys; sys.exit(0 if callable(getattr(pagealloc, 'replay', None)) else 1)"
    p = subprocess.run([sys.executable, "-c", probe], cwd=src, env={**os.environ, "PYTHONPATH": str(src)},
                       capture_output=True, timeout=120)
    return p.returncode == 0


def history(head: str, count: int, done: set[str], *, look_back: int = 20) -> list[str]:
    """Up to ``count`` first-parent ancestors of ``head``, nearest first, that
    have the replay API; those in ``done`` (already benchmarked) count but
    are not returned."""
    out, found = [], 0
    for commit in git("rev-list", "--first-parent", f"--max-count={look_back + 1}", head).split()[1:]:
        if found == count:
            break
        if commit in done:
            found += 1
            continue
        with tempfile.TemporaryDirectory(prefix="pagealloc-history-") as tmp:
            if extract(commit, Path(tmp)) and has_replay_api(Path(tmp)):
                found += 1
                out.append(commit)
    return out


def extract(commit: str, dest: Path) -> bool:
    """The ``pagealloc`` package of ``commit`` (and its setup.py, where it has one) into ``dest``
    (False when it has none)."""
    has_setup = subprocess.run(["git", "cat-file", "-e", f"{commit}:setup.py"], cwd=ROOT, capture_output=True)
    paths = ["pagealloc", *(["setup.py"] if has_setup.returncode == 0 else [])]
    archive = subprocess.run(["git", "archive", commit, *paths], cwd=ROOT, capture_output=True)
    if archive.returncode != 0:
        return False
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return True


def build_core(src: Path, log: Path) -> None:
    """Build a commit's compiled core in place, as its install would (commits that have one): its
    replays then run on the engine that commit ran by default.  A failed build is logged; that commit's
    pagealloc then says so and runs its Python engine."""
    if not (src / "setup.py").is_file():
        return
    with log.open("a") as out:
        subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=src, stdout=out,
                       stderr=subprocess.STDOUT, check=False)


def run_commit(commit: str, run_args: list[str], log: Path, env: dict) -> int:
    """``asv run --python=same --set-commit-hash COMMIT`` with that commit's
    pagealloc (extracted to a temporary folder, its compiled core built) first on the path."""
    with tempfile.TemporaryDirectory(prefix="pagealloc-history-") as tmp:
        extract(commit, Path(tmp))
        build_core(Path(tmp), log)
        return asv([*run_args, "--set-commit-hash", commit], log, env={**env, "ASV_PYTHONPATH": tmp}, echo=False)


# -- the dashboard --

# asv 0.6's dashboard loads these from CDNs; scripts/asv-vendor has local copies.
VENDOR = Path(__file__).resolve().parent / "asv-vendor"
DASHBOARD_JS = Path(__file__).resolve().parent / "dashboard.js"
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
REPORT_LINK = ('<li id="nav-li-pagealloc-report"><a href="report/index.html">'
               "Report: each preset vs go1.14, per trace</a></li>")


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


def drop_empty_benchmarks(html_dir: Path = HTML) -> list[str]:
    """Leave out of the dashboard's index the benchmarks without a value on
    any commit (asv draws them as empty thumbnails and 404s on their
    graphs): figures this pagealloc's ReplayResult lacks, so far.  Returns
    their names."""
    index = html_dir / "index.json"
    data = json.loads(index.read_text())
    empty = sorted(b for b in data["benchmarks"] if not (html_dir / "graphs" / "summary" / f"{b}.json").exists())
    for b in empty:
        del data["benchmarks"][b]
    index.write_text(json.dumps(data))
    return empty


def add_pagealloc(html_dir: Path = HTML) -> None:
    """pagealloc's script (every trace and mode on a benchmark's graph) and a
    link to the report in the navigation bar of the dashboard's index.html."""
    index = html_dir / "index.html"
    shutil.copy2(DASHBOARD_JS, html_dir / "vendor" / "pagealloc-dashboard.js")
    text = index.read_text()
    if "pagealloc-dashboard.js" not in text:
        text = text.replace("</head>", '    <script src="vendor/pagealloc-dashboard.js"></script>\n  </head>', 1)
    if REPORT_LINK not in text:
        text, n = re.subn(r'(<li id="nav-li-regressions">.*?</li>)', lambda m: m.group(1) + "\n\t" + REPORT_LINK, text,
                          count=1, flags=re.S)
        if n == 0:
            say("  warning: no navigation bar found in the dashboard's index.html; the report is not linked")
    index.write_text(text)


SERVE_PAGE = "open-over-http.html"
_FILE_REDIRECT = (f"<script>/* pagealloc: opened as a file, asv cannot read its data */ if (location.protocol === 'file:') "
                  f"location.replace('{SERVE_PAGE}');</script>")


def serve_page(html_dir: Path = HTML) -> str:
    """The page the dashboard shows when opened as a file: why it cannot draw, and the commands that serve it."""
    from html import escape

    report = html_dir / "report" / "index.html"
    also = ('<p>The report needs no server: <a href="report/index.html">report/index.html</a> '
            "(each preset against go1.14, per trace, and across commits).</p>") if report.exists() else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>pagealloc dashboard: serve it over HTTP</title>
<style>body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 50em; color: #222; }}
pre {{ background: #f4f4f4; padding: 0.6em; overflow-x: auto; }}</style></head>
<body>
<h1>The pagealloc dashboard needs a web server</h1>
<p>This page was opened as a file. A browser does not let a page opened from a file read the data beside it
(<code>index.json</code>, <code>graphs/</code>), so asv's dashboard cannot draw from here (asv itself would say
"Can not determine continental origin of swallow"). Serve the folder, then open the address it prints:</p>
<pre>cd {escape(str(ROOT))} &amp;&amp; .venv/bin/asv preview
# then open http://127.0.0.1:8080/</pre>
<p>or, with any Python 3:</p>
<pre>python3 -m http.server 8080 --bind 127.0.0.1 -d {escape(str(html_dir.resolve()))}
# then open http://127.0.0.1:8080/</pre>
{also}
<p>Published by <code>scripts/publish</code> (README.md, "Benchmarking with asv").</p>
</body></html>
"""


def add_serve_page(html_dir: Path = HTML) -> None:
    """Make the dashboard open usefully from file://: the page that says how to serve it, asv's error page
    replaced by it, and index.html sent there before anything else loads when opened as a file."""
    page = serve_page(html_dir)
    (html_dir / SERVE_PAGE).write_text(page)
    (html_dir / "error.html").write_text(page)  # where asv's scripts send the browser when they fail to load
    index = html_dir / "index.html"
    text = index.read_text()
    if _FILE_REDIRECT not in text:
        text, n = re.subn(r"(<head[^>]*>)", lambda m: m.group(1) + "\n    " + _FILE_REDIRECT, text, count=1)
        if n == 0:
            say("  warning: no <head> in the dashboard's index.html; opened as a file it will not say how to serve it")
        index.write_text(text)


def publish(log: Path) -> bool:
    """asv publish, then make the dashboard self-contained (no CDN), add
    pagealloc's script and report link, and copy the report in.

    asv publish draws only commits on the branches of asv.conf.json
    ("main"); on another branch, that branch is published first (the
    dashboard opens on it) and main after it."""
    from asv import util

    conf = util.load_json(str(ROOT / "asv.conf.json"), js_comments=True)
    branch = git("rev-parse", "--abbrev-ref", "HEAD")
    if branch != "HEAD" and branch not in conf["branches"]:
        conf["branches"] = [branch, *conf["branches"]]
    for key in ("repo", "benchmark_dir", "env_dir", "results_dir", "html_dir"):  # asv reads them from the config's folder
        conf[key] = str(ROOT / conf[key])
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="asv-publish-") as f:
        json.dump(conf, f)
        f.flush()
        if asv(["publish", "--config", f.name], log, echo=False) != 0:
            return False
    for url in localize_dashboard():
        say(f"  warning: the dashboard still loads {url} (no local copy in {VENDOR.relative_to(ROOT)})")
    add_pagealloc()
    empty = drop_empty_benchmarks()
    if empty:
        say(f"  dashboard: {len(empty)} benchmark(s) without a value on any commit left out: {', '.join(empty)}")
    if (REPORT / "index.html").exists():
        shutil.copytree(REPORT, HTML_REPORT, dirs_exist_ok=True)
    add_serve_page()
    return True


# -- the report --


def default_traces() -> list[Path]:
    from benchmarks._corpus import corpus

    return [path for _, path in corpus("default")]


def report(machine: str, traces: list[Path] | None = None) -> Path | None:
    """pagealloc report into .asv/report: the traces (default set) and the asv history."""
    from pagealloc.cli import main as cli

    traces = default_traces() if traces is None else traces
    args = ["report", *map(str, traces), "--asv-results", str(RESULTS), "--machine", machine, "-o", str(REPORT)]
    t0 = time.time()
    say(f"  pagealloc report ({len(traces)} traces in every mode, asv history) ...")
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
        say(f"report:    {rel(index)} (also {rel(HTML_REPORT / 'index.html')}, linked from the dashboard)")
