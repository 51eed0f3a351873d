package overlay

import (
	"context"
	"testing"

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
