// Package mix draws the object sizes the workloads allocate, from a seeded
// generator so that every run asks for the same sequence.
package mix

import (
	"math"
	"sync"
)

// Sizes draws sizes from a mixture: small objects (16 B - 4 KiB, packed by
// the runtime into size-class spans of 1-10 pages), medium ones (4-32 KiB)
// and, with probability Large, large objects (32 KiB - MaxLarge, one span
// each). Small and medium sizes are log-uniform, as are large ones.
type Sizes struct {
	R        *Rand
	Large    float64
	MaxLarge int
}

// New returns a Sizes seeded with seed.
func New(seed uint64, large float64, maxLarge int) *Sizes {
	return &Sizes{R: NewRand(seed, 0x9e3779b97f4a7c15), Large: large, MaxLarge: maxLarge}
}

// LogUniform draws an int in [lo, hi) with a log-uniform distribution.
func (s *Sizes) LogUniform(lo, hi int) int {
	a, b := math.Log(float64(lo)), math.Log(float64(hi))
	return int(math.Exp(a + s.R.Float64()*(b-a)))
}

// Next draws one object size in bytes.
func (s *Sizes) Next() int {
	u := s.R.Float64()
	switch {
	case u < s.Large:
		return s.LogUniform(32<<10, s.MaxLarge)
	case u < s.Large+0.1:
		return s.LogUniform(4<<10, 32<<10)
	default:
		return s.LogUniform(16, 4<<10)
	}
}

// Alloc allocates an object of n bytes and touches it, so it is really used.
func Alloc(n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; i += 4096 {
		b[i] = 1
	}
	return b
}

// Parallel runs work(0), ..., work(n-1) in n goroutines and waits for them:
// with -workers N a workload's Ps allocate at the same time.
func Parallel(n int, work func(w int)) {
	var wg sync.WaitGroup
	for w := 0; w < n; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			work(w)
		}(w)
	}
	wg.Wait()
}
