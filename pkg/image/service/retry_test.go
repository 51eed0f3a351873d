package service

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/image/imagetest"
)

// A fault is what the flaky proxy does to one GET of the blob.
type fault int

const (
	pass  fault = iota // forward it
	reset              // forward half of the body, then reset the connection
	busy               // answer 503
)

// flakyProxy forwards to a real registry and applies faults, in order,
// to the GETs of one blob; the GETs after the last fault pass.
type flakyProxy struct {
	registry string
	blob     digest.Digest
	mu       sync.Mutex // guards faults and ranges
	faults   []fault
	ranges   []string // Range header of each GET of blob
}

func (p *flakyProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f := pass
	if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/"+p.blob.String()) {
		p.mu.Lock()
		p.ranges = append(p.ranges, r.Header.Get("Range"))
		if len(p.faults) > 0 {
			f, p.faults = p.faults[0], p.faults[1:]
		}
		p.mu.Unlock()
	}
	if f == busy {
		http.Error(w, "try later", http.StatusServiceUnavailable)
		return
	}
	out, err := http.NewRequestWithContext(r.Context(), r.Method, "http://"+p.registry+r.URL.RequestURI(), nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	out.Header = r.Header.Clone()
	resp, err := http.DefaultTransport.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	if f != reset {
		_, _ = io.Copy(w, resp.Body)
		return
	}
	_, _ = io.CopyN(w, resp.Body, max(resp.ContentLength/2, 1))
	w.(http.Flusher).Flush()
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	_ = conn.(*net.TCPConn).SetLinger(0) // close with a RST
	conn.Close()
}

// TestPullRetriesTransientErrors puts a proxy between the service and a
// real registry that resets the connection in the middle of a layer, or
// answers 503, once or a few times: each pull must succeed, resuming the
// layer with a ranged request. Past fetch_retries it fails, naming the
// blob and the host.
func TestPullRetriesTransientErrors(t *testing.T) {
	registry := imagetest.StartRegistry(t)
	big := randomLayer(t, 4<<20)
	built := imagetest.Image{Layers: []imagetest.Layer{randomLayer(t, 64<<10), big}}.Build(t)
	imagetest.Push(t, registry, "test/flaky", "v1", built)

	cases := []struct {
		name   string
		faults []fault
		ok     bool
	}{
		{"reset mid-blob", []fault{reset}, true},
		{"503", []fault{busy}, true},
		{"reset then 503 on the resume", []fault{reset, busy}, true},
		{"reset every time", []fault{reset, reset, reset, reset}, false},
	}
	for _, sn := range []string{"overlayfs", "native"} {
		for _, c := range cases {
			t.Run(sn+"/"+c.name, func(t *testing.T) {
				e := newTestEnv(t, sn, func(cfg *Config) { cfg.FetchRetries = 3 })
				p := &flakyProxy{registry: registry, blob: big.Desc.Digest, faults: c.faults}
				srv := httptest.NewServer(p)
				t.Cleanup(srv.Close)
				host := strings.TrimPrefix(srv.URL, "http://")
				start := time.Now()
				img, err := e.svc.Pull(e.ctx, host+"/test/flaky:v1")
				p.mu.Lock()
				ranges := p.ranges
				p.mu.Unlock()
				t.Logf("%v in %v; GETs of the blob with ranges %q", err, time.Since(start), ranges)
				if !c.ok {
					if !errdefs.IsUnavailable(err) || !strings.Contains(err.Error(), big.Desc.Digest.String()) ||
						!strings.Contains(err.Error(), host) || !strings.Contains(err.Error(), "after 3 retries") {
						t.Fatalf("pull: %v, want Unavailable naming the blob and %s, after 3 retries", err, host)
					}
					if len(ranges) != 4 {
						t.Errorf("%d GETs of the blob, want 4", len(ranges))
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				checkComplete(t, e, img, 2)
				if len(ranges) != len(c.faults)+1 {
					t.Errorf("%d GETs of the blob, want %d", len(ranges), len(c.faults)+1)
				}
				if c.faults[0] == reset && (len(ranges) < 2 || !strings.HasPrefix(ranges[1], "bytes=")) {
					t.Errorf("the retry after a reset did not resume with a range: %q", ranges)
				}
			})
		}
	}
}
