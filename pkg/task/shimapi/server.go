package shimapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

type handler func(ctx context.Context, body json.RawMessage) (any, error)

// Server serves the protocol: each request runs in its own goroutine with
// a ctx that ends when the client cancels it or the connection closes.
type Server struct {
	handlers map[string]handler // written before Serve only

	mu     sync.Mutex // guards conns, closed
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup // connections and their requests
}

// NewServer returns a server without methods; add them with Handle.
func NewServer() *Server {
	return &Server{handlers: make(map[string]handler), conns: make(map[net.Conn]struct{})}
}

// Handle registers fn for method. Call it before Serve.
func Handle[Req, Resp any](s *Server, method string, fn func(context.Context, *Req) (*Resp, error)) {
	s.handlers[method] = func(ctx context.Context, body json.RawMessage) (any, error) {
		req := new(Req)
		if err := json.Unmarshal(body, req); err != nil {
			return nil, fmt.Errorf("%s: decode request: %v: %w", method, err, errdefs.ErrInvalidArgument)
		}
		return fn(ctx, req)
	}
}

// Serve accepts connections on l until l is closed or Close is called.
func (s *Server) Serve(l net.Listener) error {
	for {
		conn, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			conn.Close()
			return nil
		}
		s.conns[conn] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(conn)
	}
}

// Close closes every connection, which cancels their requests, and waits
// for the requests to return. The listener is the caller's to close.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Server) serveConn(conn net.Conn) {
	defer s.wg.Done()
	ctx, cancelAll := context.WithCancel(context.Background())
	var (
		mu      sync.Mutex // guards cancels
		cancels = make(map[uint64]context.CancelFunc)
		reqs    sync.WaitGroup
	)
	w := newFrameWriter(conn)
	r := bufio.NewReaderSize(conn, 4096)
	for {
		f, err := readFrame(r)
		if err != nil {
			break
		}
		if f.Cancel {
			mu.Lock()
			if cancel := cancels[f.ID]; cancel != nil {
				cancel()
			}
			mu.Unlock()
			continue
		}
		rctx, cancel := context.WithCancel(ctx)
		mu.Lock()
		cancels[f.ID] = cancel
		mu.Unlock()
		reqs.Add(1)
		go func() {
			defer reqs.Done()
			resp := s.dispatch(rctx, f)
			mu.Lock()
			delete(cancels, f.ID)
			mu.Unlock()
			cancel()
			_ = w.write(resp)
		}()
	}
	cancelAll()
	conn.Close()
	reqs.Wait()
	s.mu.Lock()
	delete(s.conns, conn)
	s.mu.Unlock()
}

func (s *Server) dispatch(ctx context.Context, f *frame) *frame {
	h := s.handlers[f.Method]
	if h == nil {
		return &frame{ID: f.ID, Error: encodeError(fmt.Errorf("method %q: %w", f.Method, errdefs.ErrNotImplemented))}
	}
	resp, err := h(ctx, f.Body)
	if err != nil {
		return &frame{ID: f.ID, Error: encodeError(err)}
	}
	body, err := json.Marshal(resp)
	if err != nil {
		return &frame{ID: f.ID, Error: encodeError(fmt.Errorf("%s: encode response: %v: %w", f.Method, err, errdefs.ErrInternal))}
	}
	return &frame{ID: f.ID, Body: body}
}
