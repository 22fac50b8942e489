"""The simulation: replaying a trace against the Go 1.14 heap in virtual time.

- ``presets``: the presets, the timings and ``ReplayConfig``;
- ``result``: ``ReplayResult`` and the metric catalogue (unit, direction,
  clock and label of every figure);
- ``engine``, ``actor``, ``scavenger``: the discrete-event engine, the Ps
  and the background scavenger sharing one heap lock in deterministic
  virtual nanoseconds;
- ``replay``: the entry point ``replay()`` and ``warm_up``;
- ``costmodel``: the virtual-time price of each step, and where each
  default comes from; TOML/JSON overrides;
- ``calibrate``: measures the OS-level costs (madvise, page faults) here;
- ``histogram``: the fixed-memory histogram behind every max and p99;
- ``reference``: the model against what the real Go 1.14.6 runtime did.

May import ``pagealloc.runtime``, ``pagealloc.trace`` and
``pagealloc.errors``; never ``results`` or ``cli``.
"""
