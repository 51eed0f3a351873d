package server

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/task/tasktest"
)

// TestHealthz checks /healthz through the metrics listener: 503 before
// the daemon serves, 200 while it does, 503 once it is stopping.
func TestHealthz(t *testing.T) {
	cfg := DefaultConfig()
	dir := t.TempDir()
	cfg.Root, cfg.State = filepath.Join(dir, "root"), filepath.Join(dir, "state")
	sockDir, err := os.MkdirTemp("", "crt")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(sockDir)
	cfg.GRPC.Address = filepath.Join(sockDir, "mgmt.sock")
	cfg.State = filepath.Join(sockDir, "state")
	cfg.ShimBinary = tasktest.ShimBinary(t)
	cfg.CRI.Address = ""
	cfg.Metrics.Address = "127.0.0.1:0"
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	check := func(want int, body string) {
		t.Helper()
		rec := httptest.NewRecorder()
		s.healthz(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
		if rec.Code != want || !strings.Contains(rec.Body.String(), body) {
			t.Errorf("/healthz: %d %q, want %d %q", rec.Code, rec.Body.String(), want, body)
		}
	}
	check(http.StatusServiceUnavailable, "not serving")

	served := make(chan error, 1)
	go func() { served <- s.Serve(context.Background()) }()
	deadline := time.Now().Add(10 * time.Second)
	for !s.serving.Load() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	resp, err := http.Get("http://" + s.MetricsAddress() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(b) != "ok\n" {
		t.Fatalf("GET /healthz while serving: %d %q", resp.StatusCode, b)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	check(http.StatusServiceUnavailable, "stopping")
	if err := <-served; err != nil {
		t.Fatal(err)
	}
}
