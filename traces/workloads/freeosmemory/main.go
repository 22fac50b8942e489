// freeosmemory: working sets built and dropped in phases, each phase ending
// with debug.FreeOSMemory() (with -workers N, N goroutines build a share of
// each working set at the same time). pagealloc record captures the calls
// itself (its build marks each one in the trace once it returns, when the GC
// it ran has freed the dropped spans), so the program needs no annotation.
package main

import (
	"flag"
	"runtime/debug"
	"time"

	"pagealloc/workloads/internal/mix"
)

var working [][][]byte

func main() {
	phases := flag.Int("phases", 12, "number of phases")
	phaseMB := flag.Int("phase-mb", 96, "MiB of working set per phase")
	pause := flag.Duration("pause", 30*time.Millisecond, "pause after each FreeOSMemory")
	workers := flag.Int("workers", 1, "goroutines sharing each working set")
	flag.Parse()

	sizes := make([]*mix.Sizes, *workers)
	for w := range sizes {
		sizes[w] = mix.New(uint64(5+1000*w), 0.01, 1<<20)
	}
	var keep [][]byte // a small long-lived remainder from every phase
	for phase := 0; phase < *phases; phase++ {
		working = make([][][]byte, *workers)
		mix.Parallel(*workers, func(w int) {
			for total := 0; total < (*phaseMB<<20) / *workers; {
				n := sizes[w].Next()
				working[w] = append(working[w], mix.Alloc(n))
				total += n
			}
		})
		for _, set := range working {
			keep = append(keep, set[:len(set)/50]...)
		}
		working = nil
		debug.FreeOSMemory()
		time.Sleep(*pause)
	}
	_ = keep
}
