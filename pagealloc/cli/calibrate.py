"""``pagealloc calibrate [-o FILE]``: measure madvise and page-fault costs here.

Writes a TOML cost model (to FILE, or stdout) with madvise_call_ns,
madvise_page_ns and page_fault_ns; the other costs keep their defaults.
"""

from __future__ import annotations

from pathlib import Path

from pagealloc.errors import UserError


def register(sub) -> None:
    p = sub.add_parser("calibrate", help="measure madvise and page-fault costs on this machine")
    p.add_argument("-o", "--output", metavar="FILE", help="write the TOML cost model here (default: stdout)")
    p.add_argument("--repeat", type=int, default=30, help="samples per measurement (default 30)")
    p.set_defaults(func=run)


def run(args) -> int:
    from pagealloc.sim.calibrate import calibrate, to_toml

    if args.repeat < 1:
        raise UserError("--repeat must be at least 1")
    text = to_toml(calibrate(args.repeat))
    if args.output:
        try:
            Path(args.output).write_text(text)
        except OSError as e:
            raise UserError(f"{args.output}: cannot write: {e.strerror or e}") from None
    else:
        print(text, end="")
    return 0
