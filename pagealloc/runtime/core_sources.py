"""The compiled core's sources and their hash (setup.py builds the hash into the core).

Not a Go file.  Importable on its own (setup.py loads it before pagealloc
exists), so it imports nothing of ours.  No lock contract.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

HERE = Path(__file__).resolve().parent


def source_files() -> list[Path]:
    """_core.pyx and the .pxi files it includes, in a fixed order."""
    return [HERE / "_core.pyx", *sorted(HERE.glob("_*.pxi"))]


def sources_hash() -> str:
    """sha256 over the sources' names and bytes; "" when they are not beside the package (a wheel)."""
    files = source_files()
    if not all(f.is_file() for f in files):
        return ""
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()
