"""``pagealloc replay-figures [--set default|heavy|all] [--mode M ...] [--manifest FILE] > figures.jsonl``.

Every deterministic replay figure of the corpus (traces/manifest.json, read
by pagealloc.trace.corpus), one JSON line per (trace, mode).  Wall-clock
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
    p.add_argument("--manifest", metavar="FILE", help="the trace manifest (default: the bundled traces/manifest.json)")
    p.set_defaults(func=run)


def run(args) -> int:
    from pagealloc.errors import UserError
    from pagealloc.sim.replay import MODES, replay
    from pagealloc.trace import corpus

    modes = args.mode or list(MODES)
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise UserError(f"replay-figures: --mode: unknown preset {', '.join(unknown)} (choose from {', '.join(MODES)})")
    manifest = corpus.load(args.manifest) if args.manifest else corpus.load()
    for entry in manifest.select(sets=None if args.set == "all" else [args.set]):
        for mode in modes:
            result = replay(str(entry.path), mode=mode)
            print(json.dumps({"trace": entry.name, "mode": mode, **result.deterministic()}, sort_keys=True), flush=True)
    return 0
