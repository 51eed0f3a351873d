package meta_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cri-runtime/cri-runtime/pkg/content"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
)

// Regression: a record took 100,000 labels and an ingest a 1 MiB ref.
func TestRecordLimits(t *testing.T) {
	env := newEnv(t)
	db := env.DB
	ctx := leased(t, db, nsCtx(t, "ns"))
	many := map[string]string{}
	for i := range 1025 {
		many[fmt.Sprintf("k%d", i)] = "v"
	}
	big := map[string]string{}
	for i := range 80 {
		big[fmt.Sprintf("k%d", i)] = strings.Repeat("v", 4000) // 320 kB in all
	}
	long := strings.Repeat("r", 1025)
	cases := []struct {
		name string
		err  error
	}{
		{"1025 labels on a namespace", db.Namespaces().Create(ctx, "other", many)},
		{"320 kB of labels on a lease", func() error {
			_, err := db.Leases().Create(ctx, meta.WithRandomID(), meta.WithLeaseLabels(big))
			return err
		}()},
		{"1025 labels on a container", func() error {
			_, err := db.Containers().Create(ctx, meta.Container{ID: "c", Labels: many, Runtime: meta.Runtime{Name: "runc"}})
			return err
		}()},
		{"a 1025-byte ingest ref", func() error {
			_, err := db.ContentStore().Writer(ctx, content.WithRef(long))
			return err
		}()},
		{"a 1025-byte snapshot key", func() error {
			_, err := db.Snapshotter("native").Prepare(ctx, long, "")
			return err
		}()},
		{"a 1025-byte image name", func() error {
			_, err := db.Images().Create(ctx, meta.Image{Name: long})
			return err
		}()},
	}
	for _, c := range cases {
		if !errdefs.IsInvalidArgument(c.err) {
			t.Errorf("%s: %v, want InvalidArgument", c.name, c.err)
		}
	}
	// At the bounds, accepted.
	delete(many, "k0")
	if err := db.Namespaces().Create(ctx, "other", many); err != nil {
		t.Fatalf("1024 labels: %v", err)
	}
	w, err := db.ContentStore().Writer(ctx, content.WithRef(long[1:]))
	if err != nil {
		t.Fatalf("a 1024-byte ref: %v", err)
	}
	w.Close()
	if err := db.ContentStore().Abort(ctx, long[1:]); err != nil {
		t.Fatal(err)
	}
	if err := db.Namespaces().Delete(ctx, "other"); err != nil {
		t.Fatal(err)
	}
	// Nothing of the refused requests was left behind.
	if sts, err := env.Content.ListStatuses(ctx); err != nil || len(sts) != 0 {
		t.Fatalf("ingests left: %+v, %v", sts, err)
	}
}
