package task

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/task/shimapi"
)

// shimStartTimeout bounds how long a new shim has to say it listens.
const shimStartTimeout = 10 * time.Second

// shim is the daemon's handle on the shim of one group.
type shim struct {
	m         *Manager
	ns, group string
	dir, sock string

	// life is held shared by the calls that need the shim to stay (create)
	// and exclusively to shut it down, so that a shim is never told to
	// exit while a create is on its way to it.
	life sync.RWMutex

	mu       sync.Mutex // guards the fields below
	client   *shimapi.Client
	stopping bool // we asked the shim to exit: its going is not a death
	// wantStop asks the follow loop to stop the shim once it is empty and
	// its events are delivered; poke interrupts the loop's wait for events.
	wantStop bool
	poke     context.CancelFunc
	// removed: the shim stopped or died and the Manager forgot this
	// handle; a create that held it retries with a fresh one.
	removed bool
}

// errShimRemoved makes Manager.Create retry with a fresh handle.
var errShimRemoved = errors.New("shim handle removed")

func newShim(m *Manager, ns, group string) *shim {
	return &shim{
		m: m, ns: ns, group: group,
		dir:  shimapi.GroupDir(m.cfg.StateDir, ns, group),
		sock: shimapi.SocketPath(m.cfg.StateDir, ns, group),
	}
}

// conn returns a connection to a running shim, without starting one: a
// shim that is gone is Unavailable.
func (sh *shim) conn(ctx context.Context) (*shimapi.Client, error) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.client != nil {
		select {
		case <-sh.client.Done():
		default:
			return sh.client, nil
		}
	}
	return nil, fmt.Errorf("shim of group %q: not connected: %w", sh.group, errdefs.ErrUnavailable)
}

// connLossWait bounds how long a call waits, after the shim's connection
// went, for the daemon to reconnect or to clean up after the shim.
const connLossWait = 30 * time.Second

// connFor returns the connection to the shim for a call on its container
// id. When the connection went, the daemon is finding out whether the
// shim lives (it reconnects) or cleaning up after it (the container is
// then reported exited and forgotten): the call waits for that, and gets
// the connection, or NotFound once the container is gone with its shim.
func (sh *shim) connFor(ctx context.Context, id string) (*shimapi.Client, error) {
	deadline := time.Now().Add(connLossWait)
	for {
		c, err := sh.conn(ctx)
		if err == nil {
			return c, nil
		}
		if !sh.m.holds(sh.ns, id, sh) {
			return nil, fmt.Errorf("task %q: gone with its shim: %w", id, errdefs.ErrNotFound)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("task %q: %w", id, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("task %q: %w", id, err)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// connected reports whether the daemon holds a live connection to the shim.
func (sh *shim) connected() bool {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.client == nil {
		return false
	}
	select {
	case <-sh.client.Done():
		return false
	default:
		return true
	}
}

// ensure returns a connection to the shim, connecting to a live one or
// starting one. Called with life held.
func (sh *shim) ensure(ctx context.Context) (*shimapi.Client, error) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.client != nil {
		select {
		case <-sh.client.Done():
		default:
			return sh.client, nil
		}
	}
	c, err := sh.dial(ctx)
	if err != nil {
		if err := sh.spawn(ctx); err != nil {
			return nil, err
		}
		if c, err = sh.dial(ctx); err != nil {
			return nil, err
		}
	}
	st, err := c.State(ctx, "")
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("shim of group %q: %w", sh.group, err)
	}
	sh.attach(c, st.Seq)
	return c, nil
}

// dial connects to the shim's socket and checks who answers.
func (sh *shim) dial(ctx context.Context) (*shimapi.Client, error) {
	c, err := shimapi.Dial(ctx, sh.sock)
	if err != nil {
		return nil, err
	}
	info, err := c.Info(ctx)
	if err == nil && (info.Version != shimapi.Version || info.Namespace != sh.ns || info.Group != sh.group) {
		err = fmt.Errorf("shim at %s is version %d of %s/%s: %w", sh.sock, info.Version, info.Namespace, info.Group, errdefs.ErrFailedPrecondition)
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// attach makes c the shim's connection and follows its events from seq.
// Called with mu held.
func (sh *shim) attach(c *shimapi.Client, seq uint64) {
	sh.client = c
	sh.stopping = false
	sh.m.wg.Add(1)
	go func() {
		defer sh.m.wg.Done()
		sh.follow(c, seq)
	}()
}

// spawn starts the shim process and waits until it listens.
func (sh *shim) spawn(ctx context.Context) error {
	if err := os.MkdirAll(sh.dir, 0o700); err != nil {
		return fmt.Errorf("shim directory: %w", err)
	}
	logf, err := os.OpenFile(filepath.Join(sh.dir, shimapi.LogFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("shim log: %w", err)
	}
	defer logf.Close()
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer readyR.Close()
	cmd := exec.Command(sh.m.cfg.ShimBinary, "-state", sh.m.cfg.StateDir, "-namespace", sh.ns, "-group", sh.group)
	cmd.Dir = "/"
	cmd.Stderr = logf
	cmd.ExtraFiles = []*os.File{readyW}
	// Its own session: the shim outlives the daemon and its terminal.
	pidfd := -1
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, PidFD: &pidfd}
	err = cmd.Start()
	readyW.Close()
	if err != nil {
		return fmt.Errorf("start shim %s: %w", sh.m.cfg.ShimBinary, err)
	}
	// Reap it should it exit while the daemon runs; if the daemon dies
	// first, init (or the daemon's own reaper) inherits it. Not owned by
	// the Manager: the shim outlives Close.
	reapShim(cmd, pidfd)

	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(readyR).ReadString('\n')
		line <- strings.TrimSpace(s)
	}()
	ctx, cancel := context.WithTimeout(ctx, shimStartTimeout)
	defer cancel()
	select {
	case s := <-line:
		if s != "ok" {
			if s == "" {
				s = "exited without a word (see " + filepath.Join(sh.dir, shimapi.LogFile) + ")"
			}
			return fmt.Errorf("shim of group %q: %s: %w", sh.group, s, errdefs.ErrUnavailable)
		}
		return nil
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		return fmt.Errorf("shim of group %q did not start: %w", sh.group, ctx.Err())
	}
}

// disconnect drops the connection; the shim keeps running.
func (sh *shim) disconnect() {
	sh.mu.Lock()
	c := sh.client
	sh.client = nil
	sh.stopping = true
	sh.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// create creates a container in the shim. A shim left empty by a failed
// create is asked to exit.
func (sh *shim) create(ctx context.Context, opts CreateOpts) (*Task, error) {
	t, err := sh.createLocked(ctx, opts)
	if err != nil && err != errShimRemoved {
		sh.requestStop()
	}
	return t, err
}

func (sh *shim) createLocked(ctx context.Context, opts CreateOpts) (*Task, error) {
	sh.life.RLock()
	defer sh.life.RUnlock()
	sh.mu.Lock()
	removed := sh.removed
	sh.mu.Unlock()
	if removed {
		return nil, errShimRemoved
	}
	c, err := sh.ensure(ctx)
	if err != nil {
		return nil, err
	}
	fifos, err := sh.m.newFIFOs(sh.ns, opts.ID, "", opts.IO)
	if err != nil {
		return nil, err
	}
	// Indexed before the call so the shim's create event finds its task.
	sh.m.index(sh.ns, opts.ID, sh, creating)
	resp, err := c.Create(ctx, &shimapi.CreateRequest{
		ID: opts.ID, Runtime: opts.Runtime, Spec: opts.Spec, Rootfs: opts.Rootfs,
		IO: fifos.request(opts.IO), Checkpoint: opts.Checkpoint,
	})
	if err != nil {
		sh.m.unindex(sh.ns, opts.ID, sh)
		fifos.close()
		return nil, err
	}
	sh.m.created(sh.ns, opts.ID, sh, resp.Seq)
	fifos.started()
	sh.m.setFIFOs(sh.ns, opts.ID, "", fifos)
	return &Task{sh: sh, id: opts.ID}, nil
}

// requestStop asks the follow loop to stop the shim once it holds no
// containers and every event it numbered is delivered: the shim holds the
// events, so it must not go before they are out (the delete of its last
// container is one). The loop does it, not the caller, because the caller
// may be OnEvent itself.
func (sh *shim) requestStop() {
	sh.mu.Lock()
	sh.wantStop = true
	if sh.poke != nil {
		sh.poke()
	}
	sh.mu.Unlock()
}

func (sh *shim) takeStopRequest() bool {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	want := sh.wantStop
	sh.wantStop = false
	return want
}

// stopIfEmpty tells the shim on c to exit if it holds no containers and
// every event up to seq, its last, is delivered. It reports whether the
// shim is gone.
func (sh *shim) stopIfEmpty(c *shimapi.Client, seq uint64) bool {
	return sh.stopIfEmptyAt(c, &seq)
}

// stopIfEmptyAt is stopIfEmpty; a nil seq stops the shim whatever events
// it still holds (the daemon is closing: nobody will read them).
func (sh *shim) stopIfEmptyAt(c *shimapi.Client, seq *uint64) bool {
	sh.life.Lock()
	defer sh.life.Unlock()
	ctx, cancel := context.WithTimeout(sh.m.ctx, 5*time.Second)
	defer cancel()
	st, err := c.State(ctx, "")
	if err != nil || len(st.Processes) > 0 {
		return false // a broken connection shows at the next Events call
	}
	if seq != nil && st.Seq != *seq {
		sh.requestStop() // deliver the rest first
		return false
	}
	sh.mu.Lock()
	sh.stopping = true
	sh.mu.Unlock()
	// The shim may close the connection before its answer is out.
	if err := c.Shutdown(ctx); err != nil && !errdefs.IsUnavailable(err) {
		sh.mu.Lock()
		sh.stopping = false
		sh.mu.Unlock()
		return false
	}
	select {
	case <-c.Done():
	case <-ctx.Done():
	}
	sh.mu.Lock()
	if sh.client == c {
		sh.client = nil
	}
	sh.mu.Unlock()
	sh.m.forget(sh)
	return true
}

// follow delivers the shim's events from seq until the connection ends.
func (sh *shim) follow(c *shimapi.Client, seq uint64) {
	for {
		if sh.takeStopRequest() && sh.stopIfEmpty(c, seq) {
			return
		}
		ctx, cancel := context.WithCancel(sh.m.ctx)
		sh.mu.Lock()
		sh.poke = cancel
		if sh.wantStop {
			cancel()
		}
		sh.mu.Unlock()
		resp, err := c.Events(ctx, seq)
		cancel()
		if err != nil {
			if sh.m.ctx.Err() != nil {
				return
			}
			if errors.Is(err, context.Canceled) {
				continue // poked: a stop was requested
			}
			sh.connectionLost(c)
			return
		}
		if resp.Lost {
			st, err := c.State(sh.m.ctx, "")
			if err != nil {
				continue // the next Events call sees the broken connection
			}
			sh.replayExits(st.Processes)
			seq = st.Seq
			continue
		}
		for _, ev := range resp.Events {
			seq = ev.Seq
			// Task.Delete has done this, unless its answer was lost; the
			// container may have been created again since.
			if ev.Topic == shimapi.TopicDelete && ev.ExecID == "" && sh.m.unindexDeleted(sh.ns, ev.ID, sh, ev.Seq) {
				sh.m.dropFIFOs(sh.ns, ev.ID)
			}
			sh.m.deliver(Event{Namespace: sh.ns, Group: sh.group, Event: ev})
		}
	}
}

// replayExits delivers the exit of every stopped process in states.
func (sh *shim) replayExits(states []shimapi.ProcessState) {
	for _, p := range states {
		if p.Status == shimapi.StatusStopped && p.Exit != nil {
			sh.m.deliver(Event{Namespace: sh.ns, Group: sh.group, Replayed: true, Event: shimapi.Event{
				Topic: shimapi.TopicExit, ID: p.ID, ExecID: p.ExecID, Pid: p.Pid, At: p.Exit.At, Exit: p.Exit,
			}})
		}
	}
}

// connectionLost handles the end of a shim's connection that the daemon
// did not ask for: if the shim cannot be reached again, it is dead, and
// its containers are cleaned up and reported exited.
func (sh *shim) connectionLost(c *shimapi.Client) {
	sh.mu.Lock()
	current, stopping := sh.client == c, sh.stopping
	if current {
		sh.client = nil
	}
	sh.mu.Unlock()
	// A connection already replaced, or one we closed, is no news.
	if !current || stopping {
		return
	}
	sh.life.Lock()
	defer sh.life.Unlock()
	ctx, cancel := context.WithTimeout(sh.m.ctx, 5*time.Second)
	defer cancel()
	if nc, err := sh.dial(ctx); err == nil {
		// Still there (the connection alone broke): resynchronise.
		st, err := nc.State(ctx, "")
		if err == nil {
			sh.replayExits(st.Processes)
			sh.mu.Lock()
			sh.attach(nc, st.Seq)
			sh.mu.Unlock()
			return
		}
		nc.Close()
	}
	sh.m.cleanupDeadShim(sh)
}
