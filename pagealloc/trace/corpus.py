"""The bundled trace corpus: ``traces/manifest.json``, read and written here only.

Each entry names a trace (``name``), its ``file`` relative to the
manifest's folder, its ``set`` (``default``: what benchmarks and tests
replay; ``heavy``: opt-in), its ``source`` (``go-trace``,
``go1.14-runtime``, ``synthetic``), and what ``scripts/record-corpus``
keeps there (``shape``, ``command``, ``events``, ``size_bytes``).  A
hand-written manifest may leave out all but ``file``: the name is then the
file's stem and the set ``default``.

Users: ``scripts/record-corpus`` (re-records and writes back events and
sizes), ``pagealloc replay-figures`` and ``pagealloc go114-fidelity``, the
sweep's ``trace_sets`` (``sweep/grid.py``) and the asv suite
(``benchmarks/_corpus.py``).  The suite loads this file by its path, not
through the package, so that discovering benchmarks neither imports
pagealloc (~0.4 s in each of asv's processes) nor needs a commit that has
this module: the module imports nothing of ours at its top, and
``pagealloc.errors`` only to report a bad manifest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

MANIFEST = Path(__file__).resolve().parents[2] / "traces" / "manifest.json"  # the bundled corpus
SETS = ("default", "heavy")
SOURCES = ("go-trace", "go1.14-runtime", "synthetic")


def _error(message: str) -> Exception:
    from pagealloc.errors import UserError

    return UserError(message)


@dataclass
class Entry:
    """One trace of the manifest; ``raw`` is its JSON object, which ``Manifest.save`` writes back."""

    raw: dict
    folder: Path  # the manifest's folder: ``file`` is relative to it

    @property
    def file(self) -> str:
        return self.raw["file"]

    @property
    def path(self) -> Path:
        return self.folder / self.raw["file"]

    @property
    def name(self) -> str:
        return str(self.raw.get("name") or Path(self.raw["file"]).stem)

    @property
    def set(self) -> str:
        return self.raw.get("set", "default")

    @property
    def source(self) -> str:
        return self.raw.get("source", "")


class Manifest:
    """The entries of one manifest file, in its order."""

    def __init__(self, path: Path, data: dict):
        self.path = Path(path)
        self.data = data
        self.entries = [Entry(e, self.path.parent) for e in data["traces"]]

    def select(self, names=(), *, sets=None, sources=None) -> list[Entry]:
        """The entries of ``sets`` and ``sources`` (None: any), in manifest
        order; only those named, when ``names`` are given (one unknown is an error)."""
        chosen = [e for e in self.entries if (sets is None or e.set in sets) and (sources is None or e.source in sources)]
        if names:
            unknown = sorted(set(names) - {e.name for e in chosen})
            if unknown:
                kind = f" {'/'.join(sources)}" if sources else ""
                there = [e.name for e in chosen]
                listed = ", ".join(there[:8]) + (f", ... ({len(there)} in all)" if len(there) > 8 else "")
                raise _error(f"{self.path}: no{kind} trace named {', '.join(unknown)} (there are: {listed or 'none'})")
            chosen = [e for e in chosen if e.name in names]
        return chosen

    def sets(self) -> dict[str, list[Entry]]:
        """{set: [entries]} in manifest order."""
        out: dict[str, list[Entry]] = {}
        for e in self.entries:
            out.setdefault(e.set, []).append(e)
        return out

    def save(self) -> None:
        """Write the manifest back (``record-corpus`` after a trace is recorded)."""
        self.path.write_text(json.dumps(self.data, indent=2) + "\n")


def load(path=MANIFEST) -> Manifest:
    """Read and check a trace manifest; a missing or malformed one is a UserError naming the file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise _error(f"{path}: cannot read the trace manifest: {e.strerror or e}") from None
    except ValueError as e:
        raise _error(f"{path}: not a trace manifest (not valid JSON: {e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("traces"), list):
        raise _error(f"{path}: not a trace manifest (expected an object with a list 'traces')")
    for i, e in enumerate(data["traces"]):
        if not isinstance(e, dict) or not isinstance(e.get("file"), str) or not e["file"]:
            raise _error(f"{path}: not a trace manifest (traces[{i}] has no 'file')")
        for key in ("name", "set", "source"):
            if key in e and not isinstance(e[key], str):
                raise _error(f"{path}: not a trace manifest (traces[{i}].{key} must be a string, got {e[key]!r})")
    return Manifest(path, data)
