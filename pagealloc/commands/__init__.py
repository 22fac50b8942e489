"""Subcommands of the ``pagealloc`` CLI, one module each (see pagealloc/cli.py)."""
