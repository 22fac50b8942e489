"""The ``pagealloc`` command line.

Each subcommand lives in its own module of this package (``pagealloc/cli/``) and
exposes ``register(subparsers)``, which adds its parser and sets
``func=run``.  ``main`` turns every UserError (and argument misuse) into one
line on stderr, ``pagealloc: error: ...``, and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from pagealloc.errors import UserError
from pagealloc.runtime.invariants import InvariantError

# Subcommand modules, in the order ``--help`` lists them.
COMMANDS = [
    "selfcheck",
    "validate",
    "info",
    "import_trace",
    "record",
    "synth",
    "replay",
    "report",
    "sweep",
    "sweep_report",
    "calibrate",
]


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one ``pagealloc: error:`` line."""

    def error(self, message):  # noqa: D401 - argparse API
        prog = self.prog.replace(" ", " ")
        raise UserError(f"{prog}: {message}" if prog != "pagealloc" else message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pagealloc", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"pagealloc.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args, extra = build_parser().parse_known_args(argv)
        if extra:  # name the subcommand whose flags these are not
            raise UserError(f"pagealloc {args.command}: unrecognized arguments: {' '.join(extra)}")
        return int(args.func(args) or 0)
    except UserError as e:
        print(f"pagealloc: error: {e}", file=sys.stderr)
        return 2
    except InvariantError as e:  # a bug in pagealloc, not in the input: status 1
        print(f"pagealloc: error: invariant violated: {e} (a bug in pagealloc)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("pagealloc: error: interrupted", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
