"""Which replay engine runs: the compiled replay core or the readable Python modules.

Not a Go file.  ``replay_class(engine)`` is the ``Replay`` class of an engine
(runtime/engines.py names them): ``"python"`` is sim/engine.py on the readable
modules (runtime/mheap.py, ...); ``"compiled"`` is sim/_replay_core.pyx,
engine.py's event loop ported to typed Cython, on the other sources compiled
by Cython (runtime/replay_sources.py) and the compiled PageAlloc.
Same figures.  A replay core that was not built, or built from other sources,
leaves the compiled PageAlloc under the Python simulation, said once on stderr.
No lock contract: nothing here touches a heap.
"""

from __future__ import annotations

import sys

from pagealloc.runtime.engines import check_engine
from pagealloc.runtime.replay_sources import is_fresh
from pagealloc.sim import engine as python_engine


def _load_compiled():
    """(the compiled engine module, "") or (None, why it cannot run)."""
    try:
        from pagealloc.sim import _replay_core
    except ImportError as e:  # built without a C compiler (or Cython)
        return None, f"{e}"
    if not is_fresh(_replay_core):
        return None, "it was built from other sources than this checkout's; rebuild it: pip install -e ."
    return _replay_core, ""


_compiled, REPLAY_CORE_UNAVAILABLE = None, ""
_loaded = False


def replay_class(engine: str | None = None) -> type:
    """The Replay class of ``engine`` ("compiled" or "python"; None: the process default)."""
    global _compiled, REPLAY_CORE_UNAVAILABLE, _loaded
    if check_engine(engine) == "python":
        return python_engine.Replay
    if not _loaded:
        _loaded = True
        _compiled, REPLAY_CORE_UNAVAILABLE = _load_compiled()
        if _compiled is None:
            print(f"pagealloc: the compiled replay core is unavailable ({REPLAY_CORE_UNAVAILABLE}); "
                  "the Python simulation runs on the compiled page allocator", file=sys.stderr)
    return python_engine.Replay if _compiled is None else _compiled.Replay
