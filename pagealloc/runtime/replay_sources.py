"""The compiled replay core's sources: which Python modules are compiled, under which names.

Not a Go file.  The compiled replay core is the SAME Python source as the
readable modules, compiled by Cython under other module names
(``_*_compiled``), typed by the hand-written ``.pxd`` beside each copy that
has one (cdef classes, typed attributes, cpdef methods).  setup.py writes
the copies (never committed; deleted once compiled), pointing their imports
at one another; ``sources_hash`` is built into each, so a core built from
other sources is refused (``pagealloc.sim.engines``).  Importable on its own
(setup.py loads it before pagealloc exists), so it imports nothing of ours.
No lock contract.
"""

from __future__ import annotations

import hashlib
from functools import cache
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]

# readable module -> its compiled copy, in import order (a copy imports only earlier ones)
COMPILED = {
    "pagealloc.runtime.mem_linux": "pagealloc.runtime._mem_linux_compiled",
    "pagealloc.runtime.mpagealloc_64bit": "pagealloc.runtime._mpagealloc_64bit_compiled",
    "pagealloc.runtime.lock_futex": "pagealloc.runtime._lock_futex_compiled",
    "pagealloc.runtime.mranges": "pagealloc.runtime._mranges_compiled",
    "pagealloc.runtime.mgcscavenge": "pagealloc.runtime._mgcscavenge_compiled",
    "pagealloc.runtime.mheap": "pagealloc.runtime._mheap_compiled",
    "pagealloc.sim.histogram": "pagealloc.sim._histogram_compiled",
    "pagealloc.sim.heaplock": "pagealloc.sim._heaplock_compiled",
    "pagealloc.sim.scavenger": "pagealloc.sim._scavenger_compiled",
}

# Names a copy takes from the readable module instead of defining its own, so that
# both engines raise the same exception classes.
SHARED = {"pagealloc.runtime.lock_futex": ("LockError",)}

# Statements a copy leaves out: the readable module installs its functions as methods of a class of
# the Python mirror (mgcscavenge's PallocData methods); the copy's, compiled without binding, would
# replace them with functions that do not bind.
READABLE_ONLY = {"pagealloc.runtime.mgcscavenge": ("PallocData.has_scavenge_candidate = ",
                                                   "PallocData.find_scavenge_candidate = ")}


def _path(module: str, suffix: str) -> Path:
    return PACKAGE.parent.joinpath(*module.split(".")).with_suffix(suffix)


# The compiled event loop: sim/engine.py ported to typed Cython (not a copy; it cimports the copies' .pxd).
REPLAY_CORE = "pagealloc.sim._replay_core"
# What the event loop includes: the heap it runs on (the compiled MHeap with its page marks in C).
REPLAY_CORE_INCLUDES = ("pagealloc.sim._replay_heap",)


def source_files() -> list[Path]:
    """The readable modules, the copies' .pxd files (those that have one), the event loop's .pyx and
    what it includes, in a fixed order."""
    files = [p for m, c in COMPILED.items() for p in (_path(m, ".py"), _path(c, ".pxd")) if p.suffix == ".py" or p.is_file()]
    return files + [_path(REPLAY_CORE, ".pyx")] + [_path(i, ".pxi") for i in REPLAY_CORE_INCLUDES]


def sources_hash() -> str:
    """sha256 over the sources' names and bytes; "" when they are not beside the package (a wheel)."""
    files = source_files()
    if not all(f.is_file() for f in files):
        return ""
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


@cache
def _checkout_hash() -> str:
    return sources_hash()  # once a process: each compiled module is checked against it at import


def is_fresh(compiled) -> bool:
    """Whether a compiled module (a copy, or the event loop) was built from this checkout's sources
    (always, when they are not beside the package: a wheel)."""
    sources = _checkout_hash()
    return not sources or getattr(compiled, "SOURCES_HASH", None) == sources


def copy_source(module: str, digest: str) -> str:
    """The compiled copy of ``module``: its source, imports of compiled modules renamed, the hash appended."""
    text = _path(module, ".py").read_text()
    for m, c in COMPILED.items():
        text = re.sub(rf"\bfrom {re.escape(m)} import\b", f"from {c} import", text)
    for prefix in READABLE_ONLY.get(module, ()):
        text = re.sub(rf"^{re.escape(prefix)}[^\n]*\n", "", text, flags=re.M)
    for name in SHARED.get(module, ()):
        text = re.sub(rf"^class {name}\b[^\n]*\n(    [^\n]*\n|\n)*", f"from {module} import {name}\n\n", text,
                      count=1, flags=re.M)
    return text + f"\n\nSOURCES_HASH = {digest!r}\n"


def write_copies() -> list[tuple[str, str]]:
    """Write every copy (a .py, which Cython's pure mode types from the .pxd beside it; setup.py
    removes it once compiled to C); return (module name, .py path) for setup.py."""
    digest, out = sources_hash(), []
    for m, c in COMPILED.items():
        py = _path(c, ".py")
        py.write_text(copy_source(m, digest))
        out.append((c, str(py.relative_to(PACKAGE.parent))))
    return out


def remove_copies() -> None:
    """Remove the copies' .py files, so that nothing but a compiled copy can be imported."""
    for c in COMPILED.values():
        _path(c, ".py").unlink(missing_ok=True)
