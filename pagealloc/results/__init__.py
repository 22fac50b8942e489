"""The results side: what asv measured, the gate's rules, the report.

- ``asvresults``: reads asv's result files without importing asv; the
  preset table of one commit.
- ``gate``: which way is worse for each benchmark, commit-to-commit
  changes, and the nightly gate's verdict.
- ``report``: ``pagealloc report``, replays plus asv history as a static
  HTML page with matplotlib PNGs.

May import ``pagealloc.sim`` (and through it the runtime and traces) and
``pagealloc.errors``; never ``cli``.
"""
