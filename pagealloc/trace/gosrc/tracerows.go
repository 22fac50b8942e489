// pagealloc tracerows: the rows of a pagealloc heap trace, decoded from a Go
// execution trace (GODEBUG=traceallocfree=1) by the toolchain's own reader.
//
// pagealloc builds this file inside the installed toolchain's source tree
// (an -overlay adds it as cmd/pagealloc_tracerows; nothing is written to
// GOROOT) so that it can import internal/trace, the reader behind
// `go tool trace`.  It reads the events once, in the reader's order, and
// writes only what a trace row needs; it holds one trace generation (the
// reader's) and the live spans, never the whole trace.
//
// Usage: tracerows TRACE ROWS SCHED
//
// ROWS gets one 36-byte little-endian record per row: time int64 (ns, Go's
// clock; pagealloc subtracts the first Sync's), span uint64, value uint64,
// npages uint32, p int32, kind uint16, op uint8, one pad byte.  SCHED gets
// one 24-byte record per scheduling event the P stream is built from
// (pagealloc.trace.gosched, which reads them): time int64, g int64, p int32,
// code uint8, a, b, c uint8 (see the sched* constants).  stdout gets one
// JSON object of facts (see summary).  Errors: one line on stderr, exit 1.
//
// The rules are pagealloc.trace.gotrace.Decoded's (the text decoder of
// `go tool trace -d=parsed` output applies them too; a test holds the two to
// identical rows): a SpanAlloc of a live span first frees it, a SpanFree of
// a span not live is dropped, a gc row takes the next heap goal.
package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"internal/trace"
	"io"
	"os"
	"strings"
	"time"
)

// Op codes of pagealloc.trace.format.
const (
	opAlloc        = 0
	opFree         = 1
	opGC           = 2
	opFreeOSMemory = 3
	opGCStart      = 4
)

const (
	rowSize       = 36
	flushRows     = 1 << 16
	gcMark        = "GC concurrent mark phase"
	freeOSMemory  = "runtime/debug.FreeOSMemory"
	metricGoal    = "/gc/heap/goal:bytes"
	metricLive    = "/memory/classes/heap/objects:bytes"
	metricProcs   = "/sched/gomaxprocs:threads"
	annotationCat = "pagealloc"
	annotationMsg = "FreeOSMemory"
)

// Scheduling records (pagealloc.trace.gosched's SCHED_* codes): what a P's
// state follows, in the reader's order.
const (
	schedSize     = 24
	schedGo       = 1 // goroutine g: a = old GoState, b = new GoState, c = 1 if the reason is "preempted"; p = the event's P
	schedProc     = 2 // P p: a = old ProcState, b = new ProcState
	schedSTWBegin = 3 // a stop-the-world range begins (p: the stopping goroutine's P; a = 1: the GC's sweep termination)
	schedSTWEnd   = 4
	schedGCEnd    = 5 // a GC mark phase ends (cycles are counted for sweep_done)
	schedKind     = 6 // goroutine g is a kind (a) of runtime goroutine, as a stack shows
	schedProcs    = 7 // the GOMAXPROCS metric: g = its value

	kindNone      = 0 // gosched.GO_KINDS
	kindGCWorker  = 1
	kindSweep     = 2
	kindScavenger = 3
	kindRuntime   = 4

	stwPrefix    = "stop-the-world ("
	stwSweepTerm = "stop-the-world (GC sweep termination)" // finishsweep_m ends the previous cycle's sweeping
)

type schedRec struct {
	t, g    int64
	p       int32
	code    uint8
	a, b, c uint8
}

type row struct {
	t      int64
	span   uint64
	value  uint64
	npages uint32
	p      int32
	kind   uint16
	op     uint8
}

// summary is what pagealloc.trace.gorows reads from stdout.
type summary struct {
	Start         *int64   `json:"start"` // Time of the first Sync
	Wall          *string  `json:"wall"`
	Gomaxprocs    *uint64  `json:"gomaxprocs"`
	Rows          int64    `json:"rows"`
	Counts        [5]int64 `json:"counts"` // rows per op code
	Events        int64    `json:"events"` // every event the reader gave
	SpansAtStart  int64    `json:"spans_at_start"`
	ImplicitFrees int64    `json:"implicit_frees"`
	DroppedFrees  int64    `json:"dropped_frees"`
	// Row numbers of gc_start rows whose stack shows debug.FreeOSMemory (one call each), of
	// free_os_memory rows, and of those logged from inside debug.FreeOSMemory (pagealloc record's).
	Calls       []int64 `json:"calls"`
	Annotations []int64 `json:"annotations"`
	InCall      []int64 `json:"in_call"`
}

type decoder struct {
	out      *bufio.Writer
	sched    *bufio.Writer
	srec     [schedSize]byte
	kinds    map[trace.GoID]uint8  // the kind learnt for each runtime goroutine
	stacks   map[trace.Stack]uint8 // the kind each stack of this generation shows (kindNone: user)
	buf      []row                 // rows not yet written
	written  int64                 // rows already written
	pending  int                   // index in buf of a gc row waiting for its goal, or -1
	live     map[uint64]uint32
	goal     uint64
	heapLive uint64
	s        summary
	rec      [rowSize]byte
	writeErr error
}

// add appends a row and returns its number; waitGoal: a gc row, whose value the next heap goal replaces.
func (d *decoder) add(r row, waitGoal bool) int64 {
	d.buf = append(d.buf, r)
	d.s.Counts[r.op]++
	n := d.written + int64(len(d.buf)) - 1
	if waitGoal {
		d.pending = len(d.buf) - 1
	}
	if d.pending < 0 && len(d.buf) >= flushRows {
		d.flush()
	}
	return n
}

func (d *decoder) flush() {
	for i := range d.buf {
		r := &d.buf[i]
		b := d.rec[:]
		binary.LittleEndian.PutUint64(b[0:], uint64(r.t))
		binary.LittleEndian.PutUint64(b[8:], r.span)
		binary.LittleEndian.PutUint64(b[16:], r.value)
		binary.LittleEndian.PutUint32(b[24:], r.npages)
		binary.LittleEndian.PutUint32(b[28:], uint32(r.p))
		binary.LittleEndian.PutUint16(b[32:], r.kind)
		b[34] = r.op
		b[35] = 0
		if _, err := d.out.Write(b); err != nil && d.writeErr == nil {
			d.writeErr = err
		}
	}
	d.written += int64(len(d.buf))
	d.buf = d.buf[:0]
}

func (d *decoder) schedule(r schedRec) {
	b := d.srec[:]
	binary.LittleEndian.PutUint64(b[0:], uint64(r.t))
	binary.LittleEndian.PutUint64(b[8:], uint64(r.g))
	binary.LittleEndian.PutUint32(b[16:], uint32(r.p))
	b[20], b[21], b[22], b[23] = r.code, r.a, r.b, r.c
	if _, err := d.sched.Write(b); err != nil && d.writeErr == nil {
		d.writeErr = err
	}
}

// stackKind: which runtime goroutine a stack belongs to (gosched.stack_kind's rules): the GC's
// mark worker, bgsweep, bgscavenge, or another runtime goroutine (its outermost frame is in
// package runtime, other than runtime.main); kindNone for the others.
func stackKind(stk trace.Stack) uint8 {
	root := ""
	for f := range stk.Frames() {
		switch f.Func {
		case "runtime.gcBgMarkWorker":
			return kindGCWorker
		case "runtime.bgsweep":
			return kindSweep
		case "runtime.bgscavenge":
			return kindScavenger
		case "runtime.goexit":
			continue
		}
		root = f.Func
	}
	if strings.HasPrefix(root, "runtime.") && root != "runtime.main" {
		return kindRuntime
	}
	return kindNone
}

// learn records what a stack says goroutine g is, when that is more than was known
// (a specific kind over kindRuntime over nothing).
func (d *decoder) learn(t int64, g trace.GoID, stk trace.Stack) {
	if stk == trace.NoStack || g == trace.NoGoroutine {
		return
	}
	k, ok := d.stacks[stk]
	if !ok {
		k = stackKind(stk)
		d.stacks[stk] = k
	}
	old := d.kinds[g]
	if k == kindNone || k == old || (k == kindRuntime && old != kindNone) {
		return
	}
	d.kinds[g] = k
	d.schedule(schedRec{t: t, g: int64(g), p: -1, code: schedKind, a: k})
}

func (d *decoder) transition(ev *trace.Event) {
	t, st := int64(ev.Time()), ev.StateTransition()
	switch st.Resource.Kind {
	case trace.ResourceGoroutine:
		g := st.Resource.Goroutine()
		d.learn(t, g, st.Stack)
		if ev.Goroutine() == g {
			d.learn(t, g, ev.Stack())
		}
		from, to := st.Goroutine()
		if from == to || (from != trace.GoRunning && to != trace.GoRunning && to != trace.GoSyscall) {
			return
		}
		d.schedule(schedRec{t: t, g: int64(g), p: int32(ev.Proc()), code: schedGo, a: uint8(from), b: uint8(to), c: boolByte(st.Reason == "preempted")})
	case trace.ResourceProc:
		from, to := st.Proc()
		if from != to {
			d.schedule(schedRec{t: t, g: -1, p: int32(st.Resource.Proc()), code: schedProc, a: uint8(from), b: uint8(to)})
		}
	}
}

func boolByte(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

func stackShows(stk trace.Stack, fn string) bool {
	for f := range stk.Frames() {
		if f.Func == fn {
			return true
		}
	}
	return false
}

func (d *decoder) event(ev *trace.Event) {
	t, p := int64(ev.Time()), int32(ev.Proc())
	switch ev.Kind() {
	case trace.EventExperimental:
		x := ev.Experimental()
		switch x.Name {
		case "Span", "SpanAlloc":
			var sid, npages, kind uint64
			for i, name := range x.Args {
				switch name {
				case "id":
					sid = x.ArgValue(i).Uint64()
				case "npages_value":
					npages = x.ArgValue(i).Uint64()
				case "kindclass":
					kind = x.ArgValue(i).Uint64()
				}
			}
			if old, ok := d.live[sid]; ok {
				d.s.ImplicitFrees++
				d.add(row{t: t, op: opFree, span: sid, npages: old, p: p}, false)
			}
			d.live[sid] = uint32(npages)
			if x.Name == "Span" {
				d.s.SpansAtStart++
			}
			d.add(row{t: t, op: opAlloc, span: sid, npages: uint32(npages), p: p, kind: uint16(kind)}, false)
		case "SpanFree":
			sid := x.ArgValue(0).Uint64()
			if npages, ok := d.live[sid]; ok {
				delete(d.live, sid)
				d.add(row{t: t, op: opFree, span: sid, npages: npages, p: p}, false)
			} else {
				d.s.DroppedFrees++
			}
		}
	case trace.EventMetric:
		m := ev.Metric()
		if m.Value.Kind() != trace.ValueUint64 {
			return
		}
		v := m.Value.Uint64()
		switch m.Name {
		case metricGoal:
			d.goal = v
			if d.pending >= 0 {
				d.buf[d.pending].value = v
				d.pending = -1
			}
		case metricLive:
			d.heapLive = v
		case metricProcs:
			d.schedule(schedRec{t: t, g: int64(v), p: -1, code: schedProcs})
			if d.s.Gomaxprocs == nil {
				d.s.Gomaxprocs = &v
			}
		}
	case trace.EventStateTransition:
		d.transition(ev)
	case trace.EventRangeBegin:
		if name := ev.Range().Name; strings.HasPrefix(name, stwPrefix) {
			d.schedule(schedRec{t: t, g: -1, p: p, code: schedSTWBegin, a: boolByte(name == stwSweepTerm)})
		}
		if ev.Range().Name == gcMark {
			n := d.add(row{t: t, op: opGCStart, p: p, value: d.heapLive}, false)
			if stackShows(ev.Stack(), freeOSMemory) {
				d.s.Calls = append(d.s.Calls, n)
			}
		}
	case trace.EventRangeEnd:
		if name := ev.Range().Name; strings.HasPrefix(name, stwPrefix) {
			d.schedule(schedRec{t: t, g: -1, p: p, code: schedSTWEnd, a: boolByte(name == stwSweepTerm)})
		}
		if ev.Range().Name == gcMark {
			d.add(row{t: t, op: opGC, p: p, value: d.goal}, true)
			d.schedule(schedRec{t: t, g: -1, p: p, code: schedGCEnd})
		}
	case trace.EventLog:
		l := ev.Log()
		if l.Category == annotationCat && l.Message == annotationMsg {
			n := d.add(row{t: t, op: opFreeOSMemory, p: p}, false)
			d.s.Annotations = append(d.s.Annotations, n)
			if stackShows(ev.Stack(), freeOSMemory) {
				d.s.InCall = append(d.s.InCall, n)
			}
		}
	case trace.EventSync:
		clear(d.stacks) // a new generation: its stacks are new values, and the old ones would keep its tables alive
		if d.s.Start == nil {
			d.s.Start = &t
			if c := ev.Sync().ClockSnapshot; c != nil {
				w := c.Wall.Format(time.RFC3339Nano)
				d.s.Wall = &w
			}
		}
	}
}

func run(tracePath, rowsPath, schedPath string) error {
	in, err := os.Open(tracePath)
	if err != nil {
		return err
	}
	defer in.Close()
	outFile, err := os.Create(rowsPath)
	if err != nil {
		return err
	}
	defer outFile.Close()
	schedFile, err := os.Create(schedPath)
	if err != nil {
		return err
	}
	defer schedFile.Close()
	r, err := trace.NewReader(bufio.NewReaderSize(in, 1<<20))
	if err != nil {
		return err
	}
	d := &decoder{out: bufio.NewWriterSize(outFile, 1<<20), sched: bufio.NewWriterSize(schedFile, 1<<20), pending: -1,
		live: map[uint64]uint32{}, kinds: map[trace.GoID]uint8{}, stacks: map[trace.Stack]uint8{}}
	d.s.Calls, d.s.Annotations, d.s.InCall = []int64{}, []int64{}, []int64{}
	for {
		ev, err := r.ReadEvent()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		d.s.Events++
		d.event(&ev)
	}
	d.flush()
	if err := d.out.Flush(); err != nil {
		return err
	}
	if err := d.sched.Flush(); err != nil {
		return err
	}
	if d.writeErr != nil {
		return d.writeErr
	}
	if err := outFile.Close(); err != nil {
		return err
	}
	if err := schedFile.Close(); err != nil {
		return err
	}
	d.s.Rows = d.written
	return json.NewEncoder(os.Stdout).Encode(&d.s)
}

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: tracerows TRACE ROWS SCHED")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2], os.Args[3]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
