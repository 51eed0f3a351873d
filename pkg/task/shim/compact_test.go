package shim

import (
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
)

func threads(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestTrimThreadsEndsIdleThreads makes the runtime start threads for
// blocking system calls, as a container's start does, and checks that
// trimThreads ends them once they are idle.
func TestTrimThreadsEndsIdleThreads(t *testing.T) {
	before := threads(t)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			// A raw system call: the runtime hands the P to a new thread.
			ts := syscall.NsecToTimespec(int64(100 * time.Millisecond))
			_ = syscall.Nanosleep(&ts, nil)
		})
	}
	wg.Wait()
	grown := threads(t)
	if grown < before+4 {
		t.Fatalf("%d threads after 8 blocking calls, %d before: the test made no threads to end", grown, before)
	}
	trimThreads(before)
	// An ended thread leaves /proc/self/task once the kernel has reaped it.
	deadline := time.Now().Add(5 * time.Second)
	for threads(t) > before+1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := threads(t); n > before+1 {
		t.Errorf("%d threads after trimThreads(%d), %d before it", n, before, grown)
	}
}
