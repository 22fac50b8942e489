"""``pagealloc info TRACE... [--json]``: metadata and statistics of traces.

Reads (and so validates) each whole trace, streaming, and prints its
metadata, counts per op, duration and live-heap peak; ``--json`` prints one
JSON object per line per trace instead (keys include ``name``, ``source``,
``events``, ``counts``, ``duration_ns``, ``live_heap_peak_bytes`` and the
file's ``metadata``).  A bad file gets its ``pagealloc: error:`` line and
the others are still shown; exit status 2 if any was bad.

``name`` is what every command calls the trace: the metadata's name (given
by ``record --name`` or ``synth --name``), else the file's stem.
"""

from __future__ import annotations

import json

from pagealloc.errors import UserError
from pagealloc.sim.calibrate import priced_fields, probed_costs
from pagealloc.trace.format import MACHINE_PROBE_KEY, PAGE_SIZE
from pagealloc.trace.cpuwait import GENERATOR_KEY, recorded_load
from pagealloc.trace.shootdown import (LEVEL_HALF_WIDTH_NS, LEVEL_STEP_NS, in_run_probe_calls, in_run_probe_classes,
                                       in_run_probe_levels, in_run_probe_mean_ns, recorded_probes)


def register(sub) -> None:
    p = sub.add_parser("info", help="show traces' metadata, op counts, duration and live-heap peak")
    p.add_argument("traces", metavar="TRACE", nargs="+", help="Parquet trace file(s)")
    p.add_argument("--json", action="store_true", help="print one JSON object per line per trace")
    p.set_defaults(func=run)


def run(args) -> int:
    from pagealloc.cli.validate import each_trace
    from pagealloc.trace.naming import trace_name
    from pagealloc.trace import validate_trace

    first = [True]

    def show(path):
        summary = validate_trace(path)
        if summary.events == 0:
            raise UserError(f"{path}: the trace has no events")
        name = trace_name(path, summary.metadata)
        if args.json:
            print(json.dumps({**summary.to_dict(), "name": name}))
        else:
            print(("" if first[0] else "\n") + format_summary(summary, name))
        first[0] = False

    return each_trace(args.traces, show)


def _mib(pages: int) -> str:
    return f"{pages * PAGE_SIZE / 2**20:.1f} MiB ({pages} pages)"


def _machine_load(metadata: dict) -> str | None:
    """The recording machine's other load (pagealloc.trace.cpuwait), as record measured it."""
    load = recorded_load(metadata)
    if load is None:
        return None
    return (f"other processes used {load['other_cpu_share']:.1%} of its {load.get('cpus', '?')} CPUs while "
            f"the program ran; its threads waited for a CPU {load.get('wait_share', 0):.2f}x as long as they ran")


def _machine_probe(metadata: dict) -> str | None:
    """The TLB shootdown record measured before and after the program (trace.shootdown)."""
    probes = recorded_probes(metadata)
    if probes is None:
        return None
    before, after = (f"{p['tlb_shootdown_ns'] / 1e3:.1f}" for p in probes)
    cost, fields = probed_costs(metadata), priced_fields(probes)
    return (f"{before} us before the program ran, {after} us after (the replay prices "
            f"{cost.tlb_shootdown_ns / 1e3:.1f} us per release while another P runs, "
            f"{cost.memory_traffic_ns / 1e3:.1f} us more while the program allocates heavily"
            + ("" if "memory_traffic_ns" in fields else ", the default: not probed")
            + (" (Go's own allocation beside the call: allocprobe)"
               if fields.get("memory_traffic_ns") == "alloc_traffic_mean_ns" else "")
            + f", {cost.madvise_free_call_ns / 1e3:.2f} us a MADV_FREE call, and {cost.scavenge_heap_ns / 1e3:.2f} us "
              "the heap side of a background release at that call's level"
            + ("; the first two are the probes' means, their slow calls in)"
               if fields["tlb_shootdown_ns"].endswith("_mean_ns") else ")"))


def _release_probe(metadata: dict, where: str) -> str | None:
    """Sysmon's release probe during the program (record stream version 6, trace.shootdown)."""
    calls = in_run_probe_calls(metadata, where)
    if calls is None:
        return None
    total, kept = calls
    mean = in_run_probe_mean_ns(metadata, where)
    if mean is None:
        return f"{total} calls by sysmon during the program, too few to price a release by (the probes around it do)"
    free = sum(r[2] for r in kept) / len(kept)
    g = metadata.get("gomaxprocs")
    known = isinstance(g, int) and g > 0  # the classes need the recording's Ps
    alone = in_run_probe_classes(metadata, where, g)[0] if known else []
    idle = (f"every P idle at {len(alone)} of them ({sum(alone) / len(alone) / 1e3:.1f} us on average: no CPU to "
            "shoot down)" if alone else "a P running at every one")
    levels = in_run_probe_levels(metadata, where, g) if known else None
    over = (f"; its level about each {LEVEL_STEP_NS // 1_000_000} ms of the run (the calls within "
            f"{LEVEL_HALF_WIDTH_NS // 1_000_000} ms) {min(levels.permille.values()) / 1e3:.2f}-"
            f"{max(levels.permille.values()) / 1e3:.2f}x its mean, a background release's price follows it "
            "(--release-probe in-run-mean: not)" if levels and levels.permille else "")
    return (f"{total} calls by sysmon during the program: sysUnused of one page {mean / 1e3:.1f} us on average, "
            f"its MADV_FREE {free / 1e3:.1f} (calls of 1 ms or more left out: {total - len(kept)}); {idle}; the "
            "replay prices a one-page release's madvise calls at that level, class by class (--release-probe "
            f"around: not){over}")


def format_summary(s, name: str) -> str:
    m = s.metadata
    gen = m.get("generator") or {}
    rows = [
        ("trace", s.label),
        ("name", name if m.get("name") else f"{name} (the file's name: the metadata gives none)"),
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
        ("generator", " ".join(f"{k}={v}" for k, v in gen.items() if k not in (GENERATOR_KEY, MACHINE_PROBE_KEY)) or None),
        ("machine load", _machine_load(m)),
        ("TLB shootdown", _machine_probe(m)),
        ("release probe", _release_probe(m, s.label)),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows if v is not None)
