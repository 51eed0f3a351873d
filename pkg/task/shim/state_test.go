package shim

import (
	"context"
	"errors"
	"testing"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/task/shimapi"
)

// TestInitStateRefusals checks every transition a state refuses, and the
// class of its error. The transitions a state allows run the runtime and
// are exercised by the tests of pkg/task with real containers.
func TestInitStateRefusals(t *testing.T) {
	p := &initProcess{c: &container{id: "c1"}}
	ctx := context.Background()
	ops := map[string]func(initState) error{
		"start":      func(s initState) error { return s.start(ctx) },
		"pause":      func(s initState) error { return s.pause(ctx) },
		"resume":     func(s initState) error { return s.resume(ctx) },
		"exec":       func(s initState) error { return s.exec() },
		"delete":     func(s initState) error { return s.delete(ctx) },
		"kill":       func(s initState) error { return s.kill(ctx, 9, false) },
		"update":     func(s initState) error { return s.update(ctx, nil) },
		"checkpoint": func(s initState) error { return s.checkpoint(ctx, nil) },
	}
	for _, c := range []struct {
		st      initState
		refused []string
		class   error
	}{
		{createdState{p}, []string{"pause", "resume", "exec", "checkpoint"}, errdefs.ErrFailedPrecondition},
		{createdCheckpointState{p}, []string{"pause", "resume", "exec", "kill", "update", "checkpoint"}, errdefs.ErrFailedPrecondition},
		{runningState{p}, []string{"start", "resume", "delete"}, errdefs.ErrFailedPrecondition},
		{pausedState{p}, []string{"start", "pause", "exec", "delete"}, errdefs.ErrFailedPrecondition},
		{stoppedState{p}, []string{"start", "pause", "resume", "exec", "kill", "update", "checkpoint"}, errdefs.ErrFailedPrecondition},
		{deletedState{p}, []string{"start", "pause", "resume", "exec", "delete", "kill", "update", "checkpoint"}, errdefs.ErrNotFound},
	} {
		for _, name := range c.refused {
			err := ops[name](c.st)
			var te *TransitionError
			if !errors.As(err, &te) || te.State != c.st.status() || te.Op == "" || !errors.Is(err, c.class) {
				t.Errorf("%s in state %s: got %v, want a TransitionError of class %v", name, c.st.status(), err, c.class)
			}
		}
	}
	if s := (stoppedState{p}); s.status() != shimapi.StatusStopped {
		t.Error(s.status())
	}
}

func TestExecStateRefusals(t *testing.T) {
	e := &execProcess{c: &container{id: "c1"}, id: "e1"}
	for _, c := range []struct {
		st    execState
		ops   map[string]func() error
		class error
	}{
		{execCreated{e}, map[string]func() error{"kill": func() error { return execCreated{e}.kill(9) }}, errdefs.ErrFailedPrecondition},
		{execRunning{e}, map[string]func() error{
			"start":  func() error { return execRunning{e}.start(context.Background()) },
			"delete": func() error { return execRunning{e}.delete() },
		}, errdefs.ErrFailedPrecondition},
		{execStopped{e}, map[string]func() error{
			"start": func() error { return execStopped{e}.start(context.Background()) },
			"kill":  func() error { return execStopped{e}.kill(9) },
		}, errdefs.ErrFailedPrecondition},
		{execDeleted{e}, map[string]func() error{
			"start":  func() error { return execDeleted{e}.start(context.Background()) },
			"kill":   func() error { return execDeleted{e}.kill(9) },
			"delete": func() error { return execDeleted{e}.delete() },
		}, errdefs.ErrNotFound},
	} {
		for name, op := range c.ops {
			if err := op(); !errors.Is(err, c.class) {
				t.Errorf("%s in state %s: got %v, want class %v", name, c.st.status(), err, c.class)
			}
		}
	}
}
