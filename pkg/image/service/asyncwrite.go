package service

import (
	"io"
	"sync"
)

// asyncWriter writes to w on its own goroutine. A streamed layer's network
// read feeds both the content writer and the decompressor; written in line,
// every stall of the disk under the blob also stalls the decompression.
// With a few buffers in flight the two proceed side by side. Close waits
// for the queue to drain and returns the first write error; Write returns
// it as soon as it is known.
type asyncWriter struct {
	w     io.Writer
	queue chan []byte
	free  chan []byte
	done  chan struct{}

	mu  sync.Mutex
	err error // the first error of w.Write; guarded by mu

	closeOnce sync.Once
}

func newAsyncWriter(w io.Writer, depth, size int) *asyncWriter {
	a := &asyncWriter{w: w, queue: make(chan []byte, depth), free: make(chan []byte, depth), done: make(chan struct{})}
	for range depth {
		a.free <- make([]byte, size)
	}
	go a.run()
	return a
}

func (a *asyncWriter) run() {
	defer close(a.done)
	for buf := range a.queue {
		if a.failed() == nil {
			if _, err := a.w.Write(buf); err != nil {
				a.mu.Lock()
				a.err = err
				a.mu.Unlock()
			}
		}
		a.free <- buf[:cap(buf)]
	}
}

func (a *asyncWriter) failed() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

// Write copies p into free buffers and queues them.
func (a *asyncWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		if err := a.failed(); err != nil {
			return written, err
		}
		buf := <-a.free
		n := copy(buf, p)
		a.queue <- buf[:n]
		p, written = p[n:], written+n
	}
	return written, nil
}

// Close flushes the queue and returns the first write error. It is safe
// to call more than once.
func (a *asyncWriter) Close() error {
	a.closeOnce.Do(func() { close(a.queue) })
	<-a.done
	return a.failed()
}

// The blob writes of a streamed layer in flight: 8 MiB, about 20 ms of the
// disk's throughput.
const (
	asyncDepth   = 8
	asyncBufSize = 1 << 20
)
