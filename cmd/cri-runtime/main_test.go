package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/grpc"

	"github.com/cri-runtime/cri-runtime/pkg/client"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/namespaces"
	"github.com/cri-runtime/cri-runtime/pkg/server"
	"github.com/cri-runtime/cri-runtime/pkg/server/servertest"
)

// TestFlagValueNames guards the help of every flag against pflag reading a
// backquoted phrase as the flag's value name: `serve --help` showed
// "--config cri-runtime config default   TOML config file".
func TestFlagValueNames(t *testing.T) {
	root, _ := newRoot()
	walkCommands(root, func(cmd *cobra.Command) {
		check := func(f *pflag.Flag) {
			if name, _ := pflag.UnquoteUsage(f); strings.ContainsAny(name, " \t") {
				t.Errorf("%s --%s: value name %q", cmd.CommandPath(), f.Name, name)
			}
		}
		cmd.LocalFlags().VisitAll(check)
		cmd.PersistentFlags().VisitAll(check)
	})
}

// hungDaemon serves gRPC on a unix socket: it completes the handshake of
// a connection and never answers a call, as a daemon stuck in a lock does.
func hungDaemon(t *testing.T) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "hung.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.UnknownServiceHandler(func(_ any, ss grpc.ServerStream) error {
		<-ss.Context().Done()
		return ss.Context().Err()
	}))
	go srv.Serve(l)
	t.Cleanup(srv.Stop)
	return sock
}

// TestTimeoutBoundsCalls guards the CLI against hanging on a daemon that
// does not answer: --timeout bounds the calls of every command.
func TestTimeoutBoundsCalls(t *testing.T) {
	sock := hungDaemon(t)
	for _, args := range [][]string{
		{"namespaces", "ls"},
		// Streaming: bounded when --timeout is given.
		{"content", "get", "sha256:" + strings.Repeat("0", 64)},
	} {
		root, g := newRoot()
		root.SetArgs(append([]string{"--address", sock, "--timeout", "300ms"}, args...))
		root.SetOut(io.Discard)
		start := time.Now()
		err := g.explain(root.ExecuteContext(context.Background()))
		took := time.Since(start)
		if !errdefs.IsDeadlineExceeded(err) || !strings.Contains(err.Error(), "--timeout 300ms") {
			t.Errorf("%v against a daemon that does not answer: %v, want DeadlineExceeded naming --timeout", args, err)
		}
		if took > 3*time.Second {
			t.Errorf("%v took %v with --timeout 300ms", args, took)
		}
	}
}

// TestDefaultTimeout checks which commands --timeout bounds by default:
// all but the streaming ones, which last as long as their data.
func TestDefaultTimeout(t *testing.T) {
	root, g := newRoot()
	if err := root.ParseFlags(nil); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]time.Duration{
		"namespaces ls":  DefaultTimeout,
		"images rm":      DefaultTimeout,
		"leases create":  DefaultTimeout,
		"pull":           0,
		"events":         0,
		"content ingest": 0,
		"content get":    0,
	} {
		cmd, _, err := root.Find(strings.Fields(path))
		if err != nil {
			t.Fatal(err)
		}
		if got := g.callTimeout(cmd); got != want {
			t.Errorf("%s: timeout %v, want %v", path, got, want)
		}
	}
}

// TestGlobalLeaseIsSent guards --lease: every call carries it.
func TestGlobalLeaseIsSent(t *testing.T) {
	d := servertest.Start(t, func(c *server.Config) { c.Metrics.Address = "" })
	ctx := namespaces.WithNamespace(context.Background(), "default")
	if _, err := d.Client.Leases().Create(ctx, client.WithLeaseID("cli-lease")); err != nil {
		t.Fatal(err)
	}
	root, _ := newRoot()
	root.SetArgs([]string{"--address", d.Config.GRPC.Address, "--lease", "cli-lease", "content", "ingest", "--ref", "leased"})
	root.SetIn(strings.NewReader("held by a lease"))
	var stdout, stderr bytes.Buffer
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	if err := root.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	res, err := d.Client.Leases().ListResources(ctx, meta.Lease{ID: "cli-lease"})
	if err != nil {
		t.Fatal(err)
	}
	dgst := strings.TrimSpace(stdout.String())
	found := false
	for _, r := range res {
		found = found || r.ID == dgst
	}
	if !found {
		t.Fatalf("lease resources %v lack the blob %s", res, dgst)
	}
	if stderr.Len() != 0 {
		t.Errorf("ingest under a lease warned: %s", stderr.String())
	}
}
