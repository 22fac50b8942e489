// churn: a steady heap with constant turnover. A table of -live objects is
// filled once, then -ops times a random entry is replaced by a new object,
// so the live heap stays flat while GC cycles keep freeing spans. With
// -workers N, N goroutines each do this on their own share of the table
// and of the replacements, at the same time.
package main

import (
	"flag"

	"pagealloc/workloads/internal/mix"
)

var tables [][][]byte

func main() {
	live := flag.Int("live", 20000, "objects kept live")
	ops := flag.Int("ops", 1100000, "replacements")
	workers := flag.Int("workers", 1, "goroutines sharing the work")
	flag.Parse()

	tables = make([][][]byte, *workers)
	mix.Parallel(*workers, func(w int) {
		sizes := mix.New(uint64(2+1000*w), 0.01, 256<<10)
		table := make([][]byte, *live / *workers)
		tables[w] = table
		for i := range table {
			table[i] = mix.Alloc(sizes.Next())
		}
		for i := 0; i < *ops / *workers; i++ {
			table[sizes.R.IntN(len(table))] = mix.Alloc(sizes.Next())
		}
	})
	tables = nil
}
