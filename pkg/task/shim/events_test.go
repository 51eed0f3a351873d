package shim

import (
	"context"
	"testing"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/task/shimapi"
)

func TestEventLogWaitsAndNumbers(t *testing.T) {
	l := newEventLog()
	got := make(chan *shimapi.EventsResponse)
	go func() {
		r, _ := l.after(context.Background(), 0)
		got <- r
	}()
	time.Sleep(20 * time.Millisecond)
	l.add(shimapi.Event{Topic: shimapi.TopicCreate, ID: "c1"})
	r := <-got
	if len(r.Events) != 1 || r.Events[0].Seq != 1 || r.Events[0].At.IsZero() || r.Lost {
		t.Fatalf("%+v", r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := l.after(ctx, 1); err == nil {
		t.Error("after the last event: no wait")
	}
}

func TestEventLogLost(t *testing.T) {
	l := newEventLog()
	for i := 0; i < eventLogSize+10; i++ {
		l.add(shimapi.Event{Topic: shimapi.TopicOOM, ID: "c1"})
	}
	r, err := l.after(context.Background(), 5)
	if err != nil || !r.Lost || len(r.Events) != eventLogSize || r.Events[0].Seq != 11 {
		t.Fatalf("lost=%v, %d events from %d, %v", r.Lost, len(r.Events), r.Events[0].Seq, err)
	}
	if r, _ := l.after(context.Background(), 10); r.Lost {
		t.Error("nothing was lost after 10")
	}
	if l.last() != eventLogSize+10 {
		t.Error(l.last())
	}
}
