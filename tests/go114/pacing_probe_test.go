// The pacing probe (tests/go114 in the pagealloc repository; not part of Go).
//
// pytest builds the runtime tests of a scratch Go 1.14.6 GOROOT with this
// file, export_pacing_probe_test.go and pacing_hooks.patch, and runs
// TestPacingProbe with PAGEALLOC_PACING_OUT naming the output file, GOGC=100
// and a fixed GOMAXPROCS.  The test drives real GC cycles over heaps of
// controlled size -- growing, shrinking, forced and natural GCs,
// FreeOSMemory, idle time for the background scavenger -- and writes one
// line per pacing update with what gcPaceScavenger read and set, and one
// per cycle start with the goal the cycle runs with.  pytest
// feeds the same inputs to the model's pacing (pagealloc.runtime.mheap) and
// requires the same goals.

package runtime_test

import (
	"bufio"
	"fmt"
	"os"
	. "runtime"
	"runtime/debug"
	"testing"
	"time"
)

// live holds the probe's heap; objects are dropped by clearing their slots.
var live [][]byte

func grow(total, size int) {
	for n := 0; n < total; n += size {
		live = append(live, make([]byte, size))
	}
}

// churn allocates total bytes in objects of size, writing to each of their
// pages, and keeps only the last n.
func churn(total, size, n int) {
	ring := make([][]byte, n)
	for i := 0; i < total/size; i++ {
		b := make([]byte, size)
		for j := 0; j < size; j += 4096 {
			b[j] = byte(i)
		}
		ring[i%n] = b
	}
}

// keep keeps every k-th object of live and drops the others.
func keep(k int) {
	n := 0
	for i := range live {
		if i%k == 0 {
			live[n] = live[i]
			n++
		}
	}
	for i := n; i < len(live); i++ {
		live[i] = nil
	}
	live = live[:n]
}

func dropAll() {
	for i := range live {
		live[i] = nil
	}
	live = live[:0]
}

const mib = 1 << 20

func pacingWorkload() {
	// Under gcinit's 4 MiB trigger, and more than 1 MiB below its goal (else
	// gcStart raises next_gc to heap_live + 1 MiB): the first GC is this
	// forced one, and it paces with gcinit's goal as last_next_gc.
	grow(2*mib, 64<<10)
	GC()
	for pass := 0; pass < 3; pass++ {
		pacingPass()
	}
}

// pacingPass runs the probe's phases once, from whatever heap it finds.
func pacingPass() {
	grow(64*mib, 1*mib) // natural GCs as the heap passes each trigger
	for i := 0; i < 5; i++ {
		keep(2) // shrink: retained stays far above each new goal
		GC()
		time.Sleep(10 * time.Millisecond) // the background scavenger releases some
	}
	debug.FreeOSMemory() // a GC, then scavengeAll
	GC()
	grow(20*mib, 256) // small objects: many spans from mcentral
	GC()
	dropAll()
	churn(100*mib, 32<<10, 128) // natural GCs of a steady 4 MiB heap
	churn(60*mib, 64<<10, 16)   // ... and of 1 MiB, under the 4 MiB heap minimum
	for _, m := range []int{1, 3, 5, 9, 17, 33, 65, 17, 5, 1} {
		dropAll()
		grow(m*mib, 128<<10)
		GC()
	}
	dropAll()
	GC()
	debug.FreeOSMemory()
	grow(40*mib, 3<<20) // large spans
	keep(3)
	GC()
	dropAll()
	GC()
}

func TestPacingProbe(t *testing.T) {
	out := os.Getenv("PAGEALLOC_PACING_OUT")
	if out == "" {
		t.Skip("PAGEALLOC_PACING_OUT not set (driven by pagealloc's pytest suite)")
	}
	start := StartPacingProbe()
	pacingWorkload()
	records, lost := StopPacingProbe()
	if lost != 0 {
		t.Fatalf("%d records did not fit in the probe's array", lost)
	}
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	fmt.Fprintf(w, "phys %d\n", PhysPageSize)
	line := func(kind string, r PacingRecord) {
		fmt.Fprintf(w, "%s numgc=%d gcpercent=%d next_gc=%d last_next_gc=%d heap_marked=%d gc_trigger=%d "+
			"heap_live=%d heap_inuse=%d last_heap_inuse=%d heap_sys=%d heap_released=%d scavenge_goal=%d\n",
			kind, r.NumGC, r.GCPercent, r.NextGC, r.LastNextGC, r.HeapMarked, r.GCTrigger,
			r.HeapLive, r.HeapInuse, r.LastHeapInuse, r.HeapSys, r.HeapReleased, r.ScavengeGoal)
	}
	line("start", start)
	for _, r := range records {
		if r.CycleStart {
			line("cycle", r)
		} else {
			line("pace", r)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
