package shim

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	runc "github.com/containerd/go-runc"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/task/shimapi"
)

// execsExitTimeout bounds how long the exit of a container's init waits
// for the exits of its exec processes, which are reported first.
const execsExitTimeout = 2 * time.Second

// initProcess is the first process of a container.
type initProcess struct {
	c          *container
	io         *procIO
	checkpoint string // CRIU image to restore from at start

	mu   sync.Mutex // guards st, pid, exit; held across a transition's runtime call
	st   initState
	pid  int
	exit *shimapi.Exit
	// exited is closed once the exit is final: the output has reached its
	// sinks and the exit event is published.
	exited chan struct{}
}

func (p *initProcess) pidFile() string { return filepath.Join(p.c.bundle, "init.pid") }

// do runs op on the current state with mu held.
func (p *initProcess) do(op func(initState) error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return op(p.st)
}

func (p *initProcess) state() shimapi.ProcessState {
	p.mu.Lock()
	defer p.mu.Unlock()
	return shimapi.ProcessState{
		ID: p.c.id, Pid: uint32(p.pid), Status: p.st.status(), Exit: p.exit,
		Terminal: p.io.cfg.Terminal, Bundle: p.c.bundle,
	}
}

func (p *initProcess) runtimeStart(ctx context.Context) error {
	mark := p.c.log.mark()
	rctx, cancel := runtimeContext(ctx)
	defer cancel()
	if err := p.c.rt.Start(rctx, p.c.id); err != nil {
		return runtimeError("start", p.c.id, err, p.c.log.lastError(mark))
	}
	p.c.s.events.add(shimapi.Event{Topic: shimapi.TopicStart, ID: p.c.id, Pid: uint32(p.pid)})
	return nil
}

func (p *initProcess) runtimeRestore(ctx context.Context) error {
	sub := p.c.s.preStart()
	mark := p.c.log.mark()
	pid, err := p.c.rt.Restore(ctx, p.c.id, p.c.bundle, &runc.RestoreOpts{
		CheckpointOpts: runc.CheckpointOpts{ImagePath: p.checkpoint},
		IO:             p.io, Detach: true, PidFile: p.pidFile(),
	})
	if err == nil {
		pid, err = runc.ReadPidFile(p.pidFile())
	}
	if err != nil {
		p.c.s.abandon(sub)
		return runtimeError("restore", p.c.id, err, p.c.log.lastError(mark))
	}
	if err := p.io.started(ctx); err != nil {
		p.c.s.abandon(sub)
		return fmt.Errorf("restore container %q: %w", p.c.id, err)
	}
	p.pid = pid
	p.c.watchCgroup(pid)
	if e := p.c.s.started(sub, pid, p); e != nil {
		go p.setExited(*e) // it needs mu, which the caller holds
	}
	p.c.s.events.add(shimapi.Event{Topic: shimapi.TopicStart, ID: p.c.id, Pid: uint32(pid)})
	return nil
}

func (p *initProcess) runtimeKill(ctx context.Context, sig int, all bool) error {
	mark := p.c.log.mark()
	if err := p.c.rt.Kill(ctx, p.c.id, sig, &runc.KillOpts{All: all}); err != nil {
		return runtimeError("kill", p.c.id, err, p.c.log.lastError(mark))
	}
	return nil
}

func (p *initProcess) runtimePause(ctx context.Context) error {
	mark := p.c.log.mark()
	if err := p.c.rt.Pause(ctx, p.c.id); err != nil {
		return runtimeError("pause", p.c.id, err, p.c.log.lastError(mark))
	}
	p.c.s.events.add(shimapi.Event{Topic: shimapi.TopicPaused, ID: p.c.id, Pid: uint32(p.pid)})
	return nil
}

func (p *initProcess) runtimeResume(ctx context.Context) error {
	mark := p.c.log.mark()
	if err := p.c.rt.Resume(ctx, p.c.id); err != nil {
		return runtimeError("resume", p.c.id, err, p.c.log.lastError(mark))
	}
	p.c.s.events.add(shimapi.Event{Topic: shimapi.TopicResumed, ID: p.c.id, Pid: uint32(p.pid)})
	return nil
}

func (p *initProcess) runtimeUpdate(ctx context.Context, r *specs.LinuxResources) error {
	mark := p.c.log.mark()
	if err := p.c.rt.Update(ctx, p.c.id, r); err != nil {
		return runtimeError("update", p.c.id, err, p.c.log.lastError(mark))
	}
	return nil
}

func (p *initProcess) runtimeCheckpoint(ctx context.Context, req *shimapi.CheckpointRequest) error {
	mark := p.c.log.mark()
	var actions []runc.CheckpointAction
	if !req.Exit {
		actions = append(actions, runc.LeaveRunning)
	}
	err := p.c.rt.Checkpoint(ctx, p.c.id, &runc.CheckpointOpts{
		ImagePath: req.ImagePath, WorkDir: req.WorkPath, AllowOpenTCP: true,
		AllowExternalUnixSockets: true, AllowTerminal: p.io.cfg.Terminal, FileLocks: true,
	}, actions...)
	if err != nil {
		return runtimeError("checkpoint", p.c.id, err, p.c.log.lastError(mark))
	}
	return nil
}

// setExited records the exit the reaper saw.
func (p *initProcess) setExited(e shimapi.Exit) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.st.setExited(e)
}

// stopped moves the process to stopped: called by a state's setExited,
// with mu held. The exit is final (its event published, exited closed)
// once the output is drained and the container's execs have exited.
func (p *initProcess) stopped(e shimapi.Exit) {
	if p.c.oomKilled() {
		e.Reason = shimapi.ReasonOOMKilled
	}
	p.exit = &e
	p.st = stoppedState{p}
	go func() {
		p.c.waitExecs(execsExitTimeout)
		p.io.waitOutput()
		p.c.s.events.add(shimapi.Event{Topic: shimapi.TopicExit, ID: p.c.id, Pid: uint32(p.pid), At: e.At, Exit: &e})
		close(p.exited)
	}()
}

// destroy removes the container from the runtime and the host: the
// runtime's state and cgroup, the IO, the rootfs mounts and the bundle.
func (p *initProcess) destroy(ctx context.Context, force bool) error {
	if p.checkpoint == "" || p.pid != 0 {
		mark := p.c.log.mark()
		if err := p.c.rt.Delete(ctx, p.c.id, &runc.DeleteOpts{Force: force}); err != nil {
			// A delete that failed but removed the runtime's state
			// (runc's, when the cgroup would not go) is done: what is
			// left is removeCgroup's.
			if err := runtimeError("delete", p.c.id, err, p.c.log.lastError(mark)); !errdefs.IsNotFound(err) && p.c.runtimeStateExists() {
				return err
			}
		}
	}
	if err := p.c.removeCgroup(ctx); err != nil {
		return err
	}
	if p.exit == nil {
		// Never started, killed by the forced delete: its exit is not
		// waited for (the reaper will find no process for it).
		e := shimapi.Exit{Status: 128 + 9, At: time.Now()}
		p.exit = &e
		close(p.exited)
	}
	p.io.closeAll()
	return p.c.removeFromHost()
}
