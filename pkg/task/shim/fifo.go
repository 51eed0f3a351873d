package shim

import (
	"bytes"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"
)

// fifoDrainTimeout bounds how long closing a FIFO sink waits for a reader
// to take what is queued.
const fifoDrainTimeout = 2 * time.Second

// fifoSink copies one output stream into a FIFO the daemon reads (exec
// output, attach). Like criLog it queues a bounded number of bytes and
// drops beyond that; a reader that went away (EPIPE) makes it discard.
type fifoSink struct {
	f     *os.File
	limit int

	mu      sync.Mutex // guards the fields below
	queue   [][]byte
	queued  int
	dropped int
	closing bool
	wake    chan struct{}

	done chan struct{}
}

// openFIFOSink opens path for writing. The daemon holds the reading end
// open before it asks for the process, so the open does not wait; without
// a reader it fails (ENXIO) instead of hanging.
func openFIFOSink(path string, limit int) (*fifoSink, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("output fifo: %w", err)
	}
	if limit <= 0 {
		limit = DefaultOutputBuffer
	}
	s := &fifoSink{f: f, limit: limit, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go s.writer()
	return s, nil
}

func (s *fifoSink) push(_ string, data []byte, _ time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.queued+len(data) > s.limit {
		s.dropped += len(data)
		return
	}
	s.queue = append(s.queue, bytes.Clone(data))
	s.queued += len(data)
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *fifoSink) endStream(string) {}

func (s *fifoSink) close() {
	s.mu.Lock()
	s.closing = true
	select {
	case s.wake <- struct{}{}:
	default:
	}
	s.mu.Unlock()
	select {
	case <-s.done:
	case <-time.After(fifoDrainTimeout):
		s.f.Close() // unblocks the writer's pending write
		<-s.done
	}
}

func (s *fifoSink) writer() {
	defer close(s.done)
	broken := false
	for range s.wake {
		s.mu.Lock()
		batch, closing := s.queue, s.closing
		s.queue, s.queued = nil, 0
		s.mu.Unlock()
		for _, b := range batch {
			if !broken {
				if _, err := s.f.Write(b); err != nil {
					broken = true // the reader is gone: discard the rest
				}
			}
		}
		if closing {
			s.f.Close()
			return
		}
	}
}
