// Package labels holds what every store does alike with the labels of its
// records: the field paths of a masked update ("labels", "labels.<key>").
//
// This package imports only the standard library.
package labels

import (
	"maps"
	"strings"
)

// ApplyPath applies the field path "<field>" or "<field>.<key>" of src to
// dst, and reports whether path was one of those. "<field>" replaces dst
// with a copy of src; "<field>.<key>" sets the key to its value in src, or
// deletes it from dst when src does not have it. field is "labels", or
// another map of the record updated the same way ("extensions").
func ApplyPath[V any](dst *map[string]V, src map[string]V, field, path string) bool {
	if path == field {
		*dst = maps.Clone(src)
		return true
	}
	key, ok := strings.CutPrefix(path, field+".")
	if !ok || key == "" {
		return false
	}
	if v, set := src[key]; set {
		if *dst == nil {
			*dst = map[string]V{}
		}
		(*dst)[key] = v
	} else {
		delete(*dst, key)
	}
	return true
}
