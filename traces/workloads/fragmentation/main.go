// fragmentation: large objects of scattered sizes and lifetimes, with small
// long-lived objects allocated between them that pin the holes the large
// ones leave behind, so free memory is fragmented into many ranges.
package main

import (
	"flag"

	"pagealloc/workloads/internal/mix"
)

type large struct {
	buf  []byte
	dies int // step at which it is dropped
}

var (
	alive  []large
	pinned [][]byte
)

func main() {
	steps := flag.Int("steps", 50000, "large allocations")
	maxLife := flag.Int("max-life", 400, "longest lifetime of a large object, in steps")
	pinEvery := flag.Int("pin-every", 3, "keep one small object for good every N steps")
	flag.Parse()

	sizes := mix.New(3, 0, 0)
	for step := 0; step < *steps; step++ {
		alive = append(alive, large{mix.Alloc(sizes.LogUniform(32<<10, 1<<20)), step + 1 + sizes.R.IntN(*maxLife)})
		if step%*pinEvery == 0 {
			pinned = append(pinned, mix.Alloc(sizes.LogUniform(512, 8<<10)))
		}
		if len(pinned) > 20000 {
			pinned = pinned[len(pinned)/2:] // let the oldest pins go: the heap stays bounded
		}
		kept := alive[:0]
		for _, o := range alive {
			if o.dies > step {
				kept = append(kept, o)
			}
		}
		clear(alive[len(kept):])
		alive = kept
	}
	alive, pinned = nil, nil
}
