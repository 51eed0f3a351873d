package shim

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	runc "github.com/containerd/go-runc"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cri-runtime/cri-runtime/pkg/task/shimapi"
)

// execProcess is a process added to a running container.
type execProcess struct {
	c    *container
	id   string
	spec specs.Process
	io   *procIO

	mu     sync.Mutex // guards st, pid, exit; held across a transition
	st     execState
	pid    int
	exit   *shimapi.Exit
	exited chan struct{} // closed once the exit is final
}

// execState is the state of an exec process, one type per state:
//
//	created ──start──► running ──exit──► stopped ──delete──► deleted
//	   └──────────────────delete─────────────────────────────┘
type execState interface {
	status() shimapi.Status
	start(ctx context.Context) error
	kill(sig int) error
	delete() error
	setExited(e shimapi.Exit)
}

func (e *execProcess) subject() string {
	return fmt.Sprintf("exec %q in container %q", e.id, e.c.id)
}

func refuseExec(e *execProcess, st shimapi.Status, op string) error {
	return &TransitionError{Process: e.subject(), State: st, Op: op}
}

func (e *execProcess) do(op func(execState) error) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return op(e.st)
}

func (e *execProcess) state() shimapi.ProcessState {
	e.mu.Lock()
	defer e.mu.Unlock()
	return shimapi.ProcessState{
		ID: e.c.id, ExecID: e.id, Pid: uint32(e.pid), Status: e.st.status(), Exit: e.exit,
		Terminal: e.io.cfg.Terminal,
	}
}

func (e *execProcess) setExited(x shimapi.Exit) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.st.setExited(x)
}

type execCreated struct{ e *execProcess }

func (s execCreated) status() shimapi.Status { return shimapi.StatusCreated }
func (s execCreated) kill(int) error         { return refuseExec(s.e, s.status(), "signal") }
func (s execCreated) setExited(shimapi.Exit) {}
func (s execCreated) delete() error          { s.e.discard(); s.e.st = execDeleted(s); return nil }
func (s execCreated) start(ctx context.Context) error {
	if err := s.e.runtimeExec(ctx); err != nil {
		return err
	}
	if s.e.exit == nil { // it may have exited already
		s.e.st = execRunning(s)
		if ctx.Err() != nil {
			// The runtime ran to its end, but the caller gave up
			// meanwhile and was told the start failed: the process
			// must not run on unseen. Its exit is reaped as any other.
			_ = syscall.Kill(s.e.pid, syscall.SIGKILL)
			return fmt.Errorf("%s: start: %w", s.e.subject(), ctx.Err())
		}
	}
	return nil
}

type execRunning struct{ e *execProcess }

func (s execRunning) status() shimapi.Status      { return shimapi.StatusRunning }
func (s execRunning) start(context.Context) error { return refuseExec(s.e, s.status(), "start") }
func (s execRunning) delete() error               { return refuseExec(s.e, s.status(), "delete") }
func (s execRunning) setExited(x shimapi.Exit)    { s.e.stopped(x) }
func (s execRunning) kill(sig int) error {
	if err := syscall.Kill(s.e.pid, syscall.Signal(sig)); err != nil {
		return fmt.Errorf("%s: signal %d: %w", s.e.subject(), sig, err)
	}
	return nil
}

type execStopped struct{ e *execProcess }

func (s execStopped) status() shimapi.Status      { return shimapi.StatusStopped }
func (s execStopped) start(context.Context) error { return refuseExec(s.e, s.status(), "start") }
func (s execStopped) kill(int) error              { return refuseExec(s.e, s.status(), "signal") }
func (s execStopped) setExited(shimapi.Exit)      {}
func (s execStopped) delete() error               { s.e.discard(); s.e.st = execDeleted(s); return nil }

type execDeleted struct{ e *execProcess }

func (s execDeleted) status() shimapi.Status      { return shimapi.StatusDeleted }
func (s execDeleted) start(context.Context) error { return refuseExec(s.e, s.status(), "start") }
func (s execDeleted) kill(int) error              { return refuseExec(s.e, s.status(), "signal") }
func (s execDeleted) delete() error               { return refuseExec(s.e, s.status(), "delete") }
func (s execDeleted) setExited(shimapi.Exit)      {}

// The exec files are prefixed so that no exec ID can name a file of the
// bundle (init.pid, runtime.log).
func (e *execProcess) pidFile() string { return filepath.Join(e.c.bundle, "exec-"+e.id+".pid") }
func (e *execProcess) logFile() string { return filepath.Join(e.c.bundle, "exec-"+e.id+".log") }

// runtimeExec runs the runtime's exec. The process may exit before its
// pid is known: exits reaped meanwhile are kept (preStart) and matched.
func (e *execProcess) runtimeExec(ctx context.Context) error {
	sub := e.c.s.preStart()
	opts := &runc.ExecOpts{IO: e.io, PidFile: e.pidFile(), Detach: true, LogFile: e.logFile()}
	if e.io.console != nil {
		opts.ConsoleSocket = e.io.console
	}
	log := runtimeLog(e.logFile())
	rctx, cancel := runtimeContext(ctx)
	defer cancel()
	err := e.c.rt.Exec(rctx, e.c.id, e.spec, opts)
	var pid int
	if err == nil {
		pid, err = runc.ReadPidFile(e.pidFile())
	}
	if err != nil {
		e.c.s.abandon(sub)
		return runtimeError("exec "+e.id+" in", e.c.id, err, log.lastError(0))
	}
	if err := e.io.started(rctx); err != nil {
		e.c.s.abandon(sub)
		_ = syscall.Kill(pid, syscall.SIGKILL)
		return fmt.Errorf("%s: %w", e.subject(), err)
	}
	if sz := e.spec.ConsoleSize; sz != nil && e.spec.Terminal {
		// Sized here too, not only by the runtime: a process under crun
		// exec -t once read a 0x0 terminal (stty size) under load.
		_ = e.io.resize(uint16(sz.Width), uint16(sz.Height))
	}
	e.pid = pid
	if x := e.c.s.started(sub, pid, e); x != nil {
		e.stopped(*x)
	}
	e.c.s.events.add(shimapi.Event{Topic: shimapi.TopicExecStarted, ID: e.c.id, ExecID: e.id, Pid: uint32(pid)})
	return nil
}

// stopped records the exit, with mu held; the exit is final once the
// output is drained.
func (e *execProcess) stopped(x shimapi.Exit) {
	e.exit = &x
	e.st = execStopped{e}
	go func() {
		e.io.waitOutput()
		e.c.s.events.add(shimapi.Event{Topic: shimapi.TopicExit, ID: e.c.id, ExecID: e.id, Pid: uint32(e.pid), At: x.At, Exit: &x})
		close(e.exited)
	}()
}

// discard removes what the exec left: its IO and files.
func (e *execProcess) discard() {
	if e.exit == nil {
		x := shimapi.Exit{Status: 128 + 9, At: time.Now()}
		e.exit = &x
		close(e.exited)
	}
	e.io.closeAll()
	if e.pid == 0 {
		e.io.abort()
	}
	os.Remove(e.pidFile())
	os.Remove(e.logFile())
}
