package shim

import (
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"sync"
	"time"

	runc "github.com/containerd/go-runc"
	"golang.org/x/sys/unix"
)

// reaper reaps every child of the shim: the runtime's own processes, which
// go-runc waits for through the Monitor methods below, and the container
// processes that the shim, as child subreaper, inherits when the runtime
// exits. Go's exec.Cmd.Wait would race with wait4(-1), so nothing in the
// shim waits for a child any other way.
//
// A command started through the Monitor is registered under its pid while
// mu is held across its fork, and the reaper looks pids up under mu: an
// exit cannot be reaped and dispatched before its command is registered.
type reaper struct {
	mu   sync.Mutex             // guards cmds, others
	cmds map[int]chan runc.Exit // the runtime's processes, by pid
	// others queues every other exit, in reap order, for the service's
	// exit handler (next). The queue is unbounded so that the reaper never
	// waits for the handler, which may wait for a process lock held by a
	// call that waits for a runtime command the reaper must reap.
	others []runc.Exit
	ready  chan struct{} // signalled when others grows
}

func newReaper() *reaper {
	return &reaper{cmds: make(map[int]chan runc.Exit), ready: make(chan struct{}, 1)}
}

// next returns the exits queued for the service, waiting for one or for stop.
func (r *reaper) next(stop <-chan struct{}) ([]runc.Exit, bool) {
	for {
		r.mu.Lock()
		exits := r.others
		r.others = nil
		r.mu.Unlock()
		if len(exits) > 0 {
			return exits, true
		}
		select {
		case <-r.ready:
		case <-stop:
			return nil, false
		}
	}
}

// run makes the shim a child subreaper and reaps on every SIGCHLD until
// stop is closed.
func (r *reaper) run(stop <-chan struct{}) error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return err
	}
	sigs := make(chan os.Signal, 32)
	signal.Notify(sigs, unix.SIGCHLD)
	go func() {
		defer signal.Stop(sigs)
		for {
			select {
			case <-sigs:
				r.reap()
			case <-stop:
				return
			}
		}
	}()
	return nil
}

// reap collects every exited child and dispatches its exit.
func (r *reaper) reap() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
		e := runc.Exit{Pid: pid, Status: exitStatus(ws), Timestamp: time.Now()}
		r.mu.Lock()
		if ch, ok := r.cmds[pid]; ok {
			delete(r.cmds, pid)
			ch <- e // buffered, one exit per command
		} else {
			r.others = append(r.others, e)
			select {
			case r.ready <- struct{}{}:
			default:
			}
		}
		r.mu.Unlock()
	}
}

// exitStatus is the status a shell would report: the exit code, or 128
// plus the signal that killed the process.
func exitStatus(ws unix.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// Start implements runc.ProcessMonitor.
func (r *reaper) Start(c *exec.Cmd) (chan runc.Exit, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := c.Start(); err != nil {
		return nil, err
	}
	ch := make(chan runc.Exit, 1)
	r.cmds[c.Process.Pid] = ch
	return ch, nil
}

// StartLocked implements runc.ProcessMonitor.
func (r *reaper) StartLocked(c *exec.Cmd) (chan runc.Exit, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return r.Start(c)
}

// Wait implements runc.ProcessMonitor. The process is already reaped when
// its exit arrives; cmd.Wait then only waits for the goroutines copying
// its output (its own wait fails with ECHILD, which is expected).
func (r *reaper) Wait(c *exec.Cmd, ch chan runc.Exit) (int, error) {
	e := <-ch
	_ = c.Wait()
	return e.Status, nil
}
