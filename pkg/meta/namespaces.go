package meta

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"

	eventsv1 "github.com/cri-runtime/cri-runtime/api/events/v1"
	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/identifiers"
	"github.com/cri-runtime/cri-runtime/pkg/labels"
	bolt "go.etcd.io/bbolt"
)

// NamespaceStore manages namespaces. A namespace also comes to exist with
// the first write in it.
type NamespaceStore struct{ db *DB }

// Namespaces returns the namespace store.
func (db *DB) Namespaces() *NamespaceStore { return &NamespaceStore{db: db} }

// Create creates the namespace name; AlreadyExists if it exists.
func (s *NamespaceStore) Create(ctx context.Context, name string, labels map[string]string) error {
	if err := identifiers.Validate(name); err != nil {
		return fmt.Errorf("namespace: %w", err)
	}
	if err := validateLabels(labels); err != nil {
		return fmt.Errorf("namespace %q: %w", name, err)
	}
	return s.db.update(ctx, func(t *tx) error {
		v1, err := t.CreateBucketIfNotExists(bucketKeyV1)
		if err != nil {
			return err
		}
		bkt, err := v1.CreateBucket([]byte(name))
		if err == bolt.ErrBucketExists {
			return fmt.Errorf("namespace %q: %w", name, errdefs.ErrAlreadyExists)
		}
		if err != nil {
			return err
		}
		if err := writeLabels(bkt, labels); err != nil {
			return err
		}
		t.publish(name, "/namespaces/create", &eventsv1.NamespaceCreate{Name: name, Labels: labels})
		return nil
	})
}

// Get returns the namespace name; NotFound if it does not exist.
func (s *NamespaceStore) Get(ctx context.Context, name string) (Namespace, error) {
	ns := Namespace{Name: name}
	err := s.db.view(ctx, func(btx *bolt.Tx) error {
		bkt := nsBucket(btx, name)
		if bkt == nil {
			return fmt.Errorf("namespace %q: %w", name, errdefs.ErrNotFound)
		}
		ns.Labels = readLabels(bkt)
		return nil
	})
	return ns, err
}

// List returns every namespace, sorted by name.
func (s *NamespaceStore) List(ctx context.Context) ([]Namespace, error) {
	var list []Namespace
	err := s.db.view(ctx, func(btx *bolt.Tx) error {
		v1 := btx.Bucket(bucketKeyV1)
		if v1 == nil {
			return nil
		}
		return v1.ForEachBucket(func(k []byte) error {
			list = append(list, Namespace{Name: string(k), Labels: readLabels(v1.Bucket(k))})
			return nil
		})
	})
	return list, err
}

// SetLabel sets the label key of namespace name to value; an empty value
// removes it. NotFound if the namespace does not exist.
func (s *NamespaceStore) SetLabel(ctx context.Context, name, key, value string) error {
	if key == "" {
		return fmt.Errorf("namespace %q: label key must not be empty: %w", name, errdefs.ErrInvalidArgument)
	}
	var l map[string]string
	if value != "" {
		l = map[string]string{key: value}
	}
	_, err := s.UpdateLabels(ctx, Namespace{Name: name, Labels: l}, "labels."+key)
	return err
}

// UpdateLabels changes the labels of namespace ns.Name named by
// fieldpaths ("labels", "labels.<key>"; none means "labels"), in one
// transaction. InvalidArgument for another path, NotFound if there is no
// such namespace.
func (s *NamespaceStore) UpdateLabels(ctx context.Context, ns Namespace, fieldpaths ...string) (Namespace, error) {
	if len(fieldpaths) == 0 {
		fieldpaths = []string{"labels"}
	}
	var updated Namespace
	err := s.db.update(ctx, func(t *tx) error {
		bkt := nsBucket(t.Tx, ns.Name)
		if bkt == nil {
			return fmt.Errorf("namespace %q: %w", ns.Name, errdefs.ErrNotFound)
		}
		updated = Namespace{Name: ns.Name, Labels: readLabels(bkt)}
		for _, p := range fieldpaths {
			if !labels.ApplyPath(&updated.Labels, ns.Labels, "labels", p) {
				return fmt.Errorf("namespace %q: field path %q cannot be updated: %w", ns.Name, p, errdefs.ErrInvalidArgument)
			}
		}
		if err := validateLabels(updated.Labels); err != nil {
			return fmt.Errorf("namespace %q: %w", ns.Name, err)
		}
		if err := writeLabels(bkt, updated.Labels); err != nil {
			return err
		}
		t.publish(ns.Name, "/namespaces/update", &eventsv1.NamespaceUpdate{Name: ns.Name, Labels: maps.Clone(updated.Labels)})
		return nil
	})
	return updated, err
}

// Delete removes the namespace name: NotFound if it does not exist,
// FailedPrecondition naming what it still holds if it is not empty.
func (s *NamespaceStore) Delete(ctx context.Context, name string) error {
	return s.db.update(ctx, func(t *tx) error {
		bkt := nsBucket(t.Tx, name)
		if bkt == nil {
			return fmt.Errorf("namespace %q: %w", name, errdefs.ErrNotFound)
		}
		if left := nonEmpty(bkt); len(left) > 0 {
			return fmt.Errorf("namespace %q must be empty, but it still has %s: %w",
				name, strings.Join(left, ", "), errdefs.ErrFailedPrecondition)
		}
		if err := t.Bucket(bucketKeyV1).DeleteBucket([]byte(name)); err != nil {
			return err
		}
		t.dirty = true
		t.publish(name, "/namespaces/delete", &eventsv1.NamespaceDelete{Name: name})
		return nil
	})
}

// nonEmpty names the kinds of object a namespace bucket still holds.
func nonEmpty(bkt *bolt.Bucket) []string {
	var left []string
	for _, k := range nsChildBuckets {
		if k := string(k); k != string(bucketKeyLabels) && !emptyTree(bkt.Bucket([]byte(k))) {
			left = append(left, k)
		}
	}
	return left
}

// emptyTree reports whether bkt holds no value at any depth: a
// snapshotter's bucket with no snapshot left counts as empty.
func emptyTree(bkt *bolt.Bucket) bool {
	if bkt == nil {
		return true
	}
	empty := true
	_ = bkt.ForEach(func(k, v []byte) error {
		if v != nil || !emptyTree(bkt.Bucket(k)) {
			empty = false
			return errStop
		}
		return nil
	})
	return empty
}

// errStop ends a ForEach early.
var errStop = errors.New("stop")
