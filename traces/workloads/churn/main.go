// churn: a steady heap with constant turnover. A table of -live objects is
// filled once, then -ops times a random entry is replaced by a new object,
// so the live heap stays flat while GC cycles keep freeing spans.
package main

import (
	"flag"

	"pagealloc/workloads/internal/mix"
)

var table [][]byte

func main() {
	live := flag.Int("live", 20000, "objects kept live")
	ops := flag.Int("ops", 1100000, "replacements")
	flag.Parse()

	sizes := mix.New(2, 0.01, 256<<10)
	table = make([][]byte, *live)
	for i := range table {
		table[i] = mix.Alloc(sizes.Next())
	}
	for i := 0; i < *ops; i++ {
		table[sizes.R.IntN(*live)] = mix.Alloc(sizes.Next())
	}
	table = nil
}
