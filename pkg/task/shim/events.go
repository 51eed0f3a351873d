package shim

import (
	"context"
	"sync"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/task/shimapi"
)

// eventLogSize is how many events the shim keeps for a daemon that is
// away. A daemon that falls further behind resynchronises from State,
// which keeps the last status of every process until it is deleted, so
// no exit is ever lost.
const eventLogSize = 1024

// eventLog numbers events and keeps the last eventLogSize of them.
type eventLog struct {
	mu      sync.Mutex // guards the fields below
	seq     uint64     // the last sequence number given
	events  []shimapi.Event
	changed chan struct{} // closed and replaced when an event is added
}

func newEventLog() *eventLog {
	return &eventLog{changed: make(chan struct{})}
}

// add numbers ev, keeps it and returns its number.
func (l *eventLog) add(ev shimapi.Event) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	ev.Seq = l.seq
	if ev.At.IsZero() {
		ev.At = time.Now()
	}
	if len(l.events) == eventLogSize {
		copy(l.events, l.events[1:])
		l.events = l.events[:eventLogSize-1]
	}
	l.events = append(l.events, ev)
	close(l.changed)
	l.changed = make(chan struct{})
	return ev.Seq
}

// last returns the last sequence number given.
func (l *eventLog) last() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seq
}

// after returns the events after seq, waiting for one until ctx ends.
func (l *eventLog) after(ctx context.Context, seq uint64) (*shimapi.EventsResponse, error) {
	for {
		l.mu.Lock()
		if l.seq > seq {
			resp := &shimapi.EventsResponse{}
			first := l.events[0].Seq
			if seq+1 < first {
				resp.Lost = true
			}
			for _, ev := range l.events {
				if ev.Seq > seq {
					resp.Events = append(resp.Events, ev)
				}
			}
			l.mu.Unlock()
			return resp, nil
		}
		changed := l.changed
		l.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
