package meta

import (
	"fmt"
	"strings"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// The labels the garbage collector reads. They may be set on content blobs
// and snapshots (references and roots), on images, containers and sandboxes
// (references), and on leases (expiry).
const (
	// LabelGCRoot marks a blob or snapshot as a root: kept whatever
	// references it. Any value.
	LabelGCRoot = "cri-runtime.io/gc.root"
	// LabelGCRefContent, alone or followed by "." or "/" and any suffix
	// ("cri-runtime.io/gc.ref.content.m.0"), references the blob whose
	// digest is the label's value, in the same namespace.
	LabelGCRefContent = "cri-runtime.io/gc.ref.content"
	// LabelGCRefSnapshot followed by "." and a snapshotter name, and
	// optionally "/" and any suffix
	// ("cri-runtime.io/gc.ref.snapshot.overlayfs/0"), references the
	// snapshot whose key is the label's value in that snapshotter, in the
	// same namespace. GCRefSnapshotLabel builds the key.
	LabelGCRefSnapshot = "cri-runtime.io/gc.ref.snapshot"
	// LabelGCExpire holds the expiry of a lease, RFC 3339.
	LabelGCExpire = "cri-runtime.io/gc.expire"

	// labelGCPrefix is what every GC label starts with.
	labelGCPrefix = "cri-runtime.io/gc."
)

// The bounds of what one record may hold. A record is read whole by every
// lookup and, for blobs, by the collector in its pause: they keep a
// client from making every later read slow.
const (
	// maxLabelSize bounds the key plus the value of one label, in bytes.
	maxLabelSize = 4096
	// maxLabels bounds the number of labels of one record.
	maxLabels = 1024
	// maxLabelsTotal bounds the keys plus values of one record's labels,
	// in bytes.
	maxLabelsTotal = 256 << 10
	// maxKeyLen bounds an ingest ref, a snapshot key or name and an image
	// name, in bytes.
	maxKeyLen = 1024
)

// GCRefSnapshotLabel returns the label key that references a snapshot of
// snapshotter; suffix, if not empty, tells several such labels apart.
func GCRefSnapshotLabel(snapshotter, suffix string) string {
	if suffix == "" {
		return LabelGCRefSnapshot + "." + snapshotter
	}
	return LabelGCRefSnapshot + "." + snapshotter + "/" + suffix
}

// validateLabels checks the size and shape of labels.
func validateLabels(labels map[string]string) error {
	if len(labels) > maxLabels {
		return fmt.Errorf("%d labels, more than the %d a record may have: %w", len(labels), maxLabels, errdefs.ErrInvalidArgument)
	}
	total := 0
	for k, v := range labels {
		if k == "" {
			return fmt.Errorf("label key must not be empty: %w", errdefs.ErrInvalidArgument)
		}
		if len(k)+len(v) > maxLabelSize {
			return fmt.Errorf("label %.64q is longer than %d bytes: %w", k, maxLabelSize, errdefs.ErrInvalidArgument)
		}
		total += len(k) + len(v)
	}
	if total > maxLabelsTotal {
		return fmt.Errorf("labels of %d bytes, more than the %d a record may have: %w", total, maxLabelsTotal, errdefs.ErrInvalidArgument)
	}
	return nil
}

// validateKey checks an ingest ref, a snapshot key or an image name: what
// names it for what, not empty and at most maxKeyLen bytes.
func validateKey(what, key string) error {
	if key == "" {
		return fmt.Errorf("%s must not be empty: %w", what, errdefs.ErrInvalidArgument)
	}
	if len(key) > maxKeyLen {
		return fmt.Errorf("%s %.64q... is %d bytes, more than %d: %w", what, key, len(key), maxKeyLen, errdefs.ErrInvalidArgument)
	}
	return nil
}

// droppedRefs reports whether going from labels before to after removed
// or changed a GC label: what it referenced may now be garbage.
func droppedRefs(before, after map[string]string) bool {
	for k, v := range before {
		if strings.HasPrefix(k, labelGCPrefix) {
			if nv, ok := after[k]; !ok || nv != v {
				return true
			}
		}
	}
	return false
}

// fields builds the fields of a filters.Map from key, value pairs; a field
// with an empty value is absent, so that a bare field name in a filter
// tests that it is set.
func fields(kv ...string) map[string]string {
	m := make(map[string]string, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			m[kv[i]] = kv[i+1]
		}
	}
	return m
}
