package meta

import (
	"context"
	"fmt"
	"maps"
	"strconv"
	"time"

	eventsv1 "github.com/cri-runtime/cri-runtime/api/events/v1"
	"github.com/cri-runtime/cri-runtime/pkg/content"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/filters"
	"github.com/cri-runtime/cri-runtime/pkg/labels"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

// contentStore is the namespaced view of the content store: the backend
// holds every blob once, and a namespace sees the blobs it has a record
// of. See doc.go.
type contentStore struct{ db *DB }

var _ content.Store = (*contentStore)(nil)

// Info returns the record of the blob dgst in the namespace of ctx.
func (cs *contentStore) Info(ctx context.Context, dgst digest.Digest) (content.Info, error) {
	ns, err := namespace(ctx)
	if err != nil {
		return content.Info{}, err
	}
	var info content.Info
	err = cs.db.view(ctx, func(btx *bolt.Tx) error {
		var err error
		info, err = readBlob(btx, ns, dgst)
		return err
	})
	return info, err
}

// readBlob returns the record of dgst in ns: NotFound if there is none,
// Internal if it is corrupt.
func readBlob(btx *bolt.Tx, ns string, dgst digest.Digest) (content.Info, error) {
	v := getBlob(btx, ns, dgst)
	if v == nil {
		return content.Info{}, fmt.Errorf("content %s: %w", dgst, errdefs.ErrNotFound)
	}
	info, ok := decodeBlob(dgst, v)
	if !ok {
		return content.Info{}, internalf("content %s: corrupt record", dgst)
	}
	return info, nil
}

// Update changes the labels of the blob's record ("labels",
// "labels.<key>"; none means "labels").
func (cs *contentStore) Update(ctx context.Context, info content.Info, fieldpaths ...string) (content.Info, error) {
	ns, err := namespace(ctx)
	if err != nil {
		return content.Info{}, err
	}
	if len(fieldpaths) == 0 {
		fieldpaths = []string{"labels"}
	}
	var updated content.Info
	err = cs.db.update(ctx, func(t *tx) error {
		var err error
		if updated, err = readBlob(t.Tx, ns, info.Digest); err != nil {
			return err
		}
		before := maps.Clone(updated.Labels)
		for _, p := range fieldpaths {
			if !labels.ApplyPath(&updated.Labels, info.Labels, "labels", p) {
				return fmt.Errorf("content %s: cannot update field %q: %w", info.Digest, p, errdefs.ErrInvalidArgument)
			}
		}
		if err := validateLabels(updated.Labels); err != nil {
			return fmt.Errorf("content %s: %w", info.Digest, err)
		}
		t.dirty = droppedRefs(before, updated.Labels)
		updated.UpdatedAt = time.Now().UTC()
		return putBlob(t.Tx, ns, updated)
	})
	if err != nil {
		return content.Info{}, err
	}
	return updated, nil
}

// Walk calls fn, outside any transaction, for each blob of the namespace
// matching any of fs (fields: digest, size, labels.<key>).
func (cs *contentStore) Walk(ctx context.Context, fn content.WalkFunc, fs ...string) error {
	ns, err := namespace(ctx)
	if err != nil {
		return err
	}
	filter, err := filters.ParseAll(fs...)
	if err != nil {
		return err
	}
	var infos []content.Info
	err = cs.db.view(ctx, func(btx *bolt.Tx) error {
		bkt := blobsBucket(btx, ns)
		if bkt == nil {
			return nil
		}
		return bkt.ForEach(func(k, v []byte) error {
			info, ok := decodeBlob(digest.Digest(k), v)
			if !ok {
				return internalf("content %s: corrupt record", k)
			}
			f := fields("digest", info.Digest.String(), "size", strconv.FormatInt(info.Size, 10))
			if filter.Match(filters.Map(f, info.Labels)) {
				infos = append(infos, info)
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	for _, info := range infos {
		if err := errIfCanceled(ctx, "content walk"); err != nil {
			return err
		}
		if err := fn(info); err != nil {
			return err
		}
	}
	return nil
}

// Delete removes the namespace's record of the blob and every lease's
// hold on it. The bytes stay in the backend until the collector finds no
// namespace referencing them.
func (cs *contentStore) Delete(ctx context.Context, dgst digest.Digest) error {
	ns, err := namespace(ctx)
	if err != nil {
		return err
	}
	return cs.db.update(ctx, func(t *tx) error {
		bbkt := blobsBucket(t.Tx, ns)
		if bbkt == nil || bbkt.Get([]byte(dgst)) == nil {
			return fmt.Errorf("content %s: %w", dgst, errdefs.ErrNotFound)
		}
		if err := bbkt.Delete([]byte(dgst)); err != nil {
			return err
		}
		if err := unleaseEverywhere(t.Tx, ns, bucketKeyContent, []byte(dgst)); err != nil {
			return err
		}
		t.dirty = true
		t.deletedContent = append(t.deletedContent, dgst)
		t.publish(ns, "/content/delete", &eventsv1.ContentDelete{Digest: dgst.String()})
		return nil
	})
}

// ReaderAt opens the blob if the namespace has it.
func (cs *contentStore) ReaderAt(ctx context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	ns, err := namespace(ctx)
	if err != nil {
		return nil, err
	}
	err = cs.db.view(ctx, func(btx *bolt.Tx) error {
		if !hasBlob(btx, ns, desc.Digest) {
			return fmt.Errorf("content %s: %w", desc.Digest, errdefs.ErrNotFound)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return cs.db.content.ReaderAt(ctx, desc)
}

// ingestBucket returns the record of the namespace's ingest ref.
func ingestBucket(btx *bolt.Tx, ns, ref string) *bolt.Bucket {
	return nsBucket(btx, ns, bucketKeyContent, bucketKeyIngests, []byte(ref))
}

// backendRef returns the backend's ref of the namespace's ingest ref.
func (cs *contentStore) backendRef(ctx context.Context, ns, ref string) (string, error) {
	var bref string
	err := cs.db.view(ctx, func(btx *bolt.Tx) error {
		if bkt := ingestBucket(btx, ns, ref); bkt != nil {
			bref = string(bkt.Get(keyRef))
		}
		if bref == "" {
			return fmt.Errorf("ingest %q: %w", ref, errdefs.ErrNotFound)
		}
		return nil
	})
	return bref, err
}

// Status returns the state of the namespace's ingest ref.
func (cs *contentStore) Status(ctx context.Context, ref string) (content.Status, error) {
	ns, err := namespace(ctx)
	if err != nil {
		return content.Status{}, err
	}
	bref, err := cs.backendRef(ctx, ns, ref)
	if err != nil {
		return content.Status{}, err
	}
	st, err := cs.db.content.Status(ctx, bref)
	if err != nil {
		return content.Status{}, fmt.Errorf("ingest %q: %w", ref, err)
	}
	st.Ref = ref
	return st, nil
}

// ListStatuses returns the namespace's ingests matching any of fs
// (fields: ref, expected, total).
func (cs *contentStore) ListStatuses(ctx context.Context, fs ...string) ([]content.Status, error) {
	ns, err := namespace(ctx)
	if err != nil {
		return nil, err
	}
	filter, err := filters.ParseAll(fs...)
	if err != nil {
		return nil, err
	}
	var refs, brefs []string
	err = cs.db.view(ctx, func(btx *bolt.Tx) error {
		bkt := nsBucket(btx, ns, bucketKeyContent, bucketKeyIngests)
		if bkt == nil {
			return nil
		}
		return bkt.ForEachBucket(func(k []byte) error {
			refs = append(refs, string(k))
			brefs = append(brefs, string(bkt.Bucket(k).Get(keyRef)))
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	var list []content.Status
	for i, bref := range brefs {
		st, err := cs.db.content.Status(ctx, bref)
		if errdefs.IsNotFound(err) {
			continue // opened, not yet written, or aborted meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("ingest %q: %w", refs[i], err)
		}
		st.Ref = refs[i]
		f := fields("ref", st.Ref, "expected", st.Expected.String(), "total", strconv.FormatInt(st.Total, 10))
		if filter.Match(filters.Map(f, nil)) {
			list = append(list, st)
		}
	}
	return list, nil
}

// Abort removes the namespace's ingest ref, its data and every lease's
// hold on it.
func (cs *contentStore) Abort(ctx context.Context, ref string) error {
	ns, err := namespace(ctx)
	if err != nil {
		return err
	}
	bref, err := cs.backendRef(ctx, ns, ref)
	if err != nil {
		return err
	}
	if err := cs.db.content.Abort(ctx, bref); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("ingest %q: %w", ref, err)
	}
	return cs.db.update(ctx, func(t *tx) error {
		return deleteIngest(t.Tx, ns, ref)
	})
}

// deleteIngest removes the record of the ingest ref and the leases' holds
// on it.
func deleteIngest(btx *bolt.Tx, ns, ref string) error {
	ibkt := nsBucket(btx, ns, bucketKeyContent, bucketKeyIngests)
	if ibkt != nil && ibkt.Bucket([]byte(ref)) != nil {
		if err := ibkt.DeleteBucket([]byte(ref)); err != nil {
			return err
		}
	}
	return unleaseEverywhere(btx, ns, bucketKeyIngests, []byte(ref))
}
