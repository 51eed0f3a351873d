package meta

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	eventsv1 "github.com/cri-runtime/cri-runtime/api/events/v1"
	"github.com/cri-runtime/cri-runtime/pkg/content"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/leases"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

// unleasedIngestExpiry is how long an ingest opened without a lease is
// kept by the collector after its writer was last opened.
const unleasedIngestExpiry = 24 * time.Hour

// Writer opens the namespace's ingest ref. When the expected digest is
// already in the namespace, or in the backend because another namespace
// committed it, the blob is linked into the namespace (and the lease of
// ctx) without any upload and AlreadyExists is returned.
func (cs *contentStore) Writer(ctx context.Context, opts ...content.WriterOpt) (content.Writer, error) {
	var wo content.WriterOpts
	for _, opt := range opts {
		if err := opt(&wo); err != nil {
			return nil, err
		}
	}
	if err := validateKey("ingest ref", wo.Ref); err != nil {
		return nil, err
	}
	ns, err := namespace(ctx)
	if err != nil {
		return nil, err
	}
	if wo.Desc.Digest != "" {
		if err := wo.Desc.Digest.Validate(); err != nil {
			return nil, fmt.Errorf("ingest %q: expected digest %q: %w: %w", wo.Ref, wo.Desc.Digest, err, errdefs.ErrInvalidArgument)
		}
	}
	db := cs.db
	db.cl.RLock()
	defer db.cl.RUnlock()
	w, t, err := cs.openIngest(ctx, ns, wo)
	if t != nil {
		db.committed(ctx, t)
	}
	return w, err
}

// openIngest is Writer under cl.RLock. It returns the transaction to
// report once every lock is released.
func (cs *contentStore) openIngest(ctx context.Context, ns string, wo content.WriterOpts) (content.Writer, *tx, error) {
	db := cs.db
	var existing *content.Info
	if wo.Desc.Digest != "" {
		if info, err := db.content.Info(ctx, wo.Desc.Digest); err == nil && (wo.Desc.Size == 0 || wo.Desc.Size == info.Size) {
			existing = &info
		}
	}
	db.wlock.RLock()
	defer db.wlock.RUnlock()
	var (
		linked bool
		bref   string
		fresh  bool
	)
	t, err := db.commit(func(t *tx) error {
		var err error
		if linked, err = linkBlob(ctx, t, ns, wo.Desc.Digest, existing); err != nil || linked {
			return err
		}
		bref, fresh, err = putIngest(ctx, t.Tx, ns, wo.Ref)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	if linked {
		return nil, t, fmt.Errorf("content %s: %w", wo.Desc.Digest, errdefs.ErrAlreadyExists)
	}
	if _, leased := leases.FromContext(ctx); !leased {
		db.expiresAt(time.Now().Add(unleasedIngestExpiry))
	}
	w, err := db.content.Writer(ctx, content.WithRef(bref), content.WithDescriptor(wo.Desc))
	if err == nil {
		db.holdIngest(bref, 1)
		return &namespacedWriter{Writer: w, db: db, ns: ns, ref: wo.Ref, bref: bref, ctx: ctx, desc: wo.Desc}, t, nil
	}
	// Undo the record this call made; AlreadyExists means another
	// namespace committed the blob since the check above.
	if _, uerr := db.commit(func(u *tx) error {
		if fresh {
			if err := deleteIngest(u.Tx, ns, wo.Ref); err != nil {
				return err
			}
		}
		if !errdefs.IsAlreadyExists(err) || wo.Desc.Digest == "" {
			return nil
		}
		info, ierr := db.content.Info(ctx, wo.Desc.Digest)
		if ierr != nil {
			return ierr
		}
		_, lerr := linkBlob(ctx, u, ns, wo.Desc.Digest, &info)
		return lerr
	}); uerr != nil {
		return nil, t, fmt.Errorf("ingest %q: %w (undo: %w)", wo.Ref, err, uerr)
	}
	return nil, t, fmt.Errorf("ingest %q: %w", wo.Ref, err)
}

// linkBlob makes the blob dgst visible in ns and leases it, if the
// namespace already has it or existing (its backend info) is set. It
// reports whether it did.
func linkBlob(ctx context.Context, t *tx, ns string, dgst digest.Digest, existing *content.Info) (bool, error) {
	if dgst == "" {
		return false, nil
	}
	if !hasBlob(t.Tx, ns, dgst) {
		if existing == nil {
			return false, nil
		}
		now := time.Now().UTC()
		if err := putBlob(t.Tx, ns, content.Info{Digest: dgst, Size: existing.Size, CreatedAt: now, UpdatedAt: now}); err != nil {
			return false, err
		}
		t.publish(ns, "/content/create", &eventsv1.ContentCreate{Digest: dgst.String(), Size: existing.Size})
	}
	return true, leaseResource(ctx, t.Tx, ns, bucketKeyContent, []byte(dgst))
}

// putIngest creates (or finds) the record of the ingest ref and leases it
// or, without a lease, sets its expiry. The backend ref is
// "<namespace>/<sequence>/<ref>": unique for the life of the file.
func putIngest(ctx context.Context, btx *bolt.Tx, ns, ref string) (bref string, fresh bool, err error) {
	ibkt, err := createNSBucket(btx, ns, bucketKeyContent, bucketKeyIngests)
	if err != nil {
		return "", false, err
	}
	bkt := ibkt.Bucket([]byte(ref))
	if bkt == nil {
		seq, err := nextBackendSeq(btx)
		if err != nil {
			return "", false, err
		}
		if bkt, err = ibkt.CreateBucket([]byte(ref)); err != nil {
			return "", false, err
		}
		bref = ns + "/" + strconv.FormatUint(seq, 10) + "/" + ref
		if err := bkt.Put(keyRef, []byte(bref)); err != nil {
			return "", false, err
		}
		fresh = true
	} else {
		bref = string(bkt.Get(keyRef))
	}
	if _, ok := leases.FromContext(ctx); ok {
		if err := bkt.Delete(keyExpireAt); err != nil {
			return "", false, err
		}
		return bref, fresh, leaseResource(ctx, btx, ns, bucketKeyIngests, []byte(ref))
	}
	return bref, fresh, putTime(bkt, keyExpireAt, time.Now().UTC().Add(unleasedIngestExpiry))
}

// holdIngest counts open writers of the backend ref bref; the collector
// never aborts an ingest that has one.
func (db *DB) holdIngest(bref string, delta int) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.openIngests[bref] += delta; db.openIngests[bref] <= 0 {
		delete(db.openIngests, bref)
	}
}

func (db *DB) ingestOpen(bref string) bool {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.openIngests[bref] > 0
}

// namespacedWriter writes a namespace's ingest through the backend's
// writer and records the blob in the namespace at Commit.
type namespacedWriter struct {
	content.Writer
	db        *DB
	ns        string
	ref       string
	bref      string
	ctx       context.Context // of Writer: its lease applies when Commit's ctx has none
	desc      ocispec.Descriptor
	closeOnce sync.Once
}

func (nw *namespacedWriter) release() {
	nw.closeOnce.Do(func() { nw.db.holdIngest(nw.bref, -1) })
}

// Close releases the ref; the ingest stays for a later resume.
func (nw *namespacedWriter) Close() error {
	defer nw.release()
	return nw.Writer.Close()
}

// Status is the backend's status under the namespace's ref.
func (nw *namespacedWriter) Status() (content.Status, error) {
	st, err := nw.Writer.Status()
	if err != nil {
		return content.Status{}, fmt.Errorf("ingest %q: %w", nw.ref, err)
	}
	st.Ref = nw.ref
	return st, nil
}

// Commit commits the blob in the backend and records it in the namespace,
// with the labels of opts, and in the lease of ctx (or of the Writer's
// ctx). AlreadyExists if the namespace already had it.
func (nw *namespacedWriter) Commit(ctx context.Context, size int64, expected digest.Digest, opts ...content.Opt) error {
	var base content.Info
	for _, opt := range opts {
		if err := opt(&base); err != nil {
			return err
		}
	}
	if err := validateLabels(base.Labels); err != nil {
		return fmt.Errorf("ingest %q: %w", nw.ref, err)
	}
	if _, ok := leases.FromContext(ctx); !ok {
		if id, ok := leases.FromContext(nw.ctx); ok {
			ctx = leases.WithLease(ctx, id)
		}
	}
	// The data's fsync, the slow part, runs before any lock: the
	// backend's own Commit then has little left to sync.
	if sy, ok := nw.Writer.(content.Syncer); ok {
		if err := sy.Sync(); err != nil {
			return fmt.Errorf("ingest %q: %w", nw.ref, err)
		}
	}
	db := nw.db
	db.cl.RLock()
	t, err := nw.commit(ctx, size, expected, base.Labels)
	db.cl.RUnlock()
	if t != nil {
		db.committed(ctx, t)
	}
	return err
}

// commit is Commit under cl.RLock, which keeps the collector from
// removing the new blob from the backend before its record exists. The
// writers' interlock is held for the record's transaction only, not for
// the backend's commit.
func (nw *namespacedWriter) commit(ctx context.Context, size int64, expected digest.Digest, labels map[string]string) (*tx, error) {
	db := nw.db
	st, err := nw.Writer.Status()
	if err != nil {
		return nil, fmt.Errorf("ingest %q: %w", nw.ref, err)
	}
	err = nw.Writer.Commit(ctx, size, expected)
	if err != nil && !errdefs.IsAlreadyExists(err) {
		return nil, fmt.Errorf("ingest %q: %w", nw.ref, err)
	}
	nw.release()
	dgst, bsize := nw.Writer.Digest(), st.Offset
	if expected != "" {
		dgst = expected
	}
	if err != nil { // the backend had it: trust its size
		info, ierr := db.content.Info(ctx, dgst)
		if ierr != nil {
			return nil, fmt.Errorf("ingest %q: %w", nw.ref, ierr)
		}
		bsize = info.Size
	}
	var exists bool
	db.wlock.RLock()
	defer db.wlock.RUnlock()
	t, err := db.commit(func(t *tx) error {
		if err := deleteIngest(t.Tx, nw.ns, nw.ref); err != nil {
			return err
		}
		exists = hasBlob(t.Tx, nw.ns, dgst)
		if !exists {
			now := time.Now().UTC()
			if err := putBlob(t.Tx, nw.ns, content.Info{Digest: dgst, Size: bsize, CreatedAt: now, UpdatedAt: now, Labels: labels}); err != nil {
				return err
			}
			t.publish(nw.ns, "/content/create", &eventsv1.ContentCreate{Digest: dgst.String(), Size: bsize})
		}
		return leaseIfLive(ctx, t.Tx, nw.ns, bucketKeyContent, []byte(dgst))
	})
	if err != nil {
		// The backend has the blob but no namespace may: let the
		// collector decide.
		db.mu.Lock()
		db.pendingContent[dgst] = struct{}{}
		db.mu.Unlock()
		return nil, fmt.Errorf("ingest %q: %w", nw.ref, err)
	}
	if exists {
		return t, fmt.Errorf("content %s: %w", dgst, errdefs.ErrAlreadyExists)
	}
	return t, nil
}
