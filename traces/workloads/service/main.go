// service: a service-like program at GOMAXPROCS 4 -- CPU-bound goroutines
// keep Ps busy while another goroutine allocates in bursts and pauses.
//
// -spinners goroutines compute without allocating for the whole run (so the
// Ps they hold reschedule only when sysmon preempts them, every 10 ms).  One
// goroutine serves -bursts bursts: each allocates -burst-mb MiB of mixed
// objects through a window of -live-mb MiB kept live (a request's working
// set), drops them, and pauses -pause.  The heap grows and shrinks while
// most Ps are busy: the background scavenger's timer often sits on a P
// running a CPU-bound goroutine.
package main

import (
	"flag"
	"sync"
	"sync/atomic"
	"time"

	"pagealloc/workloads/internal/mix"
)

var sink uint64

func spin(stop *int32, seed uint64) {
	x := seed
	for atomic.LoadInt32(stop) == 0 {
		for i := 0; i < 1<<16; i++ { // xorshift: pure CPU, no allocation
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
		}
	}
	atomic.AddUint64(&sink, x)
}

func main() {
	spinners := flag.Int("spinners", 2, "CPU-bound goroutines")
	bursts := flag.Int("bursts", 30, "allocation bursts")
	burstMB := flag.Int("burst-mb", 48, "MiB allocated per burst")
	liveMB := flag.Int("live-mb", 16, "MiB kept live within a burst")
	pause := flag.Duration("pause", 60*time.Millisecond, "pause after each burst")
	flag.Parse()

	var stop int32
	var wg sync.WaitGroup
	for i := 0; i < *spinners; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			spin(&stop, uint64(88172645463325252+i))
		}(i)
	}

	done := make(chan struct{})
	go func() {
		sizes := mix.New(7, 0.01, 1<<20)
		for b := 0; b < *bursts; b++ {
			var window [][]byte
			live := 0
			for total := 0; total < *burstMB<<20; {
				n := sizes.Next()
				window = append(window, mix.Alloc(n))
				live += n
				total += n
				for live > *liveMB<<20 { // the oldest objects of the request go
					live -= len(window[0])
					window[0] = nil
					window = window[1:]
				}
			}
			window = nil
			time.Sleep(*pause)
		}
		close(done)
	}()
	<-done
	atomic.StoreInt32(&stop, 1)
	wg.Wait()
}
