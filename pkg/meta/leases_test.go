package meta_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/leases"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/meta/gc"
	"github.com/cri-runtime/cri-runtime/pkg/meta/metatest"
)

func TestLeaseLifecycle(t *testing.T) {
	db := newEnv(t).DB
	ctx := nsCtx(t, "ns")
	lm := db.Leases()
	l, err := lm.Create(ctx, meta.WithLeaseID("pull-1"), meta.WithLeaseLabels(map[string]string{"k": "v"}), meta.WithExpiration(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if l.ID != "pull-1" || l.CreatedAt.IsZero() || l.ExpiresAt.Sub(time.Now()) < 59*time.Minute || l.Labels[meta.LabelGCExpire] == "" {
		t.Fatalf("created lease: %+v", l)
	}
	if _, err := lm.Create(ctx, meta.WithLeaseID("pull-1")); !errdefs.IsAlreadyExists(err) {
		t.Fatalf("second create: %v", err)
	}
	if _, err := lm.Create(ctx); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("lease without an ID: %v", err)
	}
	if _, err := lm.Create(ctx, meta.WithLeaseID("a/b")); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("bad lease ID: %v", err)
	}
	r, err := lm.Create(ctx, meta.WithRandomID())
	if err != nil || r.ID == "" || !r.ExpiresAt.IsZero() {
		t.Fatalf("random lease: %+v, %v", r, err)
	}

	list, err := lm.List(ctx, "labels.k==v")
	if err != nil || len(list) != 1 || list[0].ID != "pull-1" || !list[0].ExpiresAt.Equal(l.ExpiresAt) {
		t.Fatalf("list by label: %+v, %v", list, err)
	}
	if list, err := lm.List(ctx, "id=="+r.ID); err != nil || len(list) != 1 {
		t.Fatalf("list by id: %+v, %v", list, err)
	}

	// Resources.
	d := blob(t, leases.WithLease(ctx, l.ID), db.ContentStore(), []byte("held"), nil)
	if _, err := db.Snapshotter("native").Prepare(leases.WithLease(ctx, l.ID), "k1", ""); err != nil {
		t.Fatal(err)
	}
	res, err := lm.ListResources(ctx, l)
	want := []meta.Resource{{ID: d.Digest.String(), Type: "content"}, {ID: "k1", Type: "snapshots/native"}}
	if err != nil || !slices.Equal(res, want) {
		t.Fatalf("resources: %+v, %v; want %+v", res, err, want)
	}
	if err := lm.AddResource(ctx, r, meta.Resource{ID: d.Digest.String(), Type: "content"}); err != nil {
		t.Fatal(err)
	}
	if err := lm.AddResource(ctx, r, meta.Resource{ID: "sha256:", Type: "content"}); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("bad digest: %v", err)
	}
	if err := lm.AddResource(ctx, r, meta.Resource{ID: "k9", Type: "snapshots/native"}); !errdefs.IsNotFound(err) {
		t.Fatalf("missing snapshot: %v", err)
	}
	if err := lm.AddResource(ctx, r, meta.Resource{ID: "k1", Type: "volumes"}); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("unknown type: %v", err)
	}
	if err := lm.AddResource(ctx, meta.Lease{ID: "nope"}, meta.Resource{ID: "k1", Type: "snapshots/native"}); !errdefs.IsNotFound(err) {
		t.Fatalf("missing lease: %v", err)
	}
	if err := lm.DeleteResource(ctx, l, meta.Resource{ID: "k1", Type: "snapshots/native"}); err != nil {
		t.Fatal(err)
	}
	if res, _ := lm.ListResources(ctx, l); len(res) != 1 {
		t.Fatalf("resources after delete: %+v", res)
	}

	// What only a deleted lease held goes with the next collection;
	// what another lease holds stays.
	if err := lm.Delete(ctx, l); err != nil {
		t.Fatal(err)
	}
	if err := lm.Delete(ctx, l); !errdefs.IsNotFound(err) {
		t.Fatalf("second delete: %v", err)
	}
	st := collect(t, db)
	if st.Removed[gc.ResourceSnapshot] != 1 {
		t.Errorf("removed %v, want the snapshot", st.Removed)
	}
	if _, err := db.Snapshotter("native").Stat(ctx, "k1"); !errdefs.IsNotFound(err) {
		t.Errorf("snapshot of the deleted lease: %v", err)
	}
	if _, err := db.ContentStore().Info(ctx, d.Digest); err != nil {
		t.Errorf("blob of the live lease: %v", err)
	}
	if err := lm.Delete(ctx, r, meta.SynchronousDelete()); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ContentStore().Info(ctx, d.Digest); !errdefs.IsNotFound(err) {
		t.Errorf("blob after a synchronous delete of its lease: %v", err)
	}
}

func TestLeaseExpiry(t *testing.T) {
	db := newEnv(t).DB
	ctx := nsCtx(t, "ns")
	short, err := db.Leases().Create(ctx, meta.WithLeaseID("short"), meta.WithExpiration(300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	d := blob(t, leases.WithLease(ctx, short.ID), db.ContentStore(), []byte("short-lived"), nil)
	collect(t, db)
	if _, err := db.ContentStore().Info(ctx, d.Digest); err != nil {
		t.Fatalf("blob of an unexpired lease: %v", err)
	}
	time.Sleep(time.Until(short.ExpiresAt) + 10*time.Millisecond)
	st := collect(t, db)
	if st.Removed[gc.ResourceLease] != 1 || st.Removed[gc.ResourceContent] != 1 {
		t.Errorf("removed %v, want the lease and its blob", st.Removed)
	}
	if list, _ := db.Leases().List(ctx); len(list) != 0 {
		t.Errorf("expired lease still listed: %+v", list)
	}
	if _, err := db.ContentStore().Info(ctx, d.Digest); !errdefs.IsNotFound(err) {
		t.Errorf("blob of an expired lease: %v", err)
	}
}

func TestWithLease(t *testing.T) {
	db := newEnv(t).DB
	ctx := nsCtx(t, "ns")
	lctx, done, err := meta.WithLease(ctx, db.Leases())
	if err != nil {
		t.Fatal(err)
	}
	id, ok := leases.FromContext(lctx)
	if !ok {
		t.Fatal("no lease in ctx")
	}
	list, _ := db.Leases().List(ctx)
	if len(list) != 1 || list[0].ID != id || time.Until(list[0].ExpiresAt) < 23*time.Hour {
		t.Fatalf("leases: %+v", list)
	}
	// Nested: the same lease, a done that does nothing.
	nctx, ndone, err := meta.WithLease(lctx, db.Leases())
	if err != nil {
		t.Fatal(err)
	}
	if nid, _ := leases.FromContext(nctx); nid != id {
		t.Fatalf("nested lease %q, want %q", nid, id)
	}
	if err := ndone(ctx); err != nil {
		t.Fatal(err)
	}
	if list, _ := db.Leases().List(ctx); len(list) != 1 {
		t.Fatalf("nested done deleted the lease")
	}
	// done works with any context: it knows the namespace.
	if err := done(context.Background()); err != nil {
		t.Fatal(err)
	}
	if list, _ := db.Leases().List(ctx); len(list) != 0 {
		t.Fatalf("lease left after done: %+v", list)
	}
}

// Regression: an expired lease was collected only when something else
// triggered a collection, so an idle node kept what it held for as long
// as it stayed idle. A collection now runs at the next expiry.
func TestExpiredLeaseCollectedOnIdleNode(t *testing.T) {
	p := gc.DefaultPolicy()
	p.StartupDelay = gc.Duration(10 * time.Millisecond)
	p.MutationThreshold = 0       // no run for writes
	p.DeletionThreshold = 1 << 30 // nor for deletions
	env := metatest.NewEnv(t, meta.WithGCPolicy(p))
	ctx := nsCtx(t, "ns")
	l, err := env.DB.Leases().Create(ctx, meta.WithRandomID(), meta.WithExpiration(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	d := blob(t, leases.WithLease(ctx, l.ID), env.DB.ContentStore(), []byte("held for a second"), nil)
	start := time.Now()
	for {
		_, err := env.Content.Info(ctx, d.Digest)
		if errdefs.IsNotFound(err) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("blob of a lease that expired after 1 s still there after %v", time.Since(start))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if el := time.Since(start); el < 900*time.Millisecond {
		t.Fatalf("blob removed after %v, before its lease expired", el)
	}
	if _, err := env.DB.Leases().List(ctx, "id=="+l.ID); err != nil {
		t.Fatal(err)
	}
}

func TestSetExpiry(t *testing.T) {
	db := newEnv(t).DB
	ctx := nsCtx(t, "ns")
	lm := db.Leases()
	l, err := lm.Create(ctx, meta.WithRandomID(), meta.WithExpiration(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(2 * time.Hour).Truncate(time.Second)
	got, err := lm.SetExpiry(ctx, l.ID, at)
	if err != nil || !got.ExpiresAt.Equal(at) {
		t.Fatalf("set expiry: %+v, %v", got, err)
	}
	list, err := lm.List(ctx, "id=="+l.ID)
	if err != nil || len(list) != 1 || !list[0].ExpiresAt.Equal(at) {
		t.Fatalf("after set: %+v, %v", list, err)
	}
	if got, err := lm.SetExpiry(ctx, l.ID, time.Time{}); err != nil || !got.ExpiresAt.IsZero() || got.Labels[meta.LabelGCExpire] != "" {
		t.Fatalf("clear expiry: %+v, %v", got, err)
	}
	if _, err := lm.SetExpiry(ctx, "nope", at); !errdefs.IsNotFound(err) {
		t.Fatalf("unknown lease: %v", err)
	}
}
