"""``pagealloc info TRACE [--json]``: metadata and statistics of a trace.

Reads (and so validates) the whole trace, streaming, and prints its
metadata, counts per op, duration and live-heap peak; ``--json`` prints one
JSON object instead (keys include ``source``, ``events``, ``counts``,
``duration_ns``, ``live_heap_peak_bytes`` and the file's ``metadata``).
"""

from __future__ import annotations

import json

from pagealloc.errors import UserError
from pagealloc.trace.format import PAGE_SIZE


def register(sub) -> None:
    p = sub.add_parser("info", help="show a trace's metadata, op counts, duration and live-heap peak")
    p.add_argument("trace", metavar="TRACE", help="Parquet trace file")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    from pagealloc.trace import validate_trace

    summary = validate_trace(args.trace)
    if summary.events == 0:
        raise UserError(f"{args.trace}: the trace has no events")
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2))
    else:
        print(format_summary(summary))
    return 0


def _mib(pages: int) -> str:
    return f"{pages * PAGE_SIZE / 2**20:.1f} MiB ({pages} pages)"


def format_summary(s) -> str:
    m = s.metadata
    gen = m.get("generator") or {}
    rows = [
        ("trace", s.label),
        ("name", m.get("name")),
        ("format", f"pagealloc trace v{m.get('version')}"),
        ("source", m["source"]),
        ("size", f"{s.size_bytes / 2**20:.2f} MiB on disk" if s.size_bytes is not None else None),
        ("events", f"{s.events} (" + ", ".join(f"{op} {n}" for op, n in s.counts.items()) + ")"),
        ("duration", f"{s.duration_ns / 1e9:.3f} s"),
        ("live heap", f"peak {_mib(s.peak_pages)} at {s.peak_ts / 1e9:.3f} s; at end {_mib(s.end_pages)} in {s.end_spans} spans"),
        ("program", " ".join([m["program"], *m.get("args", [])]) if m.get("program") else None),
        ("go", " ".join(str(x) for x in (m.get("go_version"), f"{m.get('goos')}/{m.get('goarch')}" if m.get("goos") else None) if x) or None),
        ("GOMAXPROCS", m.get("gomaxprocs")),
        ("min heap addr", hex(m["min_heap_addr"]) if isinstance(m.get("min_heap_addr"), int) else None),
        ("recorded", m.get("recorded_at")),
        ("generator", " ".join(f"{k}={v}" for k, v in gen.items()) or None),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows if v is not None)
