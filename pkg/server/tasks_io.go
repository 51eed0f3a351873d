package server

import (
	"errors"
	"fmt"
	"io"
	"sync"

	api "github.com/cri-runtime/cri-runtime/api/services/tasks/v1"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/namespaces"
	"github.com/cri-runtime/cri-runtime/pkg/task"
)

// relayQueue bounds the output chunks queued for an attached stream; a
// stream slower than the process holds back the copy from the shim, whose
// own buffer then drops (the process never blocks).
const relayQueue = 64

// relay is the daemon's side of the standard streams of one process
// created or exec'd with stdin, stdout or stderr: the task.IO given to
// pkg/task, whose copies write output here and read stdin from here, and
// an Attach stream at most, which takes the output and gives the stdin.
// Output while no stream is attached is dropped. A relay lives until its
// process is deleted (close).
type relay struct {
	stdinR *io.PipeReader // nil without stdin
	stdinW *io.PipeWriter
	closed chan struct{} // closed by close

	mu      sync.Mutex // guards session, stdinClosed
	session *session
	// stdinClosed: the process's stdin was closed (EOF given).
	stdinClosed bool
}

// session is one Attach stream's hold on a relay.
type session struct {
	out  chan chunk
	done chan struct{} // closed when the stream detaches
}

// chunk is output of one stream: 1 stdout, 2 stderr.
type chunk struct {
	fd   int
	data []byte
}

func newRelay(stdin bool) *relay {
	r := &relay{closed: make(chan struct{})}
	if stdin {
		r.stdinR, r.stdinW = io.Pipe()
	}
	return r
}

// taskIO is the task.IO of the relay's process.
func (r *relay) taskIO(terminal, stdout, stderr bool, logPath string) task.IO {
	tio := task.IO{Terminal: terminal, LogPath: logPath}
	if r.stdinR != nil {
		tio.Stdin = r.stdinR
	}
	if stdout {
		tio.Stdout = relayWriter{r, 1}
	}
	if stderr && !terminal {
		tio.Stderr = relayWriter{r, 2}
	}
	return tio
}

// attach starts a session; FailedPrecondition if one is attached.
func (r *relay) attach() (*session, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.session != nil {
		return nil, fmt.Errorf("another client is attached: %w", errdefs.ErrFailedPrecondition)
	}
	select {
	case <-r.closed:
		return nil, fmt.Errorf("the process was deleted: %w", errdefs.ErrNotFound)
	default:
	}
	r.session = &session{out: make(chan chunk, relayQueue), done: make(chan struct{})}
	return r.session, nil
}

// detach ends the session s.
func (r *relay) detach(s *session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.session == s {
		r.session = nil
		close(s.done)
	}
}

// writeStdin gives p to the process's stdin; it blocks while the process
// does not read, until the relay closes.
func (r *relay) writeStdin(p []byte) error {
	if r.stdinW == nil {
		return fmt.Errorf("the process has no stdin: %w", errdefs.ErrFailedPrecondition)
	}
	if _, err := r.stdinW.Write(p); err != nil {
		return fmt.Errorf("stdin: %w", errdefs.ErrFailedPrecondition)
	}
	return nil
}

// closeStdin gives the process EOF once what was written is read.
func (r *relay) closeStdin() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stdinW != nil && !r.stdinClosed {
		r.stdinClosed = true
		r.stdinW.Close()
	}
}

// close ends the relay: blocked writers of stdin and output return.
func (r *relay) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-r.closed:
		return
	default:
	}
	close(r.closed)
	if r.stdinR != nil {
		r.stdinR.CloseWithError(errors.New("process deleted"))
		r.stdinW.CloseWithError(errors.New("process deleted"))
	}
	if r.session != nil {
		close(r.session.done)
		r.session = nil
	}
}

// relayWriter is an output stream of a relay's process.
type relayWriter struct {
	r  *relay
	fd int
}

// Write queues p for the attached stream, or drops it when none is; it
// never fails, so the copy from the shim goes on.
func (w relayWriter) Write(p []byte) (int, error) {
	w.r.mu.Lock()
	s := w.r.session
	w.r.mu.Unlock()
	if s == nil {
		return len(p), nil
	}
	select {
	case s.out <- chunk{fd: w.fd, data: append([]byte(nil), p...)}:
	case <-s.done:
	}
	return len(p), nil
}

// relayKey names the process of a relay.
type relayKey struct{ ns, id, execID string }

// relays are the relays of the processes made through the tasks service.
type relays struct {
	mu sync.Mutex // guards m
	m  map[relayKey]*relay
}

func (rs *relays) put(k relayKey, r *relay) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.m == nil {
		rs.m = map[relayKey]*relay{}
	}
	if old := rs.m[k]; old != nil {
		old.close()
	}
	rs.m[k] = r
}

func (rs *relays) get(k relayKey) *relay {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.m[k]
}

// drop closes the relay of k, and with an empty execID those of every
// exec process of the container too.
func (rs *relays) drop(k relayKey) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for key, r := range rs.m {
		if key.ns == k.ns && key.id == k.id && (k.execID == "" || key.execID == k.execID) {
			r.close()
			delete(rs.m, key)
		}
	}
}

// Attach relays the standard streams of a process to the stream; see the
// proto. It ends when the process has exited and its output is sent (the
// last response has the exit), or when the client goes.
func (s *tasksService) Attach(stream api.Tasks_AttachServer) error {
	ctx := stream.Context()
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return err
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	id, execID := first.GetContainerId(), first.GetExecId()
	r := s.relays.get(relayKey{ns, id, execID})
	if r == nil {
		return fmt.Errorf("process %q of task %q: no streams to attach to (made without stdin, stdout or stderr, or by another daemon): %w", execID, id, errdefs.ErrNotFound)
	}
	_, p, err := s.process(ctx, id, execID)
	if err != nil {
		return err
	}
	sess, err := r.attach()
	if err != nil {
		return fmt.Errorf("process %q of task %q: %w", execID, id, err)
	}
	defer r.detach(sess)
	if err := stream.Send(&api.AttachResponse{Attached: true}); err != nil {
		return err
	}
	// Owned by the stream: Recv fails once this handler returns, and a
	// stdin write blocked on the process ends when the relay closes.
	go func() {
		for req := first; ; {
			if len(req.GetStdin()) > 0 && r.writeStdin(req.GetStdin()) != nil {
				return
			}
			if req.GetCloseStdin() {
				r.closeStdin()
			}
			next, err := stream.Recv()
			if err != nil {
				return
			}
			req = next
		}
	}()
	type waited struct {
		exit task.Exit
		err  error
	}
	exited := make(chan waited, 1)
	go func() {
		e, err := p.Wait(ctx)
		exited <- waited{e, err}
	}()
	for {
		select {
		case c := <-sess.out:
			if err := sendChunk(stream, c); err != nil {
				return err
			}
		case w := <-exited:
			if w.err != nil {
				return w.err
			}
			// Wait returns once the copies of output have ended: all of
			// it is queued.
			for len(sess.out) > 0 {
				if err := sendChunk(stream, <-sess.out); err != nil {
					return err
				}
			}
			return stream.Send(&api.AttachResponse{Exit: exitToProto(&w.exit)})
		case <-sess.done:
			return fmt.Errorf("process %q of task %q was deleted: %w", execID, id, errdefs.ErrNotFound)
		}
	}
}

func sendChunk(stream api.Tasks_AttachServer, c chunk) error {
	if c.fd == 2 {
		return stream.Send(&api.AttachResponse{Stderr: c.data})
	}
	return stream.Send(&api.AttachResponse{Stdout: c.data})
}
