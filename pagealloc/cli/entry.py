"""The ``pagealloc`` command line.

Each subcommand lives in its own module of this package (``pagealloc/cli/``) and
exposes ``register(subparsers)``, which adds its parser and sets
``func=run``.  ``main`` turns every UserError (and argument misuse) into one
line on stderr, ``pagealloc: error: ...``, and exit status 2; a model
bug (InvariantError) or any other unexpected exception into one such line
and exit status 1 (``PAGEALLOC_TRACEBACK=1`` shows the traceback instead).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from pagealloc.errors import UserError
from pagealloc.runtime.invariants import InvariantError

TRACEBACK_ENV = "PAGEALLOC_TRACEBACK"  # set: an unexpected exception shows its traceback instead of one line

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
    "compare",
    "replay_figures",
    "go114_fidelity",
]


DESCRIPTION = ("Replay Go heap traces against a model of Go 1.14's page allocator and scavenger, "
               "and compare its scavenging presets (go1.14, unlocked, locked).")


class _Formatter(argparse.HelpFormatter):
    """Help taken from docstrings, shown without their RST ``literal`` markup."""

    def _format_text(self, text):
        return super()._format_text(text.replace("``", ""))

    def _expand_help(self, action):
        return super()._expand_help(action).replace("``", "")


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one ``pagealloc: error:`` line."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message):  # noqa: D401 - argparse API
        prog = self.prog.replace(" ", " ")
        raise UserError(f"{prog}: {message}" if prog != "pagealloc" else message)


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("pagealloc")
    except PackageNotFoundError:
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pagealloc", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"pagealloc {version()}")
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
    except Exception as e:  # anything else is a bug in pagealloc too: one line, status 1
        if os.environ.get(TRACEBACK_ENV):
            raise
        print(f"pagealloc: error: internal error: {type(e).__name__}: {e} (a bug in pagealloc; "
              f"{TRACEBACK_ENV}=1 shows the traceback)", file=sys.stderr)
        return 1
