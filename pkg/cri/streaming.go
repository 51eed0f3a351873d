package cri

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/cri-streaming/pkg/streaming"
	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	"k8s.io/klog/v2"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/namespaces"
)

// streamDrain bounds how long Close waits for the streams it ended to
// clean up (an exec process killed and deleted).
const streamDrain = execReap + 5*time.Second

// streamServer serves the URLs that Exec, Attach and PortForward return:
// k8s.io/cri-streaming over SPDY and WebSocket, on [cri] stream_address.
// The package calls back into streamRuntime.
//
// Lifetimes. The package never cancels a call on its own. Each
// connection has a context, cancelled when a read on it fails (the client
// went), when it is closed (the package's idle timeout, the end of the
// request, Close) or when the server's context ends; an exec or attach
// runs under its request's context, which derives from it. (net/http
// cancels it too on a failed read through the reader that Hijack returns;
// an upgrader need not read through it.) Port-forward calls get no
// request context from the package: each PortForward URL is a session,
// named in the pod ID that the package hands back ("<pod>/<session>"),
// whose context ends with its request (see portForwardSession). What an
// RPC knows of its URL (the streams asked for, the session) rides in the
// request's context (pending).
type streamServer struct {
	svc  *Service
	addr string
	idle time.Duration

	// ctx is the server's life, from New until Close (or the end of
	// Start's ctx); calls counts what close waits for: the serving
	// goroutine, the calls into streamRuntime, the container IO watchers.
	ctx    context.Context
	cancel context.CancelFunc
	calls  sync.WaitGroup

	mu       sync.Mutex // guards the fields below
	srv      streaming.Server
	http     *http.Server
	listener net.Listener
	conns    map[*trackedConn]struct{}
	ios      map[string]*containerIO        // by container ID
	sessions map[string]*portForwardSession // by session ID
	pending  map[string]*pending            // by URL token, until used
	closed   bool
}

func newStreamServer(svc *Service, cfg Config) *streamServer {
	ctx, cancel := context.WithCancel(context.Background())
	return &streamServer{
		svc: svc, addr: cfg.StreamAddress, idle: time.Duration(cfg.StreamIdleTimeout), ctx: ctx, cancel: cancel,
		conns: map[*trackedConn]struct{}{}, ios: map[string]*containerIO{},
		sessions: map[string]*portForwardSession{}, pending: map[string]*pending{},
	}
}

// Start listens on stream_address and serves the streaming server until
// Close, or until ctx ends: then every stream ends at once.
func (s *Service) Start(ctx context.Context) error { return s.stream.start(ctx) }

// Close stops the streaming server: it ends every stream, stops holding
// the containers' stdio, and waits (a bounded time) for the exec
// processes of the ended streams to be killed and deleted.
func (s *Service) Close() error { return s.stream.close() }

func (st *streamServer) start(ctx context.Context) error {
	l, err := net.Listen("tcp", st.addr)
	if err != nil {
		return fmt.Errorf("cri.stream_address %q: %w", st.addr, err)
	}
	cfg := streaming.DefaultConfig
	cfg.Addr = l.Addr().String()
	cfg.BaseURL = &url.URL{Scheme: "http", Host: cfg.Addr}
	cfg.StreamIdleTimeout = st.idle
	srv, err := streaming.NewServer(cfg, streamRuntime{st})
	if err != nil {
		l.Close()
		return fmt.Errorf("streaming server: %w", err)
	}
	logger := klog.FromContext(ctx)
	hs := &http.Server{
		Handler:           http.HandlerFunc(st.serveHTTP),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       time.Minute, // between requests; a stream has the idle timeout
		BaseContext:       func(net.Listener) context.Context { return klog.NewContext(st.ctx, logger) },
		ConnContext:       connContext,
	}
	st.mu.Lock()
	if st.closed || st.srv != nil {
		st.mu.Unlock()
		l.Close()
		return fmt.Errorf("streaming server: started twice or closed: %w", errdefs.ErrFailedPrecondition)
	}
	st.srv, st.http, st.listener = srv, hs, l
	st.calls.Add(1)
	st.mu.Unlock()
	context.AfterFunc(ctx, st.cancel)
	go func() {
		defer st.calls.Done()
		if err := hs.Serve(trackingListener{l, st}); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error(err, "Streaming server stopped", "address", cfg.Addr)
		}
	}()
	logger.V(2).Info("Streaming server listening", "address", cfg.Addr)
	return nil
}

func (st *streamServer) close() error {
	st.cancel()
	st.mu.Lock()
	st.closed = true
	hs := st.http
	conns := make([]*trackedConn, 0, len(st.conns))
	for c := range st.conns {
		conns = append(conns, c)
	}
	ios := make([]*containerIO, 0, len(st.ios))
	for id, cio := range st.ios {
		ios = append(ios, cio)
		delete(st.ios, id)
	}
	st.mu.Unlock()
	var err error
	if hs != nil {
		err = hs.Close() // the listener and the connections not hijacked
	}
	for _, c := range conns {
		c.Close() // the hijacked ones: their streams end
	}
	for _, cio := range ios {
		cio.finish()
	}
	done := make(chan struct{})
	go func() { st.calls.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(streamDrain):
		return fmt.Errorf("streaming server: streams still ending after %s: %w", streamDrain, context.DeadlineExceeded)
	}
	return err
}

// server returns the streaming server, FailedPrecondition before Start.
func (st *streamServer) server() (streaming.Server, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.srv == nil || st.closed {
		return nil, fmt.Errorf("streaming server is not serving: %w", errdefs.ErrFailedPrecondition)
	}
	return st.srv, nil
}

// begin is the start of a call into streamRuntime: ctx in the CRI's
// namespace, ended with the server; done must be called at its end.
func (st *streamServer) begin(ctx context.Context) (context.Context, func(), error) {
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return nil, nil, fmt.Errorf("streaming server is closed: %w", errdefs.ErrUnavailable)
	}
	st.calls.Add(1)
	st.mu.Unlock()
	ctx, cancel := context.WithCancel(namespaces.WithNamespace(ctx, namespaces.K8s))
	stop := context.AfterFunc(st.ctx, cancel)
	return ctx, func() { stop(); cancel(); st.calls.Done() }, nil
}

// streamTokenTTL is how long a URL may wait for its client: the
// streaming package forgets its tokens after a minute.
const streamTokenTTL = time.Minute + 10*time.Second

// pending is what an RPC leaves for the request of its URL: the streams
// the client asked for (the package hands a WebSocket exec or attach a
// stream for every channel, asked for or not: stdin would read EOF at
// once), or a port-forward session.
type pending struct {
	stdin, stdout, stderr bool
	sess                  *portForwardSession
}

type pendingKey struct{}

// expect keeps p for the request of the URL u; unclaimed after
// streamTokenTTL, it is dropped (its session ended).
func (st *streamServer) expect(u string, p *pending) {
	token := path.Base(u)
	st.mu.Lock()
	st.pending[token] = p
	st.mu.Unlock()
	time.AfterFunc(streamTokenTTL, func() {
		st.mu.Lock()
		unclaimed := st.pending[token] == p
		if unclaimed {
			delete(st.pending, token)
		}
		st.mu.Unlock()
		if unclaimed && p.sess != nil {
			p.sess.end()
		}
	})
}

// serveHTTP serves a streaming request with what its RPC left in the
// request's context; a port-forward session ends with the request (its
// connection).
func (st *streamServer) serveHTTP(w http.ResponseWriter, r *http.Request) {
	st.mu.Lock()
	p := st.pending[path.Base(r.URL.Path)]
	delete(st.pending, path.Base(r.URL.Path))
	st.mu.Unlock()
	if p != nil {
		if p.sess != nil {
			stop := context.AfterFunc(r.Context(), p.sess.end)
			defer stop()
			defer p.sess.end()
		}
		r = r.WithContext(context.WithValue(r.Context(), pendingKey{}, p))
	}
	st.srv.ServeHTTP(w, r)
}

// asked returns the streams the client asked for, nil for the others.
func asked(ctx context.Context, in io.Reader, out, errw io.WriteCloser) (io.Reader, io.WriteCloser, io.WriteCloser) {
	p, ok := ctx.Value(pendingKey{}).(*pending)
	if !ok {
		return in, out, errw
	}
	if !p.stdin {
		in = nil
	}
	if !p.stdout {
		out = nil
	}
	if !p.stderr {
		errw = nil
	}
	return in, out, errw
}

// Exec prepares a streaming exec in a running container and returns its
// URL on the streaming server.
func (s *Service) Exec(ctx context.Context, req *runtime.ExecRequest) (*runtime.ExecResponse, error) {
	if len(req.GetCmd()) == 0 {
		return nil, fmt.Errorf("exec: command must not be empty: %w", errdefs.ErrInvalidArgument)
	}
	if err := checkStreams(req.GetTty(), req.GetStdin(), req.GetStdout(), req.GetStderr()); err != nil {
		return nil, fmt.Errorf("exec: %w", err)
	}
	c, err := s.runningContainer(ctx, req.GetContainerId())
	if err != nil {
		return nil, err
	}
	srv, err := s.stream.server()
	if err != nil {
		return nil, err
	}
	r := proto.Clone(req).(*runtime.ExecRequest)
	r.ContainerId = c.ID
	resp, err := srv.GetExec(r)
	if err != nil {
		return nil, err
	}
	s.stream.expect(resp.GetUrl(), &pending{stdin: r.Stdin, stdout: r.Stdout, stderr: r.Stderr})
	return resp, nil
}

// Attach prepares an attach to a running container's stdio and returns
// its URL on the streaming server.
func (s *Service) Attach(ctx context.Context, req *runtime.AttachRequest) (*runtime.AttachResponse, error) {
	if err := checkStreams(req.GetTty(), req.GetStdin(), req.GetStdout(), req.GetStderr()); err != nil {
		return nil, fmt.Errorf("attach: %w", err)
	}
	c, err := s.runningContainer(ctx, req.GetContainerId())
	if err != nil {
		return nil, err
	}
	if _, err := s.stream.containerIO(c.ID); err != nil {
		return nil, err
	}
	srv, err := s.stream.server()
	if err != nil {
		return nil, err
	}
	r := proto.Clone(req).(*runtime.AttachRequest)
	r.ContainerId = c.ID
	resp, err := srv.GetAttach(r)
	if err != nil {
		return nil, err
	}
	s.stream.expect(resp.GetUrl(), &pending{stdin: r.Stdin, stdout: r.Stdout, stderr: r.Stderr})
	return resp, nil
}

// checkStreams refuses what the streaming server would: a terminal has
// no stderr, and at least one stream must be asked for.
func checkStreams(tty, stdin, stdout, stderr bool) error {
	if tty && stderr {
		return fmt.Errorf("tty and stderr cannot both be true: %w", errdefs.ErrInvalidArgument)
	}
	if !stdin && !stdout && !stderr {
		return fmt.Errorf("one of stdin, stdout and stderr must be set: %w", errdefs.ErrInvalidArgument)
	}
	return nil
}

// runningContainer returns the container id (or the one its ID starts
// with), FailedPrecondition unless it runs.
func (s *Service) runningContainer(ctx context.Context, id string) (containerRecord, error) {
	c, err := s.container(ctx, id)
	if err != nil {
		return c, err
	}
	if st := containerState(c.Status); st != runtime.ContainerState_CONTAINER_RUNNING {
		return c, fmt.Errorf("container %s is %s, not running: %w", c.ID, st, errdefs.ErrFailedPrecondition)
	}
	return c, nil
}

// streamRuntime is what the streaming server calls back.
type streamRuntime struct{ st *streamServer }

var _ streaming.Runtime = streamRuntime{}

func (r streamRuntime) Exec(ctx context.Context, id string, cmd []string, in io.Reader, out, errw io.WriteCloser, tty bool, resize <-chan remotecommand.TerminalSize) error {
	ctx, done, err := r.st.begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	in, out, errw = asked(ctx, in, out, errw)
	return r.st.svc.streamExec(ctx, id, cmd, in, out, errw, tty, resize)
}

func (r streamRuntime) Attach(ctx context.Context, id string, in io.Reader, out, errw io.WriteCloser, _ bool, resize <-chan remotecommand.TerminalSize) error {
	ctx, done, err := r.st.begin(ctx)
	if err != nil {
		return err
	}
	defer done()
	in, out, errw = asked(ctx, in, out, errw)
	return r.st.svc.attach(ctx, id, in, out, errw, resize)
}

func (r streamRuntime) PortForward(_ context.Context, name string, port int32, stream io.ReadWriteCloser) error {
	sess, err := r.st.session(name)
	if err != nil {
		return err
	}
	ctx, done, err := r.st.begin(sess.ctx)
	if err != nil {
		return err
	}
	defer done()
	return r.st.svc.portForward(ctx, sess.pod, port, stream)
}

// trackingListener gives each accepted connection a context and keeps it
// until it is closed, for close.
type trackingListener struct {
	net.Listener
	st *streamServer
}

func (l trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, st: l.st}
	l.st.mu.Lock()
	closed := l.st.closed
	if !closed {
		l.st.conns[tc] = struct{}{}
	}
	l.st.mu.Unlock()
	if closed {
		c.Close()
	}
	return tc, nil
}

// trackedConn is a connection of the streaming server whose context ends
// when a read fails or it is closed.
type trackedConn struct {
	net.Conn
	st *streamServer

	mu     sync.Mutex // guards cancel
	cancel context.CancelFunc
}

// connContext is the base of the requests' contexts on c.
func connContext(ctx context.Context, c net.Conn) context.Context {
	tc, ok := c.(*trackedConn)
	if !ok {
		return ctx
	}
	ctx, cancel := context.WithCancel(ctx)
	tc.mu.Lock()
	tc.cancel = cancel
	tc.mu.Unlock()
	return ctx
}

func (c *trackedConn) end() {
	c.mu.Lock()
	if c.cancel != nil {
		c.cancel()
	}
	c.mu.Unlock()
}

// Read ends the context on an error other than a deadline (net/http sets
// one in the past to stop its background read when it hands the
// connection over).
func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		c.end()
	}
	return n, err
}

func (c *trackedConn) Close() error {
	c.end()
	c.st.mu.Lock()
	delete(c.st.conns, c)
	c.st.mu.Unlock()
	return c.Conn.Close()
}
