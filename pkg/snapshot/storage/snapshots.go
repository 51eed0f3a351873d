package storage

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"
	"time"

	labelpath "github.com/cri-runtime/cri-runtime/pkg/labels"

	bolt "go.etcd.io/bbolt"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
	"github.com/cri-runtime/cri-runtime/pkg/snapshot"
)

// maxLabelSize bounds the key and value of one label together, so that a
// caller cannot grow a record without limit.
const maxLabelSize = 4096

// Snapshot is what a backend needs to find a snapshot's directories: its
// ID and the IDs of its parents, nearest first.
type Snapshot struct {
	ID        string
	Kind      snapshot.Kind
	ParentIDs []string
}

// CreateSnapshot records the new active or view snapshot key over parent
// ("" for none) and returns its fresh ID. InvalidArgument for an empty key
// or another kind; AlreadyExists if key exists; NotFound if parent does
// not; FailedPrecondition if parent is not committed.
func (t *Tx) CreateSnapshot(kind snapshot.Kind, key, parent string, opts ...snapshot.Opt) (Snapshot, error) {
	if kind != snapshot.KindActive && kind != snapshot.KindView {
		return Snapshot{}, fmt.Errorf("snapshot %q: cannot create a snapshot of kind %v: %w", key, kind, errdefs.ErrInvalidArgument)
	}
	if key == "" {
		return Snapshot{}, fmt.Errorf("snapshot key must not be empty: %w", errdefs.ErrInvalidArgument)
	}
	base, err := applyOpts(opts)
	if err != nil {
		return Snapshot{}, fmt.Errorf("snapshot %q: %w", key, err)
	}
	if base.Parent != "" && base.Parent != parent {
		return Snapshot{}, fmt.Errorf("snapshot %q: WithParent applies to Commit only: %w", key, errdefs.ErrInvalidArgument)
	}
	bkt, err := t.snapshots()
	if err != nil {
		return Snapshot{}, err
	}
	if bkt.Bucket([]byte(key)) != nil {
		return Snapshot{}, fmt.Errorf("snapshot %q: %w", key, errdefs.ErrAlreadyExists)
	}
	var (
		parentID  uint64
		parentIDs []string
	)
	if parent != "" {
		pb, err := committed(bkt, parent)
		if err != nil {
			return Snapshot{}, err
		}
		parentID = readID(pb)
		if parentIDs, err = chainIDs(bkt, parent); err != nil {
			return Snapshot{}, err
		}
	}
	id, err := bkt.NextSequence()
	if err != nil {
		return Snapshot{}, err
	}
	sb, err := bkt.CreateBucket([]byte(key))
	if err != nil {
		return Snapshot{}, err
	}
	now := time.Now().UTC()
	info := snapshot.Info{Kind: kind, Parent: parent, Labels: base.Labels, Created: now, Updated: now}
	if err := putInfo(sb, id, info); err != nil {
		return Snapshot{}, err
	}
	if parent != "" {
		if err := t.linkParent(parentID, id, key); err != nil {
			return Snapshot{}, err
		}
	}
	return Snapshot{ID: formatID(id), Kind: kind, ParentIDs: parentIDs}, nil
}

// GetSnapshot returns the ID, kind and parent IDs of key; NotFound if none.
func (t *Tx) GetSnapshot(key string) (Snapshot, error) {
	bkt, err := t.snapshots()
	if err != nil {
		return Snapshot{}, err
	}
	sb := lookup(bkt, key)
	if sb == nil {
		return Snapshot{}, fmt.Errorf("snapshot %q: %w", key, errdefs.ErrNotFound)
	}
	s := Snapshot{ID: formatID(readID(sb)), Kind: readKind(sb)}
	if parent := string(sb.Get(keyParent)); parent != "" {
		if s.ParentIDs, err = chainIDs(bkt, parent); err != nil {
			return Snapshot{}, err
		}
	}
	return s, nil
}

// GetInfo returns the ID, info and cached usage (zero unless committed)
// of key; NotFound if none.
func (t *Tx) GetInfo(key string) (string, snapshot.Info, snapshot.Usage, error) {
	bkt, err := t.snapshots()
	if err != nil {
		return "", snapshot.Info{}, snapshot.Usage{}, err
	}
	sb := lookup(bkt, key)
	if sb == nil {
		return "", snapshot.Info{}, snapshot.Usage{}, fmt.Errorf("snapshot %q: %w", key, errdefs.ErrNotFound)
	}
	info, err := readInfo(key, sb)
	if err != nil {
		return "", snapshot.Info{}, snapshot.Usage{}, err
	}
	return formatID(readID(sb)), info, readUsage(sb), nil
}

// CommitActive turns the active snapshot key into the committed snapshot
// name, which keeps key's ID, caches usage and takes its labels from opts
// (those of the active snapshot are not carried over). With
// snapshot.WithParent the new snapshot is recorded under that parent, which
// must be committed. NotFound if key does not exist; FailedPrecondition if
// it is not active; AlreadyExists if name exists, leaving key intact.
func (t *Tx) CommitActive(key, name string, usage snapshot.Usage, opts ...snapshot.Opt) (string, error) {
	if name == "" {
		return "", fmt.Errorf("commit of %q: snapshot name must not be empty: %w", key, errdefs.ErrInvalidArgument)
	}
	base, err := applyOpts(opts)
	if err != nil {
		return "", fmt.Errorf("commit of %q: %w", key, err)
	}
	bkt, err := t.snapshots()
	if err != nil {
		return "", err
	}
	sb := lookup(bkt, key)
	if sb == nil {
		return "", fmt.Errorf("snapshot %q: %w", key, errdefs.ErrNotFound)
	}
	if k := readKind(sb); k != snapshot.KindActive {
		return "", fmt.Errorf("commit of %q: snapshot is %v, not active: %w", key, k, errdefs.ErrFailedPrecondition)
	}
	if bkt.Bucket([]byte(name)) != nil {
		return "", fmt.Errorf("snapshot %q: %w", name, errdefs.ErrAlreadyExists)
	}
	id := readID(sb)
	oldParent := string(sb.Get(keyParent))
	parent := oldParent
	if base.Parent != "" {
		if _, err := committed(bkt, base.Parent); err != nil {
			return "", fmt.Errorf("commit of %q: %w", key, err)
		}
		parent = base.Parent
	}
	if oldParent != "" {
		if err := t.unlinkParent(bkt, oldParent, id); err != nil {
			return "", err
		}
	}
	if err := bkt.DeleteBucket([]byte(key)); err != nil {
		return "", err
	}
	nb, err := bkt.CreateBucket([]byte(name))
	if err != nil {
		return "", err
	}
	now := time.Now().UTC()
	info := snapshot.Info{Kind: snapshot.KindCommitted, Parent: parent, Labels: base.Labels, Created: now, Updated: now}
	if err := putInfo(nb, id, info); err != nil {
		return "", err
	}
	if err := putUsage(nb, usage); err != nil {
		return "", err
	}
	if parent != "" {
		if err := t.linkParent(readID(bkt.Bucket([]byte(parent))), id, name); err != nil {
			return "", err
		}
	}
	return formatID(id), nil
}

// Remove deletes the record of key and returns its ID and kind, so that
// the backend can remove its directories. NotFound if key does not exist;
// FailedPrecondition if it has children.
func (t *Tx) Remove(key string) (string, snapshot.Kind, error) {
	bkt, err := t.snapshots()
	if err != nil {
		return "", snapshot.KindUnknown, err
	}
	sb := lookup(bkt, key)
	if sb == nil {
		return "", snapshot.KindUnknown, fmt.Errorf("snapshot %q: %w", key, errdefs.ErrNotFound)
	}
	id, kind := readID(sb), readKind(sb)
	pbkt, err := t.parents()
	if err != nil {
		return "", snapshot.KindUnknown, err
	}
	prefix := binary.BigEndian.AppendUint64(nil, id)
	if k, v := pbkt.Cursor().Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) {
		return "", snapshot.KindUnknown, fmt.Errorf("snapshot %q has children (%q among them): %w", key, v, errdefs.ErrFailedPrecondition)
	}
	if parent := string(sb.Get(keyParent)); parent != "" {
		if err := t.unlinkParent(bkt, parent, id); err != nil {
			return "", snapshot.KindUnknown, err
		}
	}
	if err := bkt.DeleteBucket([]byte(key)); err != nil {
		return "", snapshot.KindUnknown, err
	}
	return formatID(id), kind, nil
}

// UpdateInfo changes the labels of info.Name. The field paths are
// "labels" (replace them all) and "labels.<key>" (set, or delete when info
// has no such label); none means "labels". Other fields cannot change:
// InvalidArgument.
func (t *Tx) UpdateInfo(info snapshot.Info, fieldpaths ...string) (snapshot.Info, error) {
	bkt, err := t.snapshots()
	if err != nil {
		return snapshot.Info{}, err
	}
	sb := lookup(bkt, info.Name)
	if sb == nil {
		return snapshot.Info{}, fmt.Errorf("snapshot %q: %w", info.Name, errdefs.ErrNotFound)
	}
	cur, err := readInfo(info.Name, sb)
	if err != nil {
		return snapshot.Info{}, err
	}
	labels := cur.Labels
	if len(fieldpaths) == 0 {
		fieldpaths = []string{"labels"}
	}
	for _, p := range fieldpaths {
		if !labelpath.ApplyPath(&labels, info.Labels, "labels", p) {
			return snapshot.Info{}, fmt.Errorf("update of snapshot %q: field %q cannot be updated: %w", info.Name, p, errdefs.ErrInvalidArgument)
		}
	}
	if err := validateLabels(labels); err != nil {
		return snapshot.Info{}, fmt.Errorf("update of snapshot %q: %w", info.Name, err)
	}
	cur.Labels = labels
	cur.Updated = time.Now().UTC()
	if err := putLabels(sb, labels); err != nil {
		return snapshot.Info{}, err
	}
	if err := putTime(sb, keyUpdated, cur.Updated); err != nil {
		return snapshot.Info{}, err
	}
	return cur, nil
}

// IDMap returns the key or name of every snapshot by ID, for a backend to
// find directories that no record owns.
func (t *Tx) IDMap() (map[string]string, error) {
	m := map[string]string{}
	bkt, err := t.snapshots()
	if err != nil || bkt == nil {
		return m, err
	}
	err = bkt.ForEachBucket(func(k []byte) error {
		m[formatID(readID(bkt.Bucket(k)))] = string(k)
		return nil
	})
	return m, err
}

// committed returns the bucket of the committed snapshot name.
func committed(bkt *bolt.Bucket, name string) (*bolt.Bucket, error) {
	pb := lookup(bkt, name)
	if pb == nil {
		return nil, fmt.Errorf("parent snapshot %q: %w", name, errdefs.ErrNotFound)
	}
	if k := readKind(pb); k != snapshot.KindCommitted {
		return nil, fmt.Errorf("parent snapshot %q is %v, not committed: %w", name, k, errdefs.ErrFailedPrecondition)
	}
	return pb, nil
}

// chainIDs returns the IDs of name and its ancestors, nearest first.
func chainIDs(bkt *bolt.Bucket, name string) ([]string, error) {
	var ids []string
	for name != "" {
		sb := bkt.Bucket([]byte(name))
		if sb == nil {
			return nil, fmt.Errorf("ancestor snapshot %q is missing: %w", name, errdefs.ErrInternal)
		}
		ids = append(ids, formatID(readID(sb)))
		name = string(sb.Get(keyParent))
	}
	return ids, nil
}

func (t *Tx) linkParent(parentID, childID uint64, child string) error {
	pbkt, err := t.parents()
	if err != nil {
		return err
	}
	return pbkt.Put(parentKey(parentID, childID), []byte(child))
}

func (t *Tx) unlinkParent(bkt *bolt.Bucket, parent string, childID uint64) error {
	pb := bkt.Bucket([]byte(parent))
	if pb == nil {
		return fmt.Errorf("parent snapshot %q is missing: %w", parent, errdefs.ErrInternal)
	}
	pbkt, err := t.parents()
	if err != nil {
		return err
	}
	return pbkt.Delete(parentKey(readID(pb), childID))
}

func parentKey(parent, child uint64) []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, parent), child)
}

func lookup(bkt *bolt.Bucket, key string) *bolt.Bucket {
	if bkt == nil || key == "" {
		return nil
	}
	return bkt.Bucket([]byte(key))
}

func formatID(id uint64) string { return strconv.FormatUint(id, 10) }

func applyOpts(opts []snapshot.Opt) (snapshot.Info, error) {
	var base snapshot.Info
	for _, o := range opts {
		if err := o(&base); err != nil {
			return snapshot.Info{}, err
		}
	}
	return base, validateLabels(base.Labels)
}

func validateLabels(labels map[string]string) error {
	for k, v := range labels {
		if len(k)+len(v) > maxLabelSize {
			return fmt.Errorf("label %q: key and value are %d bytes, more than %d: %w", k, len(k)+len(v), maxLabelSize, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

func copyLabels(in map[string]string) map[string]string {
	out := make(map[string]string, len(in))
	for k, v := range in {
		out[k] = v
	}
	return out
}
