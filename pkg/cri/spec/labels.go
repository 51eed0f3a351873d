package spec

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

// ReservedPrefix starts the label and annotation keys of the runtime
// itself (its GC labels in meta, the annotations of the specs written
// here). The CRI's labels and annotations may not use it: a pod could
// otherwise pin or free content through a GC label, or pass for another
// container.
const ReservedPrefix = "cri-runtime.io/"

// The annotations of every spec written here.
const (
	AnnotationContainerType = ReservedPrefix + "container-type" // "sandbox" or "container"
	AnnotationSandboxID     = ReservedPrefix + "sandbox-id"
	AnnotationName          = ReservedPrefix + "name" // the CRI metadata name
)

// ValidateKeys refuses keys of m that are empty or start with
// ReservedPrefix; field names the map ("labels", "annotations").
func ValidateKeys(field string, m map[string]string) error {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if k == "" {
			return fmt.Errorf("%s: empty key: %w", field, errdefs.ErrInvalidArgument)
		}
		if strings.HasPrefix(k, ReservedPrefix) {
			return fmt.Errorf("%s %q: the prefix %q is reserved for the runtime: %w", field, k, ReservedPrefix, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}
