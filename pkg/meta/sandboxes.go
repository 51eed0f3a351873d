package meta

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"time"

	eventsv1 "github.com/cri-runtime/cri-runtime/api/events/v1"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/filters"
	"github.com/cri-runtime/cri-runtime/pkg/identifiers"
	"github.com/cri-runtime/cri-runtime/pkg/labels"
	bolt "go.etcd.io/bbolt"
)

// SandboxStore stores pod sandbox records. A sandbox is a GC root for its
// label references.
type SandboxStore struct{ db *DB }

var sandboxKind = recordKind[Sandbox]{noun: "sandbox", bucket: bucketKeySandboxes, read: readSandbox, adapt: adaptSandbox}

// Sandboxes returns the sandbox store.
func (db *DB) Sandboxes() *SandboxStore { return &SandboxStore{db: db} }

// Get returns the sandbox id; NotFound if there is none.
func (s *SandboxStore) Get(ctx context.Context, id string) (Sandbox, error) {
	return sandboxKind.get(ctx, s.db, id)
}

// List returns the sandboxes matching any of fs (fields: id, runtime.name,
// labels.<key>), sorted by ID.
func (s *SandboxStore) List(ctx context.Context, fs ...string) ([]Sandbox, error) {
	return sandboxKind.list(ctx, s.db, fs)
}

func adaptSandbox(sb Sandbox) filters.Adaptor {
	return filters.Map(fields("id", sb.ID, "runtime.name", sb.Runtime.Name), sb.Labels)
}

// Create stores sb; AlreadyExists if its ID is taken.
func (s *SandboxStore) Create(ctx context.Context, sb Sandbox) (created Sandbox, err error) {
	err = s.db.Update(ctx, func(tx *Tx) error {
		created, err = tx.CreateSandbox(sb)
		return err
	})
	return created, err
}

// Update changes the fields of the stored sandbox sb.ID named by
// fieldpaths: "labels", "labels.<key>", "spec", "runtime", "extensions",
// "extensions.<key>". None means all of them. Other paths are
// InvalidArgument; NotFound if there is no such sandbox.
func (s *SandboxStore) Update(ctx context.Context, sb Sandbox, fieldpaths ...string) (updated Sandbox, err error) {
	err = s.db.Update(ctx, func(tx *Tx) error {
		updated, err = tx.UpdateSandbox(sb, fieldpaths...)
		return err
	})
	return updated, err
}

// SetStatus replaces the last known status of the sandbox id. It is no
// mutation for the collector's policy. NotFound if there is no such
// sandbox.
func (s *SandboxStore) SetStatus(ctx context.Context, id string, st Status) error {
	return s.db.Update(ctx, func(tx *Tx) error { return tx.SetSandboxStatus(id, st) })
}

// Delete removes the sandbox id: NotFound if there is none,
// FailedPrecondition naming them while containers still belong to it.
func (s *SandboxStore) Delete(ctx context.Context, id string) error {
	return s.db.Update(ctx, func(tx *Tx) error { return tx.DeleteSandbox(id) })
}

// Sandbox returns the sandbox id; NotFound if there is none.
func (tx *Tx) Sandbox(id string) (Sandbox, error) {
	bkt := nsBucket(tx.t.Tx, tx.ns, bucketKeySandboxes, []byte(id))
	if bkt == nil {
		return Sandbox{}, fmt.Errorf("sandbox %q: %w", id, errdefs.ErrNotFound)
	}
	return readSandbox(id, bkt), nil
}

// CreateSandbox is SandboxStore.Create in tx.
func (tx *Tx) CreateSandbox(sb Sandbox) (Sandbox, error) {
	tx.mutates()
	t, ns := tx.t, tx.ns
	if err := validateSandbox(sb); err != nil {
		return Sandbox{}, err
	}
	st, err := sb.Status.validate(fmt.Sprintf("sandbox %q", sb.ID))
	if err != nil {
		return Sandbox{}, err
	}
	sb.Status = st
	sbkt, err := createNSBucket(t.Tx, ns, bucketKeySandboxes)
	if err != nil {
		return Sandbox{}, err
	}
	bkt, err := sbkt.CreateBucket([]byte(sb.ID))
	if err == bolt.ErrBucketExists {
		return Sandbox{}, fmt.Errorf("sandbox %q: %w", sb.ID, errdefs.ErrAlreadyExists)
	}
	if err != nil {
		return Sandbox{}, err
	}
	sb.CreatedAt = time.Now().UTC()
	sb.UpdatedAt = sb.CreatedAt
	if err := writeSandbox(bkt, sb); err != nil {
		return Sandbox{}, err
	}
	t.publish(ns, "/sandboxes/create", &eventsv1.SandboxCreate{Id: sb.ID, Runtime: sb.Runtime.Name})
	return sb, nil
}

// UpdateSandbox is SandboxStore.Update in tx.
func (tx *Tx) UpdateSandbox(sb Sandbox, fieldpaths ...string) (Sandbox, error) {
	tx.mutates()
	t, ns := tx.t, tx.ns
	if err := identifiers.Validate(sb.ID); err != nil {
		return Sandbox{}, fmt.Errorf("sandbox: %w", err)
	}
	bkt := nsBucket(t.Tx, ns, bucketKeySandboxes, []byte(sb.ID))
	if bkt == nil {
		return Sandbox{}, fmt.Errorf("sandbox %q: %w", sb.ID, errdefs.ErrNotFound)
	}
	updated := readSandbox(sb.ID, bkt)
	before := maps.Clone(updated.Labels)
	if err := applySandboxPaths(&updated, sb, fieldpaths); err != nil {
		return Sandbox{}, err
	}
	if err := validateSandbox(updated); err != nil {
		return Sandbox{}, err
	}
	updated.UpdatedAt = time.Now().UTC()
	t.dirty = droppedRefs(before, updated.Labels)
	if err := writeSandbox(bkt, updated); err != nil {
		return Sandbox{}, err
	}
	t.publish(ns, "/sandboxes/update", &eventsv1.SandboxUpdate{Id: sb.ID, Labels: updated.Labels})
	return updated, nil
}

// SetSandboxStatus is SandboxStore.SetStatus in tx.
func (tx *Tx) SetSandboxStatus(id string, st Status) error {
	bkt := nsBucket(tx.t.Tx, tx.ns, bucketKeySandboxes, []byte(id))
	if bkt == nil {
		return fmt.Errorf("sandbox %q: %w", id, errdefs.ErrNotFound)
	}
	st, err := st.validate(fmt.Sprintf("sandbox %q", id))
	if err != nil {
		return err
	}
	return writeStatus(bkt, st)
}

// DeleteSandbox is SandboxStore.Delete in tx.
func (tx *Tx) DeleteSandbox(id string) error {
	tx.mutates()
	t, ns := tx.t, tx.ns
	sbkt := nsBucket(t.Tx, ns, bucketKeySandboxes)
	if sbkt == nil || sbkt.Bucket([]byte(id)) == nil {
		return fmt.Errorf("sandbox %q: %w", id, errdefs.ErrNotFound)
	}
	if members := sandboxContainers(sbkt.Bucket([]byte(id))); len(members) > 0 {
		return fmt.Errorf("sandbox %q still has containers %s: %w", id, strings.Join(members, ", "), errdefs.ErrFailedPrecondition)
	}
	if err := sbkt.DeleteBucket([]byte(id)); err != nil {
		return err
	}
	t.dirty = true
	t.publish(ns, "/sandboxes/delete", &eventsv1.SandboxDelete{Id: id})
	return nil
}

// sandboxContainers lists the IDs of the sandbox bucket's containers.
func sandboxContainers(bkt *bolt.Bucket) []string {
	var ids []string
	if ibkt := bkt.Bucket(bucketKeyContainers); ibkt != nil {
		_ = ibkt.ForEach(func(k, _ []byte) error {
			ids = append(ids, string(k))
			return nil
		})
	}
	return ids
}

func applySandboxPaths(dst *Sandbox, src Sandbox, fieldpaths []string) error {
	if len(fieldpaths) == 0 {
		fieldpaths = []string{"labels", "spec", "runtime", "extensions"}
	}
	for _, p := range fieldpaths {
		if labels.ApplyPath(&dst.Labels, src.Labels, "labels", p) || labels.ApplyPath(&dst.Extensions, src.Extensions, "extensions", p) {
			continue
		}
		switch p {
		case "spec":
			dst.Spec = src.Spec
		case "runtime":
			dst.Runtime = src.Runtime
		default:
			return fmt.Errorf("sandbox %q: cannot update field %q: %w", src.ID, p, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

func validateSandbox(sb Sandbox) error {
	if err := identifiers.Validate(sb.ID); err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	if sb.Runtime.Name == "" {
		return fmt.Errorf("sandbox %q: runtime name must not be empty: %w", sb.ID, errdefs.ErrInvalidArgument)
	}
	if err := validateLabels(sb.Labels); err != nil {
		return fmt.Errorf("sandbox %q: %w", sb.ID, err)
	}
	return validateExtensions(sb.ID, sb.Extensions)
}

func readSandbox(id string, bkt *bolt.Bucket) Sandbox {
	st, _ := readStatus(bkt) // Check reports a corrupt one
	return Sandbox{
		Status:     st,
		ID:         id,
		Labels:     readLabels(bkt),
		Runtime:    readRuntime(bkt),
		Spec:       copyBytes(bkt.Get(keySpec)),
		Extensions: readBytesMap(bkt.Bucket(bucketKeyExtensions)),
		CreatedAt:  readTime(bkt, keyCreatedAt),
		UpdatedAt:  readTime(bkt, keyUpdatedAt),
	}
}

func writeSandbox(bkt *bolt.Bucket, sb Sandbox) error {
	if err := writeTimes(bkt, sb.CreatedAt, sb.UpdatedAt); err != nil {
		return err
	}
	if err := writeLabels(bkt, sb.Labels); err != nil {
		return err
	}
	if err := putBytes(bkt, keySpec, sb.Spec); err != nil {
		return err
	}
	if err := writeRuntime(bkt, sb.Runtime); err != nil {
		return err
	}
	if err := writeStatus(bkt, sb.Status); err != nil {
		return err
	}
	return writeBytesMap(bkt, bucketKeyExtensions, sb.Extensions)
}
