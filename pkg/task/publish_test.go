package task_test

import (
	"context"
	"testing"
	"time"

	eventsv1 "github.com/cri-runtime/cri-runtime/api/events/v1"
	"github.com/cri-runtime/cri-runtime/pkg/events"
	"github.com/cri-runtime/cri-runtime/pkg/task"
	"github.com/cri-runtime/cri-runtime/pkg/task/tasktest"
)

// TestEventsOnExchange: with a Publisher, the shim's events reach the
// exchange under /tasks/..., with their payloads.
func TestEventsOnExchange(t *testing.T) {
	rt := tasktest.Runtimes(t)[0]
	e := newEnv(t)
	ex := events.NewExchange()
	e.m.Close()
	m, err := task.NewManager(task.Config{StateDir: e.state, ShimBinary: tasktest.ShimBinary(t), Publisher: ex})
	if err != nil {
		t.Fatal(err)
	}
	e.m = m
	ctx := waitCtx(t)
	sub, errs := ex.Subscribe(ctx, `topic~="^/tasks/"`)
	tk, _ := e.create("g1", rt, "c1", "sh", "-c", "exit 4")
	if _, err := tk.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := tk.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := tk.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	var topics []string
	for len(topics) < 4 {
		select {
		case env := <-sub:
			if env.Namespace != testNS {
				t.Errorf("namespace %q", env.Namespace)
			}
			topics = append(topics, env.Topic)
			if env.Topic == "/tasks/exit" {
				var ev eventsv1.TaskExit
				if err := env.Event.UnmarshalTo(&ev); err != nil || ev.ContainerId != "c1" || ev.Id != "c1" || ev.ExitStatus != 4 || ev.ExitedAt == nil {
					t.Errorf("exit payload %+v, %v", &ev, err)
				}
			}
		case err := <-errs:
			t.Fatal(err)
		case <-ctx.Done():
			t.Fatalf("events so far: %v", topics)
		}
	}
	want := []string{"/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"}
	for i := range want {
		if topics[i] != want[i] {
			t.Fatalf("topics %v, want %v", topics, want)
		}
	}
}

// TestOnEventMayDeleteTheTask: an OnEvent that deletes the task of the
// exit it got (a `run --rm`) neither deadlocks with the event loop nor
// leaves the emptied shim running.
func TestOnEventMayDeleteTheTask(t *testing.T) {
	rt := tasktest.Runtimes(t)[0]
	e := newEnv(t)
	e.m.Close()
	deleted := make(chan error, 1)
	var m *task.Manager
	m, err := task.NewManager(task.Config{StateDir: e.state, ShimBinary: tasktest.ShimBinary(t),
		OnEvent: func(ctx context.Context, ev task.Event) {
			if ev.Topic != "/tasks/exit" {
				return
			}
			tk, err := m.Get(ctx, ev.ID)
			if err == nil {
				_, err = tk.Delete(ctx)
			}
			deleted <- err
		}})
	if err != nil {
		t.Fatal(err)
	}
	e.m = m
	ctx := waitCtx(t)
	tk, _ := e.create("g1", rt, "c1", "true")
	start := time.Now()
	if _, err := tk.Start(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-deleted:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("no delete")
	}
	eventually(t, "the emptied shim exits", func() bool { return len(e.leftovers()) == 0 })
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("run, delete and shim stop took %v", d)
	}
}
