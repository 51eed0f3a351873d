package shim

import (
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"time"
)

// compactDelay is how long the shim waits after its last call that
// changed what it holds (a create, start, exec, delete) before it gives
// its free memory back to the system.
const compactDelay = 100 * time.Millisecond

func init() {
	// The shim never writes a heap profile: without sampling, the
	// runtime's profile buckets (a 1.4 MiB table, touched page by page)
	// are never made.
	runtime.MemProfileRate = 0
}

// compactor returns the shim's free memory to the system once it is idle:
// the Go heap's first collection would otherwise wait for 4 MiB of
// allocations, and the pages of the garbage of a container's start (the
// spec, the runtime's output, grown stacks) would stay resident for the
// life of the shim, on every pod of the node.
type compactor struct {
	mu sync.Mutex
	t  *time.Timer
}

// soon schedules a compaction compactDelay from now, replacing any
// pending one.
func (c *compactor) soon() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.t == nil {
		c.t = time.AfterFunc(compactDelay, compact)
		return
	}
	c.t.Reset(compactDelay)
}

// compact ends the idle threads, then collects once and returns the free
// pages to the system. One collection, not several: a collection at most
// halves a goroutine stack grown by a start (os/exec, JSON), but each one
// also leaves the runtime's own per-cycle metadata resident, and measured
// on 10 shims just after their start that cost more than the shrunk
// stacks saved (PSS per shim 1.65 MiB with one, 1.83 with two, 1.87 with
// three); after a few execs the counts all settle at the same figure.
func compact() {
	trimThreads(keepThreads)
	debug.FreeOSMemory()
}

// keepThreads is how many threads an idle shim keeps: the main thread,
// sysmon's and one to run on.
const keepThreads = 3

// trimThreads ends threads until the process has at most keep. The Go
// runtime never ends a thread it made for a blocking system call (a fork,
// a file read); a start leaves several, each with a signal stack and a
// scheduler stack (about 20 KiB resident), idle for the life of the shim.
// A goroutine that exits while locked to its thread ends that thread
// (the main thread is parked instead), and the next one runs on another
// idle thread: each round ends one. No process the shim starts has a
// parent-death signal (go-runc's PdeathSignal is unset), so no child
// dies with the thread that forked it.
func trimThreads(keep int) {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return
	}
	for n := len(ents); n > keep; n-- {
		done := make(chan struct{})
		go func() {
			runtime.LockOSThread()
			close(done)
		}()
		<-done
	}
}

// compacting is fn followed by c.soon.
func compacting[Req, Resp any](c *compactor, fn func(context.Context, *Req) (*Resp, error)) func(context.Context, *Req) (*Resp, error) {
	return func(ctx context.Context, req *Req) (*Resp, error) {
		defer c.soon()
		return fn(ctx, req)
	}
}
