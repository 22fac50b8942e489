"""The results side: what asv measured, the suite's rules, the headline, the report.

- ``asvresults``: reads asv's result files without importing asv; one
  commit's presets side by side; which runs to compare.
- ``gate``: which way is worse for each benchmark, commit-to-commit
  changes, and the nightly gate's verdict.
- ``headline``: per trace, what each preset changes against go1.14.
- ``tables``: plain-text tables of all of the above.
- ``replays``: every trace in every mode, warmed up, named as everywhere.
- ``report``: ``pagealloc report``, replays plus asv history as a static
  HTML page with matplotlib PNGs.

May import ``pagealloc.sim`` (and through it the runtime and traces) and
``pagealloc.errors``; never ``cli``.
"""
