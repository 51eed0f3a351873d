package meta_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/content"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/meta"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestFirstCollectionKeepsWhatWritersRecord: the first collection after
// Open also removes backend blobs, ingests and snapshots that no record
// names. It runs here while leased writers in several namespaces prepare
// and commit snapshot chains (rebased where the backend can) and write
// blobs, some of them shared between namespaces, so that the backend
// operations of some sit between their reservation and their record.
// Whatever a writer recorded must still be in its backend afterwards:
// the reconcile takes cl and sl, which writers hold shared from the
// backend operation to the record.
func TestFirstCollectionKeepsWhatWritersRecord(t *testing.T) {
	for round := range 4 {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			env := newEnv(t)
			db := env.DB
			const writers, perWriter = 6, 10
			start := make(chan struct{})
			var wg sync.WaitGroup
			var ops atomic.Int64
			for w := range writers {
				wg.Add(2)
				ctx := leased(t, db, nsCtx(t, fmt.Sprintf("ns%d", w%3)))
				go func() {
					defer wg.Done()
					<-start
					writeSnapshots(t, ctx, db, w, perWriter, &ops)
				}()
				go func() {
					defer wg.Done()
					<-start
					writeBlobs(t, ctx, db, w, perWriter, &ops)
				}()
			}
			close(start)
			// The first collection, which reconciles, once the writers
			// are well under way.
			for ops.Load() < int64(4+round*10) {
				time.Sleep(100 * time.Microsecond)
			}
			collect(t, db)
			wg.Wait()
			// Check stats every recorded blob and snapshot in its backend.
			if err := db.Check(context.Background()); err != nil {
				t.Fatalf("after the first collection: %v", err)
			}
		})
	}
}

// writeSnapshots prepares and commits a chain of perWriter snapshots in
// every snapshotter, each committed onto the previous one: by the
// parent it was prepared on, or by snapshot.WithParent when the backend
// can rebase.
func writeSnapshots(t *testing.T, ctx context.Context, db *meta.DB, w, n int, ops *atomic.Int64) {
	for _, name := range db.Snapshotters() {
		sn := db.Snapshotter(name)
		rebase := snapshot.CanRebase(sn)
		parent := ""
		for i := range n {
			key := fmt.Sprintf("active-%d-%d", w, i)
			committed := fmt.Sprintf("layer-%d-%d", w, i)
			prepareOn, opts := parent, []snapshot.Opt(nil)
			if rebase && i%2 == 1 {
				prepareOn, opts = "", []snapshot.Opt{snapshot.WithParent(parent)}
			}
			if _, err := sn.Prepare(ctx, key, prepareOn); err != nil {
				t.Errorf("%s: prepare %q: %v", name, key, err)
				return
			}
			if err := sn.Commit(ctx, committed, key, opts...); err != nil {
				t.Errorf("%s: commit %q: %v", name, key, err)
				return
			}
			parent = committed
			ops.Add(1)
		}
	}
}

// writeBlobs writes n blobs, every third one the same in all namespaces,
// so that all but the first writer of it link the blob.
func writeBlobs(t *testing.T, ctx context.Context, db *meta.DB, w, n int, ops *atomic.Int64) {
	cs := db.ContentStore()
	for i := range n {
		b := []byte(fmt.Sprintf("writer %d blob %d", w, i))
		if i%3 == 0 {
			b = []byte(fmt.Sprintf("shared blob %d", i))
		}
		d := ocispec.Descriptor{Digest: digest.FromBytes(b), Size: int64(len(b))}
		err := content.WriteBlob(ctx, cs, fmt.Sprintf("fetch-%s", d.Digest), bytes.NewReader(b), d)
		if err != nil && !errdefs.IsAlreadyExists(err) {
			t.Errorf("write blob %d of writer %d: %v", i, w, err)
			return
		}
		ops.Add(1)
	}
}
