// growth_storm: heap-growth storms. In each storm -workers goroutines grow
// slices and maps as fast as they can (append doubling leaves a trail of
// ever larger dead backing arrays); storms get bigger (up to -max-mb per
// worker), and after each one everything is dropped and the heap collapses.
package main

import (
	"flag"
	"runtime"
	"sync"
	"time"

	"pagealloc/workloads/internal/mix"
)

var results = make([]int, 64)

func main() {
	storms := flag.Int("storms", 12, "number of storms")
	firstMB := flag.Int("first-mb", 8, "MiB each worker grows to in the first storm")
	growth := flag.Float64("growth", 1.25, "storm-to-storm growth factor")
	maxMB := flag.Float64("max-mb", 48, "MiB a worker grows to at most")
	workers := flag.Int("workers", 2*runtime.GOMAXPROCS(0), "goroutines per storm")
	flag.Parse()

	mb := float64(*firstMB)
	for storm := 0; storm < *storms; storm++ {
		var wg sync.WaitGroup
		for w := 0; w < *workers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				results[w%len(results)] = grow(uint64(storm*100+w), int(mb*(1<<20)))
			}(w)
		}
		wg.Wait()
		runtime.GC()
		time.Sleep(20 * time.Millisecond)
		if mb *= *growth; mb > *maxMB {
			mb = *maxMB
		}
	}
}

// grow builds a growing slice of chunks and a map until it holds limit bytes.
func grow(seed uint64, limit int) int {
	sizes := mix.New(seed, 0.01, 512<<10)
	var chunks [][]byte
	index := map[int][]byte{}
	var ints []int
	for total := 0; total < limit; {
		b := mix.Alloc(sizes.Next())
		chunks = append(chunks, b)
		index[len(chunks)] = b
		ints = append(ints, len(b))
		total += len(b) + 8
	}
	return len(chunks) + len(index) + len(ints)
}
