// burst_idle: bursts that grow the heap, each followed by an idle period in
// which the heap has shrunk and only the scavenger can return memory.
//
// Each round allocates -burst-mb MiB of mixed objects and keeps them all,
// then drops them, forces a GC (which frees their spans) and sleeps -idle.
package main

import (
	"flag"
	"runtime"
	"time"

	"pagealloc/workloads/internal/mix"
)

var held [][]byte

func main() {
	rounds := flag.Int("rounds", 10, "number of bursts")
	burstMB := flag.Int("burst-mb", 128, "MiB allocated and held per burst")
	idle := flag.Duration("idle", 200*time.Millisecond, "idle time after each burst")
	flag.Parse()

	sizes := mix.New(1, 0.005, 1<<20)
	for round := 0; round < *rounds; round++ {
		for total := 0; total < *burstMB<<20; {
			n := sizes.Next()
			held = append(held, mix.Alloc(n))
			total += n
		}
		held = nil
		runtime.GC()
		time.Sleep(*idle)
	}
}
