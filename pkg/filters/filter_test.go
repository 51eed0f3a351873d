package filters

import (
	"fmt"
	"testing"
)

// object is the fixture every match test filters.
var objectFields = map[string]string{
	"name":   "docker.io/library/busybox:latest",
	"digest": "sha256:abc123",
	"empty":  "",
	"path":   "/tasks/exit",
}

var objectLabels = map[string]string{
	"app":                  "web",
	"io.kubernetes.pod":    "nginx-1",
	"a.b/c":                "x,y",
	"quote\"d":             "q",
	"gc.ref.content.l.0":   "sha256:def",
	"with space":           "two words",
	"regexp":               "a.b",
	"slash":                "a/b",
	"backslash":            `a\b`,
	"pipe":                 "a|b",
	"unicode-ключ":         "значение",
	"empty-value":          "",
	"io.cri-runtime/owner": "me",
}

func TestParseMatch(t *testing.T) {
	obj := Map(objectFields, objectLabels)
	for _, tc := range []struct {
		filter string
		match  bool
	}{
		// Presence.
		{"name", true},
		{"missing", false},
		{"labels", true},
		{"labels.app", true},
		{"labels.nope", false},
		{"labels.empty-value", true},
		{"empty", true},
		{`labels."io.kubernetes.pod"`, true},
		{"labels.io.kubernetes.pod", false}, // four components, not a label key
		// Equality, bare values in the liberal forms the stores need.
		{"name==docker.io/library/busybox:latest", true},
		{"name==docker.io/library/busybox", false},
		{"digest==sha256:abc123", true},
		{"digest==sha256:abc124", false},
		{"path==/tasks/exit", true},
		{"labels.unicode-ключ==значение", true},
		{"labels.app==web", true},
		{"labels.app==Web", false},
		{"labels.gc.ref.content.l.0==sha256:def", false},
		{`labels."gc.ref.content.l.0"==sha256:def`, true},
		{`labels."io.cri-runtime/owner"==me`, true},
		// Quoting.
		{`name=="docker.io/library/busybox:latest"`, true},
		{`labels."a.b/c"=="x,y"`, true},
		{`labels."quote\"d"==q`, true},
		{`labels."with space"=="two words"`, true},
		{`labels."\x61pp"=="w\u0065b"`, true},
		{`empty==""`, true},
		{`labels."empty-value"==""`, true},
		{`labels.pipe==|a\|b|`, true},
		{`labels.slash==/a\/b/`, true},
		{`labels.backslash=="a\\b"`, true},
		// Whitespace around tokens.
		{"  name  ==  docker.io/library/busybox:latest  ", true},
		{" labels.app == web , digest == sha256:abc123 ", true},
		{"\tlabels.app\t!=\tdb\t", true},
		// Negation, including on a missing field.
		{"labels.app!=db", true},
		{"labels.app!=web", false},
		{"missing!=x", true},
		{"labels.nope!=web", true},
		{`missing!=""`, true},
		{`empty!=""`, false},
		// Regexp, in all quote forms.
		{"name~=busybox", true},
		{"name~=^busybox", false},
		{"name~=^docker\\.io/.*:latest$", true},
		{`name~="^docker\\.io/"`, true},
		{`labels.regexp~=/^a\.b$/`, true},
		{`labels.slash~=|^a/b$|`, true},
		{`labels.slash~=/^a\/b$/`, true},
		{`labels.backslash~=/^a\\b$/`, true},
		{`labels.pipe~=/^a\|b$/`, true},
		{"labels.app~=^(web|db)$", true},
		{"labels.app~=^(api|db)$", false},
		{"missing~=.*", false}, // ~= needs the field present
		{"empty~=^$", true},
		// AND.
		{"labels.app==web,digest==sha256:abc123", true},
		{"labels.app==web,digest==sha256:nope", false},
		{"labels.app==web,name,labels", true},
		{"labels.app==web,missing", false},
		// Empty filter.
		{"", true},
		{"   ", true},
	} {
		t.Run(tc.filter, func(t *testing.T) {
			f, err := Parse(tc.filter)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.filter, err)
			}
			if got := f.Match(obj); got != tc.match {
				t.Errorf("Parse(%q).Match = %v, want %v", tc.filter, got, tc.match)
			}
			// The canonical form must mean the same.
			if s, ok := f.(fmt.Stringer); ok {
				g, err := Parse(s.String())
				if err != nil {
					t.Fatalf("Parse(String() = %q): %v", s.String(), err)
				}
				if got := g.Match(obj); got != tc.match {
					t.Errorf("Parse(%q).Match = %v, want %v", s.String(), got, tc.match)
				}
			}
		})
	}
}

func TestParseAll(t *testing.T) {
	obj := Map(map[string]string{"name": "a"}, map[string]string{"k": "v"})
	for _, tc := range []struct {
		filters []string
		match   bool
	}{
		{nil, true},
		{[]string{""}, true},
		{[]string{"", " "}, true},
		{[]string{"name==a"}, true},
		{[]string{"name==b"}, false},
		{[]string{"name==b", "labels.k==v"}, true},
		{[]string{"name==b", "labels.k==w"}, false},
		{[]string{"name==b,labels.k==v", "name==a,labels.k==w"}, false},
		{[]string{"name==b,labels.k==v", "name==a,labels.k==v"}, true},
		// An empty filter matches everything, so OR with it does too.
		{[]string{"name==b", ""}, true},
	} {
		f, err := ParseAll(tc.filters...)
		if err != nil {
			t.Fatalf("ParseAll(%q): %v", tc.filters, err)
		}
		if got := f.Match(obj); got != tc.match {
			t.Errorf("ParseAll(%q).Match = %v, want %v", tc.filters, got, tc.match)
		}
	}
	if _, err := ParseAll("name==a", "name=="); err == nil {
		t.Error("ParseAll with one bad filter: no error")
	}
}

func TestMap(t *testing.T) {
	a := Map(map[string]string{"name": "n", "id": "i", "runtime.name": "r"}, map[string]string{"k": "v"})
	for _, tc := range []struct {
		path    []string
		value   string
		present bool
	}{
		{[]string{"name"}, "n", true},
		{[]string{"id"}, "i", true},
		{[]string{"other"}, "", false},
		{[]string{"labels"}, "", true},
		{[]string{"labels", "k"}, "v", true},
		{[]string{"labels", "x"}, "", false},
		{[]string{"labels", "k", "x"}, "", false},
		{[]string{"name", "x"}, "", false},
		{[]string{"runtime", "name"}, "r", true},
		{[]string{"runtime"}, "", false},
		{nil, "", false},
	} {
		v, ok := a.Field(tc.path)
		if v != tc.value || ok != tc.present {
			t.Errorf("Field(%q) = %q, %v; want %q, %v", tc.path, v, ok, tc.value, tc.present)
		}
	}
	if _, ok := Map(nil, nil).Field([]string{"labels"}); ok {
		t.Error(`Field(["labels"]) with no labels is present`)
	}
}

func TestString(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"name", "name"},
		{" name == a , labels.k != b ", "name==a,labels.k!=b"},
		{`labels."a.b"==c`, `labels."a.b"==c`},
		{`labels."ab"=="c d"`, `labels.ab=="c d"`},
		{"path==/tasks/exit", `path=="/tasks/exit"`},
		{"name~=|^a\\|b$|", `name~="^a|b$"`},
		{"digest==sha256:abc", "digest==sha256:abc"},
		{`x==""`, `x==""`},
	} {
		f, err := Parse(tc.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.in, err)
			continue
		}
		if got := f.(fmt.Stringer).String(); got != tc.want {
			t.Errorf("Parse(%q).String() = %q, want %q", tc.in, got, tc.want)
		}
	}
}
