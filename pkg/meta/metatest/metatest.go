// Package metatest opens a real metadata database for tests: bbolt in
// t.TempDir(), the local content store and the native snapshotter (and
// overlayfs when the test runs as root on a filesystem that allows it),
// with a consistency check (meta.DB.Check) when the test ends.
//
// The collector runs as in the daemon: whatever a test creates without a
// lease and without a referrer (an image, a container) may be collected
// from about 100 ms after Open on. Create under meta.WithLease, or pass
// meta.WithGCPolicy.
//
// This package imports pkg/meta, its backends and testing only.
package metatest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cri-runtime/cri-runtime/internal/testenv"

	"github.com/cri-runtime/cri-runtime/pkg/content"
	"github.com/cri-runtime/cri-runtime/pkg/content/local"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot/native"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot/overlay"
)

// Env is an open database and its backends, all under Root.
type Env struct {
	DB   *meta.DB
	Root string
	// Path is the bolt file.
	Path string
	// Content and Snapshotters are the backends, not namespaced.
	Content      content.Store
	Snapshotters map[string]snapshot.Snapshotter
	// SnapshotterErrs says why a snapshotter is missing from Snapshotters.
	SnapshotterErrs map[string]error

	opts []meta.Opt
}

// New opens a database for the test and returns it. When the test ends it
// runs db.Check, failing the test on any problem, and closes everything.
func New(t testing.TB, opts ...meta.Opt) *meta.DB {
	t.Helper()
	return NewEnv(t, opts...).DB
}

// NewEnv is New, also returning the backends and the paths.
func NewEnv(t testing.TB, opts ...meta.Opt) *Env {
	t.Helper()
	root := t.TempDir()
	env := &Env{Root: root, Path: filepath.Join(root, "meta.db"), Snapshotters: map[string]snapshot.Snapshotter{}, SnapshotterErrs: map[string]error{}, opts: opts}
	var err error
	if env.Content, err = local.NewStore(filepath.Join(root, "content")); err != nil {
		t.Fatalf("content store: %v", err)
	}
	sn, err := native.NewSnapshotter(filepath.Join(root, "native"))
	if err != nil {
		t.Fatalf("native snapshotter: %v", err)
	}
	env.Snapshotters["native"] = sn
	if os.Getuid() != 0 {
		env.SnapshotterErrs["overlayfs"] = errors.New("overlay mounts need root")
	} else if sn, err := overlay.NewSnapshotter(filepath.Join(root, "overlayfs")); err != nil {
		// Not swallowed: without overlay, every overlay test would skip.
		if testenv.Strict() {
			t.Fatalf("overlay snapshotter: %v", err)
		}
		env.SnapshotterErrs["overlayfs"] = err
	} else {
		env.Snapshotters["overlayfs"] = sn
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if env.DB, err = meta.Open(ctx, env.Path, env.Content, env.Snapshotters, opts...); err != nil {
		t.Fatalf("open metadata database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := env.DB.Check(ctx); err != nil {
			t.Errorf("metadata check after the test: %v", err)
		}
		if err := env.DB.Close(); err != nil {
			t.Errorf("close metadata database: %v", err)
		}
		for name, sn := range env.Snapshotters {
			if err := sn.Close(); err != nil {
				t.Errorf("close snapshotter %q: %v", name, err)
			}
		}
	})
	return env
}

// Reopen closes the database and opens it again over the same file and
// backends, as a restarted daemon does, and returns it (also in e.DB).
func (e *Env) Reopen(t testing.TB) *meta.DB {
	t.Helper()
	if err := e.DB.Close(); err != nil {
		t.Fatalf("close metadata database: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := meta.Open(ctx, e.Path, e.Content, e.Snapshotters, e.opts...)
	if err != nil {
		t.Fatalf("reopen metadata database: %v", err)
	}
	e.DB = db
	return db
}
