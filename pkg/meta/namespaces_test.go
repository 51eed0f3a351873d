package meta_test

import (
	"context"
	"strings"
	"testing"

	"github.com/cri-runtime/cri-runtime/pkg/content"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
)

func TestNamespaceIsolation(t *testing.T) {
	env := newEnv(t)
	db := env.DB
	ns1, ns2 := nsCtx(t, "ns1"), nsCtx(t, "ns2")
	if err := db.Namespaces().Create(ns2, "ns2", nil); err != nil {
		t.Fatal(err)
	}
	img := pushImage(t, ns1, db, "docker.io/library/a:1", []byte("layer a"))

	if _, err := db.Images().Get(ns2, "docker.io/library/a:1"); !errdefs.IsNotFound(err) {
		t.Errorf("image of ns1 seen from ns2: %v", err)
	}
	if list, err := db.Images().List(ns2); err != nil || len(list) != 0 {
		t.Errorf("images listed in ns2: %v, %v", list, err)
	}
	for _, d := range img.blobs() {
		if _, err := db.ContentStore().Info(ns2, d.Digest); !errdefs.IsNotFound(err) {
			t.Errorf("blob %s of ns1 seen from ns2: %v", d.Digest, err)
		}
		if _, err := db.ContentStore().ReaderAt(ns2, d); !errdefs.IsNotFound(err) {
			t.Errorf("blob %s of ns1 readable from ns2: %v", d.Digest, err)
		}
	}
	n := 0
	if err := db.ContentStore().Walk(ns2, func(content.Info) error { n++; return nil }); err != nil || n != 0 {
		t.Errorf("walk of ns2 saw %d blobs, %v", n, err)
	}

	// ns1 was created by its first write.
	if _, err := db.Namespaces().Get(ns1, "ns1"); err != nil {
		t.Fatalf("implicit namespace: %v", err)
	}
	err := db.Namespaces().Delete(ns1, "ns1")
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), `namespace "ns1" must be empty, but it still has images, content`) {
		t.Fatalf("delete of a non-empty namespace: %v", err)
	}
	if err := db.Images().Delete(ns1, "docker.io/library/a:1"); err != nil {
		t.Fatal(err)
	}
	err = db.Namespaces().Delete(ns1, "ns1")
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "still has content: ") {
		t.Fatalf("delete with content left: %v", err)
	}
	for _, d := range img.blobs() {
		if err := db.ContentStore().Delete(ns1, d.Digest); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Namespaces().Delete(ns1, "ns1"); err != nil {
		t.Fatalf("delete of an empty namespace: %v", err)
	}
	if _, err := db.Namespaces().Get(ns1, "ns1"); !errdefs.IsNotFound(err) {
		t.Fatalf("deleted namespace: %v", err)
	}
	// Its blobs go from the backend at the next collection.
	collect(t, db)
	for _, d := range img.blobs() {
		if _, err := env.Content.Info(ns1, d.Digest); !errdefs.IsNotFound(err) {
			t.Errorf("blob %s of the deleted namespace still in the backend: %v", d.Digest, err)
		}
	}
}

func TestNamespaceCRUD(t *testing.T) {
	rec := &recorder{}
	db := newEnv(t, meta.WithPublisher(rec)).DB
	ctx := context.Background()
	nss := db.Namespaces()
	if err := nss.Create(ctx, "a", map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	if err := nss.Create(ctx, "a", nil); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("second create: %v", err)
	}
	if err := nss.Create(ctx, "-bad", nil); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "-bad") {
		t.Fatalf("bad name: %v", err)
	}
	if err := nss.SetLabel(ctx, "a", "k2", "v2"); err != nil {
		t.Fatal(err)
	}
	if err := nss.SetLabel(ctx, "a", "k", ""); err != nil {
		t.Fatal(err)
	}
	if err := nss.SetLabel(ctx, "nope", "k", "v"); !errdefs.IsNotFound(err) {
		t.Fatalf("label of a missing namespace: %v", err)
	}
	got, err := nss.Get(ctx, "a")
	if err != nil || len(got.Labels) != 1 || got.Labels["k2"] != "v2" {
		t.Fatalf("get: %+v, %v", got, err)
	}
	if err := nss.Create(ctx, "b", nil); err != nil {
		t.Fatal(err)
	}
	list, err := nss.List(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "a" || list[1].Name != "b" {
		t.Fatalf("list: %+v, %v", list, err)
	}
	if err := nss.Delete(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if err := nss.Delete(ctx, "b"); !errdefs.IsNotFound(err) {
		t.Fatalf("second delete: %v", err)
	}
	rec.has(t, "a /namespaces/create", "a /namespaces/update", "b /namespaces/delete")
}
