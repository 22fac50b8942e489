// Internal-test companion of pagealloc_oracle_test.go (package runtime, so it
// can reach the unexported physHugePageSize).  Copied next to it into a
// scratch GOROOT (Go 1.14.6 and current Go alike) by pagealloc's pytest
// suite; not part of Go.

package runtime

// SetPhysHugePageSizeForOracle sets the huge page size the page allocator's
// scavenger assumes (findScavengeCandidate) and returns the previous value,
// so one test binary can exercise both the huge-page-preserving and the plain
// scavenging paths whatever the host's transparent huge page setting.
func SetPhysHugePageSizeForOracle(n uintptr) (old uintptr) {
	old, physHugePageSize = physHugePageSize, n
	return old
}
