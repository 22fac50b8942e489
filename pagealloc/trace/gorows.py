"""The compiled decoder of Go execution traces: ``tracerows``, built once.

``gosrc/tracerows.go`` reads a trace with the installed toolchain's own
reader (``internal/trace``, the one behind ``go tool trace``) and writes
only the trace rows, as fixed-size binary records, the scheduling records
the P stream is built from (pagealloc.trace.gosched), plus a JSON line of
facts.  Go lets only code inside GOROOT's source tree import
``internal/trace``, so the build adds the file there through an
``-overlay`` (as ``cmd/pagealloc_tracerows``; GOROOT itself is not written
to) and keeps the binary in ``${XDG_CACHE_HOME:-~/.cache}/pagealloc-tracerows``,
one per toolchain and source version.  Rows are read back in
``BATCH_ROWS`` chunks, so memory does not grow with the trace.

It replaces ``go tool trace -d=parsed`` (pagealloc.trace.goimport's text
decoder, which stays as the fallback and the test oracle): printing every
event as text and parsing it in Python took minutes per GiB of trace.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from pagealloc.errors import UserError
from pagealloc.trace.format import BATCH_ROWS
from pagealloc.trace.gosched import SCHED
from pagealloc.trace.gotool import find_go, go_env, go_facts, go_root, last_line
from pagealloc.trace.gotrace import GO_REJECTS, RowFacts, Rows

SOURCE = Path(__file__).parent / "gosrc" / "tracerows.go"
PACKAGE = "cmd/pagealloc_tracerows"
CACHE_DIR = "pagealloc-tracerows"
# tracerows.go's record layout (36 bytes, little-endian, unaligned).
ROW = np.dtype([("ts", "<i8"), ("span", "<u8"), ("value", "<u8"), ("npages", "<u4"), ("p", "<i4"), ("kind", "<u2"), ("op", "u1"), ("pad", "u1")])


class BuildError(UserError):
    """tracerows does not build with the installed toolchain (its internal/trace differs)."""


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")) / CACHE_DIR


def tracerows_binary() -> str:
    """The cached ``tracerows`` for the installed Go, built on first use; BuildError if it cannot be."""
    source = SOURCE.read_bytes()
    exe, _ = find_go()
    facts = go_facts()
    goroot = go_root()
    key = hashlib.sha256(b"\0".join([source, exe.encode(), goroot.encode(), json.dumps(facts, sort_keys=True).encode()])).hexdigest()[:16]
    binary = cache_dir() / f"tracerows-{facts['go_version']}-{key}"
    if binary.is_file():
        return str(binary)
    try:
        binary.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BuildError(f"cannot create {binary.parent} for pagealloc's trace decoder: {e.strerror}") from None
    with tempfile.TemporaryDirectory(prefix="pagealloc-tracerows-") as tmp:
        overlay = Path(tmp) / "overlay.json"
        target = os.path.join(goroot, "src", *PACKAGE.split("/"), "main.go")
        overlay.write_text(json.dumps({"Replace": {target: str(SOURCE)}}))
        built = Path(tmp) / "tracerows"
        env = go_env({"GOFLAGS": "", "GOWORK": "off", "CGO_ENABLED": "0"})
        r = subprocess.run([exe, "build", "-overlay", str(overlay), "-o", str(built), PACKAGE], cwd=tmp, env=env,
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise BuildError(f"pagealloc's trace decoder does not build with {facts['go_version']}: {last_line(r.stderr)}")
        os.replace(built, binary)  # atomic: a concurrent build of the same key writes the same file
    return str(binary)


class GoRows(Rows):
    """The rows ``tracerows`` wrote, read back in chunks; ``close()`` removes them."""

    def __init__(self, facts: RowFacts, path: str, sched_path: str, tmp: tempfile.TemporaryDirectory):
        self.facts = facts
        self._path = path
        self._sched_path = sched_path
        self._tmp = tmp

    def chunks(self):
        with open(self._path, "rb") as f:
            lo = 0
            while True:
                rec = np.fromfile(f, dtype=ROW, count=BATCH_ROWS)
                if not len(rec):
                    return
                yield lo, {name: np.ascontiguousarray(rec[name]) for name in ("ts", "op", "span", "npages", "p", "value", "kind")}
                lo += len(rec)

    def schedule(self) -> np.ndarray:
        return np.fromfile(self._sched_path, dtype=SCHED)

    def close(self) -> None:
        self._tmp.cleanup()


def decode_rows(path: str) -> GoRows:
    """Run ``tracerows`` on the Go trace at ``path``; UserError if Go's reader rejects it."""
    binary = tracerows_binary()
    tmp = tempfile.TemporaryDirectory(prefix="pagealloc-rows-")
    rows, sched = os.path.join(tmp.name, "rows.bin"), os.path.join(tmp.name, "sched.bin")
    try:
        r = subprocess.run([binary, path, rows, sched], capture_output=True, text=True)
        if r.returncode != 0:
            raise UserError(f"{path}: {GO_REJECTS} {last_line(r.stderr)}")
        s = json.loads(r.stdout)
    except BaseException:
        tmp.cleanup()
        raise
    return GoRows(_facts(s), rows, sched, tmp)


def _facts(s: dict) -> RowFacts:
    """tracerows's summary line as RowFacts."""
    return RowFacts(
        start=s["start"], wall=s["wall"], gomaxprocs=s["gomaxprocs"], rows=s["rows"], counts=np.array(s["counts"], dtype=np.int64),
        spans_at_start=s["spans_at_start"], implicit_frees=s["implicit_frees"], dropped_frees=s["dropped_frees"],
        calls=np.array(s["calls"], dtype=np.int64), in_call=np.array(s["in_call"], dtype=np.int64),
        annotations=np.array(s["annotations"], dtype=np.int64),
    )

