package cri

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/task"
)

// execReap bounds the kill and delete of an exec process whose ExecSync
// is over (timed out or cancelled).
const execReap = 10 * time.Second

// execSeq numbers exec IDs.
var execSeq atomic.Uint64

// ExecSync runs a command in a running container and returns its output,
// each stream capped at exec_sync_max_output, and its exit code. The
// timeout holds even when the command, or a child it left behind, keeps
// its output open: at the deadline the process is killed and the call
// returns DeadlineExceeded.
func (s *Service) ExecSync(ctx context.Context, req *runtime.ExecSyncRequest) (*runtime.ExecSyncResponse, error) {
	if len(req.GetCmd()) == 0 {
		return nil, fmt.Errorf("exec: command must not be empty: %w", errdefs.ErrInvalidArgument)
	}
	c, err := s.container(ctx, req.GetContainerId())
	if err != nil {
		return nil, err
	}
	if st := containerState(c.Status); st != runtime.ContainerState_CONTAINER_RUNNING {
		return nil, fmt.Errorf("container %s is %s, not running: %w", c.ID, st, errdefs.ErrFailedPrecondition)
	}
	t, err := s.tasks.Get(ctx, c.ID)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", c.ID, err)
	}
	proc, err := execProcess(c, req.GetCmd(), false)
	if err != nil {
		return nil, err
	}
	if req.GetTimeout() > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(req.GetTimeout())*time.Second)
		defer cancel()
	}
	stdout := &task.LimitedBuffer{Max: s.cfg.ExecSyncMaxOutput}
	stderr := &task.LimitedBuffer{Max: s.cfg.ExecSyncMaxOutput}
	code, err := runExec(ctx, t, proc, task.IO{Stdout: stdout, Stderr: stderr})
	if err != nil {
		return nil, err
	}
	return &runtime.ExecSyncResponse{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), ExitCode: code}, nil
}

// runExec runs proc in t with io until it exits or ctx ends; then it is
// killed and deleted under a fresh context.
func runExec(ctx context.Context, t *task.Task, proc *specs.Process, io task.IO) (int32, error) {
	execID := fmt.Sprintf("exec-%d-%d", time.Now().UnixNano(), execSeq.Add(1))
	p, err := t.Exec(ctx, execID, proc, io)
	if err != nil {
		return 0, fmt.Errorf("container %s: exec: %w", t.ID(), err)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), execReap)
		// Killed, waited for, then deleted: a delete is refused while the
		// process runs, and would leave its FIFOs behind.
		// One never started (FailedPrecondition) has no exit to wait for.
		killed := p.Kill(rctx, syscall.SIGKILL)
		reap := func() {
			defer cancel()
			if killed == nil || !errdefs.IsFailedPrecondition(killed) {
				_, _ = p.Wait(rctx)
			}
			_, _ = p.Delete(rctx)
		}
		if ctx.Err() == nil {
			reap()
			return
		}
		// At the deadline the call returns once the process is killed:
		// its exit waits for its output, which a child it left behind
		// may hold open for up to the shim's drain bound, and under
		// load that wait went past the caller's deadline by seconds.
		go reap()
	}()
	if _, err := p.Start(ctx); err != nil {
		return 0, fmt.Errorf("container %s: exec: %w", t.ID(), err)
	}
	exit, err := p.Wait(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return 0, fmt.Errorf("container %s: exec %q: timeout: %w", t.ID(), proc.Args[0], ctx.Err())
		}
		return 0, fmt.Errorf("container %s: exec: %w", t.ID(), err)
	}
	return int32(exit.Status), nil
}

// execProcess is the process of an exec in c: the container's, with cmd.
func execProcess(c containerRecord, cmd []string, tty bool) (*specs.Process, error) {
	var sp specs.Spec
	if err := json.Unmarshal(c.Spec, &sp); err != nil || sp.Process == nil {
		return nil, fmt.Errorf("container %s: spec: %v: %w", c.ID, err, errdefs.ErrInternal)
	}
	p := *sp.Process
	p.Args = cmd
	p.Terminal = tty
	p.ConsoleSize = nil
	return &p, nil
}
