"""Test helper: copies of a trace file with its metadata changed (tests/conftest.py's folder is on
sys.path under pytest, so test modules import it as ``tracefiles``)."""

from __future__ import annotations

import json

import pyarrow.parquet as pq

from pagealloc.trace import METADATA_KEY

KEY = METADATA_KEY.encode() if isinstance(METADATA_KEY, str) else METADATA_KEY


def rewrite_metadata(src, dst, edit_meta=None, edit_keys=None):
    """Copy the trace ``src`` to ``dst``: ``edit_meta(doc)`` changes its metadata JSON in place,
    ``edit_keys(kv)`` its raw key-value metadata (bytes to bytes); returns ``dst``."""
    table = pq.read_table(src)
    kv = dict(table.schema.metadata)
    doc = json.loads(kv[KEY])
    if edit_meta:
        edit_meta(doc)
    kv[KEY] = json.dumps(doc).encode()
    if edit_keys:
        edit_keys(kv)
    pq.write_table(table.replace_schema_metadata(kv), dst)
    return dst
