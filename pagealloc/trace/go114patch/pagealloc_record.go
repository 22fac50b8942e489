// Added by pagealloc (pagealloc/trace/go114patch in the pagealloc project): a record of what the page
// heap does, for `pagealloc record --go 1.14`.  Off unless the program starts
// with PAGEALLOC_RECORD_FD=<fd> in its environment; the variable is then
// removed from the environment the program (and its children) see.
//
// Each record is 64 bytes, little-endian: ts (nanotime), a head word
// (event | flags<<8 | uint16(P id + 1)<<16 | x<<32) and six event-specific
// words; pagealloc/trace/go114records.py reads them.  Records go into one
// buffer under their own lock, taken inside the heap lock where the event
// happens under it, so their order is the heap's; the buffer is written to
// the fd when full and at exit.  Records made before the environment is
// read (the runtime's first spans) wait in the buffer; slot 0 is kept for
// the start record.

package runtime

import (
	"runtime/internal/atomic"
	"unsafe"
)

const (
	pageallocRecMagic   = 0x3143455243415050 // "PPACREC1"
	pageallocRecVersion = 6 // 2: the mark start record carries heap_live; 3: the Ps' schedule and the scavenger's iterations; 4: sysmon's loop; 5: the heap lock's waits; 6: the release probe
	pageallocRecBufLen  = 4096

	pageallocEvStart        = 1  // magic, version, physPageSize, pageSize, heapArenaBytes, records dropped
	pageallocEvAlloc        = 2  // base, npages, scav; x = span class; flags: 1 manual, 2 page cache, 4 cache refilled, 8 marking
	pageallocEvFree         = 3  // base, npages; flags: 1 manual
	pageallocEvGCStart      = 4  // next_gc, heap_inuse, heap_sys, heap_released, scavengeGoal, heap_live; x = numgc
	pageallocEvGCEnd        = 5  // next_gc, heap_inuse, heap_sys, heap_released, scavengeGoal, last_next_gc; x = numgc
	pageallocEvFOMStart     = 6  // heap_sys, heap_released
	pageallocEvFOMEnd       = 7  // released, heap_sys, heap_released
	pageallocEvScavenge     = 8  // addr, npages; x = who (pageallocRecWho)
	pageallocEvGrow         = 9  // npage, totalGrowth, heap_sys, heap_released, scavengeGoal, retained
	pageallocEvPCacheFlush  = 10 // cache base, cache bits; x = the P flushed
	pageallocEvProcs        = 11 // x = gomaxprocs
	pageallocEvSetGCPercent = 12 // next_gc, scavengeGoal; x = gcpercent
	pageallocEvEnd          = 13 // heap_sys, heap_released, heap_inuse, stacks_inuse, records dropped, gomaxprocs; x = exit code

	// Version 3: the schedule.  x is the P the record is about (the head's P
	// is the one of the M writing it, -1 for sysmon).
	pageallocEvRun         = 14 // goid, GC worker mode, inheritTime; x = P; flags = kind of goroutine (pageallocKind*)
	pageallocEvStop        = 15 // goid, kind; x = P; flags = why (pageallocStop*)
	pageallocEvIdle        = 16 // x = P (onto the idle list)
	pageallocEvUnidle      = 17 // x = P (off the idle list)
	pageallocEvResume      = 18 // goid; x = P; flags = kind: back from a syscall on an idle P, running on
	pageallocEvSTW         = 19 // kind of the goroutine going on running on x; flags 1 world stopped, 0 world starts
	pageallocEvPreemptReq  = 20 // schedwhen; x = P (sysmon's retake)
	pageallocEvSweepDone   = 21 // sweepgen, numgc
	pageallocEvScavIter    = 22 // crit measured, crit used, released, sleep asked (ns), EWMA bits
	pageallocEvScavSleep   = 23 // start, when, ns, timer status; x = the P holding the timer
	pageallocEvScavWoke    = 24 // slept (ns)
	pageallocEvScavPark    = 25 // retained, goal
	pageallocEvTimerFire   = 26 // when, now, site (M's pageallocSite), wake (M's pageallocWake); x = the timer's P
	pageallocEvScavReady   = 27 // flags 1: from the timer, 0: a pacing change (the head's P gets it)

	// Version 4: sysmon's loop (written by sysmon, no P).
	pageallocEvSysmon       = 28 // a pass: delay (us), idle passes, npidle, gcwaiting, next timer
	pageallocEvSysmonSleep  = 29 // back from its sleep on sysmonnote: when it began, how long it asked for (ns)
	pageallocEvStopRequest  = 30 // stopTheWorldWithSema sets gcwaiting (the Ps stop after it)

	// Version 5: the heap lock at the sites a trace row stands for (pageallocLock)
	pageallocEvLockWait = 31 // a wait for it, as it ends: wait (ns), futex sleeps in it; x = site (pageallocSite*)
	pageallocEvHeapLock = 32 // before the end record: acquisitions at those sites, of them waits

	// Version 6: sysmon's probe of a one-page release (pageallocProbeRun)
	pageallocEvProbe = 33 // sysUnused's calls (ns), of them MADV_FREE (ns), npidle, the Go page probed

	pageallocRecPending = 0 // buffering until the environment is read
	pageallocRecOn      = 1
	pageallocRecOff     = 2
)

type pageallocRecord struct {
	ts   int64
	head uint64
	w    [6]uint64
}

var pageallocRec struct {
	lock    mutex
	state   uint32
	fd      uintptr
	n       int
	dropped uint64
	buf     [pageallocRecBufLen]pageallocRecord
}

// The sites pageallocLock times: allocSpan's page-cache refill, allocSpan's heap
// path, freeSpan, freeManual.
const (
	pageallocSiteRefill = 1
	pageallocSiteAlloc  = 2
	pageallocSiteFree   = 3
	pageallocSiteManual = 4
)

// pageallocLockAcq and pageallocLockWaits count pageallocLock's acquisitions
// and its waits; written under the heap lock.
var pageallocLockAcq, pageallocLockWaits uint64

// pageallocLock is lock(l) for the heap lock at the sites a trace row stands
// for, recording a wait where the lock was held at the first look: the time
// from before lock(l) to holding it (spin, futex sleep, wake-up), what the
// replay calls P-stall, and how often lock() slept in the futex meanwhile
// (each sleep ends with a wake-up that may find the lock taken again: Go's
// lock has no hand-off).  A lock taken between the look and lock(l) waits
// untimed (rare: the window is one load).  Off the recording, it is lock(l).
func pageallocLock(l *mutex, site uint32) {
	if atomic.Load(&pageallocRec.state) == pageallocRecOff {
		lock(l)
		return
	}
	if atomic.Load(key32(&l.key)) == mutex_unlocked {
		lock(l)
		pageallocLockAcq++
		return
	}
	mp := getg().m
	sleeps := mp.pageallocSleeps
	t0 := nanotime()
	lock(l)
	wait := nanotime() - t0
	pageallocLockAcq++
	pageallocLockWaits++
	pageallocRecordEv(pageallocEvLockWait, 0, site, uint64(wait), uint64(mp.pageallocSleeps-sleeps), 0, 0, 0, 0)
}

// pageallocRecWho is who scavenges, set under the heap lock by the callers of
// pageAlloc.scavenge that hold it: 0 background, 1 heap growth, 2 FreeOSMemory.
var pageallocRecWho uint32

// pageallocRecInit reads PAGEALLOC_RECORD_FD; schedinit calls it after goenvs.
func pageallocRecInit() {
	const key = "PAGEALLOC_RECORD_FD="
	fd := int32(-1)
	for i, s := range envs {
		if len(s) >= len(key) && s[:len(key)] == key {
			if v, ok := atoi32(s[len(key):]); ok && v >= 0 {
				fd = v
			}
			envs = append(envs[:i], envs[i+1:]...)
			break
		}
	}
	pageallocPCMarkWorker = funcPC(gcBgMarkWorker)
	r := &pageallocRec
	lock(&r.lock)
	if fd < 0 {
		r.n = 0
		atomic.Store(&r.state, pageallocRecOff)
	} else {
		r.fd = uintptr(fd)
		if r.n == 0 {
			r.n = 1
		}
		r.buf[0] = pageallocRecord{nanotime(), pageallocEvStart,
			[6]uint64{pageallocRecMagic, pageallocRecVersion, uint64(physPageSize), pageSize, uint64(heapArenaBytes), r.dropped}}
		atomic.Store(&r.state, pageallocRecOn)
	}
	unlock(&r.lock)
}

// pageallocRecordEv appends one record (when recording).  It never allocates,
// and it runs on the system stack, so a stack growth cannot re-enter it.
func pageallocRecordEv(ev, flags uint8, x uint32, a, b, c, d, e, f uint64) {
	if atomic.Load(&pageallocRec.state) == pageallocRecOff {
		return
	}
	systemstack(func() {
		p := int32(-1)
		if pp := getg().m.p.ptr(); pp != nil {
			p = pp.id
		}
		r := &pageallocRec
		lock(&r.lock)
		if r.state != pageallocRecOff {
			if r.n == 0 {
				r.n = 1
			}
			if r.n == len(r.buf) {
				if r.state == pageallocRecPending {
					r.dropped++
					unlock(&r.lock)
					return
				}
				pageallocRecFlush()
			}
			r.buf[r.n] = pageallocRecord{nanotime(), uint64(ev) | uint64(flags)<<8 | uint64(uint16(p+1))<<16 | uint64(x)<<32,
				[6]uint64{a, b, c, d, e, f}}
			r.n++
		}
		unlock(&r.lock)
	})
}

// pageallocRecFlush writes the buffer out; pageallocRec.lock must be held.
func pageallocRecFlush() {
	r := &pageallocRec
	b := uintptr(unsafe.Pointer(&r.buf[0]))
	left := uintptr(r.n) * unsafe.Sizeof(r.buf[0])
	for left > 0 {
		n := write(r.fd, unsafe.Pointer(b), int32(left))
		if n == -4 { // EINTR
			continue
		}
		if n <= 0 {
			atomic.Store(&r.state, pageallocRecOff) // cannot write: the reader sees no end record
			break
		}
		b += uintptr(n)
		left -= uintptr(n)
	}
	r.n = 0
}

// pageallocRecEnd writes the end record and the rest of the buffer; the exit
// paths (runtime.main's return, os.Exit) call it.
func pageallocRecEnd(code int32) {
	if atomic.Load(&pageallocRec.state) != pageallocRecOn {
		return
	}
	systemstack(func() {
		lock(&mheap_.lock)
		pageallocRecordEv(pageallocEvHeapLock, 0, 0, pageallocLockAcq, pageallocLockWaits, 0, 0, 0, 0)
		pageallocRecordEv(pageallocEvEnd, 0, uint32(code), memstats.heap_sys, memstats.heap_released,
			memstats.heap_inuse, memstats.stacks_inuse, pageallocRec.dropped, uint64(gomaxprocs))
		r := &pageallocRec
		lock(&r.lock)
		if r.state == pageallocRecOn {
			pageallocRecFlush()
			atomic.Store(&r.state, pageallocRecOff)
		}
		unlock(&r.lock)
		unlock(&mheap_.lock)
	})
}

// pageallocRecGC records a GC's mark start or its mark termination pacing.
func pageallocRecGC(ev uint8) {
	last := memstats.last_next_gc
	if ev == pageallocEvGCStart {
		last = memstats.heap_live // what startCycle kept next_gc 1 MiB above (the world is stopped)
	}
	pageallocRecordEv(ev, 0, memstats.numgc, memstats.next_gc, memstats.heap_inuse, memstats.heap_sys,
		memstats.heap_released, mheap_.scavengeGoal, last)
}

// pageallocRecAlloc records a span allocation; flags: 2 from the P's page
// cache, 4 the cache was refilled for it; it adds 1 for manual spans and 8
// during marking.
func pageallocRecAlloc(base, npages, scav uintptr, spanclass spanClass, manual bool, flags uint8) {
	if manual {
		flags |= 1
	}
	if gcBlackenEnabled != 0 {
		flags |= 8 // marking: Go takes the heap lock even for a cache hit
	}
	pageallocRecordEv(pageallocEvAlloc, flags, uint32(spanclass), uint64(base), uint64(npages), uint64(scav), 0, 0, 0)
}

// ---------------------------------------------------------------------------
// The schedule (version 3)

const (
	pageallocKindUser      = 0
	pageallocKindGCWorker  = 1
	pageallocKindSweep     = 2
	pageallocKindScavenger = 3
	pageallocKindRuntime   = 4 // forcegc helper, finalizer goroutine
	pageallocKindNone      = 255

	pageallocStopPark    = 1
	pageallocStopYield   = 2
	pageallocStopPreempt = 3
	pageallocStopSuspend = 4
	pageallocStopExit    = 5
)

var pageallocPCMarkWorker uintptr // gcBgMarkWorker's entry, set by pageallocRecInit

// pageallocGKind says what a goroutine is, cheaply (pointer and pc compares).
func pageallocGKind(gp *g) uint8 {
	switch {
	case gp == nil:
		return pageallocKindNone
	case gp == scavenge.g:
		return pageallocKindScavenger
	case gp == sweep.g:
		return pageallocKindSweep
	case gp.startpc == pageallocPCMarkWorker:
		return pageallocKindGCWorker
	case gp == fing || gp == forcegc.g:
		return pageallocKindRuntime
	}
	return pageallocKindUser
}

func pageallocPID(pp *p) uint32 {
	if pp == nil {
		return ^uint32(0)
	}
	return uint32(pp.id)
}

// pageallocRecRun: execute puts gp on pp.
func pageallocRecRun(pp *p, gp *g, inheritTime bool) {
	if atomic.Load(&pageallocRec.state) == pageallocRecOff {
		return
	}
	k := pageallocGKind(gp)
	mode := uint64(0)
	if k == pageallocKindGCWorker && pp != nil {
		mode = uint64(pp.gcMarkWorkerMode)
	}
	pageallocRecordEv(pageallocEvRun, k, pageallocPID(pp), uint64(gp.goid), mode, uint64(bool2int(inheritTime)), 0, 0, 0)
}

// pageallocRecStop: gp leaves its P (on g0, the P still held), for why.
func pageallocRecStop(gp *g, why uint8) {
	if atomic.Load(&pageallocRec.state) == pageallocRecOff {
		return
	}
	pageallocRecordEv(pageallocEvStop, why, pageallocPID(getg().m.p.ptr()), uint64(gp.goid), uint64(pageallocGKind(gp)), 0, 0, 0, 0)
}

// pageallocRecResume: the M's goroutine, back from a syscall, goes on running on pp.
func pageallocRecResume(pp *p) {
	if atomic.Load(&pageallocRec.state) == pageallocRecOff {
		return
	}
	gp := getg().m.curg
	goid := uint64(0)
	if gp != nil {
		goid = uint64(gp.goid)
	}
	pageallocRecordEv(pageallocEvResume, pageallocGKind(gp), pageallocPID(pp), goid, 0, 0, 0, 0, 0)
}

// pageallocRecSTW: the world stopped (1) or starting (0); the M's own P goes
// on running its goroutine afterwards.
func pageallocRecSTW(stopped uint8) {
	if atomic.Load(&pageallocRec.state) == pageallocRecOff {
		return
	}
	mp := getg().m
	pageallocRecordEv(pageallocEvSTW, stopped, pageallocPID(mp.p.ptr()), uint64(pageallocGKind(mp.curg)), 0, 0, 0, 0, 0)
}

// pageallocRecTimer: the scavenger's timer fires on pp's heap (runOneTimer).
func pageallocRecTimer(pp *p, t *timer, now int64) {
	mp := getg().m
	pageallocRecordEv(pageallocEvTimerFire, 0, pageallocPID(pp), uint64(t.when), uint64(now), uint64(mp.pageallocSite), uint64(mp.pageallocWake), 0, 0)
}

// pageallocRecScavSleep: scavengeSleep set the timer (scavenge.lock held).
func pageallocRecScavSleep(start, ns int64) {
	t := scavenge.timer
	pageallocRecordEv(pageallocEvScavSleep, 0, pageallocPID(t.pp.ptr()), uint64(start), uint64(start+ns), uint64(ns), uint64(atomic.Load(&t.status)), 0, 0)
}

// ---------------------------------------------------------------------------
// The release probe (version 6)

// pageallocProbeEvery: sysmon probes at most this often (~100 a second of the
// program's run; a pass is at most 10 ms apart while a P runs).
const pageallocProbeEvery = 10 * 1000 * 1000

var pageallocProbe struct {
	base uintptr // one huge page of a scratch mapping of sysmon's, huge-page aligned, 0: not yet
	k    uintptr // the Go page probed next
	last int64   // when sysmon last probed
}

// pageallocProbeRun: once every pageallocProbeEvery, sysmon makes the calls
// sysUnused makes for a one-page background release, on a resident page of
// its own (MADV_NOHUGEPAGE of the huge page around it, already set as on a
// heap huge page released before, then MADV_FREE of the page), and records
// how long they took.  The MADV_FREE must shoot down the TLB of every other
// CPU running one of the program's threads at that moment: the price the
// scavenger's releases pay during this run, which moves from one run to the
// next with the host's state.  The scratch mapping is the recorder's own (not
// in memstats); sysmon runs without a P, so the program's Ps keep theirs.
//go:nowritebarrierrec
func pageallocProbeRun(now int64) {
	pr := &pageallocProbe
	if atomic.Load(&pageallocRec.state) != pageallocRecOn || physHugePageSize == 0 || now-pr.last < pageallocProbeEvery {
		return
	}
	pr.last = now
	if pr.base == 0 {
		v, err := mmap(nil, 2*physHugePageSize, _PROT_READ|_PROT_WRITE, _MAP_ANON|_MAP_PRIVATE, -1, 0)
		if err != 0 {
			pr.last = 1 << 62 // no probe in this run
			return
		}
		pr.base = alignUp(uintptr(v), physHugePageSize)
		madvise(unsafe.Pointer(pr.base), physHugePageSize, _MADV_NOHUGEPAGE)
	}
	k := pr.k
	pr.k = (k + 1) % (physHugePageSize / pageSize)
	v := pr.base + k*pageSize
	for b := v; b < v+pageSize; b += physPageSize {
		*(*uint8)(unsafe.Pointer(b)) = 1 // resident, as a freed span's pages are
	}
	t0 := nanotime()
	madvise(unsafe.Pointer(pr.base), physHugePageSize, _MADV_NOHUGEPAGE)
	t1 := nanotime()
	madvise(unsafe.Pointer(v), pageSize, int32(atomic.Load(&adviseUnused)))
	t2 := nanotime()
	pageallocRecordEv(pageallocEvProbe, 0, 0, uint64(t2-t0), uint64(t2-t1), uint64(atomic.Load(&sched.npidle)), uint64(k), 0, 0)
}
