package task

import (
	"context"
	"encoding/json"
	"fmt"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/identifiers"
	"github.com/cri-runtime/cri-runtime/pkg/mount"
	"github.com/cri-runtime/cri-runtime/pkg/task/cgroups"
	"github.com/cri-runtime/cri-runtime/pkg/task/shimapi"
)

// The types of the shim protocol the callers of this package see.
type (
	// Mount is one rootfs mount, as a snapshotter returns it.
	Mount = mount.Mount
	// Exit is how a process ended: status, time, reason.
	Exit = shimapi.Exit
	// Status is the state of a process.
	Status = shimapi.Status
	// ProcessInfo is one process of a container (Pids).
	ProcessInfo = shimapi.ProcessInfo
	// Stats are a container's cgroup statistics.
	Stats = cgroups.Stats
)

// State is the state of a process and the namespace and group whose shim
// holds it.
type State struct {
	Namespace string
	Group     string
	shimapi.ProcessState
}

// Task is a container's init process, and the way to its exec processes.
// A Task is a handle: it holds no state, every call asks the shim.
type Task struct {
	sh *shim
	id string
}

// ID is the container's ID.
func (t *Task) ID() string { return t.id }

// Group is the sandbox group whose shim holds the container.
func (t *Task) Group() string { return t.sh.group }

// Namespace is the namespace of the container.
func (t *Task) Namespace() string { return t.sh.ns }

func (t *Task) client(ctx context.Context) (*shimapi.Client, error) {
	return t.sh.connFor(ctx, t.id)
}

// Start starts the container's process (or restores it from its
// checkpoint) and returns its pid.
func (t *Task) Start(ctx context.Context) (uint32, error) {
	c, err := t.client(ctx)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	pid, err := c.Start(ctx, &shimapi.ProcessRequest{ID: t.id})
	if err == nil && t.sh.m.cfg.ObserveStart != nil {
		t.sh.m.cfg.ObserveStart(time.Since(start))
	}
	return pid, err
}

// State returns the state of the init process.
func (t *Task) State(ctx context.Context) (State, error) {
	return t.sh.processState(ctx, t.id, "")
}

func (sh *shim) processState(ctx context.Context, id, execID string) (State, error) {
	c, err := sh.connFor(ctx, id)
	if err != nil {
		return State{}, fmt.Errorf("task %q: %w", id, err)
	}
	st, err := c.State(ctx, id)
	if err != nil {
		return State{}, err
	}
	for _, p := range st.Processes {
		if p.ExecID == execID {
			return State{Namespace: sh.ns, Group: sh.group, ProcessState: p}, nil
		}
	}
	return State{}, fmt.Errorf("exec %q in task %q: %w", execID, id, errdefs.ErrNotFound)
}

// KillOpts widen a Kill to every process of the container (All) or aim it
// at one given process of the container (Pid).
type KillOpts struct {
	All bool
	Pid uint32
}

// Kill signals the container's init process, or what opts say.
func (t *Task) Kill(ctx context.Context, sig syscall.Signal, opts KillOpts) error {
	c, err := t.client(ctx)
	if err != nil {
		return err
	}
	return c.Kill(ctx, &shimapi.KillRequest{ID: t.id, Signal: uint32(sig), All: opts.All, Pid: opts.Pid})
}

// Pause freezes the container.
func (t *Task) Pause(ctx context.Context) error {
	c, err := t.client(ctx)
	if err != nil {
		return err
	}
	return c.Pause(ctx, t.id)
}

// Resume thaws the container.
func (t *Task) Resume(ctx context.Context) error {
	c, err := t.client(ctx)
	if err != nil {
		return err
	}
	return c.Resume(ctx, t.id)
}

// Pids lists the processes of the container.
func (t *Task) Pids(ctx context.Context) ([]ProcessInfo, error) {
	c, err := t.client(ctx)
	if err != nil {
		return nil, err
	}
	return c.Pids(ctx, t.id)
}

// Update changes the container's resources.
func (t *Task) Update(ctx context.Context, r *specs.LinuxResources) error {
	c, err := t.client(ctx)
	if err != nil {
		return err
	}
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("task %q: resources: %v: %w", t.id, err, errdefs.ErrInvalidArgument)
	}
	return c.Update(ctx, &shimapi.UpdateRequest{ID: t.id, Resources: b})
}

// CloseStdin closes the init process's standard input.
func (t *Task) CloseStdin(ctx context.Context) error {
	return t.sh.closeStdin(ctx, t.id, "")
}

// Resize sets the size of the init process's terminal.
func (t *Task) Resize(ctx context.Context, width, height uint16) error {
	c, err := t.client(ctx)
	if err != nil {
		return err
	}
	return c.Resize(ctx, &shimapi.ResizeRequest{ID: t.id, Width: width, Height: height})
}

// ReopenLog reopens the container's CRI log file, after rotation.
func (t *Task) ReopenLog(ctx context.Context) error {
	c, err := t.client(ctx)
	if err != nil {
		return err
	}
	return c.ReopenLog(ctx, &shimapi.ProcessRequest{ID: t.id})
}

// Wait waits for the init process to exit, and for its output to reach
// the log and the IO writers.
func (t *Task) Wait(ctx context.Context) (Exit, error) {
	return t.sh.wait(ctx, t.id, "")
}

// Delete removes the stopped (or never started) container: runtime state,
// cgroup, rootfs mounts, bundle. Deleting the last container of a group
// stops its shim, once its events are delivered.
func (t *Task) Delete(ctx context.Context) (Exit, error) {
	c, err := t.client(ctx)
	if err != nil {
		return Exit{}, err
	}
	resp, err := c.Delete(ctx, &shimapi.ProcessRequest{ID: t.id})
	if err != nil {
		return Exit{}, err
	}
	t.sh.m.unindex(t.sh.ns, t.id, t.sh)
	t.sh.m.dropFIFOs(t.sh.ns, t.id)
	if resp.Remaining == 0 {
		t.sh.requestStop()
	}
	return resp.Exit, nil
}

// CheckpointOpts say where a checkpoint goes and whether the container
// keeps running.
type CheckpointOpts struct {
	ImagePath string
	WorkPath  string
	Exit      bool
}

// Checkpoint checkpoints the container with CRIU.
func (t *Task) Checkpoint(ctx context.Context, opts CheckpointOpts) error {
	c, err := t.client(ctx)
	if err != nil {
		return err
	}
	return c.Checkpoint(ctx, &shimapi.CheckpointRequest{ID: t.id, ImagePath: opts.ImagePath, WorkPath: opts.WorkPath, Exit: opts.Exit})
}

// Stats reads the container's cgroup statistics from cgroupfs (the daemon
// reads them; the shim is not asked). The container must be running or
// paused.
func (t *Task) Stats(ctx context.Context) (*Stats, error) {
	st, err := t.State(ctx)
	if err != nil {
		return nil, err
	}
	if st.Status != shimapi.StatusRunning && st.Status != shimapi.StatusPaused || st.Pid == 0 {
		return nil, fmt.Errorf("task %q is %s: no statistics: %w", t.id, st.Status, errdefs.ErrFailedPrecondition)
	}
	cg, err := cgroups.Load(int(st.Pid))
	if err != nil {
		return nil, fmt.Errorf("task %q: %w", t.id, err)
	}
	return cg.Stats()
}

// Exec adds a process to the running container; Start runs it.
func (t *Task) Exec(ctx context.Context, execID string, spec *specs.Process, io IO) (_ *Process, retErr error) {
	if err := identifiers.Validate(execID); err != nil {
		return nil, fmt.Errorf("exec id: %w", err)
	}
	c, err := t.client(ctx)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("exec %q: process spec: %v: %w", execID, err, errdefs.ErrInvalidArgument)
	}
	fifos, err := t.sh.m.newFIFOs(t.sh.ns, t.id, execID, io)
	if err != nil {
		return nil, err
	}
	if err := c.Exec(ctx, &shimapi.ExecRequest{ID: t.id, ExecID: execID, Spec: b, IO: fifos.request(io)}); err != nil {
		fifos.close()
		return nil, err
	}
	fifos.started()
	t.sh.m.setFIFOs(t.sh.ns, t.id, execID, fifos)
	return &Process{sh: t.sh, id: t.id, execID: execID}, nil
}

// LoadProcess returns a handle on an exec process that exists in the shim.
func (t *Task) LoadProcess(ctx context.Context, execID string) (*Process, error) {
	if _, err := t.sh.processState(ctx, t.id, execID); err != nil {
		return nil, err
	}
	return &Process{sh: t.sh, id: t.id, execID: execID}, nil
}

func (sh *shim) wait(ctx context.Context, id, execID string) (Exit, error) {
	c, err := sh.connFor(ctx, id)
	if err != nil {
		return Exit{}, fmt.Errorf("task %q: %w", id, err)
	}
	resp, err := c.Wait(ctx, &shimapi.ProcessRequest{ID: id, ExecID: execID})
	if err != nil {
		return Exit{}, err
	}
	if f := sh.m.getFIFOs(sh.ns, id, execID); f != nil {
		f.wait()
	}
	return resp.Exit, nil
}

func (sh *shim) closeStdin(ctx context.Context, id, execID string) error {
	c, err := sh.connFor(ctx, id)
	if err != nil {
		return fmt.Errorf("task %q: %w", id, err)
	}
	if f := sh.m.getFIFOs(sh.ns, id, execID); f != nil && f.in != nil {
		f.in.Close()
	}
	return c.CloseStdin(ctx, &shimapi.ProcessRequest{ID: id, ExecID: execID})
}

// Process is an exec process of a container.
type Process struct {
	sh     *shim
	id     string
	execID string
}

// ID is the exec ID.
func (p *Process) ID() string { return p.execID }

// Start runs the process and returns its pid.
func (p *Process) Start(ctx context.Context) (uint32, error) {
	c, err := p.sh.connFor(ctx, p.id)
	if err != nil {
		return 0, err
	}
	return c.Start(ctx, &shimapi.ProcessRequest{ID: p.id, ExecID: p.execID})
}

// State returns the state of the process.
func (p *Process) State(ctx context.Context) (State, error) {
	return p.sh.processState(ctx, p.id, p.execID)
}

// Kill signals the process.
func (p *Process) Kill(ctx context.Context, sig syscall.Signal) error {
	c, err := p.sh.connFor(ctx, p.id)
	if err != nil {
		return err
	}
	return c.Kill(ctx, &shimapi.KillRequest{ID: p.id, ExecID: p.execID, Signal: uint32(sig)})
}

// Wait waits for the process to exit and its output to be copied.
func (p *Process) Wait(ctx context.Context) (Exit, error) {
	return p.sh.wait(ctx, p.id, p.execID)
}

// CloseStdin closes the process's standard input.
func (p *Process) CloseStdin(ctx context.Context) error {
	return p.sh.closeStdin(ctx, p.id, p.execID)
}

// Resize sets the size of the process's terminal.
func (p *Process) Resize(ctx context.Context, width, height uint16) error {
	c, err := p.sh.connFor(ctx, p.id)
	if err != nil {
		return err
	}
	return c.Resize(ctx, &shimapi.ResizeRequest{ID: p.id, ExecID: p.execID, Width: width, Height: height})
}

// Delete removes the stopped (or never started) process.
func (p *Process) Delete(ctx context.Context) (Exit, error) {
	c, err := p.sh.connFor(ctx, p.id)
	if err != nil {
		return Exit{}, err
	}
	resp, err := c.Delete(ctx, &shimapi.ProcessRequest{ID: p.id, ExecID: p.execID})
	if err != nil {
		return Exit{}, err
	}
	p.sh.m.dropFIFOs(p.sh.ns, p.id, p.execID)
	return resp.Exit, nil
}
