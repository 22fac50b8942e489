package mix

import "math/bits"

// Rand is math/rand/v2's PCG generator and the two Rand methods the
// workloads use, written out so that they build with Go 1.14 as well and
// draw the very same sequence under every Go version.
type Rand struct{ hi, lo uint64 }

// NewRand is rand.New(rand.NewPCG(seed1, seed2)).
func NewRand(seed1, seed2 uint64) *Rand { return &Rand{seed1, seed2} }

// Uint64 is PCG-DXSM, as rand.PCG.Uint64.
func (r *Rand) Uint64() uint64 {
	const (
		mulHi = 2549297995355413924
		mulLo = 4865540595714422341
		incHi = 6364136223846793005
		incLo = 1442695040888963407
	)
	hi, lo := bits.Mul64(r.lo, mulLo)
	hi += r.hi*mulLo + r.lo*mulHi
	lo, c := bits.Add64(lo, incLo, 0)
	hi, _ = bits.Add64(hi, incHi, c)
	r.lo, r.hi = lo, hi
	const cheapMul = 0xda942042e4dd58b5
	hi ^= hi >> 32
	hi *= cheapMul
	hi ^= hi >> (3 * 16)
	hi *= lo | 1
	return hi
}

// Float64 is rand.Rand.Float64: a float64 in [0, 1).
func (r *Rand) Float64() float64 { return float64(r.Uint64()<<11>>11) / (1 << 53) }

// IntN is rand.Rand.IntN on a 64-bit machine: an int in [0, n).
func (r *Rand) IntN(n int) int {
	if n <= 0 {
		panic("invalid argument to IntN")
	}
	u := uint64(n)
	if u&(u-1) == 0 {
		return int(r.Uint64() & (u - 1))
	}
	hi, lo := bits.Mul64(r.Uint64(), u)
	if lo < u {
		thresh := -u % u
		for lo < thresh {
			hi, lo = bits.Mul64(r.Uint64(), u)
		}
	}
	return int(hi)
}
