"""``pagealloc go114-fidelity [NAME ...] [--mode PRESET] [--timing TIMING]``: the model against Go 1.14.6 itself.

For each go1.14-runtime trace of traces/manifest.json (or the ones named),
a Markdown row: the replay in the preset (default go1.14) and timing
(default auto: ordered) against the reference the recording carries: spans
at the recorded address, heap_sys and heap growths, released bytes by path,
retained bytes at the end, background releases counted and how many of them took a
whole huge page (256 pages at once: a few decide the background bytes); and, from sim.reference.heap_walk (row order,
the runtime's background releases put back), at how many GCs the model set
the runtime's scavenge goal.  ``scripts/go114-fidelity`` is this command.
"""

from __future__ import annotations

MiB = 2**20


def register(sub) -> None:
    from pagealloc.sim.presets import SCAVENGER_CRITS
    from pagealloc.sim.replay import MODES, TIMINGS

    p = sub.add_parser("go114-fidelity", help="the model against the bundled Go 1.14.6 recordings, a Markdown row per trace",
                       description=__doc__.split("\n\n", 1)[1].strip())
    p.add_argument("names", nargs="*", metavar="NAME", help="traces of the manifest (default: every go1.14-runtime one)")
    p.add_argument("--mode", default=MODES[0], choices=MODES, help="preset (default: %(default)s)")
    p.add_argument("--timing", default="auto", choices=TIMINGS, help="timing (default: auto, ordered for these traces)")
    p.add_argument("--crit", default="model", choices=SCAVENGER_CRITS,
                   help="what Go's pacing is fed as each background release's crit: model (default); recorded, "
                        "the crit the runtime measured (separates when the scavenger runs from what crit the model prices); "
                        "or level, the model's crits at the runtime's mean one-page crit in that recording")
    p.set_defaults(func=run)


def _mib(model: int, real: int) -> str:
    return f"{model / MiB:,.2f} / {real / MiB:,.2f}"


def _count(r, ref) -> str:
    """The model's background releases / the runtime's (scavengeRangeLocked calls), with the ratio."""
    real = ref.released_background_count
    if real is None:
        return f"{r.released_background_count:,} / -"
    ratio = f"{r.released_background_count / real:.2f}x" if real else "-"
    return f"{r.released_background_count:,} / {real:,} ({ratio})"


def _or_dash(value) -> str:
    return "-" if value is None else f"{value:,}"


def _other_load(meta: dict) -> str:
    """Other processes' share of the recording machine's CPUs (``pagealloc.trace.cpuwait``): the model's
    costs are an idle machine's, and the real scavenger's crit depends on it (TLB shootdowns)."""
    from pagealloc.trace.cpuwait import recorded_load

    load = recorded_load(meta)
    return f"{load['other_cpu_share']:.1%}" if load else "not measured"


def _shootdown(r, meta: dict, crit: str) -> str:
    """The TLB shootdown the replay priced, plus what heavy allocation traffic adds (sim/traffic.py),
    and whether they are record's probe (trace.shootdown) or the defaults, and scaled to the
    recording's crit level (``--crit level``)."""
    from pagealloc.trace.shootdown import recorded_probes

    source = "probe" if recorded_probes(meta) is not None else "default"
    return (f"{r.tlb_shootdown_ns / 1e3:.1f} + {r.memory_traffic_ns / 1e3:.1f}"
            + (f" ({source}, at the recorded level)" if crit == "level" else "" if source == "probe" else " (default)"))


def _lock_cells(r, ref) -> str:
    """The Ps' heap-lock acquisitions, P-stall and longest P-stall, model / runtime (the runtime's where the
    recording has them: record stream version 5, pagealloc_record.go's pageallocLock)."""
    def cell(model, real, scale, fmt):
        return f"{fmt.format(model / scale)} / " + ("-" if real is None else fmt.format(real / scale))
    return " | ".join([cell(r.lock_acquisitions_mutator, ref.lock_acquisitions_mutator, 1, "{:,.0f}"),
                       cell(r.p_stall_ns, ref.p_stall_ns, 1e3, "{:,.1f}"),
                       cell(r.p_stall_max_ns, ref.p_stall_max_ns, 1e3, "{:,.1f}")])


def run(args) -> int:
    from pagealloc.sim.reference import heap_walk
    from pagealloc.sim.replay import replay
    from pagealloc.trace import corpus, trace_metadata

    entries = corpus.load().select(args.names, sources=["go1.14-runtime"])
    print(f"{args.mode} preset, timing {args.timing}, {args.crit} crit; model / real runtime")
    print("| trace | spans at the recorded address | heap_sys MiB | heap growths | background MiB (ratio) "
          "| background releases (ratio) | of them whole huge pages | growth MiB "
          "| FreeOSMemory MiB | retained at the end, ratio | scavenge goals equal (row order) | order wait µs "
          "| heap-lock acquisitions | P-stall µs | longest P-stall µs "
          "| recorded with other load | shootdown priced µs (+ heavy traffic) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for e in entries:
        meta = trace_metadata(e.path)
        r = replay(e.path, args.mode, timing=args.timing, scavenger_crit=args.crit)
        w = heap_walk(e.path)
        ref = r.reference
        bg, real_bg = r.released_background_bytes, ref.released_background_bytes
        ratio = f"{bg / real_bg:.2f}x" if real_bg else "-"
        print(f"| {e.name} | {r.address_agreement:.4%} | {_mib(r.heap_sys_bytes, ref.heap_sys_bytes)} "
              f"| {r.heap_growths} / {ref.heap_growths} | {_mib(bg, real_bg)} ({ratio}) | {_count(r, ref)} "
              f"| {r.released_background_whole_huge_pages} / {_or_dash(ref.released_background_whole_huge_pages)} "
              f"| {_mib(r.released_growth_bytes, ref.released_growth_bytes)} "
              f"| {_mib(r.released_forced_bytes, ref.released_forced_bytes)} "
              f"| {ref.ratios['retained_final_bytes']:.3f} | {w.goals_agreed} / {w.goals} "
              f"| {getattr(r, 'order_wait_ns', 0) / 1e3:,.1f} | {_lock_cells(r, ref)} | {_other_load(meta)} "
              f"| {_shootdown(r, meta, args.crit)} |", flush=True)
    return 0
