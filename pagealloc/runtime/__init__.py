"""The Go 1.14 mirror: the page heap as Go 1.14.6's runtime has it.

Rules every module here follows, so that it reads side by side with Go:

- **One module per Go file**, named after it (``mpagealloc.py`` is
  ``runtime/mpagealloc.go``); functions and fields keep Go's names in
  snake_case.  Each module's docstring names its Go counterpart, and each
  function's names its Go function and its **lock contract**: whether the
  caller must hold ``mheap_.lock`` (modelled by ``lock_futex.HeapLock``),
  whether it takes the lock itself, or whether it must run without it.
  As in Go, "must hold" is a contract, not a check, except where Go 1.14
  itself would misbehave (``scavenge(n, locked)`` raises ``LockError``).
- **Where the model differs from Go**, the docstring says so, and
  ARCHITECTURE.md states why and what it costs.
- **Imports stay inside this package**: the runtime knows nothing of
  traces, the simulation, results or the CLI.  Work that the simulation
  prices (madvise, page faults, arena maps, chunk scans) is charged to
  ``MHeap.meter_ns`` from a cost table passed in; with none, nothing is
  priced.

Modules that mirror a Go file: ``malloc``, ``mpagealloc_64bit``,
``mpallocbits``, ``mpagealloc``, ``mranges``, ``mpagecache``,
``mgcscavenge``, ``mheap``, ``lock_futex``.

Ours, not Go's (marked so in their docstrings):

- ``fitindex``: a speed aid for first fit (a byte per chunk, scanned in C);
  ``mpagealloc.find`` returns what Go's radix walk returns.
- ``invariants``: the consistency checker, our ``checkPageAlloc`` (Go has
  it in its tests) extended to the whole heap.
- ``selfcheck``: a seeded random stream checked against naive first fit.
- ``engines``: which PageAlloc runs (``page_alloc_class``): the compiled
  core (``_core.pyx`` with one ``.pxi`` per Go file, each read side by side
  with its Go file and its mirror module here) or this Python mirror.
- ``mpagealloc_compiled``: the compiled engine's PageAlloc, the core plus
  what stays Python (the scavenger's generator, sys_unused, address ranges).
- ``core_sources``: the core's source files and their hash, which the built
  core carries so that a stale build is refused.
"""

# Binds pallocData's scavenger methods (Go defines them in mgcscavenge.go).
from pagealloc.runtime import mgcscavenge as _mgcscavenge  # noqa: E402,F401
from pagealloc.runtime.engines import DEFAULT_ENGINE, ENGINES, page_alloc_class, page_cache_class  # noqa: E402,F401
