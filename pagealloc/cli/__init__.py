"""The ``pagealloc`` command line: the entry point and one module per subcommand.

``main`` (in ``cli/entry.py``) builds the parser from the subcommand
modules listed in ``COMMANDS``; each exposes ``register(subparsers)`` and
imports what it needs when it runs, so ``pagealloc --help`` stays fast.
This is the top of the dependency order: it may import every other
package of ours, and nothing imports it.
"""

from pagealloc.cli.entry import build_parser, main

__all__ = ["build_parser", "main"]
