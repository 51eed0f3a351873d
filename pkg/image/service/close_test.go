package service

import (
	"context"
	"errors"
	"io"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/image/imagetest"
)

// TestCloseWaitsForPulls starts a pull that a registry stalls, and closes
// the service while a caller waits for it, or after its only caller left
// (the pull then unwinds with no caller to wait for it). Close must
// return only once the pull's goroutines have returned; the response
// bodies close slowly, so that a Close that does not wait returns first.
func TestCloseWaitsForPulls(t *testing.T) {
	l := randomLayer(t, 1<<20)
	built := imagetest.Image{Layers: []imagetest.Layer{l}}.Build(t)
	for _, callerLeft := range []bool{false, true} {
		name := "caller waiting"
		if callerLeft {
			name = "caller left"
		}
		t.Run(name, func(t *testing.T) {
			e := newTestEnv(t, "native")
			stalled := make(chan struct{}, 1)
			host := serveFake(t, built, func(f *fakeRegistry) { f.hang, f.stalled = l.Desc.Digest, stalled })
			ref := host + "/test/close:v1"
			rt := &slowCloseTransport{base: http.DefaultTransport.(*http.Transport).Clone(), delay: 300 * time.Millisecond}
			cfg := DefaultConfig()
			cfg.ConfigPath, cfg.Snapshotter = "", "native"
			svc, err := New(e.DB, cfg, WithHTTPClient(&http.Client{Transport: rt}))
			if err != nil {
				t.Fatal(err)
			}

			ctx, cancel := context.WithCancel(e.ctx)
			defer cancel()
			pulled := make(chan error, 1)
			go func() {
				_, err := svc.Pull(ctx, ref)
				pulled <- err
			}()
			select {
			case <-stalled:
			case err := <-pulled:
				t.Fatalf("pull ended before the registry stalled: %v", err)
			case <-e.ctx.Done():
				t.Fatal("the registry never stalled")
			}
			if callerLeft {
				cancel()
				if err := <-pulled; !errors.Is(err, context.Canceled) {
					t.Fatalf("pull whose caller left: %v, want Canceled", err)
				}
			}

			if err := svc.Close(e.ctx); err != nil {
				t.Fatalf("close: %v", err)
			}
			if g := pullGoroutinesAfterClose(); len(g) > 0 {
				t.Fatalf("goroutines of the pull left after Close:\n%s", strings.Join(g, "\n\n"))
			}
			if n := rt.open.Load(); n != 0 {
				t.Errorf("%d registry responses not closed after Close", n)
			}
			// The pull's last act is to bound its lease, which holds what
			// it fetched, to keep_failed_pull.
			ls, err := e.DB.Leases().List(e.ctx)
			if err != nil || len(ls) != 1 || ls[0].Labels[LabelPull] != ref ||
				time.Until(ls[0].ExpiresAt) <= 0 || time.Until(ls[0].ExpiresAt) > DefaultKeepFailedPull {
				t.Errorf("leases after Close: %v, %v; want the pull's, expiring within %v", ls, err, DefaultKeepFailedPull)
			}
			if !callerLeft {
				if err := <-pulled; !errdefs.IsUnavailable(err) || !strings.Contains(err.Error(), "image service is closed") {
					t.Errorf("pull cut by Close: %v, want Unavailable", err)
				}
			}

			gets := rt.gets.Load()
			if _, err := svc.Pull(e.ctx, ref); !errdefs.IsUnavailable(err) || !strings.Contains(err.Error(), "image service is closed") {
				t.Errorf("pull after Close: %v, want Unavailable", err)
			}
			if got := rt.gets.Load(); got != gets {
				t.Errorf("pull after Close made %d requests", got-gets)
			}
			if err := svc.Close(e.ctx); err != nil {
				t.Errorf("second close: %v", err)
			}
		})
	}
}

// pullGoroutines returns the stacks of the goroutines running a pull.
// pullGoroutinesAfterClose returns the pull's goroutines still running
// after Close. None may still be in the pull's work (pull, puller,
// unpackJob frames): Close waits for that. The flight's own goroutine
// signals Close from its last deferred call, so it may still be seen in
// its epilogue for a moment; it is given a second to exit.
func pullGoroutinesAfterClose() []string {
	deadline := time.Now().Add(time.Second)
	for {
		g := pullGoroutines()
		working := slices.ContainsFunc(g, func(s string) bool {
			return strings.Contains(s, "service.(*Service).pull(") || strings.Contains(s, "service.(*puller).") || strings.Contains(s, "service.(*unpackJob).")
		})
		if len(g) == 0 || working || time.Now().After(deadline) {
			return g
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func pullGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var found []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		for _, fn := range []string{"service.(*Service).Pull.func", "service.(*Service).pull(", "service.(*puller).", "service.(*unpackJob)."} {
			if strings.Contains(g, fn) {
				found = append(found, g)
				break
			}
		}
	}
	return found
}

// slowCloseTransport makes every response body take delay to close, as a
// pull that takes time to unwind, and counts the bodies not closed yet.
type slowCloseTransport struct {
	base  http.RoundTripper
	delay time.Duration
	open  atomic.Int64
	gets  atomic.Int64
}

func (s *slowCloseTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodGet {
		s.gets.Add(1)
	}
	resp, err := s.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	s.open.Add(1)
	resp.Body = &slowCloseBody{ReadCloser: resp.Body, t: s}
	return resp, nil
}

type slowCloseBody struct {
	io.ReadCloser
	t    *slowCloseTransport
	once sync.Once
}

func (b *slowCloseBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(func() {
		time.Sleep(b.t.delay)
		b.t.open.Add(-1)
	})
	return err
}
