package meta_test

import (
	"errors"
	"fmt"
	"os"
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

// A status update that changes nothing (a shim's event repeating what the
// CRI wrote, or the reverse) is a read: it does not queue behind a writer
// for a commit of nothing. One that changes the status still writes.
func TestUpdateStatusThatChangesNothingIsNoWrite(t *testing.T) {
	env := newEnv(t)
	ctx := nsCtx(t, "ns")
	runc := meta.Runtime{Name: "runc"}
	if _, err := env.DB.Sandboxes().Create(ctx, meta.Sandbox{ID: "pod", Runtime: runc}); err != nil {
		t.Fatal(err)
	}
	started := time.Now().UTC()
	if _, err := env.DB.Containers().Create(ctx, meta.Container{ID: "c", Runtime: runc, SandboxID: "pod",
		Status: meta.Status{State: meta.StateRunning, Pid: 7, StartedAt: started}}); err != nil {
		t.Fatal(err)
	}
	// A writer holds bolt's write lock until released.
	held, release, wrote := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		wrote <- env.DB.Update(ctx, func(*meta.Tx) error {
			close(held)
			<-release
			return nil
		})
	}()
	<-held
	within := func(what string, fn func() error) error {
		t.Helper()
		done := make(chan error, 1)
		go func() { done <- fn() }()
		select {
		case err := <-done:
			return err
		case <-time.After(5 * time.Second):
			close(release)
			t.Fatalf("%s waited for the writer", what)
			return nil
		}
	}
	if err := within("a start seen again", func() error {
		return env.DB.UpdateStatus(ctx, "c", func(st *meta.Status) bool { return st.Started(7, time.Now()) })
	}); err != nil {
		t.Fatal(err)
	}
	if err := within("the status of a missing task", func() error {
		return env.DB.UpdateStatus(ctx, "nope", func(st *meta.Status) bool { return st.Created(1) })
	}); !errdefs.IsNotFound(err) {
		t.Fatalf("status of a missing task: %v, want NotFound", err)
	}
	exited := make(chan error, 1)
	go func() {
		exited <- env.DB.UpdateStatus(ctx, "c", func(st *meta.Status) bool { return st.Exited(0, time.Now(), "Completed", "") })
	}()
	select {
	case err := <-exited:
		t.Fatalf("an exit was written while a writer held the database: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	if err := <-exited; err != nil {
		t.Fatal(err)
	}
	c, err := env.DB.Containers().Get(ctx, "c")
	if err != nil || c.Status.State != meta.StateExited || c.Status.Reason != "Completed" || !c.Status.StartedAt.Equal(started) {
		t.Fatalf("status after the exit: %+v, %v", c.Status, err)
	}
}

// A status write that another writer made first, between the read and
// the write of UpdateStatus (fn changes its mind), commits nothing: bolt
// writes its meta page and syncs even for an empty commit.
func TestUpdateStatusRaceLostWritesNothing(t *testing.T) {
	env := newEnv(t)
	ctx := nsCtx(t, "ns")
	if _, err := env.DB.Sandboxes().Create(ctx, meta.Sandbox{ID: "pod", Runtime: meta.Runtime{Name: "runc"},
		Status: meta.Status{State: meta.StateRunning, Pid: 7}}); err != nil {
		t.Fatal(err)
	}
	before, err := os.Stat(env.Path)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond) // a later write has a later mtime
	calls := 0
	if err := env.DB.UpdateStatus(ctx, "pod", func(st *meta.Status) bool {
		calls++
		return calls == 1 // changes at the read, no longer at the write
	}); err != nil {
		t.Fatal(err)
	}
	after, err := os.Stat(env.Path)
	if err != nil {
		t.Fatal(err)
	}
	if calls != 2 {
		t.Fatalf("fn called %d times, want at the read and at the write", calls)
	}
	if !after.ModTime().Equal(before.ModTime()) {
		t.Fatalf("the database file was written (mtime %v, then %v) for a status that did not change", before.ModTime(), after.ModTime())
	}
}
