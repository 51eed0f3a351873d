package cri

import (
	"context"
	"fmt"
	"io"
	"syscall"
	"time"

	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	"k8s.io/klog/v2"
	utilexec "k8s.io/utils/exec"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/task"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// streamExec runs cmd in the running container id with the client's
// streams, until it exits or ctx ends (the client went, the idle timeout,
// the daemon stopping): then the process is killed. Either way it is
// deleted, its FIFOs with it. A non-zero exit is a utilexec.ExitError, as
// the streaming package expects, to report the code to the client.
func (s *Service) streamExec(ctx context.Context, id string, cmd []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	c, err := s.runningContainer(ctx, id)
	if err != nil {
		return err
	}
	t, err := s.tasks.Get(ctx, c.ID)
	if err != nil {
		return fmt.Errorf("container %s: %w", c.ID, err)
	}
	proc, err := execProcess(c, cmd, tty)
	if err != nil {
		return err
	}
	if tty {
		// The process starts with the client's terminal size, which its
		// first message carries (kubectl sends it at once): a resize
		// after the start comes after the process may have read 0x0.
		w, h := firstSize(ctx, resize)
		if w > 0 {
			proc.ConsoleSize = &specs.Box{Width: uint(w), Height: uint(h)}
		}
	}
	pio := task.IO{Terminal: tty}
	if in != nil {
		pio.Stdin = in
	}
	if out != nil {
		pio.Stdout = out
	}
	if errw != nil && !tty {
		pio.Stderr = errw
	}
	execID := fmt.Sprintf("exec-%d-%d", time.Now().UnixNano(), execSeq.Add(1))
	p, err := t.Exec(ctx, execID, proc, pio)
	if err != nil {
		return fmt.Errorf("container %s: exec: %w", c.ID, err)
	}
	var started, exited bool
	defer func() {
		// A running process is killed and waited for: only a stopped
		// (or never started) one can be deleted.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), execReap)
		defer cancel()
		if started && !exited {
			_ = p.Kill(rctx, syscall.SIGKILL)
			_, _ = p.Wait(rctx)
		}
		if _, err := p.Delete(rctx); err != nil && !errdefs.IsNotFound(err) {
			klog.FromContext(ctx).Error(err, "Delete an exec process", "container", c.ID, "exec", execID)
		}
	}()
	if _, err := p.Start(ctx); err != nil {
		return fmt.Errorf("container %s: exec: %w", c.ID, err)
	}
	started = true
	if tty {
		stop := forwardResize(ctx, resize, p.Resize)
		defer stop()
	}
	exit, err := p.Wait(ctx)
	exited = err == nil
	if err != nil {
		if ctx.Err() != nil {
			klog.FromContext(ctx).V(2).Info("Exec stream ended before the process: killed", "container", c.ID, "exec", execID)
			return fmt.Errorf("container %s: exec %q: stream ended: %w", c.ID, cmd[0], context.Cause(ctx))
		}
		return fmt.Errorf("container %s: exec: %w", c.ID, err)
	}
	if exit.Status != 0 {
		return utilexec.CodeExitError{Err: fmt.Errorf("command %q exited with status %d", cmd[0], exit.Status), Code: int(exit.Status)}
	}
	return nil
}

// firstSizeWait bounds the wait of an exec with a terminal for the
// client's first terminal size. A client that sends one does so as soon
// as the stream is up; over WebSocket, whose streams share one connection
// in order, stdin sent before it holds it back until the process runs.
const firstSizeWait = 250 * time.Millisecond

// firstSize waits up to firstSizeWait for the first usable terminal size
// of resize; 0, 0 when none came.
func firstSize(ctx context.Context, resize <-chan remotecommand.TerminalSize) (width, height uint16) {
	if resize == nil {
		return 0, 0
	}
	timer := time.NewTimer(firstSizeWait)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return 0, 0
		case <-timer.C:
			return 0, 0
		case size, ok := <-resize:
			if !ok {
				return 0, 0
			}
			if size.Width > 0 && size.Height > 0 {
				return size.Width, size.Height
			}
		}
	}
}

// forwardResize applies each terminal size of resize with fn until ctx
// ends or stop is called; stop waits for the goroutine.
func forwardResize(ctx context.Context, resize <-chan remotecommand.TerminalSize, fn func(context.Context, uint16, uint16) error) (stop func()) {
	if resize == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case size, ok := <-resize:
				if !ok {
					return
				}
				if size.Width == 0 || size.Height == 0 {
					continue
				}
				if err := fn(ctx, size.Width, size.Height); err != nil && ctx.Err() == nil {
					klog.FromContext(ctx).V(4).Info("Terminal resize", "err", err)
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}
