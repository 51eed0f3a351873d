package server_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/cri-runtime/cri-runtime/internal/testenv"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cri-runtime/cri-runtime/pkg/client"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/leases"
	"github.com/cri-runtime/cri-runtime/pkg/namespaces"
	"github.com/cri-runtime/cri-runtime/pkg/server"
	"github.com/cri-runtime/cri-runtime/pkg/server/servertest"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot/testsuite"
)

// TestSnapshotsTestsuite runs the shared snapshotter testsuite against each
// of the daemon's snapshotters through pkg/client, over the management
// socket: every call and every error class crosses the wire.
func TestSnapshotsTestsuite(t *testing.T) {
	for _, name := range []string{"overlayfs", "native"} {
		testsuite.Run(t, "grpc-"+name, func(ctx context.Context, t *testing.T, root string) (context.Context, snapshot.Snapshotter, func() error) {
			d := servertest.Start(t, func(cfg *server.Config) {
				cfg.Root = root // the suite reopens the same root
				cfg.Snapshotter = name
				cfg.Metrics.Address = ""
			})
			if !slices.Contains(d.Server.DB().Snapshotters(), name) {
				testenv.Missing(t, "the daemon has no %s snapshotter here", name)
			}
			closeFn := func() error {
				if err := d.Server.DB().Check(ctx); err != nil {
					return fmt.Errorf("meta check: %w", err)
				}
				return d.Stop()
			}
			return leased(ctx, t, d, "testsuite"), d.Client.Snapshotter(name), closeFn
		})
	}
}

// leased returns ctx in namespace ns and under a lease of the daemon, so
// that the collector, which runs after every deletion, keeps the test's
// snapshots. The lease is created once per namespace and root: the suite
// reopens a daemon over the same root.
func leased(ctx context.Context, t *testing.T, d *servertest.Daemon, ns string) context.Context {
	t.Helper()
	ctx = namespaces.WithNamespace(ctx, ns)
	const id = "snapshots-test"
	if _, err := d.Client.Leases().Create(ctx, client.WithLeaseID(id)); err != nil && !errdefs.IsAlreadyExists(err) {
		t.Fatalf("create lease: %v", err)
	}
	return leases.WithLease(ctx, id)
}

// wantCode fails t unless err has the errdefs class is and, as the wire
// saw it, the gRPC code code.
func wantCode(t *testing.T, what string, err error, is func(error) bool, code codes.Code) {
	t.Helper()
	if !is(err) || status.Code(err) != code {
		t.Fatalf("%s: want %v, got %v (code %v)", what, code, err, status.Code(err))
	}
}

func TestSnapshotsUnknownSnapshotter(t *testing.T) {
	d := servertest.Start(t)
	ctx := namespaces.WithNamespace(context.Background(), "test")

	sn := d.Client.Snapshotter("nope")
	_, err := sn.Stat(ctx, "x")
	wantCode(t, "stat on an unknown snapshotter", err, errdefs.IsNotFound, codes.NotFound)
	if !strings.Contains(err.Error(), `"nope"`) || !strings.Contains(err.Error(), "native") {
		t.Errorf("the error should name the snapshotter and those the daemon has: %v", err)
	}
	err = sn.Walk(ctx, func(context.Context, snapshot.Info) error { return nil })
	wantCode(t, "list on an unknown snapshotter", err, errdefs.IsNotFound, codes.NotFound)
	_, err = sn.Prepare(ctx, "x", "")
	wantCode(t, "prepare on an unknown snapshotter", err, errdefs.IsNotFound, codes.NotFound)

	_, err = d.Client.Snapshotter("").Stat(ctx, "x")
	wantCode(t, "stat without a snapshotter", err, errdefs.IsInvalidArgument, codes.InvalidArgument)
	_, err = d.Client.Snapshotter("native").Stat(context.Background(), "x")
	wantCode(t, "stat without a namespace", err, errdefs.IsInvalidArgument, codes.InvalidArgument)
}

func TestSnapshotsRemoveParentIsFailedPrecondition(t *testing.T) {
	d := servertest.Start(t)
	ctx := leased(context.Background(), t, d, "test")
	sn := d.Client.Snapshotter("native")

	if _, err := sn.Prepare(ctx, "p-active", ""); err != nil {
		t.Fatal(err)
	}
	if err := sn.Commit(ctx, "parent", "p-active", snapshot.WithLabels(map[string]string{"k": "v"})); err != nil {
		t.Fatal(err)
	}
	mounts, err := sn.Prepare(ctx, "child", "parent")
	if err != nil || len(mounts) == 0 {
		t.Fatalf("prepare over parent: %v, %v", mounts, err)
	}
	wantCode(t, "remove of a parent", sn.Remove(ctx, "parent"), errdefs.IsFailedPrecondition, codes.FailedPrecondition)
	_, err = sn.Prepare(ctx, "child", "")
	wantCode(t, "prepare of an existing key", err, errdefs.IsAlreadyExists, codes.AlreadyExists)
	_, err = sn.Mounts(ctx, "parent")
	wantCode(t, "mounts of a committed snapshot", err, errdefs.IsFailedPrecondition, codes.FailedPrecondition)

	info, err := sn.Stat(ctx, "parent")
	if err != nil || info.Kind != snapshot.KindCommitted || info.Labels["k"] != "v" || info.Created.IsZero() {
		t.Fatalf("stat of the parent: %+v, %v", info, err)
	}
	if err := sn.Remove(ctx, "child"); err != nil {
		t.Fatal(err)
	}
	if err := sn.Remove(ctx, "parent"); err != nil {
		t.Fatalf("remove of a parent without children: %v", err)
	}
}

func TestSnapshotsSnapshotters(t *testing.T) {
	d := servertest.Start(t, func(cfg *server.Config) { cfg.Snapshotter = "native" })
	list, err := d.Client.Snapshotters(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	names := d.Server.DB().Snapshotters()
	if len(list) != len(names) {
		t.Fatalf("snapshotters %+v, the daemon has %v", list, names)
	}
	for i, sn := range list {
		if sn.Name != names[i] || sn.Default != (sn.Name == "native") {
			t.Errorf("snapshotter %d: %+v (names %v, default native)", i, sn, names)
		}
		if got, want := snapshot.CanRebase(d.Client.Snapshotter(sn.Name)), sn.Name == "overlayfs"; got != want || sn.CanRebase != want {
			t.Errorf("%s: CanRebase %v (listed %v), want %v", sn.Name, got, sn.CanRebase, want)
		}
	}
	if snapshot.CanRebase(d.Client.Snapshotter("nope")) {
		t.Error("an unknown snapshotter cannot rebase")
	}
}
