package cri

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/namespaces"
	"github.com/cri-runtime/cri-runtime/pkg/task"
	"github.com/cri-runtime/cri-runtime/pkg/task/shimapi"
)

// Attach: the daemon holds each container's stdio from its create to its
// exit. The shim writes the container's output to the CRI log and, as a
// second sink, to FIFOs the daemon reads (pkg/task); the daemon fans that
// output out to the attachers of the moment, each with a queue of its
// own, so that a slow one holds back no other (nor the container: past
// attachBuffer it is cut off, its session ending with an error). With
// stdin, every attacher's input goes, in the order it arrives, into the
// one stdin of the container. A watcher per container waits for its exit
// (Task.Wait: the output is drained by then), ends every attach and lets
// go of the stdio. The FIFOs die with this daemon: a container created
// before a restart cannot be attached to (FailedPrecondition); its log
// file has its output.
const (
	// attachBuffer is the output an attacher may fall behind by.
	attachBuffer = 1 << 20
	// attachDrain bounds how long the end of an attach waits for the
	// output already queued to reach the client.
	attachDrain = 2 * time.Second
)

var errAttacherSlow = fmt.Errorf("output went faster than the client took it (%d bytes behind): %w", attachBuffer, errdefs.ErrResourceExhausted)

// containerIO is the daemon's end of one container's stdio.
type containerIO struct {
	id        string
	tty       bool
	stdinOnce bool
	stdin     *stdinMux // nil when the container has no stdin
	stdout    *fanOut
	stderr    *fanOut
	exited    chan struct{} // closed by finish
	once      sync.Once
}

func newContainerIO(id string, cfg *runtime.ContainerConfig) *containerIO {
	cio := &containerIO{id: id, tty: cfg.GetTty(), stdinOnce: cfg.GetStdinOnce(),
		stdout: newFanOut(), stderr: newFanOut(), exited: make(chan struct{})}
	if cfg.GetStdin() {
		cio.stdin = newStdinMux()
	}
	return cio
}

// taskIO is io with the container's stdio wired to cio.
func (cio *containerIO) taskIO(io task.IO) task.IO {
	io.Stdout = cio.stdout
	if !cio.tty {
		io.Stderr = cio.stderr
	}
	if cio.stdin != nil {
		io.Stdin = cio.stdin
	}
	return io
}

// finish ends the container's stdio: stdin reaches EOF, attachers get
// what is queued and then the end of the output.
func (cio *containerIO) finish() {
	cio.once.Do(func() {
		if cio.stdin != nil {
			cio.stdin.close()
		}
		cio.stdout.close()
		cio.stderr.close()
		close(cio.exited)
	})
}

// createTask creates the task of a container whose stdio this daemon
// holds for attach, and watches for its exit.
func (s *Service) createTask(ctx context.Context, group string, cfg *runtime.ContainerConfig, opts task.CreateOpts) (*task.Task, error) {
	cio := newContainerIO(opts.ID, cfg)
	opts.IO = cio.taskIO(opts.IO)
	// Held before the task exists, so that no exit of it goes unseen.
	s.stream.hold(cio)
	t, err := s.tasks.Create(ctx, group, opts)
	if err != nil {
		s.stream.release(opts.ID)
		return nil, err
	}
	return t, nil
}

// hold keeps cio until its task exits (Service.TaskEvent), or until
// close. No call waits for the exit: a pending Wait per container held a
// goroutine in the daemon and another in its shim for the container's
// whole life.
func (st *streamServer) hold(cio *containerIO) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		cio.finish()
		return
	}
	st.ios[cio.id] = cio
}

// release ends the hold of container id's stdio, if held.
func (st *streamServer) release(id string) {
	st.mu.Lock()
	cio := st.ios[id]
	delete(st.ios, id)
	st.mu.Unlock()
	if cio != nil {
		cio.finish()
	}
}

// containerIO returns the stdio of the container id, FailedPrecondition
// when this daemon does not hold it.
func (st *streamServer) containerIO(id string) (*containerIO, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if cio := st.ios[id]; cio != nil {
		return cio, nil
	}
	return nil, fmt.Errorf("container %s: its stdio is not held by this daemon (created before the daemon restarted, or exited); its log file has its output: %w", id, errdefs.ErrFailedPrecondition)
}

// attach connects the client's streams to the running container id
// until ctx ends, the container exits, or the client's stdin ends (a
// detach; with stdin_once the container's stdin is closed instead and
// the output goes on until the exit). An attach that carried stdin to a
// stdin_once container closes the container's stdin when it ends.
func (s *Service) attach(ctx context.Context, id string, in io.Reader, out, errw io.WriteCloser, resize <-chan remotecommand.TerminalSize) error {
	c, err := s.runningContainer(ctx, id)
	if err != nil {
		return err
	}
	cio, err := s.stream.containerIO(c.ID)
	if err != nil {
		return err
	}
	t, err := s.tasks.Get(ctx, c.ID)
	if err != nil {
		return fmt.Errorf("container %s: %w", c.ID, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var subs []*subscriber
	if out != nil {
		subs = append(subs, cio.stdout.subscribe(out))
	}
	if errw != nil && !cio.tty {
		subs = append(subs, cio.stderr.subscribe(errw))
	}
	var stdinEnded chan error
	if in != nil && cio.stdin != nil {
		stdinEnded = make(chan error, 1)
		go func() { stdinEnded <- cio.stdin.copyFrom(ctx, in) }()
		if cio.stdinOnce {
			defer cio.closeStdin()
		}
	}
	if cio.tty {
		stop := forwardResize(ctx, resize, t.Resize)
		defer stop()
	}
	err = cio.session(ctx, t, subs, stdinEnded)
	for _, sub := range subs {
		sub.end()
	}
	drain := time.NewTimer(attachDrain)
	defer drain.Stop()
	for _, sub := range subs {
		select {
		case <-sub.done:
		case <-ctx.Done():
		case <-drain.C:
		}
	}
	for _, sub := range subs {
		sub.unsubscribe()
	}
	if err == nil {
		for _, sub := range subs {
			if err = sub.failure(); err != nil {
				break
			}
		}
	}
	if err != nil {
		return fmt.Errorf("container %s: attach: %w", c.ID, err)
	}
	return nil
}

// session waits for the end of an attach (see attach): nil when the
// container exited or the client detached.
func (cio *containerIO) session(ctx context.Context, t *task.Task, subs []*subscriber, stdinEnded chan error) error {
	outs := make(chan struct{})
	go func() {
		for _, sub := range subs {
			<-sub.done
			if sub.failure() != nil {
				break // one failed: no need to wait for the others
			}
		}
		close(outs)
	}()
	var outputEnded <-chan struct{} = outs
	if len(subs) == 0 {
		outputEnded = cio.exited
	}
	for {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-outputEnded:
			return nil
		case err := <-stdinEnded:
			if err != nil && !errors.Is(err, errStdinClosed) {
				return err
			}
			if !cio.stdinOnce {
				return nil // a detach
			}
			cio.closeStdin()
			stdinEnded = nil
		}
	}
}

// closeStdin closes the container's stdin for good (stdin_once): the
// input already written reaches the container first, then its EOF (not
// Task.CloseStdin, which would drop what is still on its way).
func (cio *containerIO) closeStdin() { cio.stdin.close() }

// stdinMux is the one stdin of a container, which every attacher may
// write into; its reader is the task's copy into the stdin FIFO.
type stdinMux struct {
	ch     chan []byte
	closed chan struct{}
	once   sync.Once
	buf    []byte // what the last Read left of a chunk; Read's alone
}

var errStdinClosed = errors.New("the container's stdin is closed")

func newStdinMux() *stdinMux {
	return &stdinMux{ch: make(chan []byte), closed: make(chan struct{})}
}

// Read returns what an attacher wrote, or EOF once closed.
func (m *stdinMux) Read(p []byte) (int, error) {
	if len(m.buf) == 0 {
		select {
		case m.buf = <-m.ch:
		case <-m.closed:
			return 0, io.EOF
		}
	}
	n := copy(p, m.buf)
	m.buf = m.buf[n:]
	return n, nil
}

// copyFrom copies in into the container's stdin until in ends (nil at
// EOF), ctx ends or the stdin is closed. A Read of in that blocks
// outlives it, until the client's stream ends.
func (m *stdinMux) copyFrom(ctx context.Context, in io.Reader) error {
	buf := make([]byte, 32<<10)
	for {
		n, err := in.Read(buf)
		if n > 0 {
			select {
			case m.ch <- bytes.Clone(buf[:n]):
			case <-m.closed:
				return errStdinClosed
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (m *stdinMux) close() { m.once.Do(func() { close(m.closed) }) }

// fanOut is one output stream of a container, written by the task's
// copy from its FIFO and given to every subscriber.
type fanOut struct {
	mu    sync.Mutex // guards the fields below
	subs  map[*subscriber]struct{}
	ended bool
}

func newFanOut() *fanOut { return &fanOut{subs: map[*subscriber]struct{}{}} }

// Write never blocks and never fails: the container's output must flow
// whoever is attached.
func (f *fanOut) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for sub := range f.subs {
		if !sub.push(p) {
			delete(f.subs, sub)
		}
	}
	return len(p), nil
}

// subscribe starts copying the output to w.
func (f *fanOut) subscribe(w io.Writer) *subscriber {
	sub := &subscriber{f: f, w: w, wake: make(chan struct{}, 1), done: make(chan struct{})}
	f.mu.Lock()
	if f.ended {
		sub.ended = true
	} else {
		f.subs[sub] = struct{}{}
	}
	f.mu.Unlock()
	go sub.run()
	return sub
}

// close ends the output: each subscriber gets what is queued, then ends.
func (f *fanOut) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ended = true
	for sub := range f.subs {
		sub.end()
		delete(f.subs, sub)
	}
}

// subscriber is one attacher's copy of an output stream: a queue, and a
// goroutine writing it to the client.
type subscriber struct {
	f    *fanOut
	w    io.Writer
	wake chan struct{}
	done chan struct{} // closed when run returns

	mu     sync.Mutex // guards the fields below
	queue  [][]byte
	queued int
	ended  bool  // no more pushes: drain the queue, then stop
	err    error // why it stopped early
}

// push queues p; false when the subscriber is past its buffer (it is
// then cut off) or stopped.
func (s *subscriber) push(p []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended || s.err != nil {
		return false
	}
	if s.queued+len(p) > attachBuffer {
		s.err = errAttacherSlow
		s.signal()
		return false
	}
	s.queue = append(s.queue, bytes.Clone(p))
	s.queued += len(p)
	s.signal()
	return true
}

func (s *subscriber) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// end stops the pushes; run writes what is queued and returns.
func (s *subscriber) end() {
	s.mu.Lock()
	s.ended = true
	s.signal()
	s.mu.Unlock()
}

// unsubscribe takes s off its stream and stops it.
func (s *subscriber) unsubscribe() {
	s.f.mu.Lock()
	delete(s.f.subs, s)
	s.f.mu.Unlock()
	s.end()
}

// failure is why s stopped early, nil if it did not.
func (s *subscriber) failure() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *subscriber) run() {
	defer close(s.done)
	for {
		s.mu.Lock()
		for len(s.queue) == 0 && !s.ended && s.err == nil {
			s.mu.Unlock()
			<-s.wake
			s.mu.Lock()
		}
		if s.err != nil || len(s.queue) == 0 {
			s.mu.Unlock()
			return
		}
		b := s.queue[0]
		s.queue[0] = nil
		s.queue = s.queue[1:]
		s.queued -= len(b)
		s.mu.Unlock()
		if _, err := s.w.Write(b); err != nil {
			s.mu.Lock()
			s.err = err
			s.mu.Unlock()
			return
		}
	}
}

// TaskEvent is told of every task event, in order for each shim (the task
// Manager's OnEvent, which drops none and may replay one): the exit of a
// container's init ends the hold of its stdio.
func (s *Service) TaskEvent(ev task.Event) {
	if ev.Namespace != namespaces.K8s || ev.ExecID != "" {
		return
	}
	if ev.Topic == shimapi.TopicExit || ev.Topic == shimapi.TopicDelete {
		s.stream.release(ev.ID)
	}
}
