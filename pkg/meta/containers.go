package meta

import (
	"context"
	"fmt"
	"maps"
	"time"

	eventsv1 "github.com/cri-runtime/cri-runtime/api/events/v1"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/filters"
	"github.com/cri-runtime/cri-runtime/pkg/identifiers"
	"github.com/cri-runtime/cri-runtime/pkg/labels"
	bolt "go.etcd.io/bbolt"
)

// ContainerStore stores container records. A container is a GC root for
// its snapshot and its label references.
type ContainerStore struct{ db *DB }

var containerKind = recordKind[Container]{noun: "container", bucket: bucketKeyContainers, read: readContainer, adapt: adaptContainer}

// Containers returns the container store.
func (db *DB) Containers() *ContainerStore { return &ContainerStore{db: db} }

// Get returns the container id; NotFound if there is none.
func (s *ContainerStore) Get(ctx context.Context, id string) (Container, error) {
	return containerKind.get(ctx, s.db, id)
}

// List returns the containers matching any of fs (fields: id, image,
// runtime.name, snapshotter, snapshotkey, sandboxid, labels.<key>), sorted
// by ID.
func (s *ContainerStore) List(ctx context.Context, fs ...string) ([]Container, error) {
	return containerKind.list(ctx, s.db, fs)
}

// ListWithoutSpec is List with the records' Spec left empty: for lists
// made often (kubelet's relist), which need no spec and would copy each.
func (s *ContainerStore) ListWithoutSpec(ctx context.Context, fs ...string) ([]Container, error) {
	return containerHeadKind.list(ctx, s.db, fs)
}

// containerHeadKind reads containers without their spec.
var containerHeadKind = recordKind[Container]{noun: "container", bucket: bucketKeyContainers, adapt: adaptContainer,
	read: func(id string, bkt *bolt.Bucket) Container { return readContainerSpec(id, bkt, false) }}

func adaptContainer(c Container) filters.Adaptor {
	return filters.Map(fields(
		"id", c.ID,
		"image", c.Image,
		"runtime.name", c.Runtime.Name,
		"snapshotter", c.Snapshotter,
		"snapshotkey", c.SnapshotKey,
		"sandboxid", c.SandboxID,
	), c.Labels)
}

// Create stores c; AlreadyExists if its ID is taken. A snapshot key must
// name an existing snapshot of the namespace, a sandbox ID an existing
// sandbox (NotFound otherwise).
func (s *ContainerStore) Create(ctx context.Context, c Container) (created Container, err error) {
	err = s.db.Update(ctx, func(tx *Tx) error {
		created, err = tx.CreateContainer(c)
		return err
	})
	return created, err
}

// Update changes the fields of the stored container c.ID named by
// fieldpaths: "labels", "labels.<key>", "image", "spec", "snapshotter",
// "snapshotkey", "runtime", "extensions", "extensions.<key>". None means
// all of them. Other paths are InvalidArgument; NotFound if there is no
// such container. The sandbox and the status are not updated here.
func (s *ContainerStore) Update(ctx context.Context, c Container, fieldpaths ...string) (updated Container, err error) {
	err = s.db.Update(ctx, func(tx *Tx) error {
		updated, err = tx.UpdateContainer(c, fieldpaths...)
		return err
	})
	return updated, err
}

// SetStatus replaces the last known status of the container id. It is no
// mutation for the collector's policy. NotFound if there is no such
// container.
func (s *ContainerStore) SetStatus(ctx context.Context, id string, st Status) error {
	return s.db.Update(ctx, func(tx *Tx) error { return tx.SetContainerStatus(id, st) })
}

// Delete removes the container id; NotFound if there is none. Its
// snapshot is left to the collector.
func (s *ContainerStore) Delete(ctx context.Context, id string) error {
	return s.db.Update(ctx, func(tx *Tx) error { return tx.DeleteContainer(id) })
}

// Container returns the container id; NotFound if there is none.
func (tx *Tx) Container(id string) (Container, error) {
	bkt := nsBucket(tx.t.Tx, tx.ns, bucketKeyContainers, []byte(id))
	if bkt == nil {
		return Container{}, fmt.Errorf("container %q: %w", id, errdefs.ErrNotFound)
	}
	return readContainer(id, bkt), nil
}

// CreateContainer is ContainerStore.Create in tx.
func (tx *Tx) CreateContainer(c Container) (Container, error) {
	tx.mutates()
	t, ns := tx.t, tx.ns
	if err := validateContainer(c); err != nil {
		return Container{}, err
	}
	st, err := c.Status.validate(fmt.Sprintf("container %q", c.ID))
	if err != nil {
		return Container{}, err
	}
	c.Status = st
	if err := tx.db.checkSnapshotRef(t.Tx, ns, c); err != nil {
		return Container{}, err
	}
	cbkt, err := createNSBucket(t.Tx, ns, bucketKeyContainers)
	if err != nil {
		return Container{}, err
	}
	bkt, err := cbkt.CreateBucket([]byte(c.ID))
	if err == bolt.ErrBucketExists {
		return Container{}, fmt.Errorf("container %q: %w", c.ID, errdefs.ErrAlreadyExists)
	}
	if err != nil {
		return Container{}, err
	}
	if c.SandboxID != "" {
		if err := linkSandbox(t.Tx, ns, c); err != nil {
			return Container{}, err
		}
	}
	c.CreatedAt = time.Now().UTC()
	c.UpdatedAt = c.CreatedAt
	if err := writeContainer(bkt, c); err != nil {
		return Container{}, err
	}
	t.publish(ns, "/containers/create", &eventsv1.ContainerCreate{Id: c.ID, Image: c.Image, Runtime: c.Runtime.Name})
	return c, nil
}

// UpdateContainer is ContainerStore.Update in tx.
func (tx *Tx) UpdateContainer(c Container, fieldpaths ...string) (Container, error) {
	tx.mutates()
	t, ns := tx.t, tx.ns
	if err := identifiers.Validate(c.ID); err != nil {
		return Container{}, fmt.Errorf("container: %w", err)
	}
	bkt := nsBucket(t.Tx, ns, bucketKeyContainers, []byte(c.ID))
	if bkt == nil {
		return Container{}, fmt.Errorf("container %q: %w", c.ID, errdefs.ErrNotFound)
	}
	updated := readContainer(c.ID, bkt)
	before, beforeLabels := updated.Snapshotter+"/"+updated.SnapshotKey, maps.Clone(updated.Labels)
	if err := applyContainerPaths(&updated, c, fieldpaths); err != nil {
		return Container{}, err
	}
	if err := validateContainer(updated); err != nil {
		return Container{}, err
	}
	if updated.Snapshotter+"/"+updated.SnapshotKey != before {
		if err := tx.db.checkSnapshotRef(t.Tx, ns, updated); err != nil {
			return Container{}, err
		}
		t.dirty = true
	}
	t.dirty = t.dirty || droppedRefs(beforeLabels, updated.Labels)
	updated.UpdatedAt = time.Now().UTC()
	if err := writeContainer(bkt, updated); err != nil {
		return Container{}, err
	}
	t.publish(ns, "/containers/update", &eventsv1.ContainerUpdate{
		Id: c.ID, Image: updated.Image, Labels: updated.Labels, SnapshotKey: updated.SnapshotKey,
	})
	return updated, nil
}

// SetContainerStatus is ContainerStore.SetStatus in tx.
func (tx *Tx) SetContainerStatus(id string, st Status) error {
	bkt := nsBucket(tx.t.Tx, tx.ns, bucketKeyContainers, []byte(id))
	if bkt == nil {
		return fmt.Errorf("container %q: %w", id, errdefs.ErrNotFound)
	}
	st, err := st.validate(fmt.Sprintf("container %q", id))
	if err != nil {
		return err
	}
	return writeStatus(bkt, st)
}

// DeleteContainer is ContainerStore.Delete in tx.
func (tx *Tx) DeleteContainer(id string) error {
	tx.mutates()
	t, ns := tx.t, tx.ns
	cbkt := nsBucket(t.Tx, ns, bucketKeyContainers)
	if cbkt == nil || cbkt.Bucket([]byte(id)) == nil {
		return fmt.Errorf("container %q: %w", id, errdefs.ErrNotFound)
	}
	if sid := cbkt.Bucket([]byte(id)).Get(keySandboxID); len(sid) > 0 {
		if ibkt := nsBucket(t.Tx, ns, bucketKeySandboxes, sid, bucketKeyContainers); ibkt != nil {
			if err := ibkt.Delete([]byte(id)); err != nil {
				return err
			}
		}
	}
	if err := cbkt.DeleteBucket([]byte(id)); err != nil {
		return err
	}
	t.dirty = true
	t.publish(ns, "/containers/delete", &eventsv1.ContainerDelete{Id: id})
	return nil
}

// linkSandbox records c in the container index of its sandbox, which
// must exist.
func linkSandbox(btx *bolt.Tx, ns string, c Container) error {
	sbkt := nsBucket(btx, ns, bucketKeySandboxes, []byte(c.SandboxID))
	if sbkt == nil {
		return fmt.Errorf("container %q: sandbox %q: %w", c.ID, c.SandboxID, errdefs.ErrNotFound)
	}
	ibkt, err := sbkt.CreateBucketIfNotExists(bucketKeyContainers)
	if err != nil {
		return err
	}
	return ibkt.Put([]byte(c.ID), nil)
}

func applyContainerPaths(dst *Container, src Container, fieldpaths []string) error {
	if len(fieldpaths) == 0 {
		fieldpaths = []string{"labels", "image", "spec", "snapshotter", "snapshotkey", "runtime", "extensions"}
	}
	for _, p := range fieldpaths {
		if labels.ApplyPath(&dst.Labels, src.Labels, "labels", p) || labels.ApplyPath(&dst.Extensions, src.Extensions, "extensions", p) {
			continue
		}
		switch p {
		case "image":
			dst.Image = src.Image
		case "spec":
			dst.Spec = src.Spec
		case "snapshotter":
			dst.Snapshotter = src.Snapshotter
		case "snapshotkey":
			dst.SnapshotKey = src.SnapshotKey
		case "runtime":
			dst.Runtime = src.Runtime
		default:
			return fmt.Errorf("container %q: cannot update field %q: %w", src.ID, p, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

func validateContainer(c Container) error {
	if err := identifiers.Validate(c.ID); err != nil {
		return fmt.Errorf("container: %w", err)
	}
	if c.Runtime.Name == "" {
		return fmt.Errorf("container %q: runtime name must not be empty: %w", c.ID, errdefs.ErrInvalidArgument)
	}
	if c.SnapshotKey != "" && c.Snapshotter == "" {
		return fmt.Errorf("container %q: snapshot key %q needs a snapshotter: %w", c.ID, c.SnapshotKey, errdefs.ErrInvalidArgument)
	}
	if c.Image != "" {
		if err := validateImageName(c.Image); err != nil {
			return fmt.Errorf("container %q: %w", c.ID, err)
		}
	}
	if err := validateLabels(c.Labels); err != nil {
		return fmt.Errorf("container %q: %w", c.ID, err)
	}
	return validateExtensions(c.ID, c.Extensions)
}

func validateExtensions(id string, ext map[string][]byte) error {
	for k := range ext {
		if k == "" {
			return fmt.Errorf("%q: extension name must not be empty: %w", id, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// checkSnapshotRef checks that the snapshot a container names exists.
func (db *DB) checkSnapshotRef(btx *bolt.Tx, ns string, c Container) error {
	if c.SnapshotKey == "" {
		return nil
	}
	if _, ok := db.snapshotters[c.Snapshotter]; !ok {
		return fmt.Errorf("container %q: snapshotter %q: %w", c.ID, c.Snapshotter, errdefs.ErrNotFound)
	}
	if nsBucket(btx, ns, bucketKeySnapshots, []byte(c.Snapshotter), []byte(c.SnapshotKey)) == nil {
		return fmt.Errorf("container %q: snapshot %q of %q: %w", c.ID, c.SnapshotKey, c.Snapshotter, errdefs.ErrNotFound)
	}
	return nil
}

func readContainer(id string, bkt *bolt.Bucket) Container { return readContainerSpec(id, bkt, true) }

// readContainerSpec reads the container record in bkt, its spec too when
// spec is true.
func readContainerSpec(id string, bkt *bolt.Bucket, spec bool) Container {
	st, _ := readStatus(bkt) // Check reports a corrupt one
	var sp []byte
	if spec {
		sp = copyBytes(bkt.Get(keySpec))
	}
	return Container{
		Status:      st,
		ID:          id,
		Labels:      readLabels(bkt),
		Image:       string(bkt.Get(keyImage)),
		Runtime:     readRuntime(bkt),
		Spec:        sp,
		Snapshotter: string(bkt.Get(keySnapshotter)),
		SnapshotKey: string(bkt.Get(keySnapshotKey)),
		SandboxID:   string(bkt.Get(keySandboxID)),
		Extensions:  readBytesMap(bkt.Bucket(bucketKeyExtensions)),
		CreatedAt:   readTime(bkt, keyCreatedAt),
		UpdatedAt:   readTime(bkt, keyUpdatedAt),
	}
}

func writeContainer(bkt *bolt.Bucket, c Container) error {
	if err := writeTimes(bkt, c.CreatedAt, c.UpdatedAt); err != nil {
		return err
	}
	if err := writeLabels(bkt, c.Labels); err != nil {
		return err
	}
	for _, f := range []struct {
		key []byte
		val string
	}{
		{keyImage, c.Image}, {keySnapshotter, c.Snapshotter},
		{keySnapshotKey, c.SnapshotKey}, {keySandboxID, c.SandboxID},
	} {
		if err := putString(bkt, f.key, f.val); err != nil {
			return err
		}
	}
	if err := putBytes(bkt, keySpec, c.Spec); err != nil {
		return err
	}
	if err := writeRuntime(bkt, c.Runtime); err != nil {
		return err
	}
	if err := writeStatus(bkt, c.Status); err != nil {
		return err
	}
	return writeBytesMap(bkt, bucketKeyExtensions, c.Extensions)
}

func readRuntime(bkt *bolt.Bucket) Runtime {
	rbkt := bkt.Bucket(bucketKeyRuntime)
	if rbkt == nil {
		return Runtime{}
	}
	return Runtime{Name: string(rbkt.Get(keyName)), Options: copyBytes(rbkt.Get(keyOptions))}
}

func writeRuntime(bkt *bolt.Bucket, r Runtime) error {
	rbkt, err := bkt.CreateBucketIfNotExists(bucketKeyRuntime)
	if err != nil {
		return err
	}
	if err := putString(rbkt, keyName, r.Name); err != nil {
		return err
	}
	return putBytes(rbkt, keyOptions, r.Options)
}
