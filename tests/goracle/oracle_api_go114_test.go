// The oracle driver's two version-dependent calls, for Go 1.14.6:
// Scavenge(nbytes, locked) passes locked through to pageAlloc.scavenge, and
// AddrRange has plain fields.  Copied beside pagealloc_oracle_test.go into a
// scratch Go 1.14.6 GOROOT by pagealloc's pytest suite; not part of Go.

package runtime_test

import . "runtime"

// oracleScavenge runs pageAlloc.scavenge(nbytes, locked).  Go 1.14's export
// passes locked=true through without taking the lock, so the locked path
// goes through ScavengeLockedForOracle, which holds it as the runtime's
// callers do.
func oracleScavenge(p *PageAlloc, nbytes uintptr, locked bool) uintptr {
	if locked {
		return p.ScavengeLockedForOracle(nbytes)
	}
	return p.Scavenge(nbytes, false)
}

func oracleRange(r AddrRange) (base, limit uintptr) {
	return r.Base, r.Limit
}
