// The pacing probe's hook (package runtime, to read memstats and mheap_).
// Copied, with pacing_probe_test.go, into a scratch Go 1.14.6 GOROOT whose
// mgcscavenge.go carries gcpacescavenger_hook.patch, by pagealloc's pytest
// suite (tests/go114); not part of Go.

package runtime

// PacingRecord is what gcPaceScavenger read and decided, captured as it
// returns: the memstats its formula uses, the goal it set, and numgc (the
// number of GCs completed before this one: gcMarkTermination bumps it after
// pacing).
type PacingRecord struct {
	NumGC         uint32
	GCPercent     int32
	NextGC        uint64
	LastNextGC    uint64
	HeapMarked    uint64
	GCTrigger     uint64
	HeapInuse     uint64
	LastHeapInuse uint64
	HeapSys       uint64
	HeapReleased  uint64
	ScavengeGoal  uint64
}

func pacingNow() PacingRecord {
	return PacingRecord{
		NumGC:         memstats.numgc,
		GCPercent:     gcpercent,
		NextGC:        memstats.next_gc,
		LastNextGC:    memstats.last_next_gc,
		HeapMarked:    memstats.heap_marked,
		GCTrigger:     memstats.gc_trigger,
		HeapInuse:     memstats.heap_inuse,
		LastHeapInuse: memstats.last_heap_inuse,
		HeapSys:       memstats.heap_sys,
		HeapReleased:  memstats.heap_released,
		ScavengeGoal:  mheap_.scavengeGoal,
	}
}

// A fixed array: the hook runs with the world stopped or the heap lock held
// and must not allocate.
var (
	pacingRecords [4096]PacingRecord
	pacingCount   int
)

func recordPacing() {
	if pacingCount < len(pacingRecords) {
		pacingRecords[pacingCount] = pacingNow()
	}
	pacingCount++
}

// StartPacingProbe returns the pacing state now and records every later
// pacing update (the world is stopped meanwhile, so no GC is half done).
func StartPacingProbe() PacingRecord {
	stopTheWorld("pacing probe")
	now := pacingNow()
	pacingCount = 0
	gcPaceScavengerHook = recordPacing
	startTheWorld()
	return now
}

// StopPacingProbe stops recording and returns the records, and how many
// pacing updates did not fit in them.
func StopPacingProbe() (records []PacingRecord, lost int) {
	stopTheWorld("pacing probe")
	gcPaceScavengerHook = nil
	n := pacingCount
	startTheWorld()
	if n > len(pacingRecords) {
		return append([]PacingRecord(nil), pacingRecords[:]...), n - len(pacingRecords)
	}
	return append([]PacingRecord(nil), pacingRecords[:n]...), 0
}
