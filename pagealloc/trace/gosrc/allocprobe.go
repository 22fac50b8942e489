// pagealloc allocprobe: what a Go program's allocation adds to the TLB
// shootdown of one MADV_FREE, measured beside Go's own allocator.
//
// Why (docs/fidelity-log.md, "Session 13"): a release made while the program's
// other Ps allocate costs more than one made beside Ps that only compute.
// pagealloc's Python probe (trace/shootdown.py) stands a numpy thread
// streaming through memory in for those Ps; on one host that read 2.3-5.3
// us where Go's programs paid 4-6, on another 19-50 us where they paid
// 10-18.  This program puts real Go allocation beside the call instead:
// goroutines that allocate and write objects of 8-32 KiB, keeping the last
// 256 live (so the GC runs, as in the programs), while one goroutine locked
// to its thread times MADV_FREE of one resident 8 KiB page (a raw syscall:
// no entersyscall, so the time is the call's alone) after sleeping 200 us.
// In rounds it alternates three sides: no neighbours, -others goroutines
// spinning, -others goroutines allocating; pagealloc record runs it with the
// program's toolchain and GOMAXPROCS = others + 1, before and after the
// program.
//
// Usage: allocprobe -others N [-rounds R] [-repeat K]
//
// stdout: one JSON object, ns: alone_ns (median of the calls alone),
// spin_mean_ns and alloc_mean_ns (mean of each side's calls under 1 ms: a
// longer one had the thread off its CPU), alloc_traffic_mean_ns
// (alloc_mean_ns less spin_mean_ns, at least 0).  Errors: one line on
// stderr, exit 1.  Standard library only; builds with Go 1.14 and later.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

const (
	goPage      = 8192
	madvFree    = 8 // MADV_FREE
	preemptedNS = 1000000
)

var (
	stop int32
	sink [][]byte // the allocators' last live window, kept past their return
)

// spin computes without touching memory: a P running user code that does not allocate.
func spin(wg *sync.WaitGroup) {
	defer wg.Done()
	x := uint64(1)
	for atomic.LoadInt32(&stop) == 0 {
		for i := 0; i < 1000; i++ {
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
	runtime.KeepAlive(x)
}

// allocate makes and writes objects of 8-32 KiB, the last 256 live: a P in heavy allocation.
func allocate(wg *sync.WaitGroup) {
	defer wg.Done()
	live := make([][]byte, 256)
	for i := 0; atomic.LoadInt32(&stop) == 0; i++ {
		b := make([]byte, goPage+(i%7)*4096)
		for j := 0; j < len(b); j += 64 {
			b[j] = byte(j)
		}
		live[i%len(live)] = b
	}
	sink = live
}

// calls times repeat MADV_FREE calls, each on one resident Go page, each after sleeping 200 us.
func calls(repeat int) ([]int64, error) {
	mem, err := syscall.Mmap(-1, 0, goPage*repeat, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		return nil, err
	}
	defer syscall.Munmap(mem)
	for i := 0; i < len(mem); i += 4096 {
		mem[i] = 1
	}
	out := make([]int64, repeat)
	for k := range out {
		time.Sleep(200 * time.Microsecond)
		t0 := time.Now()
		_, _, errno := syscall.RawSyscall(syscall.SYS_MADVISE, uintptr(unsafe.Pointer(&mem[goPage*k])), goPage, madvFree)
		out[k] = int64(time.Since(t0))
		if errno != 0 {
			return nil, fmt.Errorf("madvise(MADV_FREE): %v", errno)
		}
	}
	return out, nil
}

// side times the calls with others goroutines running work beside them (none when work is nil).
func side(work func(*sync.WaitGroup), others, repeat int) ([]int64, error) {
	var wg sync.WaitGroup
	atomic.StoreInt32(&stop, 0)
	if work != nil {
		for i := 0; i < others; i++ {
			wg.Add(1)
			go work(&wg)
		}
		time.Sleep(50 * time.Millisecond) // under way, and the GC with them
	}
	out, err := calls(repeat)
	atomic.StoreInt32(&stop, 1)
	wg.Wait()
	return out, err
}

func median(x []int64) float64 {
	s := append([]int64(nil), x...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s)%2 == 1 {
		return float64(s[len(s)/2])
	}
	return float64(s[len(s)/2-1]+s[len(s)/2]) / 2
}

func meanBelowCap(x []int64) float64 {
	var sum, n float64
	for _, v := range x {
		if v < preemptedNS {
			sum += float64(v)
			n++
		}
	}
	if n == 0 {
		return preemptedNS
	}
	return sum / n
}

func main() {
	others := flag.Int("others", 1, "goroutines beside the calls (the program's other Ps)")
	rounds := flag.Int("rounds", 5, "rounds, each timing the three sides in turn")
	repeat := flag.Int("repeat", 60, "calls a side in each round")
	flag.Parse()
	if *others < 1 || *rounds < 1 || *repeat < 1 {
		fmt.Fprintln(os.Stderr, "allocprobe: -others, -rounds and -repeat must be at least 1")
		os.Exit(1)
	}
	runtime.LockOSThread() // the calls come from one thread, as the scavenger's from its M
	var alone, spun, allocating []int64
	for r := 0; r < *rounds; r++ {
		for _, s := range []struct {
			work func(*sync.WaitGroup)
			into *[]int64
		}{{nil, &alone}, {spin, &spun}, {allocate, &allocating}} {
			x, err := side(s.work, *others, *repeat)
			if err != nil {
				fmt.Fprintln(os.Stderr, "allocprobe:", err)
				os.Exit(1)
			}
			*s.into = append(*s.into, x...)
		}
	}
	spinMean, allocMean := meanBelowCap(spun), meanBelowCap(allocating)
	traffic := allocMean - spinMean
	if traffic < 0 {
		traffic = 0
	}
	json.NewEncoder(os.Stdout).Encode(map[string]int64{
		"alone_ns": int64(median(alone) + 0.5), "spin_mean_ns": int64(spinMean + 0.5),
		"alloc_mean_ns": int64(allocMean + 0.5), "alloc_traffic_mean_ns": int64(traffic + 0.5),
	})
}
