package meta

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/filters"
	"github.com/cri-runtime/cri-runtime/pkg/identifiers"
	"github.com/cri-runtime/cri-runtime/pkg/leases"
	"github.com/cri-runtime/cri-runtime/pkg/namespaces"
	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// The resource types a lease holds.
const (
	ResourceContent   = "content"
	ResourceIngests   = "ingests"
	ResourceSnapshots = "snapshots" // followed by "/<snapshotter>"
)

// DefaultLeaseExpiration is the expiry WithLease gives the leases it
// creates.
const DefaultLeaseExpiration = 24 * time.Hour

// LeaseManager manages leases: records that hold content, ingests and
// snapshots against the collector until they are deleted or expire.
type LeaseManager struct{ db *DB }

// Leases returns the lease manager.
func (db *DB) Leases() *LeaseManager { return &LeaseManager{db: db} }

// LeaseOpt configures a lease at creation.
type LeaseOpt func(*Lease) error

// WithLeaseID names the lease.
func WithLeaseID(id string) LeaseOpt {
	return func(l *Lease) error {
		l.ID = id
		return nil
	}
}

// WithRandomID names the lease with a fresh unique ID.
func WithRandomID() LeaseOpt {
	return func(l *Lease) error {
		var b [6]byte
		if _, err := rand.Read(b[:]); err != nil {
			return fmt.Errorf("lease id: %w: %w", err, errdefs.ErrUnavailable)
		}
		l.ID = strconv.FormatInt(time.Now().UnixNano(), 36) + "-" + hex.EncodeToString(b[:])
		return nil
	}
}

// WithLeaseLabels adds labels to the lease.
func WithLeaseLabels(labels map[string]string) LeaseOpt {
	return func(l *Lease) error {
		if l.Labels == nil {
			l.Labels = map[string]string{}
		}
		maps.Copy(l.Labels, labels)
		return nil
	}
}

// WithExpiration makes the lease expire d from now: the collector then
// deletes it.
func WithExpiration(d time.Duration) LeaseOpt {
	return func(l *Lease) error {
		l.ExpiresAt = time.Now().Add(d).UTC()
		return nil
	}
}

// WithLease returns a context that carries a lease, and the function that
// ends it. If ctx already carries one it is returned as is with a done
// that does nothing; otherwise a lease is created with a random ID and an
// expiry of DefaultLeaseExpiration, which opts may change. done deletes
// the lease in the namespace of ctx, whatever the namespace of its own
// argument.
func WithLease(ctx context.Context, lm *LeaseManager, opts ...LeaseOpt) (context.Context, func(context.Context) error, error) {
	if _, ok := leases.FromContext(ctx); ok {
		return ctx, func(context.Context) error { return nil }, nil
	}
	ns, err := namespace(ctx)
	if err != nil {
		return nil, nil, err
	}
	opts = append([]LeaseOpt{WithRandomID(), WithExpiration(DefaultLeaseExpiration)}, opts...)
	l, err := lm.Create(ctx, opts...)
	if err != nil {
		return nil, nil, err
	}
	done := func(ctx context.Context) error {
		return lm.Delete(namespaces.WithNamespace(ctx, ns), l)
	}
	return leases.WithLease(ctx, l.ID), done, nil
}

// Create creates a lease; it must be given an ID. AlreadyExists if the ID
// is taken.
func (lm *LeaseManager) Create(ctx context.Context, opts ...LeaseOpt) (Lease, error) {
	ns, err := namespace(ctx)
	if err != nil {
		return Lease{}, err
	}
	var l Lease
	for _, opt := range opts {
		if err := opt(&l); err != nil {
			return Lease{}, err
		}
	}
	if err := identifiers.Validate(l.ID); err != nil {
		return Lease{}, fmt.Errorf("lease: %w", err)
	}
	if !l.ExpiresAt.IsZero() {
		l.Labels = maps.Clone(l.Labels)
		if l.Labels == nil {
			l.Labels = map[string]string{}
		}
		l.Labels[LabelGCExpire] = l.ExpiresAt.Format(time.RFC3339Nano)
	}
	if err := validateLabels(l.Labels); err != nil {
		return Lease{}, fmt.Errorf("lease %q: %w", l.ID, err)
	}
	if l.ExpiresAt, err = leaseExpiry(l.Labels); err != nil {
		return Lease{}, fmt.Errorf("lease %q: %w", l.ID, err)
	}
	l.CreatedAt = time.Now().UTC()
	err = lm.db.update(ctx, func(t *tx) error {
		lbkt, err := createNSBucket(t.Tx, ns, bucketKeyLeases)
		if err != nil {
			return err
		}
		bkt, err := lbkt.CreateBucket([]byte(l.ID))
		if err == bolt.ErrBucketExists {
			return fmt.Errorf("lease %q: %w", l.ID, errdefs.ErrAlreadyExists)
		}
		if err != nil {
			return err
		}
		if err := putTime(bkt, keyCreatedAt, l.CreatedAt); err != nil {
			return err
		}
		return writeLabels(bkt, l.Labels)
	})
	if err != nil {
		return Lease{}, err
	}
	lm.db.expiresAt(l.ExpiresAt)
	return l, nil
}

// leaseExpiry parses the LabelGCExpire label; zero if there is none.
func leaseExpiry(labels map[string]string) (time.Time, error) {
	v, ok := labels[LabelGCExpire]
	if !ok {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("label %s=%q is not an RFC 3339 time: %w", LabelGCExpire, v, errdefs.ErrInvalidArgument)
	}
	return t, nil
}

// Delete deletes the lease; what it held is left to the collector, which
// runs before Delete returns with SynchronousDelete. NotFound if there is
// no such lease.
func (lm *LeaseManager) Delete(ctx context.Context, l Lease, opts ...DeleteOpt) error {
	ns, err := namespace(ctx)
	if err != nil {
		return err
	}
	err = lm.db.update(ctx, func(t *tx) error {
		lbkt := nsBucket(t.Tx, ns, bucketKeyLeases)
		if lbkt == nil || lbkt.Bucket([]byte(l.ID)) == nil {
			return fmt.Errorf("lease %q: %w", l.ID, errdefs.ErrNotFound)
		}
		t.dirty = true
		return lbkt.DeleteBucket([]byte(l.ID))
	})
	if err != nil {
		return err
	}
	return lm.db.afterDelete(ctx, opts)
}

// SetExpiry moves the expiry of the lease id to at (zero: never expires)
// and returns the lease. A pull renews its lease this way while it runs,
// and gives it a bounded expiry when it fails, so that the next pull finds
// what it had finished. NotFound if there is no such lease.
func (lm *LeaseManager) SetExpiry(ctx context.Context, id string, at time.Time) (Lease, error) {
	ns, err := namespace(ctx)
	if err != nil {
		return Lease{}, err
	}
	var l Lease
	err = lm.db.update(ctx, func(t *tx) error {
		bkt := nsBucket(t.Tx, ns, bucketKeyLeases, []byte(id))
		if bkt == nil {
			return fmt.Errorf("lease %q: %w", id, errdefs.ErrNotFound)
		}
		l = Lease{ID: id, Labels: readLabels(bkt), CreatedAt: readTime(bkt, keyCreatedAt)}
		if at.IsZero() {
			delete(l.Labels, LabelGCExpire)
		} else {
			l.ExpiresAt = at.UTC()
			l.Labels[LabelGCExpire] = l.ExpiresAt.Format(time.RFC3339Nano)
		}
		if !at.IsZero() && at.Before(time.Now()) {
			t.dirty = true // what it held may be garbage now
		}
		return writeLabels(bkt, l.Labels)
	})
	if err != nil {
		return Lease{}, err
	}
	lm.db.expiresAt(l.ExpiresAt)
	return l, nil
}

// List returns the leases matching any of fs (fields: id, labels.<key>),
// sorted by ID.
func (lm *LeaseManager) List(ctx context.Context, fs ...string) ([]Lease, error) {
	ns, err := namespace(ctx)
	if err != nil {
		return nil, err
	}
	filter, err := filters.ParseAll(fs...)
	if err != nil {
		return nil, err
	}
	var list []Lease
	err = lm.db.view(ctx, func(btx *bolt.Tx) error {
		lbkt := nsBucket(btx, ns, bucketKeyLeases)
		if lbkt == nil {
			return nil
		}
		return lbkt.ForEachBucket(func(k []byte) error {
			bkt := lbkt.Bucket(k)
			l := Lease{ID: string(k), Labels: readLabels(bkt), CreatedAt: readTime(bkt, keyCreatedAt)}
			l.ExpiresAt, _ = leaseExpiry(l.Labels)
			if filter.Match(filters.Map(fields("id", l.ID), l.Labels)) {
				list = append(list, l)
			}
			return nil
		})
	})
	return list, err
}

// AddResource adds r to the lease. The resource must exist (NotFound);
// its type must be one of "content", "ingests", "snapshots/<snapshotter>"
// (InvalidArgument).
func (lm *LeaseManager) AddResource(ctx context.Context, l Lease, r Resource) error {
	ns, err := namespace(ctx)
	if err != nil {
		return err
	}
	path, err := lm.db.resourcePath(r)
	if err != nil {
		return err
	}
	return lm.db.update(ctx, func(t *tx) error {
		lbkt := nsBucket(t.Tx, ns, bucketKeyLeases, []byte(l.ID))
		if lbkt == nil {
			return fmt.Errorf("lease %q: %w", l.ID, errdefs.ErrNotFound)
		}
		if !resourceExists(t.Tx, ns, r, path) {
			return fmt.Errorf("lease %q: %s %q: %w", l.ID, r.Type, r.ID, errdefs.ErrNotFound)
		}
		return putLeaseResource(lbkt, path)
	})
}

// DeleteResource removes r from the lease; NotFound if the lease does not
// exist. Removing a resource the lease does not hold is not an error.
func (lm *LeaseManager) DeleteResource(ctx context.Context, l Lease, r Resource) error {
	ns, err := namespace(ctx)
	if err != nil {
		return err
	}
	path, err := lm.db.resourcePath(r)
	if err != nil {
		return err
	}
	return lm.db.update(ctx, func(t *tx) error {
		lbkt := nsBucket(t.Tx, ns, bucketKeyLeases, []byte(l.ID))
		if lbkt == nil {
			return fmt.Errorf("lease %q: %w", l.ID, errdefs.ErrNotFound)
		}
		t.dirty = true
		return deleteLeaseResource(lbkt, path)
	})
}

// ListResources returns what the lease holds.
func (lm *LeaseManager) ListResources(ctx context.Context, l Lease) ([]Resource, error) {
	ns, err := namespace(ctx)
	if err != nil {
		return nil, err
	}
	var list []Resource
	err = lm.db.view(ctx, func(btx *bolt.Tx) error {
		lbkt := nsBucket(btx, ns, bucketKeyLeases, []byte(l.ID))
		if lbkt == nil {
			return fmt.Errorf("lease %q: %w", l.ID, errdefs.ErrNotFound)
		}
		list = leaseResources(lbkt)
		return nil
	})
	return list, err
}

// leaseResources lists the resources held by the lease bucket lbkt.
func leaseResources(lbkt *bolt.Bucket) []Resource {
	var list []Resource
	for _, typ := range [][]byte{bucketKeyContent, bucketKeyIngests} {
		if bkt := lbkt.Bucket(typ); bkt != nil {
			_ = bkt.ForEach(func(k, _ []byte) error {
				list = append(list, Resource{Type: string(typ), ID: string(k)})
				return nil
			})
		}
	}
	if sbkt := lbkt.Bucket(bucketKeySnapshots); sbkt != nil {
		_ = sbkt.ForEachBucket(func(sn []byte) error {
			return sbkt.Bucket(sn).ForEach(func(k, _ []byte) error {
				list = append(list, Resource{Type: ResourceSnapshots + "/" + string(sn), ID: string(k)})
				return nil
			})
		})
	}
	return list
}

// resourcePath returns the bucket path of r under a lease, the last
// element being its ID; InvalidArgument for an unknown type or a malformed
// ID.
func (db *DB) resourcePath(r Resource) ([][]byte, error) {
	if r.ID == "" {
		return nil, fmt.Errorf("resource ID must not be empty: %w", errdefs.ErrInvalidArgument)
	}
	switch {
	case r.Type == ResourceContent:
		if err := digest.Digest(r.ID).Validate(); err != nil {
			return nil, fmt.Errorf("content resource %q: %w: %w", r.ID, err, errdefs.ErrInvalidArgument)
		}
		return [][]byte{bucketKeyContent, []byte(r.ID)}, nil
	case r.Type == ResourceIngests:
		return [][]byte{bucketKeyIngests, []byte(r.ID)}, nil
	case strings.HasPrefix(r.Type, ResourceSnapshots+"/"):
		sn := strings.TrimPrefix(r.Type, ResourceSnapshots+"/")
		if _, ok := db.snapshotters[sn]; !ok {
			return nil, fmt.Errorf("resource type %q: snapshotter %q: %w", r.Type, sn, errdefs.ErrInvalidArgument)
		}
		return [][]byte{bucketKeySnapshots, []byte(sn), []byte(r.ID)}, nil
	}
	return nil, fmt.Errorf("resource type %q (want content, ingests or snapshots/<snapshotter>): %w", r.Type, errdefs.ErrInvalidArgument)
}

// resourceExists reports whether the resource at path exists in ns.
func resourceExists(btx *bolt.Tx, ns string, r Resource, path [][]byte) bool {
	if r.Type == ResourceContent {
		return hasBlob(btx, ns, digest.Digest(path[1]))
	}
	if r.Type == ResourceIngests {
		return nsBucket(btx, ns, bucketKeyContent, bucketKeyIngests, path[1]) != nil
	}
	return nsBucket(btx, ns, path...) != nil
}

func putLeaseResource(lbkt *bolt.Bucket, path [][]byte) error {
	bkt := lbkt
	for _, k := range path[:len(path)-1] {
		var err error
		if bkt, err = bkt.CreateBucketIfNotExists(k); err != nil {
			return err
		}
	}
	return bkt.Put(path[len(path)-1], nil)
}

func deleteLeaseResource(lbkt *bolt.Bucket, path [][]byte) error {
	bkt := lbkt
	for _, k := range path[:len(path)-1] {
		if bkt = bkt.Bucket(k); bkt == nil {
			return nil
		}
	}
	return bkt.Delete(path[len(path)-1])
}

// leaseResource adds the resource at path to the lease of ctx, if it
// carries one: NotFound if that lease does not exist in ns.
func leaseResource(ctx context.Context, btx *bolt.Tx, ns string, path ...[]byte) error {
	if err := checkLease(ctx, btx, ns); err != nil {
		return err
	}
	return leaseIfLive(ctx, btx, ns, path...)
}

// checkLease returns NotFound if ctx carries a lease that does not exist
// in ns.
func checkLease(ctx context.Context, btx *bolt.Tx, ns string) error {
	if id, ok := leases.FromContext(ctx); ok && nsBucket(btx, ns, bucketKeyLeases, []byte(id)) == nil {
		return fmt.Errorf("lease %q: %w", id, errdefs.ErrNotFound)
	}
	return nil
}

// leaseIfLive adds the resource at path to the lease of ctx if it still
// exists. It records what an operation created after checkLease passed:
// a lease deleted meanwhile no longer holds anything.
func leaseIfLive(ctx context.Context, btx *bolt.Tx, ns string, path ...[]byte) error {
	id, ok := leases.FromContext(ctx)
	if !ok {
		return nil
	}
	if lbkt := nsBucket(btx, ns, bucketKeyLeases, []byte(id)); lbkt != nil {
		return putLeaseResource(lbkt, path)
	}
	return nil
}

// unleaseEverywhere removes the resource at path from every lease of ns:
// it is gone.
func unleaseEverywhere(btx *bolt.Tx, ns string, path ...[]byte) error {
	lbkt := nsBucket(btx, ns, bucketKeyLeases)
	if lbkt == nil {
		return nil
	}
	var ids [][]byte
	_ = lbkt.ForEachBucket(func(id []byte) error {
		ids = append(ids, id)
		return nil
	})
	for _, id := range ids {
		if err := deleteLeaseResource(lbkt.Bucket(id), path); err != nil {
			return err
		}
	}
	return nil
}
