package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/cri-runtime/cri-runtime/pkg/client"
	"github.com/cri-runtime/cri-runtime/pkg/content"
	"github.com/cri-runtime/cri-runtime/pkg/content/local"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/meta/gc"
	"github.com/cri-runtime/cri-runtime/pkg/namespaces"
	"github.com/cri-runtime/cri-runtime/pkg/server"
	"github.com/cri-runtime/cri-runtime/pkg/server/servertest"
)

func TestSocketAndDirectoriesArePrivate(t *testing.T) {
	d := servertest.Start(t)
	fi, err := os.Stat(d.Config.GRPC.Address)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, want a socket with 0600", fi.Mode())
	}
	for _, dir := range []string{filepath.Dir(d.Config.GRPC.Address), d.Config.Root, d.Config.State, filepath.Join(d.Config.Root, "content")} {
		fi, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o700 {
			t.Errorf("directory %s has mode %v, want 0700", dir, fi.Mode().Perm())
		}
	}
	// A second daemon on a live socket is refused, and leaves it alone.
	cfg := d.Config
	cfg.Root, cfg.State, cfg.Metrics.Address = t.TempDir(), t.TempDir(), ""
	if _, err := server.New(context.Background(), cfg); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("second daemon on a live socket: %v, want AlreadyExists", err)
	}
	if _, err := d.Client.Namespaces().List(context.Background()); err != nil {
		t.Fatalf("first daemon after the refused second: %v", err)
	}
}

func TestStaleSocketIsReplaced(t *testing.T) {
	cfg := servertest.Config(t)
	if err := os.MkdirAll(filepath.Dir(cfg.GRPC.Address), 0o700); err != nil {
		t.Fatal(err)
	}
	// A socket left by a daemon that died: nothing listens on it.
	l, err := net.Listen("unix", cfg.GRPC.Address)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	if _, err := os.Stat(cfg.GRPC.Address); err != nil {
		t.Fatalf("stale socket not left behind: %v", err)
	}
	d := servertest.StartWith(t, cfg)
	if _, err := d.Client.Namespaces().List(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(cfg.GRPC.Address); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket after stop: %v, want it removed", err)
	}
}

func TestNotASocketIsRefused(t *testing.T) {
	cfg := servertest.Config(t)
	os.MkdirAll(filepath.Dir(cfg.GRPC.Address), 0o700)
	if err := os.WriteFile(cfg.GRPC.Address, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := server.New(context.Background(), cfg)
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), cfg.GRPC.Address) {
		t.Fatalf("New over a regular file: %v, want FailedPrecondition naming it", err)
	}
	if b, _ := os.ReadFile(cfg.GRPC.Address); string(b) != "precious" {
		t.Fatal("the file was touched")
	}
}

// A daemon killed while it held a temporary mount (an image's user
// database read, an unpack) leaves it on the host: the next daemon on
// the same state removes it at start.
func TestStartRemovesTemporaryMountsOfAKilledDaemon(t *testing.T) {
	cfg := servertest.Config(t)
	left := filepath.Join(cfg.State, "tmpmounts", "cri-runtime-mount-123")
	if err := os.MkdirAll(left, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", left, "tmpfs", 0, "size=64k"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(left, unix.MNT_DETACH) })
	servertest.StartWith(t, cfg)
	if _, err := os.Stat(left); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("mount point left by a killed daemon after start: %v, want it removed", err)
	}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), " "+left+" ") {
		t.Fatalf("%s still mounted", left)
	}
}

func TestNewRejectsInvalidConfig(t *testing.T) {
	cfg := servertest.Config(t)
	cfg.Snapshotter = "btrfs"
	if _, err := server.New(context.Background(), cfg); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "btrfs") {
		t.Fatalf("New with a bad snapshotter: %v", err)
	}
}

func scrape(t *testing.T, d *servertest.Daemon) string {
	t.Helper()
	resp, err := http.Get("http://" + d.Server.MetricsAddress() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	return string(b)
}

func TestMetricsEndpoint(t *testing.T) {
	d := servertest.Start(t)
	ctx := namespaces.WithNamespace(context.Background(), "metrics")
	blob := []byte(strings.Repeat("metrics!", 1000))
	desc := ocispec.Descriptor{Digest: digest.FromBytes(blob), Size: int64(len(blob))}
	if err := content.WriteBlob(ctx, d.Client.ContentStore(), "m-1", strings.NewReader(string(blob)), desc); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Client.Images().Get(ctx, "missing"); !errdefs.IsNotFound(err) {
		t.Fatalf("Get: %v", err)
	}
	if _, err := d.Client.Leases().Create(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Server.DB().GCScheduler().ScheduleAndWait(ctx); err != nil {
		t.Fatalf("GC: %v", err)
	}
	body := scrape(t, d)
	for _, want := range []string{
		`cri_runtime_grpc_server_handling_seconds_bucket{code="NotFound",method="/cri_runtime.services.images.v1.Images/Get",le=`,
		`cri_runtime_grpc_server_handling_seconds_count{code="OK",method="/cri_runtime.services.content.v1.Content/Write"} 1`,
		`cri_runtime_grpc_server_handled_total{code="OK",method="/cri_runtime.services.leases.v1.Leases/Create"} 1`,
		`cri_runtime_grpc_server_started_total{method="/cri_runtime.services.images.v1.Images/Get"} 1`,
		`cri_runtime_content_ingested_bytes_total 8000`,
		`cri_runtime_gc_runs_total `,
		`cri_runtime_gc_pause_seconds_bucket{le=`,
		`go_goroutines `,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", body)
	}
}

func TestMetricsDisabled(t *testing.T) {
	d := servertest.Start(t, func(c *server.Config) { c.Metrics.Address = "" })
	if a := d.Server.MetricsAddress(); a != "" {
		t.Fatalf("metrics served on %q although disabled", a)
	}
}

// TestStopClosesDatabase checks that Stop releases the bolt file: another
// process (here, meta.Open) can open it at once.
func TestStopClosesDatabase(t *testing.T) {
	d := servertest.Start(t)
	ctx := namespaces.WithNamespace(context.Background(), "stop")
	if _, err := d.Client.Leases().Create(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := d.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	cs, err := local.NewStore(filepath.Join(d.Config.Root, "content"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	db, err := meta.Open(ctx, filepath.Join(d.Config.Root, "meta.db"), cs, nil)
	if err != nil {
		t.Fatalf("meta.Open after Stop: %v", err)
	}
	defer db.Close()
	if err := db.Check(ctx); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if l, err := db.Leases().List(ctx); err != nil || len(l) != 1 {
		t.Fatalf("leases after restart: %v, %v", l, err)
	}
}

// TestStopEndsSubscriptions guards against an event subscription holding
// a graceful stop until its timeout.
func TestStopEndsSubscriptions(t *testing.T) {
	d := servertest.Start(t, func(c *server.Config) { c.GRPC.ShutdownTimeout = gc.Duration(time.Minute) })
	ctx := namespaces.WithNamespace(context.Background(), "stop")
	envs, errs := d.Client.Events().Subscribe(ctx)
	start := time.Now()
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("Stop took %v with a subscription open", took)
	}
	for range envs {
	}
	if err := <-errs; !errdefs.IsUnavailable(err) {
		t.Fatalf("subscription ended with %v, want Unavailable", err)
	}
}

// TestSecondDaemonOnRootIsRefusedUntouched guards the first daemon's
// directories against a second one started on them: it is refused at
// once, naming the pid that holds them, before it sweeps anything (here,
// the temporaries of an ingest and of a snapshot being created).
func TestSecondDaemonOnRootIsRefusedUntouched(t *testing.T) {
	d := servertest.Start(t)
	canaries := []string{
		filepath.Join(d.Config.Root, "content", "ingest", ".tmp-live"),
		filepath.Join(d.Config.Root, "snapshots", "native", "snapshots", "new-live"),
	}
	for _, c := range canaries {
		if err := os.MkdirAll(c, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	pid := fmt.Sprintf("pid %d", os.Getpid())
	for _, c := range []struct {
		key    string
		mutate func(*server.Config)
	}{
		{"root", func(c *server.Config) { c.State = t.TempDir() }},
		{"state", func(c *server.Config) { c.Root = t.TempDir() }},
	} {
		cfg := servertest.Config(t)
		cfg.Root, cfg.State, cfg.Metrics.Address = d.Config.Root, d.Config.State, ""
		c.mutate(&cfg)
		start := time.Now()
		_, err := server.New(context.Background(), cfg)
		took := time.Since(start)
		if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "in use by "+pid) || !strings.HasPrefix(err.Error(), c.key+" ") {
			t.Fatalf("second daemon on the same %s: %v, want FailedPrecondition saying it is in use by %s", c.key, err, pid)
		}
		if took > time.Second {
			t.Errorf("second daemon on the same %s refused after %v, want at once", c.key, took)
		}
	}
	for _, c := range canaries {
		if _, err := os.Stat(c); err != nil {
			t.Errorf("the second daemon touched the first one's %s: %v", c, err)
		}
		os.Remove(c)
	}
	if _, err := d.Client.Namespaces().List(context.Background()); err != nil {
		t.Fatalf("first daemon after the refused second: %v", err)
	}
	// Once the first has stopped, the directories are free again.
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	servertest.StartWith(t, d.Config)
}

// TestLooseDirectoriesAreTightened guards against a root or state directory
// that others could write into: existing ones are made 0700 at start, and
// one owned by another user is refused.
func TestLooseDirectoriesAreTightened(t *testing.T) {
	cfg := servertest.Config(t)
	for _, dir := range []string{cfg.Root, cfg.State} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	d := servertest.StartWith(t, cfg)
	for _, dir := range []string{cfg.Root, cfg.State} {
		fi, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o700 {
			t.Errorf("%s has mode %v after start, want 0700", dir, fi.Mode().Perm())
		}
	}
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}

	if os.Geteuid() != 0 {
		t.Skip("giving a directory to another user needs root")
	}
	for _, key := range []string{"root", "state"} {
		cfg := servertest.Config(t)
		dir := map[string]string{"root": cfg.Root, "state": cfg.State}[key]
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dir, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		_, err := server.New(context.Background(), cfg)
		if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "owned by uid 65534") || !strings.HasPrefix(err.Error(), key+" ") {
			t.Fatalf("%s owned by another user: %v, want FailedPrecondition naming its owner", key, err)
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("the refused daemon wrote into the %s: %v", key, entries)
		}
	}
}

// TestStopEndsIngests guards against an ingest holding a graceful stop for
// its whole timeout and then being cut with a bare transport error: the
// stream ends at once with Unavailable, whether the client is sending or
// idle, and the ingest is kept for a resume.
func TestStopEndsIngests(t *testing.T) {
	d := servertest.Start(t, func(c *server.Config) { c.GRPC.ShutdownTimeout = gc.Duration(time.Minute) })
	ctx := namespaces.WithNamespace(context.Background(), "stop")
	cs := d.Client.ContentStore()
	idle, err := cs.Writer(ctx, content.WithRef("idle"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := idle.Write([]byte("idle data")); err != nil {
		t.Fatal(err)
	}
	busy, err := cs.Writer(ctx, content.WithRef("busy"))
	if err != nil {
		t.Fatal(err)
	}
	busyErr := make(chan error, 1)
	go func() {
		chunk := make([]byte, 64<<10)
		for {
			if _, err := busy.Write(chunk); err != nil {
				busyErr <- err
				return
			}
		}
	}()
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Stop took %v with ingests open", took)
	}
	if err := <-busyErr; !errdefs.IsUnavailable(err) {
		t.Errorf("busy ingest ended with %v, want Unavailable", err)
	}
	if _, err := idle.Write([]byte("more")); !errdefs.IsUnavailable(err) {
		t.Errorf("idle ingest after the stop: %v, want Unavailable", err)
	}
	// Both ingests are kept for a resume.
	d2 := servertest.StartWith(t, d.Config)
	for _, ref := range []string{"idle", "busy"} {
		st, err := d2.Client.ContentStore().Status(ctx, ref)
		if err != nil || st.Offset == 0 {
			t.Errorf("ingest %s after the restart: %+v %v", ref, st, err)
		}
	}
}

// TestNegativeLeaseExpiryIsRefused guards against a lease created with a
// negative expiry, which was accepted and expired at once.
func TestNegativeLeaseExpiryIsRefused(t *testing.T) {
	d := servertest.Start(t, func(c *server.Config) { c.Metrics.Address = "" })
	ctx := namespaces.WithNamespace(context.Background(), "neg")
	_, err := d.Client.Leases().Create(ctx, client.WithLeaseID("neg"), client.WithExpiration(-5*time.Second))
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), `"neg"`) {
		t.Fatalf("lease with expiry -5s: %v, want InvalidArgument naming it", err)
	}
	if l, err := d.Client.Leases().List(ctx); err != nil || len(l) != 0 {
		t.Fatalf("leases after the refusal: %v %v", l, err)
	}
	if _, err := d.Client.Leases().Create(ctx, client.WithExpiration(time.Hour)); err != nil {
		t.Fatal(err)
	}
}
