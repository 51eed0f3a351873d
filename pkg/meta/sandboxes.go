package meta

import (
	"context"
	"fmt"
	"maps"
	"time"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/filters"
	"github.com/cri-runtime/cri-runtime/pkg/identifiers"
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
func (s *SandboxStore) Create(ctx context.Context, sb Sandbox) (Sandbox, error) {
	ns, err := namespace(ctx)
	if err != nil {
		return Sandbox{}, err
	}
	if err := validateSandbox(sb); err != nil {
		return Sandbox{}, err
	}
	err = s.db.update(ctx, func(t *tx) error {
		sbkt, err := createNSBucket(t.Tx, ns, bucketKeySandboxes)
		if err != nil {
			return err
		}
		bkt, err := sbkt.CreateBucket([]byte(sb.ID))
		if err == bolt.ErrBucketExists {
			return fmt.Errorf("sandbox %q: %w", sb.ID, errdefs.ErrAlreadyExists)
		}
		if err != nil {
			return err
		}
		sb.CreatedAt = time.Now().UTC()
		sb.UpdatedAt = sb.CreatedAt
		return writeSandbox(bkt, sb)
	})
	if err != nil {
		return Sandbox{}, err
	}
	return sb, nil
}

// Update changes the fields of the stored sandbox sb.ID named by
// fieldpaths: "labels", "labels.<key>", "spec", "runtime", "extensions",
// "extensions.<key>". None means all of them. Other paths are
// InvalidArgument; NotFound if there is no such sandbox.
func (s *SandboxStore) Update(ctx context.Context, sb Sandbox, fieldpaths ...string) (Sandbox, error) {
	ns, err := namespace(ctx)
	if err != nil {
		return Sandbox{}, err
	}
	if err := identifiers.Validate(sb.ID); err != nil {
		return Sandbox{}, fmt.Errorf("sandbox: %w", err)
	}
	var updated Sandbox
	err = s.db.update(ctx, func(t *tx) error {
		bkt := nsBucket(t.Tx, ns, bucketKeySandboxes, []byte(sb.ID))
		if bkt == nil {
			return fmt.Errorf("sandbox %q: %w", sb.ID, errdefs.ErrNotFound)
		}
		updated = readSandbox(sb.ID, bkt)
		before := maps.Clone(updated.Labels)
		if err := applySandboxPaths(&updated, sb, fieldpaths); err != nil {
			return err
		}
		if err := validateSandbox(updated); err != nil {
			return err
		}
		updated.UpdatedAt = time.Now().UTC()
		t.dirty = droppedRefs(before, updated.Labels)
		return writeSandbox(bkt, updated)
	})
	if err != nil {
		return Sandbox{}, err
	}
	return updated, nil
}

func applySandboxPaths(dst *Sandbox, src Sandbox, fieldpaths []string) error {
	if len(fieldpaths) == 0 {
		fieldpaths = []string{"labels", "spec", "runtime", "extensions"}
	}
	for _, p := range fieldpaths {
		if applyLabelPath(&dst.Labels, src.Labels, p) || applyExtensionPath(&dst.Extensions, src.Extensions, p) {
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

// Delete removes the sandbox id; NotFound if there is none.
func (s *SandboxStore) Delete(ctx context.Context, id string) error {
	ns, err := namespace(ctx)
	if err != nil {
		return err
	}
	return s.db.update(ctx, func(t *tx) error {
		sbkt := nsBucket(t.Tx, ns, bucketKeySandboxes)
		if sbkt == nil || sbkt.Bucket([]byte(id)) == nil {
			return fmt.Errorf("sandbox %q: %w", id, errdefs.ErrNotFound)
		}
		t.dirty = true
		return sbkt.DeleteBucket([]byte(id))
	})
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
	return Sandbox{
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
	return writeBytesMap(bkt, bucketKeyExtensions, sb.Extensions)
}
