// Package servertest starts the real daemon graph (server.New) in
// temporary directories, serving on a unix socket, with a pkg/client
// connected to it: the fixture of every test that talks to the daemon.
//
// This package is for tests only.
package servertest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/task/tasktest"

	"github.com/cri-runtime/cri-runtime/pkg/client"
	"github.com/cri-runtime/cri-runtime/pkg/server"
)

// Daemon is a running daemon and a client of it.
type Daemon struct {
	Server *server.Server
	Client *client.Client
	Config server.Config

	served  chan error // Serve's result
	stopped bool
}

// Config returns a configuration whose directories are under t's temporary
// directories, with metrics on a free loopback port.
func Config(t testing.TB) server.Config {
	t.Helper()
	cfg := server.DefaultConfig()
	dir := t.TempDir()
	cfg.Root = filepath.Join(dir, "root")
	cfg.State = filepath.Join(dir, "state")
	// A socket path is limited to ~108 bytes and test names make long
	// temporary paths: the socket gets a short directory of its own.
	sockDir, err := os.MkdirTemp("", "crt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	cfg.GRPC.Address = filepath.Join(sockDir, "run", "mgmt.sock")
	// The shims' sockets are under the state directory: short too.
	cfg.State = filepath.Join(sockDir, "state")
	cfg.ShimBinary = tasktest.ShimBinary(t)
	cfg.CRI.Address = filepath.Join(sockDir, "run", "cri.sock")
	cfg.CNI.NetNSDir = filepath.Join(sockDir, "netns")
	cfg.CNI.ConfDir = filepath.Join(dir, "net.d")
	cfg.CNI.CacheDir = filepath.Join(dir, "cni-cache")
	cfg.Metrics.Address = "127.0.0.1:0"
	return cfg
}

// Start builds and serves the daemon with Config(t), changed by mutate,
// and connects a client. Cleanup checks the metadata database (meta's
// Check), stops the daemon and fails t if Serve did not return nil.
func Start(t testing.TB, mutate ...func(*server.Config)) *Daemon {
	t.Helper()
	cfg := Config(t)
	for _, m := range mutate {
		m(&cfg)
	}
	return StartWith(t, cfg)
}

// StartWith is Start with a given configuration.
func StartWith(t testing.TB, cfg server.Config) *Daemon {
	t.Helper()
	ctx := context.Background()
	srv, err := server.New(ctx, cfg)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	d := &Daemon{Server: srv, Config: cfg, served: make(chan error, 1)}
	go func() { d.served <- srv.Serve(ctx) }()
	c, err := client.New(ctx, cfg.GRPC.Address)
	if err != nil {
		srv.Stop()
		t.Fatalf("client.New: %v", err)
	}
	d.Client = c
	t.Cleanup(func() {
		c.Close()
		if !d.stopped {
			if err := srv.DB().Check(ctx); err != nil {
				t.Errorf("meta Check: %v", err)
			}
		}
		if err := d.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	return d
}

// Stop stops the daemon and returns what Serve returned. It may be called
// more than once.
func (d *Daemon) Stop() error {
	d.stopped = true
	if err := d.Server.Stop(); err != nil {
		return err
	}
	select {
	case err := <-d.served:
		d.served <- err // for a later call
		return err
	case <-time.After(30 * time.Second):
		return errors.New("Serve did not return after Stop")
	}
}
