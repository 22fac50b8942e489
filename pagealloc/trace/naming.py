"""What a trace is called everywhere: ``info``, ``replay``, reports, sweeps.

Not a Go file.  One rule: the metadata's ``name`` (``--name`` of record and
synth), else the file's stem; a table in memory is ``<table>`` or
``<dataframe>``, as the trace reader names it in messages.
"""

from __future__ import annotations

from pathlib import Path

from pagealloc.errors import UserError


def trace_name(trace, metadata: dict | None = None) -> str:
    """The name of ``trace`` (a path, pyarrow Table or pandas DataFrame); ``metadata``
    when the caller has read it already.  A file whose metadata cannot be read is
    called by its stem (whatever reads it next reports what is wrong)."""
    is_path = isinstance(trace, (str, bytes)) or hasattr(trace, "__fspath__")
    if metadata is None and is_path:
        from pagealloc.trace.read import trace_metadata

        try:
            metadata = trace_metadata(trace)
        except UserError:
            metadata = {}
    name = (metadata or {}).get("name")
    if name:
        return str(name)
    if is_path:
        return Path(trace).stem
    return "<table>" if type(trace).__name__ == "Table" else "<dataframe>"


def unique_names(paths) -> list[str]:
    """trace_name of each path; a name two files share gets the file name added."""
    names = [trace_name(p) for p in paths]
    return [f"{n} ({Path(p).name})" if names.count(n) > 1 else n for n, p in zip(names, paths)]
