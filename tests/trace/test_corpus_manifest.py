"""pagealloc.trace.corpus: the one reader (and writer) of traces/manifest.json."""

from __future__ import annotations

import json
import shutil

import pytest

from pagealloc.errors import UserError
from pagealloc.trace import corpus


def test_the_bundled_manifest_reads_in_order_with_sets_and_sources():
    m = corpus.load()
    raw = json.loads(corpus.MANIFEST.read_text())["traces"]
    assert [e.name for e in m.entries] == [e["name"] for e in raw]
    assert all(e.path == corpus.MANIFEST.parent / e.file and e.path.is_file() for e in m.entries)
    assert set(m.sets()) == set(corpus.SETS) and {e.source for e in m.entries} == set(corpus.SOURCES)
    go114 = m.select(sources=["go1.14-runtime"])
    assert go114 and all(e.source == "go1.14-runtime" for e in go114)
    default = m.select(sets=["default"])
    assert [e.name for e in default] == [e["name"] for e in raw if e["set"] == "default"]
    assert [e.name for e in m.select([default[1].name, default[0].name])] == [default[0].name, default[1].name]


def test_unknown_names_and_filters_are_one_clear_error():
    m = corpus.load()
    with pytest.raises(UserError, match=r"manifest.json: no trace named nosuch \(there are: .*\.\.\. \(\d+ in all\)\)"):
        m.select(["nosuch"])
    synthetic = m.select(sources=["synthetic"])[0].name
    with pytest.raises(UserError, match=f"no go1.14-runtime trace named {synthetic}"):
        m.select([synthetic], sources=["go1.14-runtime"])


def test_a_hand_written_manifest_needs_only_files(tmp_path):
    (tmp_path / "m.json").write_text(json.dumps({"traces": [{"file": "sub/a.parquet"}, {"file": "b.parquet", "set": "heavy"}]}))
    m = corpus.load(tmp_path / "m.json")
    assert [(e.name, e.set, e.source, e.path) for e in m.entries] == [
        ("a", "default", "", tmp_path / "sub" / "a.parquet"), ("b", "heavy", "", tmp_path / "b.parquet")]


@pytest.mark.parametrize("text, message", [
    (None, "cannot read the trace manifest"),
    ("{", "not a trace manifest (not valid JSON"),
    ("[]", "expected an object with a list 'traces'"),
    ('{"traces": [{"name": "x"}]}', "traces[0] has no 'file'"),
    ('{"traces": [{"file": "a.parquet", "set": 3}]}', "traces[0].set must be a string"),
])
def test_a_bad_manifest_is_a_user_error_naming_the_file(tmp_path, text, message):
    path = tmp_path / "manifest.json"
    if text is not None:
        path.write_text(text)
    with pytest.raises(UserError) as e:
        corpus.load(path)
    assert str(e.value).startswith(f"{path}: ") and message in str(e.value) and "\n" not in str(e.value)


def test_saving_writes_back_what_was_read_and_what_changed(tmp_path):
    copy = tmp_path / "manifest.json"
    shutil.copy(corpus.MANIFEST, copy)
    m = corpus.load(copy)
    m.save()
    assert copy.read_bytes() == corpus.MANIFEST.read_bytes()  # record-corpus's format, byte for byte
    m.entries[0].raw["events"] = 1
    m.save()
    assert corpus.load(copy).entries[0].raw["events"] == 1
