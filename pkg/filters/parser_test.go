package filters

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"regexp/syntax"
	"testing"

	"github.com/cri-runtime/cri-runtime/pkg/errdefs"
)

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		filter string
		msg    string // expected error text before ": invalid argument"
	}{
		{"name==", `filter "name==": expected value at position 6`},
		{"name== ", `filter "name== ": expected value at position 7`},
		{"name==,a", `filter "name==,a": expected value at position 6`},
		{"name!=", `filter "name!=": expected value at position 6`},
		{"name~=", `filter "name~=": expected value at position 6`},
		{"a==b,,c==d", `filter "a==b,,c==d": empty selector at position 5`},
		{"a==b,", `filter "a==b,": empty selector at position 5`},
		{",a==b", `filter ",a==b": empty selector at position 0`},
		{"a==b, ,c", `filter "a==b, ,c": empty selector at position 6`},
		{"==b", `filter "==b": expected field name, found '=' at position 0`},
		{"a.==b", `filter "a.==b": expected field name, found '=' at position 2`},
		{"a..b", `filter "a..b": expected field name, found '.' at position 2`},
		{"a.", `filter "a.": expected field name, found end of filter at position 2`},
		{".a", `filter ".a": expected field name, found '.' at position 0`},
		{"name=x", `filter "name=x": expected operator ==, != or ~=, found '=' at position 4`},
		{"name = x", `filter "name = x": expected operator ==, != or ~=, found '=' at position 5`},
		{"name<x", `filter "name<x": expected operator ==, != or ~=, found '<' at position 4`},
		{"name x", `filter "name x": expected operator ==, != or ~=, found 'x' at position 5`},
		{"a===b", `filter "a===b": expected value, found '=' at position 3`},
		{"a==b c", `filter "a==b c": expected ',' or end of filter, found 'c' at position 5`},
		{`a==b"c"`, `filter "a==b\"c\"": expected ',' or end of filter, found '"' at position 4`},
		{`a=="b"c`, `filter "a==\"b\"c": expected ',' or end of filter, found 'c' at position 6`},
		{`labels."a.b`, `filter "labels.\"a.b": unterminated quoted string at position 7`},
		{`labels."a.b\"==c`, `filter "labels.\"a.b\\\"==c": unterminated quoted string at position 7`},
		{`name=="abc`, `filter "name==\"abc": unterminated quoted string at position 6`},
		{`name=="a\qb"`, `filter "name==\"a\\qb\"": invalid quoted string "a\qb" at position 6`},
		{`name==|abc`, `filter "name==|abc": unterminated |-quoted value at position 6`},
		{`labels."a"b==c`, `filter "labels.\"a\"b==c": expected operator ==, != or ~=, found 'b' at position 10`},
		{"name~=(", `filter "name~=(": regexp "(" at position 6: error parsing regexp: missing closing ): ` + "`(`"},
		{"a==b,name~=|[z-a]|", `filter "a==b,name~=|[z-a]|": regexp "[z-a]" at position 11: error parsing regexp: invalid character class range: ` + "`z-a`"},
	} {
		t.Run(tc.filter, func(t *testing.T) {
			f, err := Parse(tc.filter)
			if err == nil {
				t.Fatalf("Parse(%q) = %v, want error", tc.filter, f)
			}
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("Parse(%q) error %v is not InvalidArgument", tc.filter, err)
			}
			if want := tc.msg + ": invalid argument"; err.Error() != want {
				t.Errorf("Parse(%q) error\n got %s\nwant %s", tc.filter, err, want)
			}
		})
	}
}

func TestParseRegexpErrorWrapsSyntaxError(t *testing.T) {
	_, err := Parse("name~=(")
	var syn *syntax.Error
	if !errors.As(err, &syn) || syn.Code != syntax.ErrMissingParen {
		t.Fatalf("error %v does not wrap the regexp syntax error", err)
	}
}

// FuzzParse checks that Parse never panics and that the canonical form of a
// parsed filter parses back to the same filter, and is a fixed point.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "name", "name==a", `labels."a.b"==c`, "a==b,c!=d,e~=^f$",
		"path==/tasks/exit", `x~=/a\/b/`, `x~=|a\|b|`, `x=="a\tb\u00e9\x00"`,
		"a==b,,c", "name==", `"\xff"==a`, "digest==sha256:abc", " a == b ",
		"a==/", "a==//", "a==/b/c/", `labels.""==x`, "a==é,ü",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		flt, err := Parse(s)
		if err != nil {
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("Parse(%q) error %v is not InvalidArgument", s, err)
			}
			return
		}
		str, ok := flt.(fmt.Stringer)
		if !ok {
			return // Always
		}
		canon := str.String()
		again, err := Parse(canon)
		if err != nil {
			t.Fatalf("Parse(%q) ok, but its String %q does not parse: %v", s, canon, err)
		}
		if got := again.(fmt.Stringer).String(); got != canon {
			t.Fatalf("String not stable: %q -> %q -> %q", s, canon, got)
		}
		if !sameSelectors(flt.(conjunction), again.(conjunction)) {
			t.Fatalf("Parse(%q) = %#v, but Parse(%q) = %#v", s, flt, canon, again)
		}
	})
}

func sameSelectors(a, b conjunction) bool {
	strip := func(c conjunction) []selector {
		out := make([]selector, len(c))
		for i, s := range c {
			s.re = nil
			out[i] = s
		}
		return out
	}
	reString := func(re *regexp.Regexp) string {
		if re == nil {
			return ""
		}
		return re.String()
	}
	if len(a) != len(b) || !reflect.DeepEqual(strip(a), strip(b)) {
		return false
	}
	for i := range a {
		if reString(a[i].re) != reString(b[i].re) {
			return false
		}
	}
	return true
}

// FuzzSelector builds a selector on any label key and value, writes it
// with String and parses it back: every key and value a store may hold can
// be written as a filter, the filter parses to that one selector, and it
// matches as the package doc says: == exactly the objects whose label is
// value, != the others and those without the label, a bare field the
// objects that have it, ~= those the regexp matches.
func FuzzSelector(f *testing.F) {
	for _, s := range [][3]string{
		{"app", "web", "Web"}, {"a.b/c", "x,y", "x"}, {`quote"d`, `"`, ""}, {"with space", "two words", "two"},
		{"k", "/a/", "a"}, {"k", "|a|", "a"}, {"k", "", " "}, {"k", "\xff\x00", "\xff"}, {"", "v", "v"},
		{"k", "a\\b", `a\\b`}, {"ключ", "значение", "x"}, {"k", "^a.b$", "a.b"}, {"k", "=x", "x"}, {"k", "x=", "x"},
	} {
		for op := range 4 {
			f.Add(s[0], s[1], s[2], uint8(op))
		}
	}
	f.Fuzz(func(t *testing.T, key, value, other string, op uint8) {
		sel := selector{fieldpath: []string{"labels", key}, op: operator(op % 4), value: value}
		if sel.op == opPresent {
			sel.value = ""
		}
		if sel.op == opMatches {
			re, err := regexp.Compile(value)
			if err != nil {
				return
			}
			sel.re = re
		}
		text := sel.String()
		flt, err := Parse(text)
		if err != nil {
			t.Fatalf("selector %#v written %q does not parse: %v", sel, text, err)
		}
		c, ok := flt.(conjunction)
		if !ok || len(c) != 1 || !sameSelectors(c, conjunction{sel}) {
			t.Fatalf("selector %#v written %q parses to %#v", sel, text, flt)
		}
		for _, v := range []string{value, other} {
			got := flt.Match(Map(nil, map[string]string{key: v}))
			var want bool
			switch sel.op {
			case opPresent:
				want = true
			case opEqual:
				want = v == value
			case opNotEqual:
				want = v != value
			case opMatches:
				want = sel.re.MatchString(v)
			}
			if got != want {
				t.Fatalf("%q on label %q=%q: match %v, want %v", text, key, v, got, want)
			}
		}
		absent := flt.Match(Map(nil, map[string]string{key + "x": value}))
		if absent != (sel.op == opNotEqual) {
			t.Fatalf("%q on an object without the label: match %v", text, absent)
		}
	})
}
