"""User-facing errors.

Anything the user can cause (a bad file, a bad flag, a trace that is
inconsistent) raises UserError; the CLI prints it as one line,
``pagealloc: error: ...``, and exits with status 2.  Anything else is a bug
in pagealloc: the CLI prints it as one line too and exits with status 1
(``PAGEALLOC_TRACEBACK=1`` shows its traceback).
"""


class UserError(Exception):
    """A problem with the user's input, reported without a traceback."""
