"""What scripts/publish adds to asv's dashboard: opened as a file it says how to serve it (with the
commands) instead of asv's "continental origin of swallow" dead end; a benchmark with many lines opens
without the legend that would cover its plot (issue 22).

The dashboard here is asv's own page (its www folder) put through the same steps scripts/publish
takes after ``asv publish``, with an index.json of two benchmarks; headless Chromium opens it from
file:// and over http (skipped without chromium and chromedriver, as tests/test_nightly.py)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import asvjob  # noqa: E402
from asvproject import browser as open_browser  # noqa: E402
from asvproject import wait_for  # noqa: E402

WIDE = "bench_replay.ReplayMetrics.track_p_stall_ns"  # 40 traces x 3 presets: 120 lines
NARROW = "bench_replay.Replay.time_replay"  # 1 trace x 3 presets


@pytest.fixture(scope="module")
def html(tmp_path_factory) -> Path:
    asv = pytest.importorskip("asv")
    out = tmp_path_factory.mktemp("dashboard") / "html"
    shutil.copytree(Path(asv.__file__).parent / "www", out)
    modes = ["'go1.14'", "'unlocked'", "'locked'"]
    index = {"project": "pagealloc", "project_url": "", "show_commit_url": "", "hash_length": 8, "revision_to_hash": {},
             "revision_to_date": {}, "params": {"machine": ["m"]}, "graph_param_list": [{"machine": "m"}],
             "benchmarks": {WIDE: {"params": [[f"'t{i}'" for i in range(40)], modes], "param_names": ["trace", "mode"],
                                   "unit": "ns", "type": "track", "name": WIDE, "code": "", "version": "1"},
                            NARROW: {"params": [["'t0'"], modes], "param_names": ["trace", "mode"], "unit": "seconds",
                                     "type": "time", "name": NARROW, "code": "", "version": "1"}},
             "machines": {"m": {}}, "tags": {}, "pages": [], "extra_pages": []}
    (out / "index.json").write_text(json.dumps(index))
    (out / "report").mkdir()
    (out / "report" / "index.html").write_text("<!DOCTYPE html><title>report</title><h1>pagealloc report</h1>")
    # scripts/publish's steps after asv publish (asvjob.publish)
    assert asvjob.localize_dashboard(out) == []
    asvjob.add_pagealloc(out)
    asvjob.add_serve_page(out)
    return out


def test_the_published_files_say_how_to_serve_the_dashboard(html):
    for page in ("open-over-http.html", "error.html"):
        text = (html / page).read_text()
        assert f"python3 -m http.server 8080 --bind 127.0.0.1 -d {html.resolve()}" in text, page
        assert f"cd {ROOT} &amp;&amp; .venv/bin/asv preview" in text and "http://127.0.0.1:8080/" in text, page
        assert '<a href="report/index.html">' in text, page  # the report needs no server
        assert "https://" not in text, page  # nothing to fetch
    index = (html / "index.html").read_text()
    first_script = index.index("<script")
    assert index[first_script:].startswith("<script>/* pagealloc: opened as a file"), index[first_script:first_script + 200]
    assert f"location.replace('{asvjob.SERVE_PAGE}')" in index
    asvjob.add_serve_page(html)  # publishing twice adds it once
    assert (html / "index.html").read_text().count(asvjob.SERVE_PAGE) == 1


@pytest.fixture(scope="module")
def chromium(html, tmp_path_factory):
    with open_browser(html, tmp_path_factory.mktemp("profile"), tmp_path_factory.mktemp("shots")) as b:
        yield b


def test_opened_as_a_file_it_shows_how_to_serve_it(chromium, html):
    driver, _, shots = chromium
    driver.get((html / "index.html").resolve().as_uri() + f"#{WIDE}")
    text = wait_for(driver, "const t = document.body && document.body.innerText;"
                            " return t && t.includes('needs a web server') && t", "the serve page")
    assert driver.current_url.endswith(asvjob.SERVE_PAGE), driver.current_url
    assert f"python3 -m http.server 8080 --bind 127.0.0.1 -d {html.resolve()}" in text
    driver.save_screenshot(str(shots / "file-index.png"))
    driver.find_element("link text", "report/index.html").click()  # not a dead end: the report opens from here
    wait_for(driver, "return document.title === 'report'", "the report, opened from the serve page")


def test_served_it_stays_and_a_wide_graph_opens_without_its_legend(chromium):
    driver, base, shots = chromium
    driver.get(f"{base}/index.html#{WIDE}")
    hash_ = wait_for(driver, "const h = decodeURIComponent(location.hash); return h.includes('p-mode') && h",
                     "every trace and mode selected")
    assert "show-legend=false" in hash_ and driver.current_url.startswith(f"{base}/index.html"), hash_
    driver.get("about:blank")  # a fresh load, not a hash change on a page whose asv found no data
    driver.get(f"{base}/index.html#{NARROW}")
    hash_ = wait_for(driver, f"const h = decodeURIComponent(location.hash); return h.includes('p-mode') && h.includes('{NARROW}') && h",
                     "the narrow benchmark's lines selected")
    assert "show-legend" not in hash_, hash_  # 3 lines: the legend stays
    driver.save_screenshot(str(shots / "http-narrow.png"))
