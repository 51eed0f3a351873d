package filters

import (
	"regexp"
	"strconv"
	"strings"
	"unicode"
)

// operator is what a selector does with its field.
type operator int

const (
	opPresent  operator = iota // bare fieldpath
	opEqual                    // ==
	opNotEqual                 // !=
	opMatches                  // ~=
)

func (o operator) String() string {
	switch o {
	case opEqual:
		return "=="
	case opNotEqual:
		return "!="
	case opMatches:
		return "~="
	}
	return ""
}

// selector is one comma-separated term of a filter.
type selector struct {
	fieldpath []string
	op        operator
	value     string
	re        *regexp.Regexp // compiled value when op is opMatches
}

func (s selector) match(a Adaptor) bool {
	v, present := a.Field(s.fieldpath)
	switch s.op {
	case opPresent:
		return present
	case opEqual:
		return present && v == s.value
	case opNotEqual:
		// As in containerd: a missing field is different from any value.
		return !present || v != s.value
	case opMatches:
		return present && s.re.MatchString(v)
	}
	return false
}

// String returns the selector in canonical form: components and values bare
// when that reads back the same, Go-quoted otherwise.
func (s selector) String() string {
	var b strings.Builder
	for i, c := range s.fieldpath {
		if i > 0 {
			b.WriteByte('.')
		}
		if isBareName(c) {
			b.WriteString(c)
		} else {
			b.WriteString(strconv.Quote(c))
		}
	}
	if s.op == opPresent {
		return b.String()
	}
	b.WriteString(s.op.String())
	if isCanonicalBareValue(s.value) {
		b.WriteString(s.value)
	} else {
		b.WriteString(strconv.Quote(s.value))
	}
	return b.String()
}

// conjunction is what Parse returns: selectors that must all match.
type conjunction []selector

// Match reports whether every selector matches.
func (c conjunction) Match(a Adaptor) bool {
	for _, s := range c {
		if !s.match(a) {
			return false
		}
	}
	return true
}

// String returns the filter in canonical form; Parse of it gives an equal
// filter.
func (c conjunction) String() string {
	parts := make([]string, len(c))
	for i, s := range c {
		parts[i] = s.String()
	}
	return strings.Join(parts, ",")
}

func isNameRune(r rune) bool {
	return r == '_' || r == '-' || unicode.IsLetter(r) || unicode.IsDigit(r)
}

func isBareName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !isNameRune(r) {
			return false
		}
	}
	return true
}

// isCanonicalBareValue is deliberately narrower than what the parser
// accepts, so that String never has to reason about the /.../ fallback.
func isCanonicalBareValue(s string) bool {
	if s == "" || s[0] == '/' {
		return false
	}
	for _, r := range s {
		if !isNameRune(r) && !strings.ContainsRune("./:@+", r) {
			return false
		}
	}
	return true
}
