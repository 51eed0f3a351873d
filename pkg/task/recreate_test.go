package task_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/task"
	"github.com/cri-runtime/cri-runtime/pkg/task/shimapi"
	"github.com/cri-runtime/cri-runtime/pkg/task/tasktest"
)

// TestRecreateBeforeDeleteEventKeepsTask: a container deleted and created
// again under the same ID in the same group (run --rm, then run -d of the
// same name) stays known to the Manager when the delete event of the
// first one is delivered after the second create (OnEvent held it back
// here; a busy daemon does the same). It was dropped from the index: the
// new task was "not found".
func TestRecreateBeforeDeleteEventKeepsTask(t *testing.T) {
	e := newEnv(t)
	e.m.Close()
	gate := make(chan struct{})
	var once sync.Once
	m, err := task.NewManager(task.Config{
		StateDir: e.state, ShimBinary: tasktest.ShimBinary(t),
		OnEvent: func(ctx context.Context, ev task.Event) {
			if ev.Topic == shimapi.TopicExit && ev.ID == "again" {
				once.Do(func() { <-gate })
			}
			e.rec.onEvent(ctx, ev)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.m = m
	ctx := nsCtx()
	rt := tasktest.Runtimes(t)[0]

	tk, _ := e.create("g", rt, "again", "true")
	if _, err := tk.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := tk.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := tk.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	e.create("g", rt, "again", "true")
	close(gate)
	// Both creates delivered: the first one's delete, between them, too.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if got := e.rec.of("again"); slices.Equal(got, []string{"create/", "start/", "exit/", "delete/", "create/"}) {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("events %s", strings.Join(got, " "))
		}
	}
	again, err := e.m.Get(ctx, "again")
	if err != nil {
		t.Fatalf("the second container once the first one's delete is delivered: %v", err)
	}
	if st, err := again.State(ctx); err != nil || st.Status != shimapi.StatusCreated {
		t.Fatalf("state %+v, %v", st, err)
	}
	remove(t, again)
}
