// The pacing probe's hooks (package runtime, to read memstats and mheap_).
// Copied, with pacing_probe_test.go, into a scratch Go 1.14.6 GOROOT that
// carries pacing_hooks.patch, by pagealloc's pytest suite (tests/go114); not
// part of Go.

package runtime

// PacingRecord is the pacing state at one of the two hooks: as
// gcPaceScavenger returns (Pace: the memstats its formula read and the goal
// it set) or as startCycle has settled the goal of a cycle that starts
// (CycleStart: next_gc after its raise to heap_live + 1 MiB).  NumGC is the
// number of GCs completed before this one (gcMarkTermination bumps it after
// pacing).
type PacingRecord struct {
	CycleStart    bool
	NumGC         uint32
	GCPercent     int32
	NextGC        uint64
	LastNextGC    uint64
	HeapMarked    uint64
	GCTrigger     uint64
	HeapLive      uint64
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
		HeapLive:      memstats.heap_live,
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

func recordProbe(cycleStart bool) {
	if pacingCount < len(pacingRecords) {
		pacingRecords[pacingCount] = pacingNow()
		pacingRecords[pacingCount].CycleStart = cycleStart
	}
	pacingCount++
}

func recordPacing()     { recordProbe(false) }
func recordCycleStart() { recordProbe(true) }

// StartPacingProbe returns the pacing state now and records every later
// cycle start and pacing update (the world is stopped meanwhile, so no GC
// is half done).
func StartPacingProbe() PacingRecord {
	stopTheWorld("pacing probe")
	now := pacingNow()
	pacingCount = 0
	gcPaceScavengerHook, gcStartCycleHook = recordPacing, recordCycleStart
	startTheWorld()
	return now
}

// StopPacingProbe stops recording and returns the records, and how many
// did not fit.
func StopPacingProbe() (records []PacingRecord, lost int) {
	stopTheWorld("pacing probe")
	gcPaceScavengerHook, gcStartCycleHook = nil, nil
	n := pacingCount
	startTheWorld()
	if n > len(pacingRecords) {
		return append([]PacingRecord(nil), pacingRecords[:]...), n - len(pacingRecords)
	}
	return append([]PacingRecord(nil), pacingRecords[:n]...), 0
}
