package shim

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/identifiers"
	"github.com/cri-runtime/cri-runtime/pkg/task/shimapi"
)

// maxSignal is the highest signal number Linux has (SIGRTMAX).
const maxSignal = 64

// Exec adds an exec process to a running container.
func (s *Service) Exec(ctx context.Context, req *shimapi.ExecRequest) (*shimapi.Empty, error) {
	if err := identifiers.Validate(req.ExecID); err != nil {
		return nil, fmt.Errorf("exec id: %w", err)
	}
	var spec specs.Process
	if err := json.Unmarshal(req.Spec, &spec); err != nil {
		return nil, fmt.Errorf("exec %q: process spec: %v: %w", req.ExecID, err, errdefs.ErrInvalidArgument)
	}
	if len(spec.Args) == 0 || spec.Terminal != req.IO.Terminal {
		return nil, fmt.Errorf("exec %q: process spec needs args, and terminal as io.terminal: %w", req.ExecID, errdefs.ErrInvalidArgument)
	}
	c, err := s.container(req.ID)
	if err != nil {
		return nil, err
	}
	if err := c.init.do(func(st initState) error { return st.exec() }); err != nil {
		return nil, err
	}
	c.mu.Lock()
	_, taken := c.execs[req.ExecID]
	c.mu.Unlock()
	if taken {
		return nil, fmt.Errorf("exec %q in container %q: %w", req.ExecID, req.ID, errdefs.ErrAlreadyExists)
	}
	pio, err := newProcIO(req.IO, int(spec.User.UID), int(spec.User.GID))
	if err != nil {
		return nil, fmt.Errorf("exec %q in container %q: %w", req.ExecID, req.ID, err)
	}
	e := &execProcess{c: c, id: req.ExecID, spec: spec, io: pio, exited: make(chan struct{})}
	e.st = execCreated{e}
	c.mu.Lock()
	if _, taken := c.execs[req.ExecID]; taken {
		c.mu.Unlock()
		pio.abort()
		return nil, fmt.Errorf("exec %q in container %q: %w", req.ExecID, req.ID, errdefs.ErrAlreadyExists)
	}
	c.execs[req.ExecID] = e
	c.mu.Unlock()
	s.events.add(shimapi.Event{Topic: shimapi.TopicExecAdded, ID: req.ID, ExecID: req.ExecID})
	return &shimapi.Empty{}, nil
}

// Kill signals the init process, an exec process, every process of the
// container (All), or one given process of the container (Pid).
func (s *Service) Kill(ctx context.Context, req *shimapi.KillRequest) (*shimapi.Empty, error) {
	if req.Signal == 0 || req.Signal > maxSignal {
		return nil, fmt.Errorf("signal %d: %w", req.Signal, errdefs.ErrInvalidArgument)
	}
	sig := int(req.Signal)
	switch {
	case req.Pid != 0:
		c, err := s.container(req.ID)
		if err != nil {
			return nil, err
		}
		pids, err := c.pids(ctx)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(pids, int(req.Pid)) {
			return nil, fmt.Errorf("pid %d in container %q: %w", req.Pid, req.ID, errdefs.ErrNotFound)
		}
		if err := syscall.Kill(int(req.Pid), syscall.Signal(sig)); err != nil {
			return nil, fmt.Errorf("pid %d in container %q: signal %d: %w", req.Pid, req.ID, sig, err)
		}
	case req.ExecID != "":
		_, e, err := s.execProcess(req.ID, req.ExecID)
		if err != nil {
			return nil, err
		}
		if err := e.do(func(st execState) error { return st.kill(sig) }); err != nil {
			return nil, err
		}
	default:
		c, err := s.container(req.ID)
		if err != nil {
			return nil, err
		}
		if err := c.init.do(func(st initState) error { return st.kill(ctx, sig, req.All) }); err != nil {
			return nil, err
		}
	}
	return &shimapi.Empty{}, nil
}

// Pause freezes a running container.
func (s *Service) Pause(ctx context.Context, req *shimapi.ProcessRequest) (*shimapi.Empty, error) {
	c, err := s.container(req.ID)
	if err != nil {
		return nil, err
	}
	return &shimapi.Empty{}, c.init.do(func(st initState) error { return st.pause(ctx) })
}

// Resume thaws a paused container.
func (s *Service) Resume(ctx context.Context, req *shimapi.ProcessRequest) (*shimapi.Empty, error) {
	c, err := s.container(req.ID)
	if err != nil {
		return nil, err
	}
	return &shimapi.Empty{}, c.init.do(func(st initState) error { return st.resume(ctx) })
}

// Pids lists the processes of a container, naming the exec processes.
func (s *Service) Pids(ctx context.Context, req *shimapi.ProcessRequest) (*shimapi.PidsResponse, error) {
	c, err := s.container(req.ID)
	if err != nil {
		return nil, err
	}
	pids, err := c.pids(ctx)
	if err != nil {
		return nil, err
	}
	byPid := make(map[uint32]string)
	c.mu.Lock()
	execs := make([]*execProcess, 0, len(c.execs))
	for _, e := range c.execs {
		execs = append(execs, e)
	}
	c.mu.Unlock()
	for _, e := range execs {
		if st := e.state(); st.Pid != 0 {
			byPid[st.Pid] = e.id
		}
	}
	resp := &shimapi.PidsResponse{Processes: []shimapi.ProcessInfo{}}
	for _, pid := range pids {
		resp.Processes = append(resp.Processes, shimapi.ProcessInfo{Pid: uint32(pid), ExecID: byPid[uint32(pid)]})
	}
	return resp, nil
}

// Update changes the resources of a container.
func (s *Service) Update(ctx context.Context, req *shimapi.UpdateRequest) (*shimapi.Empty, error) {
	var r specs.LinuxResources
	if err := json.Unmarshal(req.Resources, &r); err != nil {
		return nil, fmt.Errorf("container %q: resources: %v: %w", req.ID, err, errdefs.ErrInvalidArgument)
	}
	c, err := s.container(req.ID)
	if err != nil {
		return nil, err
	}
	return &shimapi.Empty{}, c.init.do(func(st initState) error { return st.update(ctx, &r) })
}

// Checkpoint checkpoints a container with CRIU.
func (s *Service) Checkpoint(ctx context.Context, req *shimapi.CheckpointRequest) (*shimapi.Empty, error) {
	if req.ImagePath == "" {
		return nil, fmt.Errorf("container %q: checkpoint needs an image path: %w", req.ID, errdefs.ErrInvalidArgument)
	}
	c, err := s.container(req.ID)
	if err != nil {
		return nil, err
	}
	return &shimapi.Empty{}, c.init.do(func(st initState) error { return st.checkpoint(ctx, req) })
}

// processIO returns the IO of the init or exec process named by req.
func (s *Service) processIO(req *shimapi.ProcessRequest) (*procIO, error) {
	if req.ExecID != "" {
		_, e, err := s.execProcess(req.ID, req.ExecID)
		if err != nil {
			return nil, err
		}
		return e.io, nil
	}
	c, err := s.container(req.ID)
	if err != nil {
		return nil, err
	}
	return c.init.io, nil
}

// CloseStdin closes the standard input of a process.
func (s *Service) CloseStdin(_ context.Context, req *shimapi.ProcessRequest) (*shimapi.Empty, error) {
	pio, err := s.processIO(req)
	if err != nil {
		return nil, err
	}
	pio.closeStdin()
	return &shimapi.Empty{}, nil
}

// Resize sets the window size of a process's terminal.
func (s *Service) Resize(_ context.Context, req *shimapi.ResizeRequest) (*shimapi.Empty, error) {
	pio, err := s.processIO(&shimapi.ProcessRequest{ID: req.ID, ExecID: req.ExecID})
	if err != nil {
		return nil, err
	}
	if err := pio.resize(req.Width, req.Height); err != nil {
		return nil, fmt.Errorf("resize %s/%s: %v: %w", req.ID, req.ExecID, err, errdefs.ErrFailedPrecondition)
	}
	return &shimapi.Empty{}, nil
}

// ReopenLog reopens the CRI log file of a process after rotation.
func (s *Service) ReopenLog(_ context.Context, req *shimapi.ProcessRequest) (*shimapi.Empty, error) {
	pio, err := s.processIO(req)
	if err != nil {
		return nil, err
	}
	if err := pio.reopenLog(); err != nil {
		return nil, fmt.Errorf("reopen log of %s/%s: %v: %w", req.ID, req.ExecID, err, errdefs.ErrFailedPrecondition)
	}
	return &shimapi.Empty{}, nil
}

// Wait waits until the process has exited (and its output is drained).
func (s *Service) Wait(ctx context.Context, req *shimapi.ProcessRequest) (*shimapi.ExitResponse, error) {
	var exited <-chan struct{}
	var state func() shimapi.ProcessState
	if req.ExecID != "" {
		_, e, err := s.execProcess(req.ID, req.ExecID)
		if err != nil {
			return nil, err
		}
		exited, state = e.exited, e.state
	} else {
		c, err := s.container(req.ID)
		if err != nil {
			return nil, err
		}
		exited, state = c.init.exited, c.init.state
	}
	select {
	case <-exited:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return &shimapi.ExitResponse{Exit: *state().Exit}, nil
}

// Delete removes a stopped or never started process. Deleting a
// container's init removes the container: runtime state, cgroup, mounts,
// bundle, and the exec processes with it.
func (s *Service) Delete(ctx context.Context, req *shimapi.ProcessRequest) (*shimapi.ExitResponse, error) {
	if req.ExecID != "" {
		c, e, err := s.execProcess(req.ID, req.ExecID)
		if err != nil {
			return nil, err
		}
		if err := waitFinal(ctx, e.state(), e.exited); err != nil {
			return nil, err
		}
		if err := e.do(func(st execState) error { return st.delete() }); err != nil {
			return nil, err
		}
		c.mu.Lock()
		delete(c.execs, req.ExecID)
		c.mu.Unlock()
		st := e.state()
		s.events.add(shimapi.Event{Topic: shimapi.TopicDelete, ID: req.ID, ExecID: req.ExecID, Pid: st.Pid, Exit: st.Exit})
		return &shimapi.ExitResponse{Exit: *st.Exit, Remaining: s.count()}, nil
	}
	c, err := s.container(req.ID)
	if err != nil {
		return nil, err
	}
	if err := waitFinal(ctx, c.init.state(), c.init.exited); err != nil {
		return nil, err
	}
	if err := c.init.do(func(st initState) error { return st.delete(ctx) }); err != nil {
		return nil, err
	}
	c.mu.Lock()
	for _, e := range c.execs {
		e.mu.Lock()
		e.st.delete()
		e.mu.Unlock()
	}
	c.execs = map[string]*execProcess{}
	c.mu.Unlock()
	s.mu.Lock()
	delete(s.containers, req.ID)
	remaining := len(s.containers)
	s.mu.Unlock()
	st := c.init.state()
	s.events.add(shimapi.Event{Topic: shimapi.TopicDelete, ID: req.ID, Pid: st.Pid, Exit: st.Exit})
	return &shimapi.ExitResponse{Exit: *st.Exit, Remaining: remaining}, nil
}

// waitFinal waits until the exit of a stopped process is final (its event
// is out), so that the delete event always follows the exit event.
func waitFinal(ctx context.Context, st shimapi.ProcessState, exited <-chan struct{}) error {
	if st.Status != shimapi.StatusStopped {
		return nil
	}
	select {
	case <-exited:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Service) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.containers)
}
