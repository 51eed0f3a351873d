// Package filters implements the filter language of the management API and
// the stores: `name==x`, `labels."a.b"==v`, `name~=regex`, `name!=x`, a bare
// field for presence, ',' for AND, and several filters for OR.
//
// This package imports nothing of the project but errdefs.
package filters

// Adaptor exposes the fields of an object to a filter. fieldpath is the
// dotted path split into parts: labels."a.b" is ["labels", "a.b"].
type Adaptor interface {
	Field(fieldpath []string) (value string, present bool)
}

// AdapterFunc is an Adaptor written as a function.
type AdapterFunc func(fieldpath []string) (string, bool)

// Field calls f.
func (f AdapterFunc) Field(fieldpath []string) (string, bool) { return f(fieldpath) }

// Filter decides whether an object matches.
type Filter interface {
	Match(adaptor Adaptor) bool
}

// FilterFunc is a Filter written as a function.
type FilterFunc func(Adaptor) bool

// Match calls f.
func (f FilterFunc) Match(a Adaptor) bool { return f(a) }

// Always matches everything.
var Always Filter = FilterFunc(func(Adaptor) bool { return true })
