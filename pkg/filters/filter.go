// Package filters implements the filter language of the management API and
// the stores: `name==x`, `labels."a.b"==v`, `name~=regex`, `name!=x`, a bare
// field for presence, ',' for AND, and several filters for OR.
//
// The grammar, with whitespace allowed between tokens:
//
//	filter    = [ selector { "," selector } ]
//	selector  = fieldpath [ op value ]
//	fieldpath = component { "." component }
//	component = name | quoted            name: letters, digits, '_', '-'
//	op        = "==" | "!=" | "~="
//	value     = bare | quoted | "|" raw "|" | "/" raw "/"
//
// quoted is a Go double-quoted string literal (escapes as in Go). A bare value
// is any run of characters but whitespace, ',' and '"' that does not start
// with '=' or '|': `digest==sha256:abc`, `name==docker.io/library/busybox:1`.
// The |...| and /.../ forms are containerd's, meant for regular expressions:
// inside them a backslash escapes the delimiter and every other backslash is
// kept, so `topic~=|^/tasks/|` and `name~=/a\.b/` say what they look like. A
// value that starts with '/' but does not close as /.../ (a path such as
// `/tasks/exit`) is read as a bare value.
//
// Matching follows containerd: a bare field matches when the Adaptor reports
// it present; `==` and `~=` need the field present; `!=` matches when the
// field is missing or differs.
//
// This package owns the language only: what an object's fields are is the
// business of its Adaptor. It imports nothing of the project but errdefs.
package filters

import "strings"

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

// Map returns the Adaptor shared by the stores: ["labels", k] is labels[k],
// ["labels"] is present when there is at least one label, and any other path
// is fields keyed by its parts joined with '.': ["name"] is fields["name"],
// and runtime.name, ["runtime", "name"], is fields["runtime.name"]. Labels
// need their own map because a label key may itself contain dots.
func Map(fields map[string]string, labels map[string]string) Adaptor {
	return AdapterFunc(func(fieldpath []string) (string, bool) {
		switch {
		case len(fieldpath) == 0:
			return "", false
		case fieldpath[0] == "labels":
			switch len(fieldpath) {
			case 1:
				return "", len(labels) > 0
			case 2:
				v, ok := labels[fieldpath[1]]
				return v, ok
			}
			return "", false
		case len(fieldpath) == 1: // the common case, without allocating
			v, ok := fields[fieldpath[0]]
			return v, ok
		}
		v, ok := fields[strings.Join(fieldpath, ".")]
		return v, ok
	})
}

// ParseAll parses each of ss and returns a Filter that matches when any of
// them does. With no filters it returns Always; an empty string is the
// filter that matches everything, so it makes the whole disjunction Always,
// as in containerd.
func ParseAll(ss ...string) (Filter, error) {
	if len(ss) == 0 {
		return Always, nil
	}
	var fs anyOf
	always := false
	for _, s := range ss {
		f, err := Parse(s)
		if err != nil {
			return nil, err
		}
		if _, ok := f.(conjunction); !ok {
			always = true // Parse returns Always for an empty filter
			continue
		}
		fs = append(fs, f)
	}
	if always {
		return Always, nil
	}
	if len(fs) == 1 {
		return fs[0], nil
	}
	return fs, nil
}

// anyOf is the disjunction built by ParseAll.
type anyOf []Filter

// Match reports whether any of the filters matches.
func (fs anyOf) Match(a Adaptor) bool {
	for _, f := range fs {
		if f.Match(a) {
			return true
		}
	}
	return false
}

// String returns the filters, each in canonical form, separated by " | ";
// it is meant for logs, not for Parse.
func (fs anyOf) String() string {
	parts := make([]string, len(fs))
	for i, f := range fs {
		if s, ok := f.(interface{ String() string }); ok {
			parts[i] = s.String()
		}
	}
	return strings.Join(parts, " | ")
}
