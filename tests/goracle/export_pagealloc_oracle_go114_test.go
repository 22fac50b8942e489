// Internal-test companion of oracle_api_go114_test.go (package runtime, so
// it can take the page allocator's lock).  Copied into a scratch Go 1.14.6
// GOROOT by pagealloc's pytest suite; not part of Go.

package runtime

// ScavengeLockedForOracle runs pageAlloc.scavenge(nbytes, true) with the
// allocator's heap lock held, as Go 1.14's locked callers (scavengeAll,
// heap growth) do; export_test.go's Scavenge(nbytes, true) takes no lock.
func (p *PageAlloc) ScavengeLockedForOracle(nbytes uintptr) (r uintptr) {
	pp := (*pageAlloc)(p)
	systemstack(func() {
		lock(pp.mheapLock)
		r = pp.scavenge(nbytes, true)
		unlock(pp.mheapLock)
	})
	return
}
