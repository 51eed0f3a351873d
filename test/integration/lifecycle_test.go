package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cri-runtime/cri-runtime/pkg/client"
	"github.com/cri-runtime/cri-runtime/pkg/content"
	"github.com/cri-runtime/cri-runtime/pkg/leases"
	"github.com/cri-runtime/cri-runtime/pkg/namespaces"
)

func TestSIGTERMStopsCleanly(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			d := newDaemon(t)
			d.start()
			for _, kv := range []string{`root="` + d.root + `"`, `state="` + d.state + `"`, `snapshotter="`} {
				if !strings.Contains(d.stderr.String(), kv) {
					t.Errorf("the start-up log lacks %s:\n%s", kv, d.stderr)
				}
			}
			d.ok(nil, "default", "namespaces", "create", "before-stop")
			if code := d.signal(sig); code != 0 {
				t.Fatalf("exit code %d after %v, want 0\n%s", code, sig, d.stderr)
			}
			if _, err := os.Stat(d.address); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("socket after a clean stop: %v, want it removed", err)
			}
			// The database was closed properly: a restart finds the record.
			d.start()
			if out := d.ok(nil, "default", "namespaces", "ls", "-q"); !strings.Contains(out, "before-stop\n") {
				t.Fatalf("namespaces after restart:\n%s", out)
			}
			d.stop()
		})
	}
}

func TestConfigDefaultServes(t *testing.T) {
	d := newDaemon(t)
	out := d.ok(nil, "default", "config", "default")
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := d.ok(nil, "default", "config", "check", path); !strings.HasPrefix(out, path+": OK") {
		t.Fatalf("config check printed %q, want a line saying the file is OK", out)
	}
	// The file's paths are the system's; the flags override them.
	d.start("--config", path)
	d.ok(nil, "default", "namespaces", "ls")
	d.stop()
	if _, err := os.Stat(filepath.Join(d.root, "meta.db")); err != nil {
		t.Fatalf("--root did not override the file: %v", err)
	}
}

func TestConfigUnknownKeyFailsStart(t *testing.T) {
	d := newDaemon(t)
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, []byte("[grpc]\nadress = \"/nowhere.sock\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := d.fails(nil, "default", []string{"serve", "--config", path, "--root", d.root, "--state", d.state}, `"grpc.adress"`, "invalid argument", path)
	if r.code != 1 {
		t.Fatalf("exit code %d, want 1", r.code)
	}
	if _, err := os.Stat(d.root); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("root created although the config was refused: %v", err)
	}
}

// TestSecondDaemonOnBusyRoot starts a second daemon on the root of a live
// one, again and again, while the live one ingests and creates snapshots
// without pause. Each second daemon must be refused at once, saying who
// holds the root, and must not have touched it: every ingest of the live
// one completes with its digest and nothing is left half-made.
func TestSecondDaemonOnBusyRoot(t *testing.T) {
	const attempts = 30
	d := newDaemon(t)
	d.start()
	c, err := client.New(context.Background(), d.address)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := namespaces.WithNamespace(context.Background(), "busy")
	lease, err := c.Leases().Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ctx = leases.WithLease(ctx, lease.ID)
	l := startLoad(ctx, c)

	pid := fmt.Sprintf("in use by pid %d", d.cmd.Process.Pid)
	var slowest time.Duration
	for i := range attempts {
		took, stderr, err := startSecondDaemon(t, d.root)
		slowest = max(slowest, took)
		if err == nil || !strings.Contains(stderr, pid) || !strings.Contains(stderr, "failed precondition") {
			t.Errorf("second daemon %d: %v after %v, stderr %q: want a failure saying the root is %s", i, err, took, stderr, pid)
		}
		if took > time.Second {
			t.Errorf("second daemon %d refused after %v, want well under 1 s", i, took)
		}
		time.Sleep(10 * time.Millisecond)
	}
	written, loadErrs := l.stop()
	t.Logf("%d second daemons refused, the slowest after %v; %d ingests meanwhile", attempts, slowest, len(written))
	for _, err := range loadErrs {
		t.Errorf("live daemon: %v", err)
	}
	if len(written) < attempts {
		t.Fatalf("only %d ingests ran during the test: no load", len(written))
	}
	for _, dg := range written {
		if info, err := c.ContentStore().Info(ctx, dg); err != nil || info.Digest != dg {
			t.Errorf("blob %s: %v", dg, err)
		}
	}
	if st, err := c.ContentStore().ListStatuses(ctx); err != nil || len(st) != 0 {
		t.Errorf("ingests left active: %v %v", st, err)
	}
	d.stop()
	// Nothing half-made is left: no ingest directory (all were committed),
	// no temporary of either kind.
	for _, dir := range []string{filepath.Join(d.root, "content", "ingest"), filepath.Join(d.root, "snapshots", "native", "snapshots")} {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			t.Errorf("left in %s: %s", dir, e.Name())
		}
	}
}

// startSecondDaemon runs `serve` on root, with a state directory and a
// socket of its own, and returns how long it ran, its stderr and its exit.
func startSecondDaemon(t *testing.T, root string) (time.Duration, string, error) {
	t.Helper()
	dir := t.TempDir()
	second := exec.Command(criRuntime, "serve", "--root", root, "--state", filepath.Join(dir, "state"),
		"--address", filepath.Join(dir, "s.sock"), "--metrics-address", "")
	var stderr bytes.Buffer
	second.Stderr = &stderr
	start := time.Now()
	if err := second.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(20*time.Second, func() { second.Process.Kill() })
	defer timer.Stop()
	err := second.Wait()
	return time.Since(start), stderr.String(), err
}

// load keeps a daemon busy creating ingest and snapshot directories: four
// ingesters, each blob under a new ref, and a loop of snapshot prepares
// and removes.
type load struct {
	done chan struct{}
	wg   sync.WaitGroup

	mu      sync.Mutex
	written []digest.Digest // guarded by mu
	errs    []error         // guarded by mu
}

func startLoad(ctx context.Context, c *client.Client) *load {
	l := &load{done: make(chan struct{})}
	for w := range 4 {
		l.run(func(i int) {
			blob := []byte(strings.Repeat(fmt.Sprintf("worker %d blob %d\n", w, i), 1000))
			desc := ocispec.Descriptor{Digest: digest.FromBytes(blob), Size: int64(len(blob))}
			if err := content.WriteBlob(ctx, c.ContentStore(), fmt.Sprintf("busy-%d-%d", w, i), bytes.NewReader(blob), desc); err != nil {
				l.fail(fmt.Errorf("ingest %d of worker %d: %w", i, w, err))
				return
			}
			l.mu.Lock()
			l.written = append(l.written, desc.Digest)
			l.mu.Unlock()
		})
	}
	sn := c.Snapshotter("native")
	l.run(func(i int) {
		key := fmt.Sprintf("busy-%d", i)
		if _, err := sn.Prepare(ctx, key, ""); err != nil {
			l.fail(fmt.Errorf("prepare %s: %w", key, err))
			return
		}
		if err := sn.Remove(ctx, key); err != nil {
			l.fail(fmt.Errorf("remove %s: %w", key, err))
		}
	})
	return l
}

// run calls step with 0, 1, 2... until stop.
func (l *load) run(step func(i int)) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		for i := 0; ; i++ {
			select {
			case <-l.done:
				return
			default:
				step(i)
			}
		}
	}()
}

func (l *load) fail(err error) {
	l.mu.Lock()
	l.errs = append(l.errs, err)
	l.mu.Unlock()
}

// stop ends the load and returns the blobs written and the errors met.
func (l *load) stop() ([]digest.Digest, []error) {
	close(l.done)
	l.wg.Wait()
	return l.written, l.errs
}
