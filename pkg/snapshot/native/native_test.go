package native

import (
	"context"
	"testing"

	"github.com/cri-runtime/cri-runtime/pkg/snapshot"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot/testsuite"
)

func TestNative(t *testing.T) {
	testsuite.Run(t, "native", func(ctx context.Context, t *testing.T, root string) (context.Context, snapshot.Snapshotter, func() error) {
		sn, err := NewSnapshotter(root)
		if err != nil {
			t.Fatal(err)
		}
		return ctx, sn, sn.Close
	})
}

func TestNativeCrashBetweenRenameAndRecord(t *testing.T) {
	testsuite.RunCrashBetweenRenameAndRecord(t, func(root string) (snapshot.Snapshotter, error) {
		return NewSnapshotter(root)
	})
}
