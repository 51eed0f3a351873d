package meta_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/content"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/meta/gc"
	"github.com/cri-runtime/cri-runtime/pkg/meta/metatest"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// inBackend reports whether the backend has the blob.
func inBackend(t *testing.T, env *metatest.Env, d ocispec.Descriptor) bool {
	t.Helper()
	_, err := env.Content.Info(context.Background(), d.Digest)
	if err != nil && !errdefs.IsNotFound(err) {
		t.Fatal(err)
	}
	return err == nil
}

func inNamespace(t *testing.T, db *meta.DB, ctx context.Context, d ocispec.Descriptor) bool {
	t.Helper()
	_, err := db.ContentStore().Info(ctx, d.Digest)
	if err != nil && !errdefs.IsNotFound(err) {
		t.Fatal(err)
	}
	return err == nil
}

func TestGCImageDelete(t *testing.T) {
	env := newEnv(t)
	db := env.DB
	ns1, ns2 := nsCtx(t, "ns1"), nsCtx(t, "ns2")
	a := pushImage(t, ns1, db, "r/a:1", []byte("layer a"), []byte("shared layer"))
	b := pushImage(t, ns1, db, "r/b:1", []byte("layer b"), []byte("shared layer"))
	c := pushImage(t, ns2, db, "r/c:1", []byte("layer c"), []byte("layer a"))
	st := collect(t, db)
	if len(st.Removed) != 0 && st.Removed[gc.ResourceContent] != 0 {
		t.Fatalf("a collection with nothing to collect removed %v", st.Removed)
	}

	if err := db.Images().Delete(ns1, "r/a:1"); err != nil {
		t.Fatal(err)
	}
	st = collect(t, db)
	if st.Removed[gc.ResourceContent] != 3 {
		t.Errorf("removed %v, want a's manifest, config and own layer", st.Removed)
	}
	if st.MetaD <= 0 || st.ContentD <= 0 {
		t.Errorf("stats %+v", st)
	}
	for _, d := range []ocispec.Descriptor{a.manifest, a.config, a.layers[0]} {
		if inNamespace(t, db, ns1, d) {
			t.Errorf("blob %s of the deleted image still in ns1", d.Digest)
		}
	}
	for _, d := range []ocispec.Descriptor{a.manifest, a.config} {
		if inBackend(t, env, d) {
			t.Errorf("blob %s of the deleted image still in the backend", d.Digest)
		}
	}
	if !inBackend(t, env, a.layers[0]) || !inNamespace(t, db, ns2, c.layers[1]) {
		t.Errorf("layer a, used by ns2's image, is gone")
	}
	for _, d := range b.blobs() {
		if !inNamespace(t, db, ns1, d) || !inBackend(t, env, d) {
			t.Errorf("blob %s of image b is gone", d.Digest)
		}
	}
	for _, d := range c.blobs() {
		if !inNamespace(t, db, ns2, d) {
			t.Errorf("blob %s of ns2 is gone", d.Digest)
		}
	}
}

func TestGCSynchronousDelete(t *testing.T) {
	env := metatest.NewEnv(t) // the default policy: the scheduler runs
	db := env.DB
	ctx := nsCtx(t, "ns")
	lctx := leased(t, db, ctx)
	img := pushImage(t, lctx, db, "r/a:1", []byte("layer"))
	id, _ := leasesFrom(lctx)
	if err := db.Leases().Delete(ctx, meta.Lease{ID: id}, meta.SynchronousDelete()); err != nil {
		t.Fatal(err)
	}
	for _, d := range img.blobs() {
		if !inBackend(t, env, d) {
			t.Fatalf("blob %s of a live image collected", d.Digest)
		}
	}
	if err := db.Images().Delete(ctx, "r/a:1", meta.SynchronousDelete()); err != nil {
		t.Fatal(err)
	}
	for _, d := range img.blobs() {
		if inBackend(t, env, d) || inNamespace(t, db, ctx, d) {
			t.Errorf("blob %s still there when a synchronous delete returned", d.Digest)
		}
	}
}

// TestGCRaceWithIngests: leased ingests in several namespaces, some of
// them of blobs another goroutine keeps creating as garbage, while the
// collector runs in a loop. Every leased blob must survive and verify.
func TestGCRaceWithIngests(t *testing.T) {
	env := newEnv(t)
	db, cs := env.DB, env.DB.ContentStore()
	const writers, perWriter = 8, 12
	payload := func(w, i int) []byte {
		if i%3 == 0 { // also written, unleased, by the garbage maker
			return []byte(fmt.Sprintf("contended blob %d", i))
		}
		return bytes.Repeat([]byte(fmt.Sprintf("writer %d blob %d;", w, i)), 1+i*100)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var runs atomic.Int64
	var bg sync.WaitGroup
	bg.Add(2)
	go func() { // the collector, forced in a loop
		defer bg.Done()
		for ctx.Err() == nil {
			if _, err := db.GarbageCollect(ctx); err != nil && ctx.Err() == nil {
				t.Errorf("collect: %v", err)
				return
			}
			runs.Add(1)
		}
	}()
	go func() { // garbage: unleased blobs, deleted or left unreferenced
		defer bg.Done()
		gctx := nsCtx(t, "garbage")
		for i := 0; ctx.Err() == nil; i++ {
			b := []byte(fmt.Sprintf("contended blob %d", i%perWriter))
			d := ocispec.Descriptor{Digest: digest.FromBytes(b), Size: int64(len(b))}
			if err := content.WriteBlob(gctx, cs, fmt.Sprintf("g-%d", i), bytes.NewReader(b), d); err != nil {
				t.Errorf("garbage write: %v", err)
				return
			}
			if i%2 == 0 {
				if err := cs.Delete(gctx, d.Digest); err != nil && !errdefs.IsNotFound(err) {
					t.Errorf("garbage delete: %v", err)
					return
				}
			}
		}
	}()

	var wg sync.WaitGroup
	type leasedBlob struct {
		ctx  context.Context
		desc ocispec.Descriptor
		data []byte
	}
	results := make([][]leasedBlob, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wctx := leased(t, db, nsCtx(t, fmt.Sprintf("ns%d", w%3)))
			for i := range perWriter {
				b := payload(w, i)
				d := ocispec.Descriptor{Digest: digest.FromBytes(b), Size: int64(len(b))}
				ref := fmt.Sprintf("w%d-%d", w, i)
				if err := content.WriteBlob(wctx, cs, ref, bytes.NewReader(b), d); err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
				results[w] = append(results[w], leasedBlob{ctx: wctx, desc: d, data: b})
			}
		}()
	}
	wg.Wait()
	for runs.Load() < 3 && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	cancel()
	bg.Wait()
	collect(t, db)
	t.Logf("%d collections ran during the ingests", runs.Load())
	for w, rs := range results {
		if len(rs) != perWriter {
			t.Errorf("writer %d committed %d blobs", w, len(rs))
		}
		for _, r := range rs {
			got, err := content.ReadBlob(r.ctx, cs, r.desc)
			if err != nil {
				t.Errorf("leased blob %s: %v", r.desc.Digest, err)
				continue
			}
			if !bytes.Equal(got, r.data) || digest.FromBytes(got) != r.desc.Digest {
				t.Errorf("leased blob %s does not verify", r.desc.Digest)
			}
		}
	}
}

// TestGCReconcilesBackends: the first collection removes what a crash
// left in the backends with no record.
func TestGCReconcilesBackends(t *testing.T) {
	env := newEnv(t)
	db := env.DB
	ctx := nsCtx(t, "ns")
	kept := blob(t, leased(t, db, ctx), db.ContentStore(), []byte("recorded"), nil)
	orphan := []byte("orphan")
	od := ocispec.Descriptor{Digest: digest.FromBytes(orphan), Size: int64(len(orphan))}
	if err := content.WriteBlob(ctx, env.Content, "orphan", bytes.NewReader(orphan), od); err != nil {
		t.Fatal(err)
	}
	w, err := env.Content.Writer(ctx, content.WithRef("ns/99/orphan-ingest"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("half")); err != nil {
		t.Fatal(err)
	}
	w.Close()
	backend := env.Snapshotters["native"]
	if _, err := backend.Prepare(ctx, "ns/99/p", ""); err != nil {
		t.Fatal(err)
	}
	if err := backend.Commit(ctx, "ns/100/orphan-parent", "ns/99/p"); err != nil {
		t.Fatal(err)
	}
	if _, err := backend.Prepare(ctx, "ns/101/orphan-child", "ns/100/orphan-parent"); err != nil {
		t.Fatal(err)
	}

	collect(t, db)
	if inBackend(t, env, od) || !inBackend(t, env, kept) {
		t.Errorf("reconcile: orphan blob kept %v, recorded blob kept %v", inBackend(t, env, od), inBackend(t, env, kept))
	}
	if sts, _ := env.Content.ListStatuses(ctx); len(sts) != 0 {
		t.Errorf("orphan ingests left: %+v", sts)
	}
	var left []string
	_ = backend.Walk(ctx, func(_ context.Context, i snapshot.Info) error {
		left = append(left, i.Name)
		return nil
	})
	if len(left) != 0 {
		t.Errorf("orphan snapshots left: %q", left)
	}
}

func TestGCMutationCallback(t *testing.T) {
	db := newEnv(t).DB
	ctx := nsCtx(t, "ns")
	var mu sync.Mutex
	var seen []bool
	db.RegisterMutationCallback(func(dirty bool) {
		mu.Lock()
		seen = append(seen, dirty)
		mu.Unlock()
	})
	if _, err := db.Sandboxes().Create(ctx, meta.Sandbox{ID: "s", Runtime: meta.Runtime{Name: "runc"}}); err != nil {
		t.Fatal(err)
	}
	if err := db.Sandboxes().Delete(ctx, "s"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if got := fmt.Sprint(seen); got != "[false true]" {
		t.Fatalf("callbacks %s, want [false true]", got)
	}
	if !strings.Contains(fmt.Sprint(db.Snapshotters()), "native") {
		t.Fatalf("snapshotters %v", db.Snapshotters())
	}
}
