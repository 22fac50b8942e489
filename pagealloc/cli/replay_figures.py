"""``pagealloc replay-figures [--set default|heavy|all] [--mode M ...] [--timing T ...] [--manifest FILE] > figures.jsonl``.

Every deterministic replay figure of the corpus (traces/manifest.json, read
by pagealloc.trace.corpus), one JSON line per (trace, timing, mode) (``--timing all``: every timing).  Wall-clock
fields are left out, so two runs of the same model print the same bytes:
diff the output of two commits to prove a change moves no figure (or to
list exactly what it moves).  ``scripts/replay-figures`` is this command;
it also runs on older commits, which have only the public API
(``pagealloc.replay``, ``ReplayResult.deterministic``).
"""

from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("replay-figures", help="every deterministic replay figure of the corpus, a JSON line per (trace, mode)",
                       description=__doc__.split("\n\n", 1)[1].strip())
    p.add_argument("--set", default="all", choices=["default", "heavy", "all"], help="traces of this set (default: all)")
    p.add_argument("--mode", action="append", metavar="PRESET", help="presets to replay, repeatable (default: every one)")
    p.add_argument("--timing", action="append", metavar="TIMING",
                   help="timings to replay, repeatable, or all (default: auto)")
    p.add_argument("--manifest", metavar="FILE", help="the trace manifest (default: the bundled traces/manifest.json)")
    p.set_defaults(func=run)


def run(args) -> int:
    from pagealloc.errors import UserError
    from pagealloc.sim.replay import AUTO_TIMING, MODES, TIMINGS, replay
    from pagealloc.trace import corpus

    modes = args.mode or list(MODES)
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise UserError(f"replay-figures: --mode: unknown preset {', '.join(unknown)} (choose from {', '.join(MODES)})")
    timings = [t for t in TIMINGS if t != AUTO_TIMING] if args.timing == ["all"] else args.timing or [AUTO_TIMING]
    unknown = [t for t in timings if t not in TIMINGS]
    if unknown:
        raise UserError(f"replay-figures: --timing: unknown timing {', '.join(unknown)} (choose all, or from {', '.join(TIMINGS)})")
    manifest = corpus.load(args.manifest) if args.manifest else corpus.load()
    for entry in manifest.select(sets=None if args.set == "all" else [args.set]):
        for timing in timings:
            for mode in modes:
                result = replay(str(entry.path), mode=mode, timing=timing, label=entry.name)
                print(json.dumps({**result.deterministic(), "trace": entry.name, "mode": mode}, sort_keys=True),
                      flush=True)
    return 0
