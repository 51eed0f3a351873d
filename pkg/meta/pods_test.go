package meta_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
)

// The sandbox store is as complete as the container store: events, and a
// container's sandbox must exist and outlive it.
func TestSandboxReferences(t *testing.T) {
	rec := &recorder{}
	env := newEnv(t, meta.WithPublisher(rec))
	db := env.DB
	ctx := nsCtx(t, "ns")
	runc := meta.Runtime{Name: "runc"}
	if _, err := db.Containers().Create(ctx, meta.Container{ID: "orphan", Runtime: runc, SandboxID: "nope"}); !errdefs.IsNotFound(err) {
		t.Fatalf("container of a missing sandbox: %v", err)
	}
	if _, err := db.Sandboxes().Create(ctx, meta.Sandbox{ID: "pod", Runtime: runc}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b"} {
		if _, err := db.Containers().Create(ctx, meta.Container{ID: id, Runtime: runc, SandboxID: "pod"}); err != nil {
			t.Fatal(err)
		}
	}
	err := db.Sandboxes().Delete(ctx, "pod")
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "a, b") {
		t.Fatalf("delete of a sandbox with containers: %v", err)
	}
	if _, err := db.Sandboxes().Update(ctx, meta.Sandbox{ID: "pod", Labels: map[string]string{"k": "v"}}, "labels"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b"} {
		if err := db.Containers().Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Sandboxes().Delete(ctx, "pod"); err != nil {
		t.Fatalf("delete of an emptied sandbox: %v", err)
	}
	rec.has(t, "ns /sandboxes/create", "ns /sandboxes/update", "ns /sandboxes/delete")
}

// One transaction writes a sandbox and its pause container together, or
// neither.
func TestUpdateWritesTogether(t *testing.T) {
	db := newEnv(t).DB
	ctx := nsCtx(t, "ns")
	runc := meta.Runtime{Name: "runc"}
	boom := errors.New("boom")
	err := db.Update(ctx, func(tx *meta.Tx) error {
		if _, err := tx.CreateSandbox(meta.Sandbox{ID: "pod", Runtime: runc}); err != nil {
			return err
		}
		if _, err := tx.CreateContainer(meta.Container{ID: "pause", Runtime: runc, SandboxID: "pod"}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if _, err := db.Sandboxes().Get(ctx, "pod"); !errdefs.IsNotFound(err) {
		t.Fatalf("sandbox of a failed transaction: %v", err)
	}
	err = db.Update(ctx, func(tx *meta.Tx) error {
		if _, err := tx.CreateSandbox(meta.Sandbox{ID: "pod", Runtime: runc}); err != nil {
			return err
		}
		_, err := tx.CreateContainer(meta.Container{ID: "pause", Runtime: runc, SandboxID: "pod",
			Status: meta.Status{State: meta.StateCreated, Pid: 42}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	c, err := db.Containers().Get(ctx, "pause")
	if err != nil || c.SandboxID != "pod" || c.Status.State != meta.StateCreated || c.Status.Pid != 42 {
		t.Fatalf("pause container: %+v, %v", c, err)
	}
	if err := db.Update(ctx, func(tx *meta.Tx) error {
		if err := tx.DeleteContainer("pause"); err != nil {
			return err
		}
		return tx.DeleteSandbox("pod")
	}); err != nil {
		t.Fatal(err)
	}
}

// The last known status survives a restart, and writing it is no
// mutation for the collector's policy.
func TestStatusSurvivesRestart(t *testing.T) {
	env := newEnv(t)
	ctx := nsCtx(t, "ns")
	runc := meta.Runtime{Name: "runc"}
	if _, err := env.DB.Sandboxes().Create(ctx, meta.Sandbox{ID: "pod", Runtime: runc}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.DB.Containers().Create(ctx, meta.Container{ID: "c", Runtime: runc, SandboxID: "pod"}); err != nil {
		t.Fatal(err)
	}
	var mutations int
	env.DB.RegisterMutationCallback(func(bool) { mutations++ })
	started := time.Now().Add(-time.Second).UTC().Truncate(time.Microsecond)
	exited := meta.Status{State: meta.StateExited, Pid: 7, ExitCode: 137, StartedAt: started, FinishedAt: started.Add(time.Second),
		Reason: "OOMKilled", Message: strings.Repeat("m", 10000)}
	if err := env.DB.Containers().SetStatus(ctx, "c", exited); err != nil {
		t.Fatal(err)
	}
	if err := env.DB.Sandboxes().SetStatus(ctx, "pod", meta.Status{State: meta.StateRunning, Pid: 6}); err != nil {
		t.Fatal(err)
	}
	if mutations != 0 {
		t.Fatalf("status writes counted as %d mutations", mutations)
	}
	if err := env.DB.Containers().SetStatus(ctx, "nope", exited); !errdefs.IsNotFound(err) {
		t.Fatalf("status of a missing container: %v", err)
	}
	if err := env.DB.Containers().SetStatus(ctx, "c", meta.Status{State: 99}); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("status of no known state: %v", err)
	}
	db := env.Reopen(t)
	c, err := db.Containers().Get(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	st := c.Status
	if st.State != meta.StateExited || st.ExitCode != 137 || st.Reason != "OOMKilled" || !st.StartedAt.Equal(started) ||
		!st.FinishedAt.Equal(started.Add(time.Second)) || len(st.Message) != 4096 {
		t.Fatalf("status after a restart: %+v", fmt.Sprintf("%v %d %q %v %v %d", st.State, st.ExitCode, st.Reason, st.StartedAt, st.FinishedAt, len(st.Message)))
	}
	sb, err := db.Sandboxes().Get(ctx, "pod")
	if err != nil || sb.Status.State != meta.StateRunning || sb.Status.Pid != 6 {
		t.Fatalf("sandbox status after a restart: %+v, %v", sb.Status, err)
	}
	// Other updates keep the status.
	if _, err := db.Containers().Update(ctx, meta.Container{ID: "c", Labels: map[string]string{"a": "b"}}, "labels"); err != nil {
		t.Fatal(err)
	}
	if c, _ := db.Containers().Get(ctx, "c"); c.Status.ExitCode != 137 {
		t.Fatalf("status after a label update: %+v", c.Status)
	}
}
