// freeosmemory: working sets built and dropped in phases, each phase ending
// with debug.FreeOSMemory(). The call is annotated for pagealloc import with
// trace.Log(ctx, "pagealloc", "FreeOSMemory") right after it returns: by then
// the GC it ran has freed the dropped spans, and the replay's scavengeAll at
// that row sees the heap as Go's scavengeAll did.
package main

import (
	"context"
	"flag"
	"runtime/debug"
	"runtime/trace"
	"time"

	"pagealloc/workloads/internal/mix"
)

var working [][]byte

func main() {
	phases := flag.Int("phases", 12, "number of phases")
	phaseMB := flag.Int("phase-mb", 96, "MiB of working set per phase")
	pause := flag.Duration("pause", 30*time.Millisecond, "pause after each FreeOSMemory")
	flag.Parse()

	ctx := context.Background()
	sizes := mix.New(5, 0.01, 1<<20)
	var keep [][]byte // a small long-lived remainder from every phase
	for phase := 0; phase < *phases; phase++ {
		for total := 0; total < *phaseMB<<20; {
			n := sizes.Next()
			working = append(working, mix.Alloc(n))
			total += n
		}
		keep = append(keep, working[:len(working)/50]...)
		working = nil
		debug.FreeOSMemory()
		trace.Log(ctx, "pagealloc", "FreeOSMemory")
		time.Sleep(*pause)
	}
	_ = keep
}
