package server

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// healthz answers GET /healthz beside /metrics: 200 "ok" when the gRPC
// server is serving (Serve called, Stop not) and the metadata database
// answers a read within a second, else 503 with the reason.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	if err := s.health(r.Context()); err != nil {
		http.Error(w, "unhealthy: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok")
}

func (s *Server) health(ctx context.Context) error {
	switch {
	case s.stopping.Err() != nil:
		return fmt.Errorf("stopping")
	case !s.serving.Load():
		return fmt.Errorf("gRPC server not serving")
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if _, err := s.db.Namespaces().List(ctx); err != nil {
		return fmt.Errorf("metadata database: %w", err)
	}
	return nil
}
