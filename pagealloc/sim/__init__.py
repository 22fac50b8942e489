"""The simulation: replaying a trace against the Go 1.14 heap in virtual time.

- ``replay``: the engine (the mutator and the background scavenger as
  actors sharing one heap lock, in deterministic virtual nanoseconds),
  ``ReplayResult`` and ``replay()``.
- ``costmodel``: the virtual-time price of each step, and where each
  default comes from; TOML/JSON overrides.
- ``calibrate``: measures the OS-level costs (madvise, page faults) here.
- ``histogram``: the fixed-memory histogram behind every max and p99.

May import ``pagealloc.runtime``, ``pagealloc.trace`` and
``pagealloc.errors``; never ``results`` or ``cli``.
"""
