"""``pagealloc synth SCENARIO -o OUT --events N --seed S``: a synthetic trace.

Deterministic: the same arguments give a byte-identical file.  Scenarios
and their shapes are described in pagealloc/trace/synth.py and
traces/README.md.
"""

from __future__ import annotations

from pagealloc.errors import UserError


def register(sub) -> None:
    from pagealloc.trace.synth import SCENARIOS

    p = sub.add_parser("synth", help="generate a deterministic synthetic trace")
    p.add_argument("scenario", metavar="SCENARIO", choices=sorted(SCENARIOS), help="one of: " + ", ".join(SCENARIOS))
    p.add_argument("-o", "--output", required=True, metavar="OUT.parquet")
    p.add_argument("--events", type=int, default=200_000, metavar="N", help="number of events (default 200000)")
    p.add_argument("--seed", type=int, default=1, metavar="S", help="random seed (default 1)")
    p.add_argument("--name", help="trace name for the metadata (default: the scenario)")
    p.set_defaults(func=run)


def run(args) -> int:
    from pagealloc.trace.synth import write_synthetic

    if args.events < 1:  # a trace with no events is valid, but nothing can replay it
        raise UserError(f"--events must be >= 1, not {args.events}")
    if args.seed < 0:
        raise UserError(f"--seed must be >= 0, not {args.seed}")
    meta = write_synthetic(args.output, args.scenario, args.events, args.seed, name=args.name)
    print(f"{args.output}: {meta['events']} events of {args.scenario} (seed {args.seed})")
    return 0
