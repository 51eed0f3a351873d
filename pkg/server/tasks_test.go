package server

import (
	"context"
	"testing"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/meta/metatest"
	"github.com/cri-runtime/cri-runtime/pkg/namespaces"
	"github.com/cri-runtime/cri-runtime/pkg/task"
	"github.com/cri-runtime/cri-runtime/pkg/task/shimapi"
)

// The status writer is fed events that may be replayed or late: the first
// exit stands, and nothing moves a status back.
func TestStatusWriterIsIdempotent(t *testing.T) {
	db := metatest.New(t)
	ctx := namespaces.WithNamespace(context.Background(), "ns")
	runc := meta.Runtime{Name: "runc"}
	if _, err := db.Sandboxes().Create(ctx, meta.Sandbox{ID: "pod", Runtime: runc}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Containers().Create(ctx, meta.Container{ID: "c", Runtime: runc, SandboxID: "pod"}); err != nil {
		t.Fatal(err)
	}
	w := statusWriter{db: db}
	// Whole seconds, after the records' creation: the events are of them.
	at := time.Now().UTC().Truncate(time.Second).Add(time.Second)
	ev := func(topic, id string, pid uint32, exit *task.Exit) {
		w.onEvent(ctx, task.Event{Namespace: "ns", Event: shimapi.Event{Topic: topic, ID: id, Pid: pid, At: at, Exit: exit}})
	}
	ev(shimapi.TopicCreate, "c", 10, nil)
	ev(shimapi.TopicStart, "c", 10, nil)
	ev(shimapi.TopicPaused, "c", 0, nil)
	if c, _ := db.Containers().Get(ctx, "c"); c.Status.State != meta.StatePaused || c.Status.Pid != 10 || !c.Status.StartedAt.Equal(at) {
		t.Fatalf("paused: %+v", c.Status)
	}
	ev(shimapi.TopicResumed, "c", 0, nil)
	ev(shimapi.TopicExit, "c", 10, &task.Exit{Status: 137, At: at.Add(time.Second), Reason: shimapi.ReasonOOMKilled})
	// Replayed and late events change nothing.
	ev(shimapi.TopicExit, "c", 10, &task.Exit{Status: 0, At: at.Add(2 * time.Second)})
	ev(shimapi.TopicStart, "c", 11, nil)
	ev(shimapi.TopicDelete, "c", 10, &task.Exit{Status: 1, At: at.Add(3 * time.Second)})
	c, _ := db.Containers().Get(ctx, "c")
	if st := c.Status; st.State != meta.StateExited || st.ExitCode != 137 || st.Reason != "OOMKilled" || !st.FinishedAt.Equal(at.Add(time.Second)) || st.Pid != 10 {
		t.Fatalf("after replays: %+v", st)
	}
	// A sandbox's task is its pause container, under the sandbox's ID.
	ev(shimapi.TopicStart, "pod", 9, nil)
	if sb, _ := db.Sandboxes().Get(ctx, "pod"); sb.Status.State != meta.StateRunning || sb.Status.Pid != 9 {
		t.Fatalf("sandbox: %+v", sb.Status)
	}
	// An exit of a task whose record is gone is no error.
	ev(shimapi.TopicExit, "gone", 1, &task.Exit{Status: 0, At: at})

	// A live record no shim holds is marked exited, ShimGone; one a shim
	// holds is left to its own events.
	if _, err := db.Containers().Create(ctx, meta.Container{ID: "held", Runtime: runc, SandboxID: "pod"}); err != nil {
		t.Fatal(err)
	}
	ev(shimapi.TopicStart, "held", 12, nil)
	n, err := w.reconcile(context.Background(), []task.State{{Namespace: "ns", ProcessState: shimapi.ProcessState{ID: "held", Status: shimapi.StatusRunning}}})
	if err != nil || n != 1 {
		t.Fatalf("reconcile: %d, %v", n, err)
	}
	if sb, _ := db.Sandboxes().Get(ctx, "pod"); sb.Status.State != meta.StateExited || sb.Status.Reason != shimapi.ReasonShimGone || sb.Status.ExitCode != 255 {
		t.Fatalf("lost sandbox: %+v", sb.Status)
	}
	if c, _ := db.Containers().Get(ctx, "held"); c.Status.State != meta.StateRunning {
		t.Fatalf("held container: %+v", c.Status)
	}
}

// A container deleted and created again under the same ID in the same
// shim (run --rm, then run of the same name) gets the late events of the
// first one after its own record exists: they happened before it was
// created, and leave it alone (it showed exited, with the first one's
// code, while it ran).
func TestStatusWriterLeavesARecreatedContainerAlone(t *testing.T) {
	db := metatest.New(t)
	ctx := namespaces.WithNamespace(context.Background(), "ns")
	before := time.Now().UTC().Add(-time.Second) // the first container's life
	if _, err := db.Containers().Create(ctx, meta.Container{ID: "again", Runtime: meta.Runtime{Name: "runc"}}); err != nil {
		t.Fatal(err)
	}
	w := statusWriter{db: db}
	ev := func(topic string, pid uint32, at time.Time, exit *task.Exit) {
		w.onEvent(ctx, task.Event{Namespace: "ns", Event: shimapi.Event{Topic: topic, ID: "again", Pid: pid, At: at, Exit: exit}})
	}
	ev(shimapi.TopicStart, 10, before, nil)
	ev(shimapi.TopicExit, 10, before, &task.Exit{Status: 3, At: before})
	ev(shimapi.TopicDelete, 10, before, &task.Exit{Status: 3, At: before})
	if c, _ := db.Containers().Get(ctx, "again"); c.Status.State != meta.StateUnknown && c.Status.State != meta.StateCreated || c.Status.Pid != 0 {
		t.Fatalf("the new container after the first one's late events: %+v", c.Status)
	}
	now := time.Now().UTC()
	ev(shimapi.TopicCreate, 20, now, nil)
	ev(shimapi.TopicStart, 20, now, nil)
	if c, _ := db.Containers().Get(ctx, "again"); c.Status.State != meta.StateRunning || c.Status.Pid != 20 {
		t.Fatalf("the new container's own events: %+v", c.Status)
	}
}
