"""The bundled corpus: every trace in traces/manifest.json exists, validates
and matches the manifest; real and synthetic traces are there in the numbers
issue 3 asks for; the synthetic ones regenerate byte-identically."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from pagealloc.cli import main
from pagealloc.trace import validate_trace

ROOT = Path(__file__).resolve().parents[2]
TRACES = ROOT / "traces"
MANIFEST = json.loads((TRACES / "manifest.json").read_text())
ENTRIES = MANIFEST["traces"]
IDS = [e["name"] for e in ENTRIES]


def test_manifest_lists_enough_traces_of_each_kind():
    assert len(set(IDS)) == len(IDS)
    default = [e for e in ENTRIES if e["set"] == "default"]
    assert sum(e["source"] == "go-trace" for e in default) >= 6
    assert sum(e["source"] == "synthetic" for e in default) >= 3
    assert {e["set"] for e in ENTRIES} <= {"default", "heavy"}
    for e in ENTRIES:
        assert e["file"].startswith("heavy/") == (e["set"] == "heavy"), e["name"]
        assert shlex.split(e["command"])[0] == "pagealloc"
        assert f"traces/{e['file']}" in shlex.split(e["command"])


def test_every_parquet_file_is_listed_and_the_corpus_is_small():
    on_disk = {str(p.relative_to(TRACES)) for p in TRACES.rglob("*.parquet")}
    assert on_disk == {e["file"] for e in ENTRIES}
    assert sum((TRACES / e["file"]).stat().st_size for e in ENTRIES) <= 40 * 2**20


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_trace_validates_and_matches_the_manifest(entry):
    path = TRACES / entry["file"]
    s = validate_trace(path)
    assert (s.events, path.stat().st_size) == (entry["events"], entry["size_bytes"])
    m = s.metadata
    assert (m["source"], m["name"]) == (entry["source"], entry["name"])
    if entry["source"] == "go-trace":
        assert m["go_version"].startswith("go1.") and m["page_size"] == 8192 and m["min_heap_addr"] > 0
        assert m["importer"]["implicit_frees"] == m["importer"]["dropped_frees"] == 0
        assert s.counts["alloc"] > 1000 and s.counts["free"] > 1000 and s.counts["gc"] > 0
    if entry["set"] == "default":
        assert 50_000 <= s.events <= 500_000


def test_freeosmemory_trace_has_its_annotations():
    s = validate_trace(TRACES / "freeosmemory-p2.parquet")
    assert s.counts["free_os_memory"] == 12


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e["source"] == "synthetic"], ids=lambda e: e["name"])
def test_synthetic_trace_regenerates_byte_identically(tmp_path, entry):
    words = shlex.split(entry["command"])
    out = tmp_path / "again.parquet"
    words[words.index("-o") + 1] = str(out)
    assert main(words[1:]) == 0
    assert out.read_bytes() == (TRACES / entry["file"]).read_bytes()


def test_readme_lists_the_corpus():
    readme = (TRACES / "README.md").read_text()
    for e in ENTRIES:
        assert f"`{e['name']}`" in readme and e["command"] in readme
