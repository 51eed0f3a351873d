package shim

import (
	"context"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cri-runtime/cri-runtime/pkg/task/shimapi"
)

// initState is the state of a container's init process: one type per
// state, each allowing only its own transitions. The methods run with the
// process's mu held; a transition replaces p.st.
//
//	created ──start──► running ──pause──► paused
//	   │                 │   ◄──resume──    │
//	   │ exit            │ exit             │ exit
//	   ▼                 ▼                  ▼
//	stopped ◄────────────┴──────────────────┘
//	   │ delete (also from created, and from createdCheckpoint)
//	   ▼
//	deleted
//
// createdCheckpoint is created for a container restored from a CRIU
// image: its start is the restore.
type initState interface {
	status() shimapi.Status
	start(ctx context.Context) error
	pause(ctx context.Context) error
	resume(ctx context.Context) error
	update(ctx context.Context, r *specs.LinuxResources) error
	exec() error
	kill(ctx context.Context, sig int, all bool) error
	delete(ctx context.Context) error
	checkpoint(ctx context.Context, req *shimapi.CheckpointRequest) error
	setExited(e shimapi.Exit)
}

// refuse is the error of an operation the state does not allow.
func refuse(p *initProcess, st shimapi.Status, op string) error {
	return &TransitionError{Process: p.c.subject(), State: st, Op: op}
}

type createdState struct{ p *initProcess }

func (s createdState) status() shimapi.Status       { return shimapi.StatusCreated }
func (s createdState) pause(context.Context) error  { return refuse(s.p, s.status(), "pause") }
func (s createdState) resume(context.Context) error { return refuse(s.p, s.status(), "resume") }
func (s createdState) exec() error                  { return refuse(s.p, s.status(), "exec") }
func (s createdState) setExited(e shimapi.Exit)     { s.p.stopped(e) }
func (s createdState) kill(ctx context.Context, sig int, all bool) error {
	return s.p.runtimeKill(ctx, sig, all)
}
func (s createdState) update(ctx context.Context, r *specs.LinuxResources) error {
	return s.p.runtimeUpdate(ctx, r)
}
func (s createdState) checkpoint(context.Context, *shimapi.CheckpointRequest) error {
	return refuse(s.p, s.status(), "checkpoint")
}
func (s createdState) start(ctx context.Context) error {
	if err := s.p.runtimeStart(ctx); err != nil {
		return err
	}
	s.p.st = runningState(s)
	return nil
}
func (s createdState) delete(ctx context.Context) error {
	if err := s.p.destroy(ctx, true); err != nil {
		return err
	}
	s.p.st = deletedState(s)
	return nil
}

type createdCheckpointState struct{ p *initProcess }

func (s createdCheckpointState) status() shimapi.Status      { return shimapi.StatusCreated }
func (s createdCheckpointState) pause(context.Context) error { return refuse(s.p, s.status(), "pause") }
func (s createdCheckpointState) resume(context.Context) error {
	return refuse(s.p, s.status(), "resume")
}
func (s createdCheckpointState) exec() error            { return refuse(s.p, s.status(), "exec") }
func (s createdCheckpointState) setExited(shimapi.Exit) {}
func (s createdCheckpointState) kill(context.Context, int, bool) error {
	return refuse(s.p, s.status(), "signal a container not yet restored")
}
func (s createdCheckpointState) update(context.Context, *specs.LinuxResources) error {
	return refuse(s.p, s.status(), "update a container not yet restored")
}
func (s createdCheckpointState) checkpoint(context.Context, *shimapi.CheckpointRequest) error {
	return refuse(s.p, s.status(), "checkpoint")
}
func (s createdCheckpointState) start(ctx context.Context) error {
	if err := s.p.runtimeRestore(ctx); err != nil {
		return err
	}
	s.p.st = runningState(s)
	return nil
}
func (s createdCheckpointState) delete(ctx context.Context) error {
	if err := s.p.destroy(ctx, false); err != nil {
		return err
	}
	s.p.st = deletedState(s)
	return nil
}

type runningState struct{ p *initProcess }

func (s runningState) status() shimapi.Status       { return shimapi.StatusRunning }
func (s runningState) start(context.Context) error  { return refuse(s.p, s.status(), "start") }
func (s runningState) resume(context.Context) error { return refuse(s.p, s.status(), "resume") }
func (s runningState) delete(context.Context) error { return refuse(s.p, s.status(), "delete") }
func (s runningState) exec() error                  { return nil }
func (s runningState) setExited(e shimapi.Exit)     { s.p.stopped(e) }
func (s runningState) kill(ctx context.Context, sig int, all bool) error {
	return s.p.runtimeKill(ctx, sig, all)
}
func (s runningState) update(ctx context.Context, r *specs.LinuxResources) error {
	return s.p.runtimeUpdate(ctx, r)
}
func (s runningState) checkpoint(ctx context.Context, req *shimapi.CheckpointRequest) error {
	return s.p.runtimeCheckpoint(ctx, req)
}
func (s runningState) pause(ctx context.Context) error {
	if err := s.p.runtimePause(ctx); err != nil {
		return err
	}
	s.p.st = pausedState(s)
	return nil
}

type pausedState struct{ p *initProcess }

func (s pausedState) status() shimapi.Status       { return shimapi.StatusPaused }
func (s pausedState) start(context.Context) error  { return refuse(s.p, s.status(), "start") }
func (s pausedState) pause(context.Context) error  { return refuse(s.p, s.status(), "pause") }
func (s pausedState) delete(context.Context) error { return refuse(s.p, s.status(), "delete") }
func (s pausedState) exec() error                  { return refuse(s.p, s.status(), "exec") }
func (s pausedState) setExited(e shimapi.Exit)     { s.p.stopped(e) }
func (s pausedState) kill(ctx context.Context, sig int, all bool) error {
	return s.p.runtimeKill(ctx, sig, all)
}
func (s pausedState) update(ctx context.Context, r *specs.LinuxResources) error {
	return s.p.runtimeUpdate(ctx, r)
}
func (s pausedState) checkpoint(ctx context.Context, req *shimapi.CheckpointRequest) error {
	return s.p.runtimeCheckpoint(ctx, req)
}
func (s pausedState) resume(ctx context.Context) error {
	if err := s.p.runtimeResume(ctx); err != nil {
		return err
	}
	s.p.st = runningState(s)
	return nil
}

type stoppedState struct{ p *initProcess }

func (s stoppedState) status() shimapi.Status       { return shimapi.StatusStopped }
func (s stoppedState) start(context.Context) error  { return refuse(s.p, s.status(), "start") }
func (s stoppedState) pause(context.Context) error  { return refuse(s.p, s.status(), "pause") }
func (s stoppedState) resume(context.Context) error { return refuse(s.p, s.status(), "resume") }
func (s stoppedState) exec() error                  { return refuse(s.p, s.status(), "exec") }
func (s stoppedState) setExited(shimapi.Exit)       {}
func (s stoppedState) kill(context.Context, int, bool) error {
	return refuse(s.p, s.status(), "signal")
}
func (s stoppedState) update(context.Context, *specs.LinuxResources) error {
	return refuse(s.p, s.status(), "update")
}
func (s stoppedState) checkpoint(context.Context, *shimapi.CheckpointRequest) error {
	return refuse(s.p, s.status(), "checkpoint")
}
func (s stoppedState) delete(ctx context.Context) error {
	if err := s.p.destroy(ctx, false); err != nil {
		return err
	}
	s.p.st = deletedState(s)
	return nil
}

type deletedState struct{ p *initProcess }

func (s deletedState) status() shimapi.Status       { return shimapi.StatusDeleted }
func (s deletedState) start(context.Context) error  { return refuse(s.p, s.status(), "start") }
func (s deletedState) pause(context.Context) error  { return refuse(s.p, s.status(), "pause") }
func (s deletedState) resume(context.Context) error { return refuse(s.p, s.status(), "resume") }
func (s deletedState) exec() error                  { return refuse(s.p, s.status(), "exec") }
func (s deletedState) setExited(shimapi.Exit)       {}
func (s deletedState) delete(context.Context) error { return refuse(s.p, s.status(), "delete") }
func (s deletedState) kill(context.Context, int, bool) error {
	return refuse(s.p, s.status(), "signal")
}
func (s deletedState) update(context.Context, *specs.LinuxResources) error {
	return refuse(s.p, s.status(), "update")
}
func (s deletedState) checkpoint(context.Context, *shimapi.CheckpointRequest) error {
	return refuse(s.p, s.status(), "checkpoint")
}
