"""pagealloc's patch to the Go 1.14.6 runtime (pagealloc/trace/go114patch/).

The edits match code, not comments: checked on hand-made Go text, on the
runtime of the shared Go 1.14.6 tarball, and on that runtime with every
comment stripped (a tree whose comments differ, as the release's do from
the shared copy's).  Needs no Go; the tarball tests skip without it.
"""

from __future__ import annotations

import io
import re
import tarfile
import tomllib

import pytest

from pagealloc.errors import UserError
from pagealloc.trace import go114
from pagealloc.trace.go114 import PATCH_DIR, _unpack, apply_edit, apply_patch, source_path

TARBALL = go114.BESIDE_CHECKOUT
needs_tarball = pytest.mark.skipif(not TARBALL.is_file(), reason=f"needs the Go 1.14.6 source ({TARBALL})")
EDITS = tomllib.loads((PATCH_DIR / "edits.toml").read_text())["edit"]

GO = """package runtime

func f() {
	// a comment the release does not have
	x := 1 /* inline */
	y := x   // spacing differs

	/* a block
	   comment */
	return y
}
"""


def test_an_anchor_matches_code_whatever_the_comments():
    edit = {"anchor": "x := 1\ny := x\nreturn y\n", "where": "before", "text": "\thook()\n"}
    assert apply_edit(GO, edit, "f.go").split("\n")[4:6] == ["\thook()", "\tx := 1 /* inline */"]
    edit["where"] = "after"
    assert apply_edit(GO, edit, "f.go").split("\n")[10] == "\thook()"
    edit["where"] = "replace"
    assert apply_edit(GO, edit, "f.go") == "package runtime\n\nfunc f() {\n\t// a comment the release does not have\n\thook()\n}\n"


@pytest.mark.parametrize("anchor, text, how", [("z := 2", GO, "not found"), ("}", GO + "func g() {\n}\n", "found 2 times")])
def test_an_anchor_must_match_exactly_once(anchor, text, how):
    with pytest.raises(UserError, match=f"f.go: the patch's anchor .* is {how}; is this the go1.14.6 source"):
        apply_edit(text, {"anchor": anchor, "where": "after", "text": "hook()"}, "f.go")


def _runtime_of_tarball(tmp_path, strip_comments: bool = False):
    root = tmp_path / "go"
    names = {f"src/runtime/{e['file']}" for e in EDITS}
    with tarfile.open(TARBALL) as tar:
        for m in tar.getmembers():
            rel = m.name.split("/", 1)[-1]
            if rel in names:
                text = tar.extractfile(m).read().decode()
                if strip_comments:
                    text = "\n".join(line for line in text.split("\n") if not line.strip().startswith("//"))
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                (root / rel).write_text(text)
    return root


@needs_tarball
@pytest.mark.parametrize("strip_comments", [False, True], ids=["shared copy", "comments stripped"])
def test_the_patch_applies_to_the_go114_runtime(tmp_path, strip_comments):
    root = _runtime_of_tarball(tmp_path, strip_comments)
    before = {p.name: p.read_text() for p in (root / "src" / "runtime").glob("*.go")}
    apply_patch(root)
    runtime = root / "src" / "runtime"
    assert (runtime / "pagealloc_record.go").read_text() == (PATCH_DIR / "pagealloc_record.go").read_text()
    added = {e["file"]: 0 for e in EDITS}
    for e in EDITS:
        added[e["file"]] += e["text"].count("// pagealloc")
    for name, n in added.items():
        text = (runtime / name).read_text()
        assert text.count("// pagealloc") - before[name].count("// pagealloc") == n, name
    mheap = (runtime / "mheap.go").read_text()
    assert mheap.count("pageallocRecAlloc(") == 3  # allocSpan's three ways to a span: refilled cache, cache, heap
    assert mheap.count("pageallocLocked") == 4 and mheap.count("pageallocEvFree") == 1
    # Every hook the recorder defines is called, and every call is to one it defines.
    calls = set(re.findall(r"\b(pagealloc\w+)\(", "".join((runtime / n).read_text() for n in added)))
    defined = set(re.findall(r"^func (pagealloc\w+)\(", (runtime / "pagealloc_record.go").read_text(), re.M))
    assert calls <= defined and {"pageallocRecInit", "pageallocRecEnd", "pageallocRecordEv", "pageallocRecAlloc", "pageallocRecGC"} <= calls


def test_source_path_says_where_the_source_comes_from(tmp_path, monkeypatch):
    monkeypatch.delenv(go114.SRC_ENV, raising=False)
    with pytest.raises(UserError, match="--go114-src /nowhere: no such file or directory"):
        source_path("/nowhere")
    monkeypatch.setenv(go114.SRC_ENV, str(tmp_path))
    assert source_path() == tmp_path
    monkeypatch.delenv(go114.SRC_ENV)
    monkeypatch.setattr(go114, "BESIDE_CHECKOUT", tmp_path / "absent.tar.gz")
    with pytest.raises(UserError, match="needs the go1.14.6 source: give --go114-src PATH or set PAGEALLOC_GO114_SRC"):
        source_path()


def _tarball(tmp_path, version: str):
    path = tmp_path / "go.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, data in {"go/VERSION": version.encode(), "go/src/runtime/proc.go": b"package runtime\n"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_only_go_1_14_6_is_unpacked(tmp_path):
    _unpack(_tarball(tmp_path, "go1.14.6"), tmp_path / "ok")
    assert (tmp_path / "ok" / "src" / "runtime" / "proc.go").is_file()
    with pytest.raises(UserError, match="this is go1.20.1, not go1.14.6"):
        _unpack(_tarball(tmp_path, "go1.20.1"), tmp_path / "new")
    (tmp_path / "junk.tar.gz").write_bytes(b"junk")
    with pytest.raises(UserError, match="cannot unpack it as a Go source tarball"):
        _unpack(tmp_path / "junk.tar.gz", tmp_path / "junk")
    with pytest.raises(UserError, match="not a Go source tree"):
        _unpack(tmp_path / "ok" / "src", tmp_path / "tree")
