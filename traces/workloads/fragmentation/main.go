// fragmentation: large objects of scattered sizes and lifetimes, with small
// long-lived objects allocated between them that pin the holes the large
// ones leave behind, so free memory is fragmented into many ranges. With
// -workers N, N goroutines each run a share of the steps at the same time.
package main

import (
	"flag"

	"pagealloc/workloads/internal/mix"
)

type large struct {
	buf  []byte
	dies int // step at which it is dropped
}

type worker struct {
	alive  []large
	pinned [][]byte
}

var workers []worker

func main() {
	steps := flag.Int("steps", 50000, "large allocations")
	maxLife := flag.Int("max-life", 400, "longest lifetime of a large object, in steps")
	pinEvery := flag.Int("pin-every", 3, "keep one small object for good every N steps")
	n := flag.Int("workers", 1, "goroutines sharing the steps")
	flag.Parse()

	workers = make([]worker, *n)
	mix.Parallel(*n, func(w int) {
		sizes := mix.New(uint64(3+1000*w), 0, 0)
		me := &workers[w]
		for step := 0; step < *steps / *n; step++ {
			me.alive = append(me.alive, large{mix.Alloc(sizes.LogUniform(32<<10, 1<<20)), step + 1 + sizes.R.IntN(*maxLife)})
			if step%*pinEvery == 0 {
				me.pinned = append(me.pinned, mix.Alloc(sizes.LogUniform(512, 8<<10)))
			}
			if len(me.pinned) > 20000 / *n {
				me.pinned = me.pinned[len(me.pinned)/2:] // let the oldest pins go: the heap stays bounded
			}
			kept := me.alive[:0]
			for _, o := range me.alive {
				if o.dies > step {
					kept = append(kept, o)
				}
			}
			for i := len(kept); i < len(me.alive); i++ {
				me.alive[i] = large{} // drop the dead ones' memory
			}
			me.alive = kept
		}
	})
	workers = nil
}
