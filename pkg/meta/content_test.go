package meta_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/cri-runtime/cri-runtime/pkg/content"
	contenttestsuite "github.com/cri-runtime/cri-runtime/pkg/content/testsuite"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/meta/metatest"
	"github.com/cri-runtime/cri-runtime/pkg/namespaces"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestContentSuite runs the shared content suite against the namespaced
// view, under a lease and with the collector running as in the daemon.
func TestContentSuite(t *testing.T) {
	contenttestsuite.Run(t, "meta", func(ctx context.Context, t *testing.T) (context.Context, content.Store) {
		db := metatest.New(t)
		ctx = namespaces.WithNamespace(ctx, "suite")
		return leased(t, db, ctx), db.ContentStore()
	})
}

func TestContentSharedAcrossNamespaces(t *testing.T) {
	env := newEnv(t)
	db, cs := env.DB, env.DB.ContentStore()
	ns1 := leased(t, db, nsCtx(t, "ns1"))
	ns2 := leased(t, db, nsCtx(t, "ns2"))
	b := []byte("shared layer")
	d := blob(t, ns1, cs, b, map[string]string{"only": "ns1"})

	// ns2 asks to write what the backend already has: linked, no upload.
	_, err := cs.Writer(ns2, content.WithRef("fetch-shared"), content.WithDescriptor(d))
	if !errdefs.IsAlreadyExists(err) {
		t.Fatalf("writer for a digest another namespace committed: %v", err)
	}
	if sts, err := cs.ListStatuses(ns2); err != nil || len(sts) != 0 {
		t.Fatalf("ingests in ns2: %+v, %v", sts, err)
	}
	if sts, err := env.Content.ListStatuses(ns2); err != nil || len(sts) != 0 {
		t.Fatalf("backend ingests: %+v, %v", sts, err)
	}
	info, err := cs.Info(ns2, d.Digest)
	if err != nil || info.Size != d.Size || info.Labels["only"] != "" {
		t.Fatalf("linked blob in ns2: %+v, %v", info, err)
	}
	if got, err := content.ReadBlob(ns2, cs, d); err != nil || !bytes.Equal(got, b) {
		t.Fatalf("read linked blob: %q, %v", got, err)
	}

	// Delete in ns1 keeps the bytes: ns2 (its lease) still has them.
	if err := cs.Delete(ns1, d.Digest); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.Info(ns1, d.Digest); !errdefs.IsNotFound(err) {
		t.Fatalf("deleted in ns1: %v", err)
	}
	collect(t, db)
	if got, err := content.ReadBlob(ns2, cs, d); err != nil || !bytes.Equal(got, b) {
		t.Fatalf("blob of ns2 after delete in ns1 and a collection: %q, %v", got, err)
	}
	if _, err := env.Content.Info(ns1, d.Digest); err != nil {
		t.Fatalf("backend blob: %v", err)
	}
}

func TestContentIngestsAreNamespaced(t *testing.T) {
	db := newEnv(t).DB
	cs := db.ContentStore()
	ns1, ns2 := leased(t, db, nsCtx(t, "ns1")), leased(t, db, nsCtx(t, "ns2"))
	w1, err := cs.Writer(ns1, content.WithRef("same-ref"))
	if err != nil {
		t.Fatal(err)
	}
	defer w1.Close()
	// The same ref in another namespace is another ingest.
	w2, err := cs.Writer(ns2, content.WithRef("same-ref"))
	if err != nil {
		t.Fatalf("same ref in another namespace: %v", err)
	}
	defer w2.Close()
	if _, err := w1.Write([]byte("one")); err != nil {
		t.Fatal(err)
	}
	if _, err := w2.Write([]byte("two!")); err != nil {
		t.Fatal(err)
	}
	st1, err := cs.Status(ns1, "same-ref")
	if err != nil || st1.Offset != 3 || st1.Ref != "same-ref" {
		t.Fatalf("status in ns1: %+v, %v", st1, err)
	}
	st2, err := cs.Status(ns2, "same-ref")
	if err != nil || st2.Offset != 4 {
		t.Fatalf("status in ns2: %+v, %v", st2, err)
	}
	if _, err := cs.Status(nsCtx(t, "ns3"), "same-ref"); !errdefs.IsNotFound(err) {
		t.Fatalf("status in ns3: %v", err)
	}
	if err := w1.Commit(ns1, 3, digest.FromString("one")); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.Info(ns2, digest.FromString("one")); !errdefs.IsNotFound(err) {
		t.Fatalf("committed in ns1, seen in ns2: %v", err)
	}
	if err := cs.Abort(ns2, "same-ref"); !errdefs.IsUnavailable(err) {
		t.Fatalf("abort of an ingest with an open writer: %v", err)
	}
	w2.Close()
	if err := cs.Abort(ns2, "same-ref"); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.Status(ns2, "same-ref"); !errdefs.IsNotFound(err) {
		t.Fatalf("status after abort: %v", err)
	}
}

// TestContentIngestsSurviveCollection: an open ingest, leased or not, is
// never collected; an unleased one whose writer is closed expires only
// after a day.
func TestContentIngestsSurviveCollection(t *testing.T) {
	env := newEnv(t)
	db, cs := env.DB, env.DB.ContentStore()
	ctx := nsCtx(t, "ns")
	lctx := leased(t, db, ctx)
	wl, err := cs.Writer(lctx, content.WithRef("leased"))
	if err != nil {
		t.Fatal(err)
	}
	defer wl.Close()
	wu, err := cs.Writer(ctx, content.WithRef("unleased"))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []content.Writer{wl, wu} {
		if _, err := w.Write([]byte("partial")); err != nil {
			t.Fatal(err)
		}
	}
	wu.Close()
	id, _ := leasesFrom(lctx)
	res, err := db.Leases().ListResources(ctx, meta.Lease{ID: id})
	if err != nil || len(res) != 1 || res[0] != (meta.Resource{ID: "leased", Type: "ingests"}) {
		t.Fatalf("lease resources: %+v, %v", res, err)
	}
	collect(t, db)
	for _, ref := range []string{"leased", "unleased"} {
		if st, err := cs.Status(ctx, ref); err != nil || st.Offset != int64(len("partial")) {
			t.Errorf("ingest %q after a collection: %+v, %v", ref, st, err)
		}
	}
	if err := wl.Commit(ctx, 0, ""); err != nil {
		t.Fatalf("commit after a collection: %v", err)
	}
	d := digest.FromString("partial")
	if res, _ := db.Leases().ListResources(ctx, meta.Lease{ID: id}); len(res) != 1 || res[0].ID != d.String() {
		t.Fatalf("lease resources after commit: %+v", res)
	}
	if err := cs.Abort(ctx, "unleased"); err != nil {
		t.Fatal(err)
	}
	if sts, _ := env.Content.ListStatuses(ctx); len(sts) != 0 {
		t.Fatalf("backend ingests left: %+v", sts)
	}
	if _, err := cs.ReaderAt(ctx, ocispec.Descriptor{Digest: d}); err != nil {
		t.Fatal(err)
	}
}
