package overlay

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"

	"github.com/cri-runtime/cri-runtime/pkg/snapshot"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot/testsuite"
)

func newTestSnapshotter(t *testing.T, root string) *Snapshotter {
	t.Helper()
	sn, err := NewSnapshotter(root)
	if err != nil {
		t.Fatal(err)
	}
	return sn.(*Snapshotter)
}

func TestOverlay(t *testing.T) {
	testsuite.Run(t, "overlay", func(ctx context.Context, t *testing.T, root string) (context.Context, snapshot.Snapshotter, func() error) {
		sn := newTestSnapshotter(t, root)
		return ctx, sn, sn.Close
	})
}

func TestOverlayCrashBetweenRenameAndRecord(t *testing.T) {
	testsuite.RunCrashBetweenRenameAndRecord(t, func(root string) (snapshot.Snapshotter, error) {
		return NewSnapshotter(root)
	})
}

// A root with ',' or ':' in its path cannot be written into overlay mount
// options: the snapshotter says so up front, as FailedPrecondition so that
// the daemon falls back to native, instead of an ENOENT from the test mount.
func TestOverlayRootWithOptionSeparators(t *testing.T) {
	for _, name := range []string{"a,b", "a:b"} {
		root := filepath.Join(t.TempDir(), name)
		_, err := NewSnapshotter(root)
		if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "cannot carry") {
			t.Errorf("root %q: %v, want FailedPrecondition naming the separators", name, err)
		}
	}
}
