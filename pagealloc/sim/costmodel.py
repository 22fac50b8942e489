"""Virtual-time cost model of the replay (nanoseconds per step).

Not a Go file.  The replay engine charges each step of the mutator and the
background scavenger a virtual duration from this table; nothing reads the
wall clock, so replays are deterministic.  Defaults (linux/amd64, a modern
x86 server; ``pagealloc calibrate`` measures the OS ones on this machine):

  alloc_ns, free_ns      pageAlloc.alloc / free under the heap lock: the real
                         Go runtime allocator does a mixed alloc/free stream at
                         ~210-310 ns per op on the reference machine
                         (../shared/reference/go114-facts.md), so 250 / 150.
  cache_alloc_ns         pageCache.alloc, lock-free bit twiddling: 20.
  cache_refill_ns        allocToCache (a find plus a 64-page allocRange): 200.
  lock_ns                one uncontended lock+unlock pair of a futex mutex: 40.
  grow_chunk_ns          pageAlloc.grow bookkeeping per 4 MiB chunk: 300.
  sys_alloc_ns           reserving and mapping a 64 MiB arena (mmap x2): 20,000.
  chunk_scan_ns          the scavenger's look at one chunk (summary + bitmap
                         scan for a candidate): 60.
  madvise_call_ns        fixed cost of one madvise(MADV_DONTNEED) syscall,
                         including the TLB shootdown on a 2-core box: 2,500.
  madvise_page_ns        per 4 KiB page released: 250.  One background
                         scavenger step (one 8 KiB runtime page = two 4 KiB
                         pages) then costs ~3 us; Go's own fallback estimate
                         (approxCritNSPerPhysicalPage) is a pessimistic
                         10 us per physical page.
  page_fault_ns          touching one 4 KiB page of scavenged memory again
                         (minor fault + zeroing): 700.  Charged to the
                         mutator after it releases the heap lock.
  gc_ns                  the pacing update at the end of a GC cycle: 500.

Any subset can be overridden from a TOML or JSON file (``--cost-model``).
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from pagealloc.errors import UserError


@dataclass(frozen=True)
class CostModel:
    alloc_ns: int = 250
    free_ns: int = 150
    cache_alloc_ns: int = 20
    cache_refill_ns: int = 200
    lock_ns: int = 40
    grow_chunk_ns: int = 300
    sys_alloc_ns: int = 20_000
    chunk_scan_ns: int = 60
    madvise_call_ns: int = 2_500
    madvise_page_ns: int = 250
    page_fault_ns: int = 700
    gc_ns: int = 500

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def load(cls, path: str | Path) -> "CostModel":
        """Defaults overridden by a TOML (.toml) or JSON file; UserError on any problem."""
        path = Path(path)
        try:
            text = path.read_bytes()
        except OSError as e:
            raise UserError(f"{path}: cannot read cost model: {e.strerror or e}") from None
        try:
            if path.suffix == ".toml":
                data = tomllib.loads(text.decode())
            else:
                data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as e:
            kind = "TOML" if path.suffix == ".toml" else "JSON"
            raise UserError(f"{path}: not a valid {kind} cost model: {str(e).splitlines()[0]}") from None
        return cls.from_dict(data, str(path))

    @classmethod
    def from_dict(cls, data, label: str = "cost model") -> "CostModel":
        if not isinstance(data, dict):
            raise UserError(f"{label}: a cost model must be a table of name = nanoseconds")
        known = {f.name for f in fields(cls)}
        for key, value in data.items():
            if key not in known:
                raise UserError(f"{label}: unknown cost {key!r} (known: {', '.join(sorted(known))})")
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10**12:
                raise UserError(f"{label}: {key} must be a whole number of nanoseconds in [0, 1e12], got {value!r}")
        return cls(**{**asdict(cls()), **data})
