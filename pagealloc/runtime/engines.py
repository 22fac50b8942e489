"""Which PageAlloc runs: the compiled core or the Python mirror.

Not a Go file.  Two engines hold the same state and give the same results
(tests/runtime/test_engines_agree.py): ``"compiled"`` (mpagealloc_compiled,
the Cython core built at install time) and ``"python"`` (mpagealloc, the
readable mirror and the reference).  The default is the compiled one when
it was built, else the Python one, which is then announced once per process
on stderr; the environment variable PAGEALLOC_ENGINE overrides the default.
No lock contract: nothing here touches a heap.
"""

from __future__ import annotations

import os
import sys

from pagealloc.runtime import mpagealloc, mpagecache
from pagealloc.runtime.core_sources import sources_hash

ENGINES = ("compiled", "python")
ENGINE_ENV = "PAGEALLOC_ENGINE"

def _load_compiled():
    """(mpagealloc_compiled, "") or (None, why the compiled core cannot run)."""
    try:
        from pagealloc.runtime import _core, mpagealloc_compiled
    except ImportError as e:  # built without a C compiler (or Cython)
        return None, f"{e}"
    built_from, sources = getattr(_core, "SOURCES_HASH", None), sources_hash()
    if sources and built_from != sources:  # a checkout whose core sources changed since the build
        return None, "it was built from other sources than this checkout's; rebuild it: pip install -e ."
    return mpagealloc_compiled, ""


mpagealloc_compiled, COMPILED_UNAVAILABLE = _load_compiled()
if mpagealloc_compiled is None:
    print(f"pagealloc: the compiled core is unavailable ({COMPILED_UNAVAILABLE}); the Python engine runs",
          file=sys.stderr)


def _default_engine() -> str:
    chosen = os.environ.get(ENGINE_ENV, "")
    if chosen == "":
        return "compiled" if mpagealloc_compiled is not None else "python"
    if chosen not in ENGINES:
        print(f"pagealloc: {ENGINE_ENV} must be one of {', '.join(ENGINES)}, not {chosen!r}", file=sys.stderr)
        raise SystemExit(2)
    if chosen == "compiled" and mpagealloc_compiled is None:
        print(f"pagealloc: {ENGINE_ENV}=compiled, but the compiled core is unavailable ({COMPILED_UNAVAILABLE})",
              file=sys.stderr)
        raise SystemExit(2)
    return chosen


DEFAULT_ENGINE = _default_engine()


def set_default_engine(engine: str) -> str:
    """Make ``engine`` the default of this process (what MHeap() builds); return the previous default.

    For scripts that time both engines in one run; the replay's own knob is its config.
    """
    global DEFAULT_ENGINE
    previous, DEFAULT_ENGINE = DEFAULT_ENGINE, check_engine(engine)
    return previous


def check_engine(engine: str | None) -> str:
    """The engine to run for ``engine`` (None: the default); ValueError names a bad or unbuilt one."""
    if engine is None:
        return DEFAULT_ENGINE
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    if engine == "compiled" and mpagealloc_compiled is None:
        raise ValueError(f"the compiled engine is unavailable ({COMPILED_UNAVAILABLE})")
    return engine


def page_alloc_class(engine: str | None = None) -> type:
    """The PageAlloc class of ``engine`` ("compiled" or "python"; None: the default)."""
    if check_engine(engine) == "compiled":
        return mpagealloc_compiled.PageAlloc
    return mpagealloc.PageAlloc


def page_cache_class(engine: str | None = None) -> type:
    """The PageCache class whose instances ``page_alloc_class(engine).alloc_to_cache`` returns."""
    if check_engine(engine) == "compiled":
        return mpagealloc_compiled.PageCache
    return mpagecache.PageCache
