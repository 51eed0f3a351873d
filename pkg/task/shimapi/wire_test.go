package shimapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

type echoReq struct{ Text string }

func serve(t *testing.T, register func(s *Server)) (*Client, func()) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "s")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer()
	register(s)
	done := make(chan struct{})
	go func() { _ = s.Serve(l); close(done) }()
	c, err := Dial(context.Background(), sock)
	if err != nil {
		t.Fatal(err)
	}
	stop := func() { l.Close(); s.Close(); <-done }
	t.Cleanup(func() { c.Close(); stop() })
	return c, stop
}

func TestCallAndErrorClasses(t *testing.T) {
	cases := []error{
		errdefs.ErrNotFound, errdefs.ErrAlreadyExists, errdefs.ErrInvalidArgument,
		errdefs.ErrFailedPrecondition, errdefs.ErrResourceExhausted, errdefs.ErrUnavailable,
		errdefs.ErrNotImplemented, errdefs.ErrConflict, errdefs.ErrInternal, errdefs.ErrUnknown,
	}
	c, _ := serve(t, func(s *Server) {
		Handle(s, "Echo", func(ctx context.Context, r *echoReq) (*echoReq, error) { return r, nil })
		Handle(s, "Fail", func(ctx context.Context, r *struct{ N int }) (*Empty, error) {
			if r.N < 0 {
				return nil, fmt.Errorf("disk: %w", syscall.ENOSPC)
			}
			return nil, fmt.Errorf("thing %d: %w", r.N, cases[r.N])
		})
	})
	var out echoReq
	if err := c.Call(context.Background(), "Echo", &echoReq{Text: "hi"}, &out); err != nil || out.Text != "hi" {
		t.Fatalf("echo: %v %+v", err, out)
	}
	for i, class := range cases {
		err := c.Call(context.Background(), "Fail", &struct{ N int }{i}, nil)
		if !errors.Is(err, class) || err.Error() != fmt.Sprintf("thing %d: %s", i, class) {
			t.Errorf("case %d: got %v, want class %v", i, err, class)
		}
	}
	if err := c.Call(context.Background(), "Fail", &struct{ N int }{-1}, nil); !errdefs.IsResourceExhausted(err) {
		t.Errorf("ENOSPC: got %v, want ResourceExhausted", err)
	}
	if err := c.Call(context.Background(), "Nope", &Empty{}, nil); !errdefs.IsNotImplemented(err) {
		t.Errorf("unknown method: got %v", err)
	}
	if err := c.Call(context.Background(), "Echo", "not an object", nil); !errdefs.IsInvalidArgument(err) {
		t.Errorf("bad body: got %v", err)
	}
}

func TestCancelReachesServer(t *testing.T) {
	canceled := make(chan struct{})
	c, _ := serve(t, func(s *Server) {
		Handle(s, "Block", func(ctx context.Context, _ *Empty) (*Empty, error) {
			<-ctx.Done()
			close(canceled)
			return nil, ctx.Err()
		})
	})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := c.Call(ctx, "Block", &Empty{}, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	select {
	case <-canceled:
	case <-time.After(5 * time.Second):
		t.Fatal("the server's request was not cancelled")
	}
}

func TestServerGoneIsUnavailable(t *testing.T) {
	started := make(chan struct{})
	c, stop := serve(t, func(s *Server) {
		Handle(s, "Block", func(ctx context.Context, _ *Empty) (*Empty, error) {
			close(started)
			<-ctx.Done()
			return nil, ctx.Err()
		})
	})
	errc := make(chan error, 1)
	go func() { errc <- c.Call(context.Background(), "Block", &Empty{}, nil) }()
	<-started
	stop()
	if err := <-errc; !errdefs.IsUnavailable(err) {
		t.Fatalf("pending call: got %v, want Unavailable", err)
	}
	<-c.Done()
	if err := c.Call(context.Background(), "Block", &Empty{}, nil); !errdefs.IsUnavailable(err) {
		t.Fatalf("call after close: got %v, want Unavailable", err)
	}
}

func TestConcurrentCalls(t *testing.T) {
	c, _ := serve(t, func(s *Server) {
		Handle(s, "Echo", func(ctx context.Context, r *echoReq) (*echoReq, error) { return r, nil })
	})
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			want := strings.Repeat("x", i*100)
			var out echoReq
			if err := c.Call(context.Background(), "Echo", &echoReq{Text: want}, &out); err != nil || out.Text != want {
				t.Errorf("call %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
}

func TestDialNobodyListening(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	if _, err := Dial(context.Background(), sock); !errdefs.IsUnavailable(err) {
		t.Fatalf("got %v, want Unavailable", err)
	}
}

func TestSocketPathLength(t *testing.T) {
	p := SocketPath("/run/cri-runtime/tasks", "k8s.io", strings.Repeat("a", 200))
	if len(p) > MaxSocketPath || !strings.HasPrefix(p, "/run/cri-runtime/tasks/s/") {
		t.Fatalf("socket path %q (%d bytes)", p, len(p))
	}
	if p == SocketPath("/run/cri-runtime/tasks", "k8s.io", "b") {
		t.Fatal("two groups share a socket")
	}
	if err := CheckStateDir("/" + strings.Repeat("d", 90)); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("long state dir: got %v", err)
	}
	if err := CheckStateDir("/run/cri-runtime/tasks"); err != nil {
		t.Fatal(err)
	}
}

// TestIdleClientHoldsNoBuffer: the daemon holds a connection to every
// shim, idle most of the time; it must not keep a read or write buffer
// for it (bufio's 4 KiB each were 8 KiB per pod).
func TestIdleClientHoldsNoBuffer(t *testing.T) {
	const n = 64
	var conns []net.Conn
	for range n {
		a, b := net.Pipe()
		conns = append(conns, a)
		t.Cleanup(func() { b.Close() })
	}
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	before := heap()
	clients := make([]*Client, 0, n)
	for _, conn := range conns {
		clients = append(clients, NewClient(conn))
	}
	time.Sleep(50 * time.Millisecond) // the read loops wait in Read
	per := (int64(heap()) - int64(before)) / n
	t.Logf("%d bytes of heap per idle client", per)
	if per > 2048 {
		t.Errorf("an idle client holds %d bytes of heap, want at most 2 KiB", per)
	}
	for _, c := range clients {
		c.Close()
	}
}
