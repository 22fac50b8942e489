// burst_idle: bursts that grow the heap, each followed by an idle period in
// which the heap has shrunk and only the scavenger can return memory.
//
// Each round allocates -burst-mb MiB of mixed objects and keeps them all
// (with -workers N, N goroutines allocate a share each, at the same time),
// then drops them, forces a GC (which frees their spans) and sleeps -idle.
package main

import (
	"flag"
	"runtime"
	"time"

	"pagealloc/workloads/internal/mix"
)

var held [][][]byte

func main() {
	rounds := flag.Int("rounds", 10, "number of bursts")
	burstMB := flag.Int("burst-mb", 128, "MiB allocated and held per burst")
	idle := flag.Duration("idle", 200*time.Millisecond, "idle time after each burst")
	workers := flag.Int("workers", 1, "goroutines sharing each burst")
	flag.Parse()

	sizes := make([]*mix.Sizes, *workers)
	for w := range sizes {
		sizes[w] = mix.New(uint64(1+1000*w), 0.005, 1<<20)
	}
	for round := 0; round < *rounds; round++ {
		held = make([][][]byte, *workers)
		mix.Parallel(*workers, func(w int) {
			for total := 0; total < (*burstMB<<20) / *workers; {
				n := sizes[w].Next()
				held[w] = append(held[w], mix.Alloc(n))
				total += n
			}
		})
		held = nil
		runtime.GC()
		time.Sleep(*idle)
	}
}
