// Speed driver for pagealloc's scripts/model-speed --against-go (and its
// test in tests/goracle/test_speed_stream.py): the model's reference
// alloc/free stream run through the runtime's own page allocator.
//
// PAGEALLOC_SPEED_IN names the stream file: a first line "chunks N", then one
// op per line, "a NPAGES" (Alloc) or "f X" (free live span X % len(live),
// which swaps the last live span into its slot, as the script does).  For
// each of PAGEALLOC_SPEED_RUNS runs a fresh NewPageAlloc of N empty chunks
// from BaseChunkIdx replays the whole stream; only the op loop is timed.
// Each run writes "run NANOSECONDS ALLOCS FAILED CHECKSUM" to
// PAGEALLOC_SPEED_OUT, CHECKSUM being FNV-1a (64-bit) over the address every
// Alloc returned (0 when it failed), the figure the script compares with the
// model's.
//
// Uses only NewPageAlloc, Alloc, Free and FreePageAlloc, whose signatures are
// the same in Go 1.14.6 and current Go.  Not part of Go: it only ever lives
// in a scratch GOROOT (tests/goracle/gobuild.py).

package runtime_test

import (
	"bufio"
	"fmt"
	"os"
	. "runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

type speedSpan struct {
	base, npages uintptr
}

type speedOp struct {
	alloc bool
	x     uintptr // Alloc: pages; free: index into live before % len(live)
}

const (
	fnvOffset64 = 14695981039346656037
	fnvPrime64  = 1099511628211
)

func TestPageAllocSpeed(t *testing.T) {
	in, out := os.Getenv("PAGEALLOC_SPEED_IN"), os.Getenv("PAGEALLOC_SPEED_OUT")
	if in == "" || out == "" {
		t.Skip("PAGEALLOC_SPEED_IN / PAGEALLOC_SPEED_OUT not set (driven by pagealloc's scripts/model-speed)")
	}
	runs, err := strconv.Atoi(os.Getenv("PAGEALLOC_SPEED_RUNS"))
	if err != nil || runs < 1 {
		runs = 1
	}
	chunks, ops := readSpeedStream(t, in)
	o, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	layout := map[ChunkIdx][]BitRange{}
	for i := 0; i < chunks; i++ {
		layout[BaseChunkIdx+ChunkIdx(i)] = []BitRange{}
	}
	for r := 0; r < runs; r++ {
		p := NewPageAlloc(layout, nil)
		live := make([]speedSpan, 0, 1024)
		var allocs, failed int
		var sum uint64 = fnvOffset64
		start := time.Now()
		for _, op := range ops {
			if op.alloc {
				addr, _ := p.Alloc(op.x)
				allocs++
				if addr != 0 {
					live = append(live, speedSpan{addr, op.x})
				} else {
					failed++
				}
				sum = (sum ^ uint64(addr)) * fnvPrime64
			} else if len(live) > 0 {
				i := int(op.x % uintptr(len(live)))
				last := len(live) - 1
				live[i], live[last] = live[last], live[i]
				sp := live[last]
				live = live[:last]
				p.Free(sp.base, sp.npages)
			}
		}
		elapsed := time.Since(start)
		FreePageAlloc(p)
		fmt.Fprintf(o, "run %d %d %d %d\n", elapsed.Nanoseconds(), allocs, failed, sum)
	}
}

func readSpeedStream(t *testing.T, in string) (int, []speedOp) {
	f, err := os.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var chunks int
	var ops []speedOp
	for lineNo := 1; sc.Scan(); lineNo++ {
		fs := strings.Fields(sc.Text())
		bad := len(fs) != 2
		var v uint64
		if !bad {
			v, err = strconv.ParseUint(fs[1], 10, 64)
			bad = err != nil
		}
		switch {
		case bad:
		case lineNo == 1 && fs[0] == "chunks":
			chunks = int(v)
			continue
		case lineNo > 1 && (fs[0] == "a" || fs[0] == "f"):
			ops = append(ops, speedOp{fs[0] == "a", uintptr(v)})
			continue
		}
		t.Fatalf("%s:%d: bad line %q (want 'chunks N' first, then 'a NPAGES' or 'f X')", in, lineNo, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if chunks < 1 {
		t.Fatalf("%s: no 'chunks N' line", in)
	}
	return chunks, ops
}
